#!/usr/bin/env python3
"""When does a new pod get traffic, relative to its process's start and its listen? On the lab
(docs/fidelity.md, "Readiness of a pod without a readiness probe"):

  hack/fidelity-ready.py [--namespace NS] [--rollouts N] [--probes] [--image IMG [--args A]] OUT.tsv

Creates namespace NS (default fprobe-ready; it must not exist) with k8s/v2-graceful's upstream
Deployment and Service, its readiness and liveness probes removed unless --probes, then restarts
the Deployment N times (default 12: 24 pod starts at 2 replicas), one rollout at a time, and
deletes the namespace. Per new pod, seconds after its container's start (containerd's
startedAt, nanoseconds, from `crictl inspect`):

  start_returned  containerd's "StartContainer ... returns successfully" (the kubelet's CRI call ends)
  listen          the upstream's own "listening" log line (slog, millisecond resolution)
  running         the pod's status first showing the container running (watch, as received)
  ready           the pod's Ready condition first True (watch)
  eps_ready       its endpoint first ready in an EndpointSlice (watch; what kube-proxy acts on)

The watch times are when this client received the change, a few ms after the API server
wrote it. Needs the lab's environment (`eval "$(../shared/k8s-local/lab env)"`), root for
crictl, python3 with PyYAML.

  hack/fidelity-ready.py --embedded OUT SCENARIO

The same per new upstream pod of an embedded run (`gracelab ablate|demo --port 0 --out OUT`),
from its report's events and pod logs, seconds after the process's start (pod_started):
listen, ready, routed (endpoint_added: the embedded proxy starts sending it connections,
after kube-proxy's emulated sync), and the downstream's failed upstream calls that started
between routed and listen (connections sent to the pod before it listened).
"""
import argparse, datetime, json, os, re, subprocess, sys, threading, time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K8SLAB = os.environ.get("K8SLAB_DIR", "/var/tmp/k8slab")
CRICTL = ["crictl", "--config", os.path.join(K8SLAB, "etc", "crictl.yaml")]


def ts(s):
    """RFC 3339 with up to nanoseconds -> Unix seconds."""
    m = re.match(r"(\d+-\d+-\d+T\d+:\d+:\d+)(\.\d+)?", s)
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return t.timestamp() + float(m.group(2) or 0)


