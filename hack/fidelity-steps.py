#!/usr/bin/env python3
"""The steps of the upstream's rollout in drill reports, on either cluster (docs/fidelity.md):

  hack/fidelity-steps.py SCENARIO REPORT...   # report dirs, report.json or .json.gz; stdlib only

One row per pod replacement step i (the i-th new pod, the i-th old pod deleted), seconds:
created (new pod, from the restart), start (created -> started), ready (started -> ready),
react (new pod ready -> old pod's deletion: the Deployment and ReplicaSet controllers), surge
(that deletion -> the next new pod's creation),
exit (deletion -> exit reported), gone (exit reported -> pod object deleted), del_gone
(deletion -> pod deleted), then per report: the rollout complete and settled (the report's
rollout_duration_s) from the restart, and what the settle waited for after the rollout was
complete (the last old pod's deletion).
"""
import datetime, gzip, json, os, re, statistics, sys

if len(sys.argv) < 3:
    sys.exit("usage: fidelity-steps.py SCENARIO REPORT...")
sc = sys.argv[1]


def ts(s):
    m = re.match(r"(\d+-\d+-\d+T\d+:\d+:\d+)(\.\d+)?", s)
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return t.timestamp() + float(m.group(2) or 0)


def load(a):
    f = os.path.join(a, "rep", "report.json") if os.path.isdir(os.path.join(a, "rep")) else \
        os.path.join(a, "report.json") if os.path.isdir(a) else a
    return json.load(gzip.open(f) if f.endswith(".gz") else open(f))


cols = ["start", "ready", "react", "surge", "exit", "gone", "del_gone"]
allv = {c: [] for c in cols}
print("report\tstep\tcreated\t" + "\t".join(cols))
summary = []
for a in sys.argv[2:]:
    rep = load(a)
    s = next((x for x in rep["scenarios"] if x["scenario"] == sc), None)
    if s is None:
        sys.exit(f"fidelity-steps: no scenario {sc} in {a}")
    pods, completes = {}, []
    for e in s.get("events") or []:
        if e.get("kind") == "rollout_complete" and e.get("deployment") == "upstream":
            completes.append(ts(e["time"]))
        if e.get("deployment") != "upstream" or not e.get("pod"):
            continue
        pods.setdefault(e["pod"], {}).setdefault(e["kind"], ts(e["time"]))
    # one window per rollout (several with --rollouts): restart to the next restart
    ros = s.get("rollouts") or [{"restart_at": s["restart_at"], "rollout_duration_s": s.get("rollout_duration_s")}]
    starts = [ts(x["restart_at"]) for x in ros] + [float("inf")]
    name = os.path.basename(a.rstrip("/")).replace(".json.gz", "")
    for k, ro in enumerate(ros):
        r, nxt = starts[k], starts[k + 1]
        label = name if len(ros) == 1 else f"{name}/{k + 1}"
        within = lambda t: t is not None and r - 0.01 < t < nxt
        new = sorted((p for p in pods.values() if within(p.get("pod_created"))), key=lambda p: p["pod_created"])
        old = sorted((p for p in pods.values() if not within(p.get("pod_created")) and within(p.get("pod_terminating"))),
                     key=lambda p: p["pod_terminating"])
        for i, (n, o) in enumerate(zip(new, old), 1):
            g = lambda p, k: p.get(k)
            d = lambda x, y: None if x is None or y is None else y - x
            v = {"start": d(g(n, "pod_created"), g(n, "pod_started")), "ready": d(g(n, "pod_started"), g(n, "pod_ready")),
                 "react": d(g(n, "pod_ready"), g(o, "pod_terminating")),
                 "surge": d(g(o, "pod_terminating"), g(new[i], "pod_created")) if i < len(new) else None, "exit": d(g(o, "pod_terminating"), g(o, "pod_exited")),
                 "gone": d(g(o, "pod_exited"), g(o, "pod_deleted")), "del_gone": d(g(o, "pod_terminating"), g(o, "pod_deleted"))}
            for c in cols:
                if v[c] is not None:
                    allv[c].append(v[c])
            print(f"{label}\t{i}\t{n['pod_created'] - r:.2f}\t" + "\t".join("-" if v[c] is None else f"{v[c]:.2f}" for c in cols))
        complete = next((t - r for t in completes if r < t < nxt), None)
        last = max((o.get("pod_deleted", 0) for o in old), default=r) - r
        summary.append((label, complete, ro.get("rollout_duration_s"), last))
print()
print("report\tcomplete\tsettled\tlast_old_deleted")
for name, c, st, last in summary:
    f = lambda x: "-" if x is None else f"{x:.2f}"
    print(f"{name}\t{f(c)}\t{f(st)}\t{f(last)}")
print()
print("step\tn\tmin\tmedian\tmean\tmax")
for c in cols:
    x = allv[c]
    if x:
        print(f"{c}\t{len(x)}\t{min(x):.2f}\t{statistics.median(x):.2f}\t{statistics.mean(x):.2f}\t{max(x):.2f}")
st = [x[2] for x in summary if x[2] is not None]
if st:
    print(f"settled\t{len(st)}\t{min(st):.2f}\t{statistics.median(st):.2f}\t{statistics.mean(st):.2f}\t{max(st):.2f}")
