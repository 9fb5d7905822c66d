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
	Repeat int `json:"repeat"` // rollouts (or other disruptions) per scenario asked for
	// Disruption is what each scenario went through Repeat times: "" (or "restart") for
	// rolling restarts, else the kind (kill, evict, ...); see Under.
	Disruption string `json:"disruption,omitempty"`
	Rows       []Row  `json:"rows"`
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

// Under words the outcome for what its scenarios went through: a kind other than the rolling
// restart is no rollout, so the reasons speak of disruptions (the judging is the same: one
// count of losses per disruption).
func (o Outcome) Under(kind string) Outcome {
	if kind == "" || kind == "restart" {
		return o
	}
	o.Disruption = kind
	rows := make([]Row, len(o.Rows))
	for i, r := range o.Rows {
		r.Reason = disruptionWords.Replace(r.Reason)
		rows[i] = r
	}
	o.Rows = rows
	return o
}

// disruptionWords turn Judge's and Assess's rollouts into disruptions; their texts name no
// rollout strategy, so nothing else is caught.
var disruptionWords = strings.NewReplacer("rollouts", "disruptions", "rollout", "disruption")

func (o Outcome) rollouts() bool { return o.Disruption == "" || o.Disruption == "restart" }

// unit is what a scenario repeated: "rollout", or "disruption".
func (o Outcome) unit() string {
	if o.rollouts() {
		return "rollout"
	}
	return "disruption"
}

// timeWord is what the duration column measures: a rollout's time, or the recovery from a
// disruption (until every pod is ready again and none is terminating).
func (o Outcome) timeWord() string {
	if o.rollouts() {
		return "rollout"
	}
	return "recovery"
}

// verdictCell is the table's last column.
func (o Outcome) verdictCell(r Row) string {
	v := string(r.Verdict)
	if !o.rollouts() {
		v = disruptionWords.Replace(v)
	}
	switch {
	case r.isBase():
		return "(base)"
	case r.Verdict == "":
		return "not judged"
	case r.PValue != nil:
		return fmt.Sprintf("%s (p = %.2g)", v, *r.PValue)
	}
	return v
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

func (o Outcome) header() []string {
	return []string{"variant", "protection", "losses per " + o.unit(), "mean", "worst latency", o.timeWord(), "verdict"}
}

func (o Outcome) cells(r Row) []string {
	return []string{r.Scenario, r.protectionCell(), lossesCell(r.Losses), r.meanCell(), r.latencyCell(), r.rolloutCell(), o.verdictCell(r)}
}

// WriteTable prints the verdict table for the terminal.
func (o Outcome) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(o.header(), "\t"))
	for _, r := range o.Rows {
		fmt.Fprintln(tw, strings.Join(o.cells(r), "\t"))
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
	b.WriteString("| " + strings.Join(o.header(), " | ") + " |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---|\n")
	for _, r := range o.Rows {
		c := o.cells(r)
		if link != nil {
			c[0] = fmt.Sprintf("[%s](%s)", c[0], link(r.Scenario))
		}
		b.WriteString("| " + strings.Join(c, " | ") + " |\n")
	}
	u := o.unit()
	if o.rollouts() {
		fmt.Fprintf(&b, "\nEach scenario ran %d rollouts in one load run; losses are the failed requests sent in each rollout's window. ", o.Repeat)
	} else {
		fmt.Fprintf(&b, "\nEach scenario went through %d disruptions of kind %s (--disruption %s) instead of rolling restarts, in one load run; "+
			"losses are the failed requests sent in each disruption's window; recovery runs from the disruption until every pod is ready again and none is terminating. ",
			o.Repeat, o.Disruption, o.Disruption)
	}
	fmt.Fprintf(&b, "\"needed\": removing the protection raised the losses per %s significantly (exact one-sided Mann-Whitney test, p <= 0.05); ", u)
	fmt.Fprintf(&b, "\"no measurable effect at this scale\": losses without it were not higher; \"inconclusive\": too few %ss, or higher but not significantly.\n", u)
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
		s = fmt.Sprintf("Added alone to %s, %s lost %s requests per %s (mean %.1f, worst latency %s), against %s (mean %.1f, worst latency %s) without it.",
			r.Base, r.Scenario, lossesCell(r.Losses), o.unit(), r.MeanLosses, r.latencyCell(), lossesCell(b.Losses), b.MeanLosses, b.latencyCell())
	} else {
		s = fmt.Sprintf("Without it, %s lost %s requests per %s (mean %.1f, worst latency %s), against %s (mean %.1f, worst latency %s) in %s with it.",
			r.Scenario, lossesCell(r.Losses), o.unit(), r.MeanLosses, r.latencyCell(), lossesCell(b.Losses), b.MeanLosses, b.latencyCell(), r.Base)
	}
	verdict := string(r.Verdict)
	if !o.rollouts() {
		verdict = disruptionWords.Replace(verdict)
	}
	s += fmt.Sprintf(" Verdict: **%s** (%s).", verdict, r.Reason)
	if r.CostSeconds != nil {
		with, without := b.RolloutSeconds, r.RolloutSeconds
		if r.Adds {
			with, without = without, with
		}
		c := *r.CostSeconds
		switch {
		case math.Abs(c) < 0.5:
			s += fmt.Sprintf(" It costs no measurable %s time (%.1f s with it, %.1f s without).", o.timeWord(), with, without)
		case c > 0 && o.rollouts():
			s += fmt.Sprintf(" It costs %.1f s per rollout (%.1f s with it, %.1f s without).", c, with, without)
		case c > 0:
			s += fmt.Sprintf(" It costs %.1f s of recovery time per disruption (%.1f s with it, %.1f s without).", c, with, without)
		case o.rollouts():
			s += fmt.Sprintf(" Rollouts were %.1f s faster with it (%.1f s with it, %.1f s without).", -c, with, without)
		default:
			s += fmt.Sprintf(" Recovery was %.1f s faster with it (%.1f s with it, %.1f s without).", -c, with, without)
		}
	}
	return s
}
