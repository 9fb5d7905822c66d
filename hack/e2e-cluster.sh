#!/usr/bin/env bash
# The drill end to end on a real Kubernetes: build the services as static binaries, load them as
# images, run `gracelab demo --cluster` for v1, v2 and v3, check the verdicts, keep the report and
# leave the cluster as it was found. For developer sessions, not for CI (it needs root, a built
# lab cluster or kind, and minutes of wall-clock time).
#
#   hack/e2e-cluster.sh                      # the lab cluster (../shared/k8s-local/lab)
#   E2E_CLUSTER=kind hack/e2e-cluster.sh     # a kind cluster: docker build + kind load
#   E2E_CLUSTER=current hack/e2e-cluster.sh  # the kubeconfig's current context, images already there
#
# Environment:
#   E2E_CLUSTER        lab (default), kind or current
#   LAB                the lab script (default: <repo>/../shared/k8s-local/lab)
#   K8SLAB_DIR         the lab's state directory (default /var/tmp/k8slab), as the lab script reads it
#   KIND_CLUSTER       kind cluster name (default kind); the context is kind-$KIND_CLUSTER
#   E2E_TARGET         URL where this machine reaches the downstream Service (default: gracelab
#                      derives it: the LoadBalancer address, else the ClusterIP, which the lab's
#                      host routes to; kind needs cloud-provider-kind or a NodePort mapping)
#   E2E_OUT            report directory (default <repo>/reports/e2e-cluster-<timestamp>)
#   E2E_V2_MAX_ERRORS  v2 errors still accepted, each reported with its cause (default 2: a
#                      saturated 2-core node has been seen to drop 2 requests in 1 of 13 runs)
#   E2E_DEMO_FLAGS     extra flags for gracelab demo (for example "--duration 60s --restart-at 10s")
#   E2E_ONLY           demo or drill: run only that part (default both)
#   E2E_NS_PREFIX      prefix of the namespaces the drill case applies the demo's manifests into
#                      with kubectl (default gracelab-e2e; <prefix>-v1, <prefix>-v2)
#   E2E_LOAD_IMAGE     image of the drill case's load pods (default gracelab/gracelab:dev, built
#                      and loaded here for lab and kind)
#
# Exit code: 0 when the verdicts hold or no cluster is available (the skip says so), 1 otherwise.
# Verdicts: v1 errors > 0 (the unprotected rollout loses requests), v3 errors = 0, v2 errors <=
# E2E_V2_MAX_ERRORS.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=${E2E_CLUSTER:-lab}
LAB=${LAB:-$ROOT/../shared/k8s-local/lab}
LABDIR=${K8SLAB_DIR:-/var/tmp/k8slab}
KIND_CLUSTER=${KIND_CLUSTER:-kind}
OUT=${E2E_OUT:-$ROOT/reports/e2e-cluster-$(date +%Y%m%d-%H%M%S)}
V2_MAX=${E2E_V2_MAX_ERRORS:-2}
IMG_UP=gracelab/upstream:dev IMG_DOWN=gracelab/downstream:dev

say() { printf 'e2e-cluster: %s\n' "$*" >&2; }
skip() { say "SKIP: $*"; exit 0; }
die() { say "FAIL: $*"; exit 1; }

case $MODE in lab | kind | current) ;; *) die "E2E_CLUSTER=$MODE: use lab, kind or current" ;; esac
[[ $V2_MAX =~ ^[0-9]+$ ]] || die "E2E_V2_MAX_ERRORS=$V2_MAX: give a whole number of requests"
command -v go >/dev/null || die "go not found: the services and gracelab are built from this tree"
command -v jq >/dev/null || die "jq not found: it reads the verdicts from report.json (apt-get install jq)"

