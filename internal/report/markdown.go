package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gracelab/gracelab/internal/sandbox"
)

// settingsLines describes the settings in words, as label/value pairs.
func settingsLines(r *Report) [][2]string {
	st := r.Settings
	var load string
	switch st.Model {
	case "open":
		load = fmt.Sprintf("open model, %g requests/s", st.Rate)
	default:
		load = fmt.Sprintf("closed model, %d VUs, %s think time", st.VUs, st.Think.D())
	}
	conns := "a new connection per request"
	if st.Connections == "reuse" {
		conns = "keep-alive connections"
	}
	load += fmt.Sprintf(", %s, %s, timeout %s", orDefault(st.Method, "GET"), conns, st.Timeout.D())
	out := [][2]string{
		{"cluster", orDefault(r.Cluster, "unknown")},
		{"scenarios", strings.Join(st.Scenarios, ", ")},
		{"load", load},
		{"duration", fmt.Sprintf("at least %s, and until the %s settled plus %s", st.Duration.D(), settledWhat(st.Disruption), st.SettleTail.D())},
		{"disruption", fmt.Sprintf("%s of deployment %s at %s", disruptionNoun(st.Disruption), orDefault(st.Deployment, "upstream"), st.RestartAt.D())},
	}
	if st.Rollouts > 1 {
		out = append(out, [2]string{wordsFor(r.Scenarios...).unit + "s", fmt.Sprintf("%d, each started %s after the previous one settled", st.Rollouts, st.RolloutGap.D())})
	}
	if len(st.Thresholds) > 0 {
		judged := "over the whole run"
		if st.PerRollout {
			judged = "per rollout"
		}
		out = append(out, [2]string{"thresholds", strings.Join(st.Thresholds, ", ") + ", judged " + judged})
	}
	if st.EndpointLag > 0 {
		out = append(out, [2]string{"endpoint lag", st.EndpointLag.D().String()})
	}
	if st.Target != "" {
		out = append(out, [2]string{"target", st.Target})
	}
	h := r.Host
	out = append(out, [2]string{"host", fmt.Sprintf("%s/%s, %d cores, %s, gracelab %s", h.OS, h.Arch, h.Cores, h.GoVersion, h.Gracelab)})
	return out
}

// settledWhat is what the load waited to settle: the rollout, or the Deployment.
func settledWhat(disruption string) string {
	if isRestart(disruption) {
		return "rollout"
	}
	return "Deployment"
}