def kubectl(*args, inp=None, check=True):
    r = subprocess.run(["kubectl", *args], input=inp, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


class Recorder:
    """Watches pods and EndpointSlices of the namespace; first time of each fact per pod."""

    def __init__(self, ns):
        self.ns, self.lock, self.pods, self.procs, self.listed = ns, threading.Lock(), {}, [], []

    def first(self, pod, key, t):
        with self.lock:
            self.pods.setdefault(pod, {}).setdefault(key, t)

    def watch(self, path, handle):
        # One JSON watch event per line; the first ones list what exists.
        # resourceVersion=0: served from the watch cache at once (without it, a loaded API
        # server may wait seconds for the cache to catch up, then fail the watch).
        p = subprocess.Popen(["kubectl", "get", "--raw", path + "?watch=1&resourceVersion=0"],
                             stdout=subprocess.PIPE, text=True, bufsize=1)
        self.procs.append(p)
        listed = threading.Event()
        self.listed.append(listed)

        def loop():
            for line in p.stdout:
                t = time.time()
                ev = json.loads(line)
                if ev.get("type") == "ERROR":
                    print("fidelity-ready: watch %s: %s" % (path, ev["object"].get("message")), file=sys.stderr)
                    continue
                if ev.get("type") in ("ADDED", "MODIFIED"):
                    handle(t, ev["object"])
                listed.set()

        threading.Thread(target=loop, daemon=True).start()

    def start(self):
        self.watch(f"/api/v1/namespaces/{self.ns}/pods", self.pod)
        self.watch(f"/apis/discovery.k8s.io/v1/namespaces/{self.ns}/endpointslices", self.slice)

    def pod(self, t, obj):
        name, st = obj["metadata"]["name"], obj.get("status", {})
        for c in st.get("containerStatuses", []):
            if c.get("containerID"):
                with self.lock:
                    self.pods.setdefault(name, {}).setdefault("cid", c["containerID"].split("//", 1)[1])
            if "running" in c.get("state", {}):
                self.first(name, "running", t)
        if any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions", [])):
            self.first(name, "ready", t)

    def slice(self, t, obj):
        for e in obj.get("endpoints") or []:
            if e.get("conditions", {}).get("ready") and e.get("targetRef"):
                self.first(e["targetRef"]["name"], "eps_ready", t)

    def stop(self):
        for p in self.procs:
            p.terminate()


def container_details(rec, pod, ns):
    """The container's exact start (crictl) and the listen time (its log), while it exists."""
    P = rec.pods[pod]
    out = json.loads(subprocess.run(CRICTL + ["inspect", P["cid"]], capture_output=True, text=True, check=True).stdout)
    P["exec"] = ts(out["status"]["startedAt"])
    deadline = time.time() + 30
    while time.time() < deadline:
        logs = kubectl("-n", ns, "logs", pod, check=False)
        for line in logs.splitlines():
            if '"listening"' in line:
                P["listen"] = ts(json.loads(line)["time"])
                return
        time.sleep(0.2)  # polling the log with a deadline


def start_returned(cids):
    """containerd's StartContainer return times for the containers, from its log."""
    found = {}
    pat = re.compile(r'time="([^"]+)".*StartContainer for \\"([0-9a-f]+)\\" returns successfully')
    with open(os.path.join(K8SLAB, "logs", "containerd.log"), errors="replace") as f:
        for line in f:
            if "returns successfully" in line and "StartContainer" in line:
                m = pat.search(line)
                if m and m.group(2) in cids:
                    found[m.group(2)] = ts(m.group(1))
    return found


def embedded(out, sc):
    rep = json.load(open(os.path.join(out, "runs", sc, "report.json")))
    s = rep["scenarios"][0]
    pods = {}
    for e in s["events"]:
        if e.get("deployment") == "upstream" and e.get("pod"):
            pods.setdefault(e["pod"], {}).setdefault(e["kind"], ts(e["time"]))
    logs = os.path.join(out, "runs", sc, "logs", sc)
    fails = []
    for f in sorted(os.listdir(logs)):
        for line in open(os.path.join(logs, f), errors="replace"):
            if f.startswith("upstream-") and '"listening"' in line:
                pods.setdefault(f[:-4], {}).setdefault("listen", ts(json.loads(line)["time"]))
            elif f.startswith("downstream-") and "upstream call failed" in line:
                j = json.loads(line)
                fails.append((ts(j["time"]) - j.get("elapsed_ms", 0) / 1000, j["kind"]))
    restart = ts(s["restart_at"])
    print("pod\tlisten\tready\trouted\tfailed_before_listen")
    total = 0
    for name, P in sorted(pods.items(), key=lambda kv: kv[1].get("pod_started", 0)):
        x = P.get("pod_started")
        if x is None or x < restart or "listen" not in P:
            continue
        routed = P.get("endpoint_added")
        n = [k for t, k in fails if routed and routed - 0.01 <= t <= P["listen"] + 0.01]
        total += len(n)
        print("%s\t%.3f\t%s\t%s\t%d %s" % (name, P["listen"] - x, "%.3f" % (P["pod_ready"] - x) if "pod_ready" in P else "-",
                                          "%.3f" % (routed - x) if routed else "-", len(n), ",".join(sorted(set(n)))))
    print("# failed upstream calls: %d in all, %d to pods not yet listening" % (len(fails), total))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--embedded":
        return embedded(sys.argv[2], sys.argv[3])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--namespace", default="fprobe-ready")
    ap.add_argument("--rollouts", type=int, default=12)
    ap.add_argument("--probes", action="store_true", help="keep the readiness and liveness probes")
    ap.add_argument("--image", default="gracelab/upstream:dev")
    ap.add_argument("--args", default="", help="the container's args, space-separated (an image of the "
                    "gracelab binary runs the upstream with --args 'serve upstream')")
    a = ap.parse_args()
    ns = a.namespace
    docs = list(yaml.safe_load_all(open(os.path.join(ROOT, "k8s", "v2-graceful", "upstream.yaml"))))
    for d in docs:
        if d["kind"] == "Deployment":
            for c in d["spec"]["template"]["spec"]["containers"]:
                c["image"] = a.image
                if a.args:
                    c["args"] = a.args.split()
                if not a.probes:
                    c.pop("readinessProbe", None)
                    c.pop("livenessProbe", None)
    kubectl("create", "namespace", ns)
    rec = Recorder(ns)
    try:
        kubectl("-n", ns, "apply", "-f", "-", inp=yaml.safe_dump_all(docs))
        kubectl("-n", ns, "rollout", "status", "deployment/upstream", "--timeout=180s")
        initial = {n.split("/", 1)[1] for n in kubectl("-n", ns, "get", "pods", "-o", "name").split()}
        rec.start()
        for listed in rec.listed:  # both watches delivered the objects there are
            if not listed.wait(60):
                raise RuntimeError("a watch delivered nothing in 60 s")
        loads = [open("/proc/loadavg").read().split()[0]]
        for i in range(a.rollouts):
            kubectl("-n", ns, "rollout", "restart", "deployment/upstream")
            kubectl("-n", ns, "rollout", "status", "deployment/upstream", "--timeout=180s")
            with rec.lock:
                new = [p for p, P in rec.pods.items() if p not in initial and "exec" not in P and "cid" in P]
            for p in new:
                container_details(rec, p, ns)
            deadline = time.time() + 120  # the old pods go (5 s preStop) before the next restart
            while time.time() < deadline and len(kubectl("-n", ns, "get", "pods", "-o", "name").split()) > 2:
                time.sleep(0.5)
            loads.append(open("/proc/loadavg").read().split()[0])
            print(f"rollout {i + 1}/{a.rollouts} done, load {loads[-1]}", file=sys.stderr)
        time.sleep(2)  # late EndpointSlice deliveries
    finally:
        rec.stop()
        kubectl("delete", "namespace", ns, "--wait=false", check=False)
    rows = [(p, P) for p, P in rec.pods.items() if "exec" in P]
    sr = start_returned({P["cid"] for _, P in rows})
    keys = ["start_returned", "listen", "running", "ready", "eps_ready"]
    with open(a.out, "w") as f:
        f.write("# probes=%s load=%s\n" % (a.probes, ",".join(loads)))
        f.write("pod\t" + "\t".join(keys) + "\n")
        for p, P in sorted(rows, key=lambda r: r[1]["exec"]):
            P["start_returned"] = sr.get(P["cid"])
            f.write(p + "\t" + "\t".join("%.3f" % (P[k] - P["exec"]) if P.get(k) else "-" for k in keys) + "\n")
    print(f"{len(rows)} pods -> {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