BIN=$(mktemp -d)
STARTED_LAB=
cleanup() {
	local rc=$?
	rm -rf "$BIN"
	if [ -n "$STARTED_LAB" ]; then
		say "stopping the lab cluster this script started"
		"$LAB" down >&2 || { say "lab down failed: run '$LAB down' by hand"; rc=1; }
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. A cluster, or a clear skip.
KUBECTL=(kubectl)
CTX_FLAGS=()
case $MODE in
lab)
	[ -x "$LAB" ] || skip "no lab script at $LAB (set LAB, or E2E_CLUSTER=kind|current)"
	[ -x "$LABDIR/bin/kube-apiserver" ] || skip "the lab is not built ($LABDIR/bin): run '$LAB build' once (~11 min)"
	[ "$(id -u)" = 0 ] || skip "the lab needs root (it changes host networking)"
	eval "$("$LAB" env)"
	KUBECTL=("$LAB" kubectl)
	if [ -s "$LABDIR/run/pids" ]; then
		"${KUBECTL[@]}" get --raw /readyz >/dev/null 2>&1 ||
			die "the lab looks started ($LABDIR/run/pids) but its API server does not answer: '$LAB down' and retry"
		say "using the running lab cluster (it stays up)"
	else
		say "starting the lab cluster (it is stopped again at the end)"
		# The lab script writes its rendered configs into $LABDIR/etc without creating it.
		mkdir -p "$LABDIR/etc"
		STARTED_LAB=1
		"$LAB" up >&2 || die "lab up failed (logs in $LABDIR/logs)"
	fi
	;;
kind)
	command -v kind >/dev/null && command -v docker >/dev/null || skip "kind or docker not found"
	kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER" || skip "no kind cluster named $KIND_CLUSTER (kind create cluster)"
	command -v kubectl >/dev/null || skip "kubectl not found"
	CTX_FLAGS=(--context "kind-$KIND_CLUSTER")
	KUBECTL=(kubectl --context "kind-$KIND_CLUSTER")
	;;
current)
	command -v kubectl >/dev/null || skip "kubectl not found"
	;;
esac
"${KUBECTL[@]}" get --raw /readyz >/dev/null 2>&1 || skip "no reachable cluster ($MODE)"
SERVER_VERSION=$("${KUBECTL[@]}" version -o json 2>/dev/null | jq -r '.serverVersion.gitVersion // "unknown"')
say "cluster: $MODE, Kubernetes $SERVER_VERSION"
LEFT_BEFORE=$("${KUBECTL[@]}" get ns -l app.kubernetes.io/managed-by=gracelab -o name 2>/dev/null | sort)

# 2. The services as static binaries, loaded as images whose entrypoint is the service binary
# (the manifests set no command).
cd "$ROOT"
say "building"
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$BIN/upstream" ./cmd/upstream
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$BIN/downstream" ./cmd/downstream
go build -o "$BIN/gracelab" ./cmd/gracelab
case $MODE in
lab)
	"$LAB" image "$BIN/upstream" "$IMG_UP" >&2
	"$LAB" image "$BIN/downstream" "$IMG_DOWN" >&2
	;;
kind)
	docker build --target upstream -t "$IMG_UP" . >&2
	docker build --target downstream -t "$IMG_DOWN" . >&2
	kind load docker-image --name "$KIND_CLUSTER" "$IMG_UP" "$IMG_DOWN" >&2
	;;
current) say "E2E_CLUSTER=current: $IMG_UP and $IMG_DOWN must already be pullable by the cluster" ;;
esac

ONLY=${E2E_ONLY:-}
case $ONLY in "" | demo | drill) ;; *) die "E2E_ONLY=$ONLY: use demo or drill" ;; esac
fail=0
if [ "$ONLY" != drill ]; then
# 3. The drill. gracelab creates a namespace per scenario and deletes it afterwards.
DEMO=(--cluster --scenarios v1,v2,v3 --quiet --out "$OUT" "${CTX_FLAGS[@]}")
[ -n "${E2E_TARGET:-}" ] && DEMO+=(--target "$E2E_TARGET")
# shellcheck disable=SC2206 # word splitting of the extra flags is intended
[ -n "${E2E_DEMO_FLAGS:-}" ] && DEMO+=($E2E_DEMO_FLAGS)
say "gracelab demo ${DEMO[*]}"
demo_rc=0
"$BIN/gracelab" demo "${DEMO[@]}" || demo_rc=$?
[ $demo_rc = 0 ] || die "gracelab demo exited $demo_rc (report, if any, in $OUT)"
R=$OUT/report.json
[ -s "$R" ] || die "no report at $R"
jq -n --arg v "$SERVER_VERSION" --arg m "$MODE" '{cluster: $m, kubernetes: $v}' >"$OUT/e2e-cluster.json"

