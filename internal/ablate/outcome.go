package ablate

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Measured is what one scenario of an ablation (a variant or its base) measured, per rollout.
type Measured struct {
	Losses         []int64   // requests lost in each rollout's window
	RolloutSeconds []float64 // each settled rollout's duration
	WorstLatency   time.Duration
	// Failure says why the scenario is not judged (its run failed or was interrupted).
	Failure string
}

// Row is one line of the verdict table: a base scenario (Base empty) or a variant.
type Row struct {
	Scenario       string     `json:"scenario"`
	Base           string     `json:"base,omitempty"`
	Protection     Protection `json:"protection,omitempty"`
	Adds           bool       `json:"adds,omitempty"`
	Losses         []int64    `json:"losses_per_rollout"`
	MeanLosses     float64    `json:"mean_losses"`
	WorstLatencyMs float64    `json:"worst_latency_ms"`
	RolloutSeconds float64    `json:"rollout_s"` // mean over the settled rollouts; 0 when none settled
	Verdict        Verdict    `json:"verdict,omitempty"`
	PValue         *float64   `json:"p_value,omitempty"`
	Reason         string     `json:"reason,omitempty"`
	// CostSeconds is the rollout time the protection adds: with it minus without it.
	CostSeconds *float64 `json:"cost_s,omitempty"`
	Failure     string   `json:"failure,omitempty"`
}

// Outcome is an ablation's verdict: what report.json carries under "ablation".
type Outcome struct {
	Repeat int   `json:"repeat"` // rollouts per scenario asked for
	Rows   []Row `json:"rows"`
	// NotRun are the scenarios planned but not started (the run was interrupted).
	NotRun []string `json:"not_run,omitempty"`
	// CannotDerive are the protections no variant could be derived for, with the reason.
	CannotDerive []string `json:"cannot_derive,omitempty"`
}

// Bases returns the base scenarios of vs, in the order they first appear.
func Bases(vs []Variant) []string {
	var out []string
	for _, v := range vs {
		if !slices.Contains(out, v.Base) {
			out = append(out, v.Base)
		}
	}
	return out
}

