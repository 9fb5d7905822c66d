#!/usr/bin/env bash
# Markdown rows for docs/fidelity.md from drill reports: one row per scenario per report, so
# runs on the embedded cluster and on a real one sit side by side.
#
#   hack/fidelity-table.sh reports/A reports/B ...        # directories holding report.json
#   hack/fidelity-table.sh --events v1 reports/A          # upstream pod and endpoint events of
#                                                         # one scenario, seconds from the restart
#
# Columns: cluster, report, scenario, requests, errors (with the upstream kinds the downstream
# reported), avg/p50/p95/p99/max latency in ms, rollout duration in s.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 REPORT_DIR..." >&2; exit 2; }
command -v jq >/dev/null || { echo "fidelity-table: jq not found" >&2; exit 1; }
if [ "$1" = --events ]; then
	[ $# -ge 3 ] || { echo "usage: $0 --events SCENARIO REPORT_DIR..." >&2; exit 2; }
	sc=$2; shift 2
	for d in "$@"; do
		echo "# $(basename "$d") $sc"
		jq -r --arg s "$sc" '
			def secs: capture("^(?<b>[^.Z]+)(?<f>\\.[0-9]+)?Z$") | (.b + "Z" | fromdateiso8601) + ((.f // "0") | tonumber);
			.scenarios[] | select(.scenario == $s) | (.restart_at | secs) as $r | .events[] |
			select(.deployment == "upstream" and ((.time | secs) - $r) > -1) |
			"\(((.time | secs) - $r) * 1000 | round / 1000)\t\(.kind)\t\(.pod // "")\t\(.detail // "" | .[0:60])"
		' "$d/report.json"
	done
	exit 0
fi
echo '| cluster | report | scenario | requests | errors (upstream kinds) | avg / p50 / p95 / p99 / max ms | rollout s |'
echo '|---|---|---|---:|---|---|---:|'
for d in "$@"; do
	[ -s "$d/report.json" ] || { echo "fidelity-table: no report.json in $d" >&2; exit 1; }
	jq -r --arg dir "$(basename "$d")" '
		(.cluster | sub(" \\(.*"; "")) as $c | .scenarios[] |
		(.upstream_kinds // {} | to_entries | sort_by(-.value) | map("\(.key) \(.value)") | join(", ")) as $k |
		(.errors_by_kind | to_entries | map(select(.value > 0 and .key != "http_5xx")) | map("\(.key) \(.value)") | join(", ")) as $o |
		([$k, $o] | map(select(. != "")) | join("; ")) as $why |
		.latency_ms as $l |
		"| \($c) | \($dir) | \(.scenario) | \(.requests) | \(.errors)\(if $why != "" then " (\($why))" else "" end) | \($l.avg | round) / \($l.p50 | round) / \($l.p95 | round) / \($l.p99 | round) / \($l.max | round) | \(.rollout_duration_s * 10 | round / 10) |"
	' "$d/report.json"
done
