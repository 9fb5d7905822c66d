#!/usr/bin/env bash
# One fidelity run (docs/fidelity.md): `gracelab demo` on the lab cluster or the embedded one,
# with what the per-pod analysis needs recorded next to the report.
#
#   hack/fidelity-lab.sh DIR lab GRACELAB [demo flags]   # the lab (root: conntrack, its logs)
#   hack/fidelity-lab.sh DIR embedded GRACELAB [flags]   # the embedded cluster (--port 0)
#   hack/fidelity-pods.py DIR [v1]                       # then: per old upstream pod
#
# DIR gets: rep/ (the report), uptime.start/.end (the machine's load), t.start/.end, and on
# the lab kp.before/.after (kube-proxy's network_programming_duration histogram),
# conntrack.log (every new and updated TCP connection, kernel-stamped: which pod each new
# connection to a Service went to, and whether it was refused), containerd.log (the
# containerd log lines of the run: kills, network teardowns) and, with NS set, events.json.
#
# NS=name: on the lab, run in that namespace (created here, deleted afterwards) and keep its
# API Events (the kubelet's Killing, the controllers' scaling) in events.json.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 DIR lab|embedded GRACELAB [demo flags]" >&2; exit 2; }
dir=$1 mode=$2 gl=$3
shift 3
case $mode in lab | embedded) ;; *) echo "fidelity-lab: mode $mode: use lab or embedded" >&2; exit 2 ;; esac
[ -x "$gl" ] || { echo "fidelity-lab: $gl is not an executable gracelab" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=${LAB:-$ROOT/../shared/k8s-local/lab}
[ -x "$LAB" ] || LAB=$ROOT/../../shared/k8s-local/lab # from a worktree in /work/wt/NAME
METRICS=${KUBE_PROXY_METRICS:-http://127.0.0.1:10249/metrics}
mkdir -p "$dir"
metrics() { curl -s --max-time 10 "$METRICS" | grep network_programming_duration || true; }
uptime >"$dir/uptime.start"
date -u +%s.%N >"$dir/t.start"
rc=0
if [ "$mode" = lab ]; then
	command -v conntrack >/dev/null || { echo "fidelity-lab: conntrack not found (apt-get install conntrack)" >&2; exit 1; }
	eval "$("$LAB" env)"
	metrics >"$dir/kp.before"
	conntrack -E -e NEW,UPDATE -p tcp -o timestamp >"$dir/conntrack.log" 2>/dev/null &
	ct=$!
	trap 'kill $ct 2>/dev/null || true' EXIT
	ns=()
	if [ -n "${NS:-}" ]; then
		kubectl create namespace "$NS" >/dev/null
		trap 'kill $ct 2>/dev/null || true; kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true' EXIT
		ns=(--namespace "$NS")
	fi
	"$gl" demo --cluster --out "$dir/rep" "${ns[@]}" "$@" >"$dir/out.log" 2>&1 || rc=$?
	kill $ct 2>/dev/null || true
	metrics >"$dir/kp.after"
	[ -z "${NS:-}" ] || kubectl get events -n "$NS" -o json >"$dir/events.json"
	# containerd's lines of the run (its log is the lab's, rewritten by each `lab up`)
	awk -v a="$(date -u -d "@$(cut -d. -f1 "$dir/t.start")" +%FT%T)" -v b="$(date -u +%FT%T)" \
		'match($0, /time="[^"]+"/) { t = substr($0, 7, 19); if (t >= a && t <= b) print }' \
		"${K8SLAB_DIR:-/var/tmp/k8slab}/logs/containerd.log" >"$dir/containerd.log"
else
	"$gl" demo --port 0 --out "$dir/rep" "$@" >"$dir/out.log" 2>&1 || rc=$?
fi
date -u +%s.%N >"$dir/t.end"
uptime >"$dir/uptime.end"
echo "fidelity-lab: $dir: exit $rc, load $(sed 's/.*average: //' "$dir/uptime.start") -> $(sed 's/.*average: //' "$dir/uptime.end")"
exit $rc
