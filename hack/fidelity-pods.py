#!/usr/bin/env python3
"""Per old upstream pod of one fidelity run (hack/fidelity-lab.sh DIR ...), seconds from the
pod's deletion (its pod_terminating event):

  hack/fidelity-pods.py DIR [SCENARIO]     # default v1; python3, standard library only
  hack/fidelity-pods.py --delays DIR...    # lab runs: the deciles the embedded kubelet draws

--delays pools the upstream pods the rollouts of the lab runs created or deleted (every
scenario) and prints, per delay,
its count and its 0th to 100th percentile in steps of 10 (the form of localkube's measured
tables): start (the pod object's creation -> containerd's StartContainer returned: the
process runs), linger (kill -> network teardown; split into linger_busy, the teardowns that
another pod's start overlapped, and linger_idle, the others) and delete (network teardown ->
the pod object's deletion).

lab:      kill (containerd's StopContainer, i.e. the kubelet's kill), first refused and last
          accepted new connection to the pod through the Service, last new connection
          (kube-proxy stopped routing to it just after), containerd's network teardown, the pod
          object's deletion (the watch saw it gone), and how many new connections were refused; from conntrack.log and $K8SLAB_DIR/logs/containerd.log.
embedded: SIGTERM, exit, network removed, endpoint removed (the proxy stopped routing), from
          the report's events.
"""
import datetime, json, os, re, sys


def ts(s):
    m = re.match(r"(\d+-\d+-\d+T\d+:\d+:\d+)(\.\d+)?", s)
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return t.timestamp() + float(m.group(2) or 0)


def scenario_pods(s):
    """First time of each event kind per upstream pod of scenario s, and the pod's address."""
    pods = {}
    for e in s.get("events") or []:
        if e.get("deployment") != "upstream" or not e.get("pod"):
            continue
        P = pods.setdefault(e["pod"], {})
        P.setdefault(e["kind"], ts(e["time"]))
        m = re.search(r"(?:-> )?(\d+\.\d+\.\d+\.\d+)(?::|$)", e.get("detail") or "")
        if m and e["kind"].startswith("endpoint_"):
            P["ip"] = m.group(1)
    return pods


def containerd(d, t_lo, t_hi):
    """Per upstream pod, from containerd's log: started (StartContainer returned), kill
    (StopContainer), net_gone (TearDown network)."""
    sandbox, container, cd = {}, {}, {}
    logf = os.path.join(d, "containerd.log")  # the run's lines (hack/fidelity-lab.sh), else the lab's log
    if not os.path.exists(logf):
        logf = os.path.join(os.environ.get("K8SLAB_DIR", "/var/tmp/k8slab"), "logs", "containerd.log")
    for line in open(logf, errors="replace"):
        m = re.match(r'time="([^"]+)"', line)
        if not m or not (t_lo - 120 < ts(m.group(1)) < t_hi + 60):
            continue
        t = ts(m.group(1))
        if m := re.search(r'RunPodSandbox for &PodSandboxMetadata\{Name:([^,]+),.*returns sandbox id \\"(\w+)', line):
            sandbox[m.group(2)] = m.group(1)
        elif m := re.search(r'CreateContainer within sandbox \\"(\w+)\\" for &ContainerMetadata\{Name:upstream.*returns container id \\"(\w+)', line):
            container[m.group(2)] = sandbox.get(m.group(1))
        elif (m := re.search(r'StartContainer for \\"(\w+)\\" returns successfully', line)) and container.get(m.group(1)):
            cd.setdefault(container[m.group(1)], {}).setdefault("started", t)
        elif (m := re.search(r'StopContainer for \\"(\w+)\\" with timeout', line)) and container.get(m.group(1)):
            cd.setdefault(container[m.group(1)], {}).setdefault("kill", t)
        elif (m := re.search(r'TearDown network for sandbox \\"(\w+)\\" successfully', line)) and sandbox.get(m.group(1)):
            cd.setdefault(sandbox[m.group(1)], {}).setdefault("net_gone", t)
    return cd


def report(d):
    return json.load(open(os.path.join(d, "rep", "report.json")))


