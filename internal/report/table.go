package report

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one line of the comparison table: a label and one cell per scenario.
type row struct {
	label  string
	indent bool // a sub-row (an error class under "errors by class")
	cells  []string
}

// tableRows builds the comparison table shared by the terminal, REPORT.md and report.html.
func tableRows(r *Report) []row {
	n := len(r.Scenarios)
	cells := func(f func(s Scenario, res *Result) string) []string {
		out := make([]string, n)
		for i, s := range r.Scenarios {
			if s.Result == nil {
				out[i] = "-"
				continue
			}
			out[i] = f(s, s.Result)
		}
		return out
	}
	rows := []row{
		{label: "requests", cells: cells(func(_ Scenario, res *Result) string { return fmtInt(res.Requests) })},
		{label: "errors", cells: cells(func(_ Scenario, res *Result) string { return fmtInt(res.Errors) })},
		{label: "error rate", cells: cells(func(_ Scenario, res *Result) string { return fmtPercent(res.ErrorRate) })},
		{label: "latency avg", cells: cells(func(_ Scenario, res *Result) string { return fmtMS(res.Latency.Avg) })},
		{label: "latency p95", cells: cells(func(_ Scenario, res *Result) string { return fmtMS(res.Latency.P95) })},
		{label: "latency p99", cells: cells(func(_ Scenario, res *Result) string { return fmtMS(res.Latency.P99) })},
		{label: "latency max", cells: cells(func(_ Scenario, res *Result) string { return fmtMS(res.Latency.Max) })},
		{label: "retries", cells: cells(func(_ Scenario, res *Result) string { return fmtInt(res.Retries) })},
	}

	classes := errorClassesSeen(r)
	if len(classes) == 0 {
		rows = append(rows, row{label: "errors by class", cells: cells(func(Scenario, *Result) string { return "none" })})
	} else {
		rows = append(rows, row{label: "errors by class", cells: make([]string, n)})
		for _, c := range classes {
			rows = append(rows, row{label: string(c), indent: true, cells: cells(func(_ Scenario, res *Result) string {
				count := res.ErrorsByKind[c]
				if count == 0 {
					return "-"
				}
				if c == classHTTP5xx && len(res.UpstreamKinds) > 0 {
					return fmtInt(count) + " (" + fmtCounts(res.UpstreamKinds) + ")"
				}
				return fmtInt(count)
			})})
		}
	}

	rollout := make([]string, n)
	failures := make([]string, n)
	anyFailure := false
	for i, s := range r.Scenarios {
		rollout[i] = "-"
		if s.RolloutSeconds > 0 {
			rollout[i] = fmtSeconds(s.RolloutSeconds)
		}
		failures[i] = "-"
		if s.Failure != "" {
			failures[i], anyFailure = "FAILED", true
		}
	}
	rows = append(rows, row{label: wordsFor(r.Scenarios...).duration, cells: rollout})
	rows = append(rows, rolloutRows(r)...)
	if anyFailure {
		rows = append(rows, row{label: "run", cells: failures})
	}
	return rows
}