# 4. Verdicts.
errors() { jq -e --arg s "$1" '.scenarios[] | select(.scenario == $s) | .errors' "$R"; }
requests() { jq -e --arg s "$1" '.scenarios[] | select(.scenario == $s) | .requests' "$R"; }
cause() { # the classes, upstream kinds and first error of each disruption
	jq -r --arg s "$1" '.scenarios[] | select(.scenario == $s) |
		"  classes: \(.errors_by_kind | with_entries(select(.value > 0)))  upstream kinds: \(.upstream_kinds // {})",
		(.disruptions[]? | "  t=\(.start_offset_s | . * 10 | round / 10)s-\(.end_offset_s | . * 10 | round / 10)s: \(.requests_failed) failed, first: \(.first_error)")' "$R"
}
for s in v1 v2 v3; do
	n=$(requests $s) || die "scenario $s missing from $R"
	[ "$n" -gt 0 ] || { say "$s: no requests recorded"; fail=1; }
done
e1=$(errors v1) e2=$(errors v2) e3=$(errors v3)
if [ "$e1" -gt 0 ]; then say "ok   v1: $e1 errors (> 0: the unprotected rollout loses requests)"; else
	say "FAIL v1: 0 errors; the unprotected rollout should lose requests"; fail=1; fi
if [ "$e2" = 0 ]; then say "ok   v2: 0 errors"; elif [ "$e2" -le "$V2_MAX" ]; then
	say "ok   v2: $e2 errors (<= E2E_V2_MAX_ERRORS=$V2_MAX), reported with their cause:"; cause v2 >&2
else say "FAIL v2: $e2 errors (> E2E_V2_MAX_ERRORS=$V2_MAX):"; cause v2 >&2; fail=1; fi
if [ "$e3" = 0 ]; then say "ok   v3: 0 errors"; else say "FAIL v3: $e3 errors:"; cause v3 >&2; fail=1; fi
fi