def delays(dirs):
    """The deciles of start, linger and delete over every upstream pod of the lab runs."""
    got = {"start": [], "linger": [], "linger_idle": [], "linger_busy": [], "delete": []}
    for d in dirs:
        for s in report(d)["scenarios"]:
            if not s.get("events"):
                continue
            pods = scenario_pods(s)
            cd = containerd(d, ts(s["start"]) - 5, ts(s["end"]) + 5)
            restarts = [ts(r["restart_at"]) for r in s.get("rollouts") or [s]]
            for name, P in pods.items():
                # the rollouts' pods only: not the first ones, nor those the clean-up deletes together
                if not any(r - 0.01 < P.get("pod_created", 0) for r in restarts) and "pod_terminating" not in P:
                    continue
                C = cd.get(name, {})
                if P.get("pod_created", 0) < restarts[0] - 0.01:
                    C = {k: v for k, v in C.items() if k != "started"}
                if "pod_terminating" not in P:
                    C = {k: v for k, v in C.items() if k == "started"}
                pairs = {"start": (P.get("pod_created"), C.get("started")), "linger": (C.get("kill"), C.get("net_gone")),
                         "delete": (C.get("net_gone"), P.get("pod_deleted"))}
                for k, (a, b) in pairs.items():
                    if a is not None and b is not None:
                        got[k].append(b - a)
                if "kill" in C and "net_gone" in C:
                    # busy: another pod's start (created -> process started) overlapped the teardown
                    busy = any(n != name and "pod_created" in Q and "started" in cd.get(n, {}) and
                               Q["pod_created"] < C["net_gone"] and cd[n]["started"] > C["kill"] for n, Q in pods.items())
                    got["linger_busy" if busy else "linger_idle"].append(C["net_gone"] - C["kill"])
    for k, v in got.items():
        v.sort()
        if not v:
            print(f"{k}\t0")
            continue
        q = []
        for i in range(11):  # linear between order statistics, as lagQuantiles.at reads them back
            x = i / 10 * (len(v) - 1)
            j = int(x)
            q.append(v[j] if j + 1 >= len(v) else v[j] + (x - j) * (v[j + 1] - v[j]))
        print(f"{k}\t{len(v)}\t" + " ".join(f"{round(x * 1000)}" for x in q) + " ms")


def per_pod(d, sc):
    s = next((x for x in report(d)["scenarios"] if x["scenario"] == sc), None)
    if s is None or not s.get("events"):
        sys.exit(f"fidelity-pods: no events of scenario {sc} in {d}")
    t_lo, t_hi = ts(s["start"]) - 5, ts(s["end"]) + 5
    pods = scenario_pods(s)
    old = sorted((p for p in pods if "pod_terminating" in pods[p]), key=lambda p: pods[p]["pod_terminating"])
    rel = lambda v, T: "-" if v is None else f"{v - T:.2f}"

    if not os.path.exists(os.path.join(d, "conntrack.log")):
        print("pod\tdeleted_at\tsigterm\texit\tnet_gone\tendpoint_removed")
        for p in old:
            P = pods[p]; T = P["pod_terminating"]
            print(f"{p}\t{T - ts(s['restart_at']):.2f}\t{rel(P.get('sigterm'), T)}\t{rel(P.get('pod_exited'), T)}"
                  f"\t{rel(P.get('pod_network_removed'), T)}\t{rel(P.get('endpoint_removed'), T)}")
        return

    cd = containerd(d, t_lo, t_hi)
    # conntrack: connections to a ClusterIP (100.96.0.0/16) DNATed to one of the pods, and whether
    # the pod answered (ESTABLISHED) or refused.
    ips = {pods[p]["ip"]: p for p in pods if pods[p].get("ip")}
    conns = {}
    pat = re.compile(r"\[(\d+\.\d+)\]\s+\[(\w+)\] tcp\s+\d+ \d+ (\w+) src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+) .*?src=(\S+) dst")
    for line in open(os.path.join(d, "conntrack.log"), errors="replace"):
        m = pat.match(line)
        if not m:
            continue
        t, ev, state, src, dst, sport, _, pip = m.groups()
        t = float(t)
        if not dst.startswith("100.96.") or pip not in ips or not (t_lo < t < t_hi):
            continue
        key = (src, sport, pip)
        if ev == "NEW":
            conns[key] = {"t": t, "pod": ips[pip], "ok": False}
        elif key in conns and state == "ESTABLISHED":
            conns[key]["ok"] = True

    print("pod\tdeleted_at\tkill\tfirst_refused\tlast_accepted\tlast_new_conn\tnet_gone\tobject_gone\trefused_conns")
    for p in old:
        T = pods[p]["pod_terminating"]
        C = cd.get(p, {})
        cs = sorted((c["t"], c["ok"]) for c in conns.values() if c["pod"] == p and c["t"] > T - 1)
        bad = [t for t, ok in cs if not ok]
        good = [t for t, ok in cs if ok]
        print(f"{p}\t{T - ts(s['restart_at']):.2f}\t{rel(C.get('kill'), T)}\t{rel(min(bad) if bad else None, T)}"
              f"\t{rel(max(good) if good else None, T)}\t{rel(cs[-1][0] if cs else None, T)}\t{rel(C.get('net_gone'), T)}"
              f"\t{rel(pods[p].get('pod_deleted'), T)}\t{len(bad)}")


if len(sys.argv) >= 3 and sys.argv[1] == "--delays":
    delays(sys.argv[2:])
elif len(sys.argv) in (2, 3) and not sys.argv[1].startswith("-"):
    per_pod(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "v1")
else:
    sys.exit("usage: fidelity-pods.py DIR [SCENARIO] | fidelity-pods.py --delays DIR...")