// errorClassesSeen lists the error classes non-zero in any scenario, in report order.
func errorClassesSeen(r *Report) []string {
	var out []string
	for _, c := range ErrorClasses {
		for _, s := range r.Scenarios {
			if s.Result != nil && s.ErrorsByKind[c] > 0 {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// rolloutRows are a row per rollout (its losses) and the statistics over them, when any
// scenario ran several rollouts.
func rolloutRows(r *Report) []row {
	n, most := len(r.Scenarios), 0
	withStats := false
	for _, s := range r.Scenarios {
		most = max(most, len(s.Rollouts))
		withStats = withStats || s.Statistics != nil
	}
	if most == 0 && !withStats {
		return nil
	}
	var rows []row
	unit := wordsFor(r.Scenarios...).unit
	if most > 0 {
		rows = append(rows, row{label: "errors per " + unit, cells: make([]string, n)})
	}
	for i := range most {
		cells := make([]string, n)
		for j, s := range r.Scenarios {
			cells[j] = "-"
			if i < len(s.Rollouts) {
				ro := s.Rollouts[i]
				cells[j] = fmtInt(ro.Errors) + " of " + fmtInt(ro.Requests)
				if ro.LongestDisruption > 0 {
					cells[j] += " (" + fmtSeconds(ro.LongestDisruption) + ")"
				}
			}
		}
		rows = append(rows, row{label: fmt.Sprintf("%s %d", unit, i+1), indent: true, cells: cells})
	}
	if !withStats {
		return rows
	}
	stat := func(f func(*Statistics, *Result) string) []string {
		cells := make([]string, n)
		for j, s := range r.Scenarios {
			cells[j] = "-"
			if s.Statistics != nil {
				cells[j] = f(s.Statistics, s.Result)
			}
		}
		return cells
	}
	rows = append(rows,
		row{label: "lossy " + unit + "s", cells: stat(func(st *Statistics, _ *Result) string { return lossyText(st) })},
		row{label: "losses min/median/max", cells: stat(func(st *Statistics, _ *Result) string {
			return fmtNum(st.Losses.Min) + " / " + fmtNum(st.Losses.Median) + " / " + fmtNum(st.Losses.Max)
		})})
	rows = append(rows, row{label: "error rate, if independent", cells: stat(func(st *Statistics, _ *Result) string {
		switch {
		case st.RequestErrorUpper > 0:
			return "≤ " + fmtPercentPrecise(st.RequestErrorUpper)
		case st.RequestErrorInterval != nil:
			return fmtPercentPrecise(st.RequestErrorInterval.Low) + "–" + fmtPercentPrecise(st.RequestErrorInterval.High)
		}
		return "-"
	})})
	return rows
}

// lossyText: "2 of 3 (9.4–99.2 %)", the interval at its level.
func lossyText(st *Statistics) string {
	return fmt.Sprintf("%d of %d (%s–%s)", st.LossyRollouts, st.Rollouts,
		strconv.FormatFloat(st.LossyInterval.Low*100, 'f', 1, 64), fmtPercentTrim(st.LossyInterval.High))
}

func fmtPercentTrim(rate float64) string {
	return strconv.FormatFloat(rate*100, 'f', 1, 64) + " %"
}

// fmtPercentPrecise keeps two significant digits of a small rate: 0.034 %.
func fmtPercentPrecise(rate float64) string {
	p := rate * 100
	if p <= 0 || math.IsNaN(p) || math.IsInf(p, 0) {
		return "-"
	}
	digits := max(2, 1-int(math.Floor(math.Log10(p))))
	return strconv.FormatFloat(p, 'f', digits, 64) + " %"
}

func fmtNum(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// fmtMeasured keeps whole numbers whole, rounds from 100 up to whole numbers, and others to
// three significant digits: 30.8, 0.0345, 5011.
func fmtMeasured(v float64) string {
	switch {
	case v == math.Trunc(v) || math.IsInf(v, 0) || math.IsNaN(v):
		return fmtNum(v)
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// breachLine is one breached threshold in one line: scenario, rollout, measured value, limit.
func breachLine(b Breach) string {
	where := b.Scenario
	if b.Rollout > 0 {
		where += fmt.Sprintf(" rollout %d", b.Rollout)
	}
	unit := ""
	if b.Unit != "" {
		unit = " " + b.Unit
	}
	return fmt.Sprintf("%s: %s measured %s%s, limit %s%s", where, b.Threshold, fmtMeasured(b.Measured), unit, fmtMeasured(b.Limit), unit)
}

// WriteTable writes, for a terminal, first the failed scenarios' errors, then the comparison
// table (one column per scenario; left out when no scenario has results), the warnings and the
// comparisons.
func WriteTable(w io.Writer, r *Report) error {
	withResults := false
	for _, s := range r.Scenarios {
		if s.Failure != "" {
			if _, err := fmt.Fprintf(w, "%s failed: %s\n", s.Scenario, s.Failure); err != nil {
				return err
			}
		}
		withResults = withResults || s.Result != nil
	}
	if withResults {
		tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
		header := []string{""}
		for _, s := range r.Scenarios {
			header = append(header, titleOf(s))
		}
		fmt.Fprintln(tw, strings.Join(header, "\t"))
		for _, rw := range tableRows(r) {
			label := rw.label
			if rw.indent {
				label = "  " + label
			}
			fmt.Fprintln(tw, label+"\t"+strings.Join(rw.cells, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, s := range r.Scenarios {
		for _, warn := range s.Warnings {
			if _, err := fmt.Fprintf(w, "%s warning: %s\n", s.Scenario, warn); err != nil {
				return err
			}
		}
	}
	for _, line := range comparisonLines(r.Comparisons) {
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}

// BreachLines are report.json's breaches, one line each. The table leaves them out: the command
// that judged the run prints its own breach lines on stderr.
func (r *Report) BreachLines() []string {
	out := make([]string, len(r.Breaches))
	for i, b := range r.Breaches {
		out[i] = "threshold breached: " + breachLine(b)
	}
	return out
}

func titleOf(s Scenario) string {
	if s.Title != "" {
		return s.Title
	}
	return s.Scenario
}

// fmtInt writes n with thousands separators: 3,015.
func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtMS writes a latency: whole milliseconds from 10 ms up, one decimal below.
func fmtMS(ms float64) string {
	if math.IsNaN(ms) || math.IsInf(ms, 0) {
		return "-"
	}
	if ms < 10 {
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	}
	return fmtInt(int64(math.Round(ms))) + " ms"
}

func fmtPercent(rate float64) string {
	if math.IsNaN(rate) || math.IsInf(rate, 0) {
		return "-"
	}
	return strconv.FormatFloat(rate*100, 'f', 2, 64) + " %"
}

func fmtSeconds(s float64) string {
	return strconv.FormatFloat(s, 'f', 1, 64) + " s"
}

// fmtCounts writes a count map largest first: "eof 9, timeout 5".
func fmtCounts(m map[string]int64) string {
	type kv struct {
		k string
		v int64
	}
	var kvs []kv
	for k, v := range m {
		if v > 0 {
			kvs = append(kvs, kv{k, v})
		}
	}
	sort.Slice(kvs, func(i, j int) bool {
		if kvs[i].v != kvs[j].v {
			return kvs[i].v > kvs[j].v
		}
		return kvs[i].k < kvs[j].k
	})
	parts := make([]string, len(kvs))
	for i, e := range kvs {
		parts[i] = e.k + " " + fmtInt(e.v)
	}
	return strings.Join(parts, ", ")
}

// rolloutHeader and rolloutCells make a scenario's table of rollouts (or other disruptions).
func rolloutHeader(s Scenario) []string {
	w := wordsFor(s)
	return []string{w.unit, w.trigger, "settled", "window end", "requests", "ok", "errors", "errors by class (upstream kinds)",
		"longest disruption", "worst latency", w.duration}
}

func rolloutCells(s Scenario) [][]string {
	var out [][]string
	from := func(t time.Time) string {
		if t.IsZero() || s.Result == nil {
			return "-"
		}
		return fmtSeconds(t.Sub(s.Start).Seconds())
	}
	for _, ro := range s.Rollouts {
		classes := fmtCounts(ro.ErrorsByKind)
		if kinds := fmtCounts(ro.UpstreamKinds); kinds != "" {
			classes += " (" + kinds + ")"
		}
		settled := from(ro.SettledAt)
		if ro.SettledAt.IsZero() {
			settled = "never"
		}
		out = append(out, []string{fmt.Sprint(ro.Index), from(ro.RestartAt), settled, from(ro.WindowEnd),
			fmtInt(ro.Requests), fmtInt(ro.OK), fmtInt(ro.Errors), orDefault(classes, "-"),
			fmtSeconds(ro.LongestDisruption), fmtMS(ro.LatencyMax), fmtSeconds(ro.RolloutSeconds)})
	}
	return out
}