// Assess builds the verdict table: each base scenario followed by its variants, every variant
// judged against its base on the per-rollout losses. A scenario missing from measured was not
// run; one with a Failure is shown but not judged, nor are the variants of a base that failed.
func Assess(vs []Variant, measured map[string]Measured, repeat int, skipped []Unremovable) (Outcome, error) {
	out := Outcome{Repeat: repeat}
	for _, s := range skipped {
		out.CannotDerive = append(out.CannotDerive, s.String())
	}
	row := func(name string) (Row, Measured, bool) {
		m, ok := measured[name]
		if !ok {
			out.NotRun = append(out.NotRun, name)
			return Row{}, m, false
		}
		r := Row{Scenario: name, Losses: m.Losses, WorstLatencyMs: float64(m.WorstLatency) / float64(time.Millisecond),
			RolloutSeconds: mean(m.RolloutSeconds), Failure: m.Failure}
		if r.Losses == nil {
			r.Losses = []int64{}
		}
		if len(m.Losses) > 0 {
			var sum int64
			for _, l := range m.Losses {
				sum += l
			}
			r.MeanLosses = float64(sum) / float64(len(m.Losses))
		}
		return r, m, true
	}
	for _, base := range Bases(vs) {
		br, bm, baseRan := row(base)
		if baseRan {
			out.Rows = append(out.Rows, br)
		}
		for _, v := range vs {
			if v.Base != base {
				continue
			}
			r, m, ok := row(v.Name)
			if !ok {
				continue
			}
			r.Base, r.Protection, r.Adds = base, v.Protection, v.Adds
			switch {
			case r.Failure != "":
				r.Reason = "not judged: " + r.Failure
			case !baseRan:
				r.Reason = fmt.Sprintf("not judged: the base %s did not run", base)
			case bm.Failure != "":
				r.Reason = fmt.Sprintf("not judged: the base %s failed (%s)", base, bm.Failure)
			default:
				without, with := v.Sides(m.Losses, bm.Losses)
				j, err := Judge(without, with)
				if err != nil {
					return Outcome{}, fmt.Errorf("judging %s: %w", v.Name, err)
				}
				r.Verdict, r.Reason = j.Verdict, j.Reason
				if len(without) > 0 && len(with) > 0 {
					p := j.Test.P
					r.PValue = &p
				}
				if len(m.RolloutSeconds) > 0 && len(bm.RolloutSeconds) > 0 {
					withS, withoutS := br.RolloutSeconds, r.RolloutSeconds
					if v.Adds {
						withS, withoutS = withoutS, withS
					}
					c := withS - withoutS
					r.CostSeconds = &c
				}
			}
			out.Rows = append(out.Rows, r)
		}
	}
	return out, nil
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func (r Row) isBase() bool { return r.Base == "" }

// verdictCell is the table's last column.
func (r Row) verdictCell() string {
	switch {
	case r.isBase():
		return "(base)"
	case r.Verdict == "":
		return "not judged"
	case r.PValue != nil:
		return fmt.Sprintf("%s (p = %.2g)", r.Verdict, *r.PValue)
	}
	return string(r.Verdict)
}

func (r Row) protectionCell() string {
	switch {
	case r.isBase():
		return "-"
	case r.Adds:
		return "adds " + string(r.Protection)
	}
	return "removes " + string(r.Protection)
}

func lossesCell(ls []int64) string {
	if len(ls) == 0 {
		return "-"
	}
	s := make([]string, len(ls))
	for i, l := range ls {
		s[i] = fmt.Sprint(l)
	}
	return strings.Join(s, " ")
}

func (r Row) rolloutCell() string {
	if r.RolloutSeconds == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f s", r.RolloutSeconds)
}

func (r Row) latencyCell() string {
	if len(r.Losses) == 0 && r.WorstLatencyMs == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f ms", r.WorstLatencyMs)
}

func (r Row) meanCell() string {
	if len(r.Losses) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", r.MeanLosses)
}

var tableHeader = []string{"variant", "protection", "losses per rollout", "mean", "worst latency", "rollout", "verdict"}

func (r Row) cells() []string {
	return []string{r.Scenario, r.protectionCell(), lossesCell(r.Losses), r.meanCell(), r.latencyCell(), r.rolloutCell(), r.verdictCell()}
}

// WriteTable prints the verdict table for the terminal.
func (o Outcome) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(tableHeader, "\t"))
	for _, r := range o.Rows {
		fmt.Fprintln(tw, strings.Join(r.cells(), "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(o.NotRun) > 0 {
		_, err := fmt.Fprintf(w, "not run: %s\n", strings.Join(o.NotRun, ", "))
		return err
	}
	return nil
}

// WriteMarkdown writes the verdict table and a paragraph per protection (what removing it
// did, what it costs in rollout time). link, when set, gives a scenario's report to link to.
func (o Outcome) WriteMarkdown(w io.Writer, link func(scenario string) string) error {
	var b strings.Builder
	b.WriteString("| " + strings.Join(tableHeader, " | ") + " |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---|\n")
	for _, r := range o.Rows {
		c := r.cells()
		if link != nil {
			c[0] = fmt.Sprintf("[%s](%s)", c[0], link(r.Scenario))
		}
		b.WriteString("| " + strings.Join(c, " | ") + " |\n")
	}
	fmt.Fprintf(&b, "\nEach scenario ran %d rollouts in one load run; losses are the failed requests sent in each rollout's window. ", o.Repeat)
	b.WriteString("\"needed\": removing the protection raised the losses per rollout significantly (exact one-sided Mann-Whitney test, p <= 0.05); ")
	b.WriteString("\"no measurable effect at this scale\": losses without it were not higher; \"inconclusive\": too few rollouts, or higher but not significantly.\n")
	if len(o.NotRun) > 0 {
		fmt.Fprintf(&b, "\nNot run (interrupted): %s.\n", strings.Join(o.NotRun, ", "))
	}
	for _, p := range o.protections() {
		fmt.Fprintf(&b, "\n### %s\n", p)
		for _, r := range o.Rows {
			if r.Protection == p && !r.isBase() {
				b.WriteString("\n" + o.paragraph(r) + "\n")
			}
		}
	}
	if len(o.CannotDerive) > 0 {
		b.WriteString("\n### Not ablated\n\n")
		for _, s := range o.CannotDerive {
			fmt.Fprintf(&b, "- %s\n", s)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteParagraphs writes the paragraphs alone, for the terminal.
func (o Outcome) WriteParagraphs(w io.Writer) error {
	var b strings.Builder
	for _, p := range o.protections() {
		for _, r := range o.Rows {
			if r.Protection == p && !r.isBase() {
				fmt.Fprintf(&b, "\n%s: %s\n", p, o.paragraph(r))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (o Outcome) protections() []Protection {
	var ps []Protection
	for _, r := range o.Rows {
		if !r.isBase() && !slices.Contains(ps, r.Protection) {
			ps = append(ps, r.Protection)
		}
	}
	return ps
}

func (o Outcome) base(name string) (Row, bool) {
	i := slices.IndexFunc(o.Rows, func(r Row) bool { return r.isBase() && r.Scenario == name })
	if i < 0 {
		return Row{}, false
	}
	return o.Rows[i], true
}

// paragraph says what removing (or adding) the protection did and what it costs.
func (o Outcome) paragraph(r Row) string {
	if r.Verdict == "" {
		return fmt.Sprintf("%s: %s.", r.Scenario, strings.TrimPrefix(r.Reason, "not judged: "))
	}
	b, _ := o.base(r.Base)
	var s string
	if r.Adds {
		s = fmt.Sprintf("Added alone to %s, %s lost %s requests per rollout (mean %.1f, worst latency %s), against %s (mean %.1f, worst latency %s) without it.",
			r.Base, r.Scenario, lossesCell(r.Losses), r.MeanLosses, r.latencyCell(), lossesCell(b.Losses), b.MeanLosses, b.latencyCell())
	} else {
		s = fmt.Sprintf("Without it, %s lost %s requests per rollout (mean %.1f, worst latency %s), against %s (mean %.1f, worst latency %s) in %s with it.",
			r.Scenario, lossesCell(r.Losses), r.MeanLosses, r.latencyCell(), lossesCell(b.Losses), b.MeanLosses, b.latencyCell(), r.Base)
	}
	s += fmt.Sprintf(" Verdict: **%s** (%s).", r.Verdict, r.Reason)
	if r.CostSeconds != nil {
		with, without := b.RolloutSeconds, r.RolloutSeconds
		if r.Adds {
			with, without = without, with
		}
		c := *r.CostSeconds
		switch {
		case math.Abs(c) < 0.5:
			s += fmt.Sprintf(" It costs no measurable rollout time (%.1f s with it, %.1f s without).", with, without)
		case c > 0:
			s += fmt.Sprintf(" It costs %.1f s per rollout (%.1f s with it, %.1f s without).", c, with, without)
		default:
			s += fmt.Sprintf(" Rollouts were %.1f s faster with it (%.1f s with it, %.1f s without).", -c, with, without)
		}
	}
	return s
}
