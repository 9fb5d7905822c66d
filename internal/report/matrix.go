package report

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/gracelab/gracelab/internal/cluster"
)

// The matrix of `--disruption all`: every disruption against every scenario, one cell each.
// It is read from the report alone (each cell's scenario names its disruption), so a report
// re-rendered elsewhere has it too.

// matrixOf arranges a report's scenarios as the matrix: the disruptions in their order, the
// scenarios they were applied to (v1, v2, ...) and each cell's scenario. ok is false when the
// report is not a matrix.
func matrixOf(r *Report) (kinds []string, bases []string, titles map[string]string, cell map[[2]string]*Scenario, ok bool) {
	if r.Settings.Disruption != DisruptionAll {
		return nil, nil, nil, nil, false
	}
	titles, cell = map[string]string{}, map[[2]string]*Scenario{}
	for i := range r.Scenarios {
		s := &r.Scenarios[i]
		kind := orDefault(s.Disruption, DisruptionRestart)
		base := strings.TrimSuffix(s.Scenario, "-"+kind)
		if !slices.Contains(bases, base) {
			bases = append(bases, base)
			titles[base] = strings.TrimSuffix(titleOf(*s), ", "+kind)
		}
		cell[[2]string{kind, base}] = s
	}
	for _, k := range cluster.DisruptionKinds {
		for _, b := range bases {
			if cell[[2]string{string(k), b}] != nil {
				kinds = append(kinds, string(k))
				break
			}
		}
	}
	return kinds, bases, titles, cell, len(cell) > 0
}

// lossCauses are a scenario's errors by what went wrong: a 5xx by the upstream failure the
// downstream reported (reset, eof, ...), any other error by its class.
func lossCauses(res *Result) map[string]int64 {
	out := map[string]int64{}
	for c, n := range res.ErrorsByKind {
		if n > 0 && c != classHTTP5xx {
			out[c] += n
		}
	}
	left := res.ErrorsByKind[classHTTP5xx]
	for k, n := range res.UpstreamKinds {
		if n > 0 {
			out[k] += n
			left -= n
		}
	}
	if left > 0 {
		out[classHTTP5xx] += left
	}
	return out
}

// dominant is the commonest of counts (ties by name), "" when there is none.
func dominant(counts map[string]int64) string {
	best := ""
	for k, n := range counts {
		if n > 0 && (best == "" || n > counts[best] || (n == counts[best] && k < best)) {
			best = k
		}
	}
	return best
}

// DominantCause names the commonest error class of a result; for 5xx, the upstream failure
// behind most of them ("5xx/reset").
func DominantCause(r *Result) string {
	c := dominant(r.ErrorsByKind)
	if c == classHTTP5xx {
		if u := dominant(r.UpstreamKinds); u != "" {
			return "5xx/" + u
		}
	}
	return c
}

// MatrixCell is a matrix cell for the terminal: "12 (0.80 %) 5xx/reset", "0", "failed" or
// "-" (not run).
func MatrixCell(s Scenario) string {
	switch {
	case s.Scenario == "":
		return "-"
	case s.Result == nil:
		return "failed"
	}
	cell := fmt.Sprintf("%d (%.2f %%)", s.Errors, 100*s.ErrorRate)
	if s.Errors == 0 {
		cell = "0"
	}
	if cause := DominantCause(s.Result); cause != "" {
		cell += " " + cause
	}
	if s.Failure != "" {
		cell += " [failed]"
	}
	return cell
}

// matrixMDCell is a cell for REPORT.md: "79 (6.85 %): reset 66, eof 11, timeout 2".
func matrixMDCell(s *Scenario) string {
	switch {
	case s == nil:
		return "-"
	case s.Result == nil:
		return "failed"
	}
	cell := "0"
	if s.Errors > 0 {
		cell = fmt.Sprintf("%s (%s): %s", fmtInt(s.Errors), fmtPercent(s.ErrorRate), fmtCounts(lossCauses(s.Result)))
	}
	if s.Failure != "" {
		cell += " (the run failed)"
	}
	return cell
}