// WriteMarkdown writes REPORT.md: settings, the table, the charts and per scenario what went
// wrong. charts names the chart files (relative to the report) to embed; nil leaves them out.
func WriteMarkdown(w io.Writer, r *Report, charts *ChartFiles) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }

	p("# gracelab report\n\n")
	p("Created %s. Each scenario ran load against the downstream while the upstream Deployment went through a %s; ", r.Created.UTC().Format(time.RFC3339), disruptionNoun(r.Settings.Disruption))
	p("every request has exactly one outcome, and any non-2xx answer or body whose status is not ok counts as an error.\n\n")

	p("## Settings\n\n| | |\n|---|---|\n")
	for _, kv := range settingsLines(r) {
		p("| %s | %s |\n", mdCell(kv[0]), mdCell(kv[1]))
	}

	p("\n## Results\n\n| |")
	align := "|---|"
	for _, s := range r.Scenarios {
		p(" %s |", mdCell(titleOf(s)))
		align += "---:|"
	}
	p("\n%s\n", align)
	for _, rw := range tableRows(r) {
		label := rw.label
		if rw.indent {
			label = "&nbsp;&nbsp;" + label
		}
		p("| %s |", label)
		for _, c := range rw.cells {
			p(" %s |", mdCell(c))
		}
		p("\n")
	}
	p("\nLatency is measured from sending a request to its outcome, failed requests included. ")
	p("%s\n", wordsFor(r.Scenarios...).durationNote())
	if charts != nil && charts.Combined.PNG != "" {
		p("\n![Requests and errors per second, every scenario on one time axis](%s)\n", charts.Combined.PNG)
	}
	if charts != nil && charts.Rollouts.PNG != "" {
		p("\n![Errors per %s, per scenario](%s)\n", wordsFor(r.Scenarios...).unit, charts.Rollouts.PNG)
	}
	if m := matrixMarkdown(r); m != "" {
		p("\n%s", m)
	}
	if len(r.Comparisons) > 0 {
		p("\n## Comparisons\n\nThe rollout is the unit: errors come in bursts, so requests are not independent samples.\n\n")
		for _, line := range comparisonLines(r.Comparisons) {
			p("- %s\n", mdText(line))
		}
	}
	if len(r.Breaches) > 0 {
		p("\n## Thresholds breached\n\n")
		if len(r.Settings.Thresholds) > 0 {
			judged := "over the whole run"
			if r.Settings.PerRollout {
				judged = "per rollout"
			}
			p("Limits: %s, judged %s.\n\n", mdText(strings.Join(r.Settings.Thresholds, ", ")), judged)
		}
		for _, b := range r.Breaches {
			p("- %s\n", mdText(breachLine(b)))
		}
	}

	p("\n## What happened\n\n")
	for i, s := range r.Scenarios {
		p("### %s\n\n", mdText(titleOf(s)))
		if s.Manifests != "" {
			p("Manifests: `%s`.\n\n", strings.ReplaceAll(s.Manifests, "`", "'"))
		}
		if line := SandboxLine(s); line != "" {
			p("%s\n\n", mdText(line))
		}
		for _, warn := range s.Warnings {
			p("**Warning:** %s\n\n", mdText(warn))
		}
		for _, para := range Story(s) {
			p("%s\n\n", mdText(para))
		}
		if ms := Mechanisms(s); len(ms) > 0 {
			p("How the requests were lost:\n\n")
			for _, m := range ms {
				p("- %s\n", mdText(m))
			}
			p("\n")
		}
		if header, rows := podRows(s); len(rows) > 0 {
			p("The pods of Deployment %s, in seconds from the start of the load (\"left the Service\": when it stopped getting new connections):\n\n", orDefault(disruptedDeployment(s.Events), "(unknown)"))
			writeMDTable(bw, header, rows)
			p("\n")
		}
		if len(s.Rollouts) > 0 {
			unit := wordsFor(s).unit
			p("Each %s, in seconds from the start of the load (a request belongs to the %s in whose window it was sent):\n\n", unit, unit)
			writeMDTable(bw, rolloutHeader(s), rolloutCells(s))
			p("\n")
		}
		if charts != nil && i < len(charts.Scenarios) && charts.Scenarios[i].PNG != "" {
			c := charts.Scenarios[i]
			p("![%s: traffic, errors, latency and cluster events over time](%s)\n\n", mdText(titleOf(s)), c.PNG)
			p("Vector version: [%s](%s).\n\n", c.SVG, c.SVG)
		}
	}
	if charts != nil {
		p("## Reading the charts\n\n")
		p("The time axis counts seconds from the start of the load. The top panel shows requests sent per second (line) ")
		p("and failed requests per second (bars); the bottom panel shows p50, p99 and max latency per second on a log scale. ")
		p("Failed requests are placed at the second they were sent and coloured by what went wrong behind the downstream ")
		p("(the upstream's refused, reset, EOF or timeout) or, when the downstream itself failed, by the load's own class. ")
		p("Vertical lines mark each disruption's trigger (restart, delete, evict, drain, kill or scale; shaded: its window) and what the cluster did: ")
		p("node cordoned and uncordoned, Deployment scaled, pod evicted, eviction refused by a PodDisruptionBudget (a run of refusals labelled once, with its count), container restarted. ")
		p("The pods panel has a lane per pod of the disrupted Deployment: ")
		p("the band is when the Service routed new connections to it (red where its process was dead, dark red where its address was gone), ")
		p("the thin bar is its process running (broken where a crashed container waited to restart), and the marks are created, ready, terminating, preStop, SIGTERM, SIGKILL, exit, eviction, refused eviction, container restart and deletion.\n")
	}
	return bw.Flush()
}

// writeMDTable writes a Markdown table, every cell escaped.
func writeMDTable(w io.Writer, header []string, rows [][]string) {
	cells := make([]string, len(header))
	for i, h := range header {
		cells[i] = mdCell(h)
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(cells, " | "), strings.Repeat("---|", len(header)))
	for _, row := range rows {
		for i, c := range row {
			cells[i] = mdCell(c)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells[:len(row)], " | "))
	}
}

// mdCell escapes text for a Markdown table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// mdText keeps server-supplied text from turning into Markdown structure.
func mdText(s string) string {
	r := strings.NewReplacer("<", "&lt;", ">", "&gt;", "\n", " ")
	return r.Replace(s)
}

// SandboxLine says how the embedded cluster ran the pods, or "" on Kubernetes.
func SandboxLine(s Scenario) string {
	if s.Sandbox == "" {
		return ""
	}
	return "Pods: " + sandbox.Describe(s.Sandbox, s.SandboxFallback) + "."
}
