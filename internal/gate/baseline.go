package gate

import (
	"fmt"
	"slices"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/gracelab/gracelab/internal/stats"
)

// Sample is one scenario's per-rollout figures, from the current run or a baseline report. A
// report of one rollout per scenario (schema 1, or a run without --rollouts) gives one value in
// each.
type Sample struct {
	Scenario string
	Losses   []int64         // failed requests per rollout
	P99      []time.Duration // p99 latency per rollout; empty when the report has none per rollout
}

// Baseline is an earlier report to compare the run with (--baseline).
type Baseline struct {
	Source  string // the path given, for messages
	Samples []Sample
}

// BaselineLoader reads the report at a --baseline path (a report directory or a report.json).
// The command supplies it, since gate does not know the report's schema.
type BaselineLoader func(path string) (*Baseline, error)

// CompareBaseline compares the current run with a baseline, scenario by scenario: a check per
// figure both sides have, passed or not, and a note for each scenario only one side has.
// Definitions (docs/statistics.md):
//
//   - lossy rollouts regress when the current fraction of rollouts that lost any request is above
//     the upper end of the baseline's exact 95 % Clopper-Pearson interval;
//   - p99 latency regresses when the current median of per-rollout p99s is above P99Bound of the
//     baseline's per-rollout p99s (an order-statistic upper confidence bound for their median).
func CompareBaseline(baseline Baseline, current []Sample) (checks []Check, notes []string) {
	byName := map[string]Sample{}
	for _, b := range baseline.Samples {
		byName[b.Scenario] = b
	}
	seen := map[string]bool{}
	for _, cur := range current {
		seen[cur.Scenario] = true
		base, ok := byName[cur.Scenario]
		if !ok {
			notes = append(notes, fmt.Sprintf("baseline %s has no scenario %s: not compared", baseline.Source, cur.Scenario))
			continue
		}
		scope := func(n int) Measurement {
			return Measurement{Scenario: cur.Scenario, scope: fmt.Sprintf("%s over %d rollouts", cur.Scenario, n)}
		}
		if len(base.Losses) > 0 && len(cur.Losses) > 0 {
			b, c := stats.Lossy(base.Losses), stats.Lossy(cur.Losses)
			checks = append(checks, Check{Measurement: scope(c.N),
				Threshold: fmt.Sprintf("--baseline %s: lossy rollouts at most %s %% (there %d of %d, the upper end of its 95 %% CI)",
					baseline.Source, stats.FormatPercent(b.Hi), b.K, b.N),
				Measured: fmt.Sprintf("%d of %d rollouts lost requests (%s %%)", c.K, c.N, stats.FormatPercent(c.Estimate)),
				Passed:   c.Estimate <= b.Hi, Name: "baseline lossy rollouts", Value: c.Estimate * 100, Limit: b.Hi * 100, Unit: "%"})
		}
		if len(base.P99) > 0 && len(cur.P99) > 0 {
			bound, conf := P99Bound(base.P99)
			med := medianDuration(cur.P99)
			bound, med = readable(bound), readable(med)
			checks = append(checks, Check{Measurement: scope(len(cur.P99)),
				Threshold: fmt.Sprintf("--baseline %s: median p99 at most %s (a %s %% upper bound for the median of its %d rollouts' p99)",
					baseline.Source, bound, stats.FormatPercent(conf), len(base.P99)),
				Measured: fmt.Sprintf("median p99 %s", med),
				Passed:   med <= bound, Name: "baseline p99",
				Value: float64(med) / float64(time.Millisecond), Limit: float64(bound) / float64(time.Millisecond), Unit: "ms"})
		} else if len(cur.P99) > 0 {
			notes = append(notes, fmt.Sprintf("baseline %s has no p99 per rollout for %s: its p99 not compared", baseline.Source, cur.Scenario))
		}
	}
	for _, b := range baseline.Samples {
		if !seen[b.Scenario] {
			notes = append(notes, fmt.Sprintf("this run has no scenario %s of baseline %s: not compared", b.Scenario, baseline.Source))
		}
	}
	return checks, notes
}

// SamplesOf are the current run's per-rollout figures, from the measurements Evaluate gets:
// each scenario's rollouts with requests in their window, or its whole run when it has none.
func SamplesOf(ms []Measurement) []Sample {
	var order []string
	byName := map[string]*Sample{}
	whole := map[string]Measurement{}
	for _, m := range ms {
		if _, ok := byName[m.Scenario]; !ok {
			byName[m.Scenario] = &Sample{Scenario: m.Scenario}
			order = append(order, m.Scenario)
		}
		if m.Rollout == 0 {
			whole[m.Scenario] = m
			continue
		}
		if m.Requests == 0 {
			continue // nothing was sent into this rollout: no sample
		}
		s := byName[m.Scenario]
		s.Losses = append(s.Losses, m.Errors)
		if p99, ok := m.Latency[P99]; ok {
			s.P99 = append(s.P99, p99)
		}
	}
	out := make([]Sample, 0, len(order))
	for _, name := range order {
		s := byName[name]
		if w, ok := whole[name]; ok && len(s.Losses) == 0 && w.Requests > 0 {
			s.Losses = []int64{w.Errors}
			if p99, ok := w.Latency[P99]; ok {
				s.P99 = []time.Duration{p99}
			}
		}
		if len(s.Losses) > 0 {
			out = append(out, *s)
		}
	}
	return out
}

// P99Bound is the one-sided upper confidence bound for the median of the baseline's per-rollout
// p99s: the smallest order statistic x(j) with P(Binomial(n, 1/2) <= j-1) >= 95 %, which holds
// whatever their distribution. With fewer than 5 rollouts no order statistic reaches 95 %; the
// bound is then the largest value, at its actual confidence 1 - 2^-n (50 % for one rollout),
// returned as the second value.
func P99Bound(p99s []time.Duration) (time.Duration, float64) {
	sorted := slices.Clone(p99s)
	slices.Sort(sorted)
	n := len(sorted)
	b := distuv.Binomial{N: float64(n), P: 0.5}
	for j := 1; j <= n; j++ {
		if conf := b.CDF(float64(j - 1)); conf >= stats.Level {
			return sorted[j-1], conf
		}
	}
	return sorted[n-1], b.CDF(float64(n - 1))
}

// readable rounds a latency for messages: to the millisecond from 10ms up, else to the microsecond.
// The comparison uses the rounded values too, so a message never shows equal values as a breach.
func readable(d time.Duration) time.Duration {
	if d >= 10*time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}

func medianDuration(ds []time.Duration) time.Duration {
	s := stats.Summarize(durationsAsFloats(ds))
	return time.Duration(s.Median)
}

func durationsAsFloats(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d)
	}
	return out
}