// protections is what a scenario's own events show of its protections.
type protections struct {
	preStop  float64 // the longest preStop hook that ran, in seconds; NaN when none ran
	drained  bool    // a pod's process exited 0 after its SIGTERM: it drained
	died     bool    // a pod's process died by its SIGTERM: no drain
	budget   bool    // a PodDisruptionBudget was consulted (allowed or refused an eviction)
	refusals int     // evictions it refused
}

func protectionsOf(s *Scenario) protections {
	p := protections{preStop: math.NaN()}
	for _, pod := range podLives(*s) {
		if !math.IsNaN(pod.PreStopStart) && !math.IsNaN(pod.PreStopEnd) {
			p.preStop = math.Max(orZero(p.preStop), pod.PreStopEnd-pod.PreStopStart)
		}
		if !math.IsNaN(pod.SIGTERM) && !math.IsNaN(pod.Exited) && pod.Exited >= pod.SIGTERM {
			p.drained = p.drained || strings.HasPrefix(pod.ExitDetail, "exit code 0")
			p.died = p.died || strings.Contains(pod.ExitDetail, "SIGTERM")
		}
	}
	for _, e := range s.Events {
		switch {
		case e.Kind == cluster.EvictionRefused:
			p.refusals++
			p.budget = true
		case e.Kind == cluster.PodEvicted && strings.Contains(e.Detail, "PodDisruptionBudget"):
			p.budget = true
		}
	}
	return p
}

func orZero(x float64) float64 {
	if math.IsNaN(x) {
		return 0
	}
	return x
}

// matrixHow says how each disruption kills pods.
var matrixHow = map[string]string{
	DisruptionRestart: "a rolling restart replaces every pod, each deleted gracefully (preStop hook, then SIGTERM, within the grace period)",
	DisruptionDelete:  "a pod deleted gracefully (preStop hook, then SIGTERM, within the grace period)",
	DisruptionEvict:   "a pod evicted through the Eviction API, which honours a PodDisruptionBudget, then deleted gracefully",
	DisruptionDrain:   "a node cordoned and the Deployment's pods on it evicted, each then deleted gracefully",
	DisruptionKill:    "a SIGKILL to the container's process: no preStop hook, no SIGTERM, no grace; the kubelet restarts it in the same pod",
	DisruptionScale:   "a scale-down deletes a pod gracefully, and the scale-back adds one",
}

// causeHow says how requests are lost in each way the downstream's call can fail.
var causeHow = map[string]string{
	"eof":     "requests in flight on a process when it stopped",
	"reset":   "new connections that reached a process already gone while the Service still routed to it (the embedded proxy resets them; a real cluster refuses)",
	"refused": "new connections refused by a pod whose process was gone while the Service still routed to it",
	"timeout": "connections to the address of a pod already torn down, which nothing answers (the downstream's 5 s timeout)",
}

