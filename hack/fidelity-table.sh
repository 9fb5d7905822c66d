#!/usr/bin/env bash
# Markdown rows for docs/fidelity.md from drill reports: one row per scenario per report, so
# runs on the embedded cluster and on a real one sit side by side.
#
#   hack/fidelity-table.sh reports/A docs/fidelity/k1.json.gz ...   # report directories or
#                                                         # report.json files (.gz too)
#   hack/fidelity-table.sh --events v1 reports/A          # upstream pod and endpoint events of
#                                                         # one scenario, seconds from the restart
#
# Columns: cluster, report, scenario, requests, errors (with the upstream kinds the downstream
# reported), avg/p50/p95/p99/max latency in ms, rollout duration in s.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 REPORT_DIR..." >&2; exit 2; }
command -v jq >/dev/null || { echo "fidelity-table: jq not found" >&2; exit 1; }
# path FILE_OR_DIR: the report.json file itself.
path() { if [ -d "$1" ]; then echo "$1/report.json"; else echo "$1"; fi; }
# report FILE_OR_DIR: the report's JSON text.
report() {
	local f; f=$(path "$1")
	case $f in *.gz) gzip -dc "$f" ;; *) cat "$f" ;; esac
}
# Every input is checked here, since a failure inside <(report ...) would not stop the script.
check() {
	local a; for a in "$@"; do
		[ -s "$(path "$a")" ] || { echo "fidelity-table: no report at $(path "$a")" >&2; exit 1; }
		report "$a" | jq -e '.scenarios | type == "array"' >/dev/null 2>&1 ||
			{ echo "fidelity-table: $(path "$a") is not a gracelab report.json" >&2; exit 1; }
	done
}
name() { local n; n=$(basename "$1"); n=${n%.gz}; n=${n%.json}; [ "$n" = report ] && n=$(basename "$(dirname "$1")"); echo "$n"; }
if [ "$1" = --events ]; then
	[ $# -ge 3 ] || { echo "usage: $0 --events SCENARIO REPORT_DIR..." >&2; exit 2; }
	sc=$2; shift 2
	check "$@"
	for d in "$@"; do
		echo "# $(name "$d") $sc"
		jq -r --arg s "$sc" '
			def secs: capture("^(?<b>[^.Z]+)(?<f>\\.[0-9]+)?Z$") | (.b + "Z" | fromdateiso8601) + ((.f // "0") | tonumber);
			.scenarios[] | select(.scenario == $s) | (.restart_at | secs) as $r | .events[] |
			select(.deployment == "upstream" and ((.time | secs) - $r) > -1) |
			"\(((.time | secs) - $r) * 1000 | round / 1000)\t\(.kind)\t\(.pod // "")\t\(.detail // "" | .[0:60])"
		' <(report "$d")
	done
	exit 0
fi
check "$@"
echo '| cluster | report | scenario | requests | errors (upstream kinds) | avg / p50 / p95 / p99 / max ms | rollout s |'
echo '|---|---|---|---:|---|---|---:|'
for d in "$@"; do
	jq -r --arg dir "$(name "$d")" '
		(.cluster | sub(" \\(.*"; "")) as $c | .scenarios[] |
		(.upstream_kinds // {} | to_entries | sort_by(-.value) | map("\(.key) \(.value)") | join(", ")) as $k |
		(.errors_by_kind | to_entries | map(select(.value > 0 and .key != "http_5xx")) | map("\(.key) \(.value)") | join(", ")) as $o |
		([$k, $o] | map(select(. != "")) | join("; ")) as $why |
		.latency_ms as $l |
		"| \($c) | \($dir) | \(.scenario) | \(.requests) | \(.errors)\(if $why != "" then " (\($why))" else "" end) | \($l.avg | round) / \($l.p50 | round) / \($l.p95 | round) / \($l.p99 | round) / \($l.max | round) | \(.rollout_duration_s * 10 | round / 10) |"
	' <(report "$d")
done