# 4b. Issue 15: a Deployment gracelab did not create, drilled by name with load from 2 pods in
# the cluster. The demo's manifests are applied with plain kubectl, as a team's service would be.
# The downstream's own /metrics (route "/", summed over its pods) must count what the load
# pods' merged result counts.
if [ "$ONLY" != demo ]; then
	LOAD_IMAGE=${E2E_LOAD_IMAGE:-gracelab/gracelab:dev}
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$BIN/gracelab-static" ./cmd/gracelab
	case $MODE in
	lab) "$LAB" image "$BIN/gracelab-static" "$LOAD_IMAGE" >&2 ;;
	kind) docker build --target gracelab -t "$LOAD_IMAGE" . >&2 && kind load docker-image --name "$KIND_CLUSTER" "$LOAD_IMAGE" >&2 ;;
	esac
	for s in v1-no-graceful v2-graceful; do
		v=${s%%-*}
		NS=${E2E_NS_PREFIX:-gracelab-e2e}-$v
		"${KUBECTL[@]}" create namespace "$NS" >/dev/null
		"${KUBECTL[@]}" -n "$NS" apply -f "k8s/$s/" >/dev/null
		"${KUBECTL[@]}" -n "$NS" rollout status deployment/upstream --timeout 3m >/dev/null
		"${KUBECTL[@]}" -n "$NS" rollout status deployment/downstream --timeout 3m >/dev/null
		drill_rc=0
		"$BIN/gracelab" drill --cluster -n "$NS" deployment/upstream --target "http://downstream.$NS:8000/" \
			--load-pods 2 --load-from cluster --load-image "$LOAD_IMAGE" --quiet --out "$OUT/drill-$v" "${CTX_FLAGS[@]}" || drill_rc=$?
		# The downstream's own count, every pod's, before the namespace goes.
		served=0
		for p in $("${KUBECTL[@]}" -n "$NS" get pods -l app.kubernetes.io/name=downstream -o name); do
			n=$("${KUBECTL[@]}" get --raw "/api/v1/namespaces/$NS/pods/${p#pod/}:8000/proxy/metrics" |
				awk '/^gracelab_http_requests_total\{/ && /route="\/"/ {n += $2} END {print n + 0}')
			served=$((served + n))
		done
		"${KUBECTL[@]}" delete namespace "$NS" --wait=true >/dev/null
		[ $drill_rc = 0 ] || { say "FAIL drill $v: exit $drill_rc"; fail=1; continue; }
		DR=$OUT/drill-$v/report.json
		de=$(jq -e '.scenarios[0].errors' "$DR") || { say "FAIL drill $v: no report"; fail=1; continue; }
		dn=$(jq -e '.scenarios[0].requests' "$DR")
		say "drill $v: $dn requests from 2 load pods, $de errors; the downstream counted $served"
		case $v in
		v1) [ "$de" -gt 0 ] || { say "FAIL drill v1: 0 errors"; fail=1; } ;;
		v2) [ "$de" -le "$V2_MAX" ] || { say "FAIL drill v2: $de errors"; fail=1; } ;;
		esac
		[ "$dn" = "$served" ] || { say "FAIL drill $v: merged count $dn, downstream /metrics $served"; fail=1; }
	done
	# 4c. drill --cluster -f: gracelab itself deploys v1's manifests into a namespace it creates
	# and deletes, drills it with 2 load pods, a request header (shipped in a Secret) and
	# --expect-status; the namespace must be gone afterwards.
	FNS=${E2E_NS_PREFIX:-gracelab-e2e}-f
	drill_rc=0
	"$BIN/gracelab" drill --cluster -f k8s/v1-no-graceful/ -n "$FNS" --deployment upstream --target http://downstream:8000/ \
		--load-pods 2 --load-image "$LOAD_IMAGE" -H "X-E2e-Token: e2e-$$" --expect-status 200 --quiet --out "$OUT/drill-f" "${CTX_FLAGS[@]}" || drill_rc=$?
	if [ $drill_rc != 0 ]; then
		say "FAIL drill -f: exit $drill_rc"
		fail=1
	elif de=$(jq -e '.scenarios[0].errors' "$OUT/drill-f/report.json") && dn=$(jq -e '.scenarios[0].requests' "$OUT/drill-f/report.json"); then
		say "drill -f v1: $dn requests from 2 load pods, $de errors"
		[ "$de" -gt 0 ] && [ "$dn" -gt 0 ] || { say "FAIL drill -f v1: want requests and errors"; fail=1; }
	else
		say "FAIL drill -f: no report"
		fail=1
	fi
	if "${KUBECTL[@]}" get namespace "$FNS" >/dev/null 2>&1; then
		say "FAIL drill -f: namespace $FNS left behind"
		fail=1
	fi
	left=$("${KUBECTL[@]}" get jobs,pods -A -l gracelab.dev/load-job -o name 2>/dev/null)
	[ -z "$left" ] || { say "FAIL: load Jobs or pods left behind: $left"; fail=1; }
fi

# 5. Nothing of ours left on the cluster.
# Only namespaces that appeared count: others' runs on a shared cluster may delete theirs.
LEFT_AFTER=$("${KUBECTL[@]}" get ns -l app.kubernetes.io/managed-by=gracelab -o name 2>/dev/null | sort)
NEW_LEFT=$(comm -13 <(echo "$LEFT_BEFORE") <(echo "$LEFT_AFTER") | tr '\n' ' ')
if [ -n "${NEW_LEFT// /}" ]; then
	say "FAIL: gracelab namespaces left behind: $NEW_LEFT"
	fail=1
fi

say "report kept in $OUT"
[ $fail = 0 ] || die "verdicts do not hold on Kubernetes $SERVER_VERSION"
say "PASS on Kubernetes $SERVER_VERSION ($MODE)"