// explainCell says what one cell shows, from its numbers and events: the losses and their
// dominant cause, what the disruption does, and which of the scenario's protections (seen in
// this cell or, for what a kill skips, in the scenario's other cells) acted or could not.
func explainCell(kind, title string, s *Scenario, seen protections) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s, %s**: ", kind, title)
	if s.Result == nil {
		fmt.Fprintf(&b, "the run failed before any load: %s", sentence(s.Failure))
		return b.String()
	}
	res := s.Result
	own := protectionsOf(s)
	how := matrixHow[kind]
	if how == "" {
		how = disruptionNoun(kind)
	}
	if res.Errors == 0 {
		fmt.Fprintf(&b, "no request of %s was lost; %s. ", fmtInt(res.Requests), how)
		switch {
		case res.Retries > 0:
			fmt.Fprintf(&b, "The downstream retried %s times: its retries hid every failed call.", fmtInt(res.Retries))
		case kind == DisruptionKill:
			b.WriteString("Nothing was retried: no call failed, so nothing was in flight on the killed process or sent to it.")
		case !math.IsNaN(own.preStop):
			fmt.Fprintf(&b, "The preStop hook (%s) kept the pod serving while the Service stopped routing to it", fmtSeconds(own.preStop))
			if own.drained {
				b.WriteString(", and the process drained its requests on SIGTERM (exit code 0)")
			}
			b.WriteString(".")
		default:
			b.WriteString("No preStop hook ran and no failure was recorded: no request was in flight on a stopped process.")
		}
		if own.refusals > 0 {
			fmt.Fprintf(&b, " The PodDisruptionBudget refused %d eviction(s) until a replacement was ready, keeping a pod serving.", own.refusals)
		}
		if s.Failure != "" {
			fmt.Fprintf(&b, " The run failed: %s", sentence(s.Failure))
		}
		return b.String()
	}
	counts := lossCauses(res)
	top := dominant(counts)
	fmt.Fprintf(&b, "%s of %s requests lost (%s), most of them %s (%s of %s); %s. ",
		fmtInt(res.Errors), fmtInt(res.Requests), fmtPercent(res.ErrorRate), top, fmtInt(counts[top]), fmtInt(res.Errors), how)
	if why := causeHow[top]; why != "" {
		fmt.Fprintf(&b, "The %s are %s.", top, why)
	}
	switch {
	case kind == DisruptionKill && !math.IsNaN(seen.preStop):
		fmt.Fprintf(&b, " The preStop hook (%s) and the drain that protect %s's graceful paths never ran: a crash skips them.", fmtSeconds(seen.preStop), title)
	case kind == DisruptionKill:
		b.WriteString(" No protection of the graceful path applies to a crash.")
	case math.IsNaN(own.preStop) && own.died:
		b.WriteString(" No preStop hook ran and the process died on SIGTERM at once, while the Service still routed to it and with requests in flight.")
	case math.IsNaN(own.preStop):
		b.WriteString(" No preStop hook ran, so the process stopped while the Service still routed to it.")
	default:
		fmt.Fprintf(&b, " A preStop hook (%s) ran, yet requests were lost: see the cell's pod table for when the pod left the Service.", fmtSeconds(own.preStop))
	}
	if res.Retries > 0 {
		fmt.Fprintf(&b, " The downstream retried %s times, and these still failed.", fmtInt(res.Retries))
	} else {
		b.WriteString(" Nothing was retried.")
	}
	if own.refusals > 0 {
		fmt.Fprintf(&b, " The PodDisruptionBudget refused %d eviction(s).", own.refusals)
	}
	if s.Failure != "" {
		fmt.Fprintf(&b, " The run failed: %s", sentence(s.Failure))
	}
	return b.String()
}

// matrixMarkdown is REPORT.md's matrix: the table, then what each cell shows. "" when the
// report is no matrix.
func matrixMarkdown(r *Report) string {
	kinds, bases, titles, cell, ok := matrixOf(r)
	if !ok {
		return ""
	}
	var b strings.Builder
	b.WriteString("## The matrix\n\nRequests lost per disruption and scenario, with their causes (for a 5xx, the upstream failure behind it):\n\n| disruption |")
	for _, base := range bases {
		fmt.Fprintf(&b, " %s |", mdCell(titles[base]))
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(bases)) + "\n")
	for _, k := range kinds {
		fmt.Fprintf(&b, "| %s |", k)
		for _, base := range bases {
			fmt.Fprintf(&b, " %s |", mdCell(matrixMDCell(cell[[2]string{k, base}])))
		}
		b.WriteString("\n")
	}
	// What a scenario's cells show of its protections, for the cells a kill skips them in.
	seen := map[string]protections{}
	for _, base := range bases {
		p := protections{preStop: math.NaN()}
		for _, k := range kinds {
			if s := cell[[2]string{k, base}]; s != nil {
				o := protectionsOf(s)
				if !math.IsNaN(o.preStop) {
					p.preStop = math.Max(orZero(p.preStop), o.preStop)
				}
				p.drained = p.drained || o.drained
			}
		}
		seen[base] = p
	}
	b.WriteString("\nWhat each cell shows:\n\n")
	for _, k := range kinds {
		for _, base := range bases {
			if s := cell[[2]string{k, base}]; s != nil {
				fmt.Fprintf(&b, "- %s\n", mdText(explainCell(k, titles[base], s, seen[base])))
			}
		}
	}
	return b.String()
}
