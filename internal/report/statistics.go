package report

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gracelab/gracelab/internal/stats"
)

// The tests a Comparison names.
const (
	TestMannWhitney = "mann_whitney" // losses per rollout
	TestFisher      = "fisher_exact" // lossy or clean rollouts
)

// Summarize fills each scenario's Statistics from its rollout rows and compares every pair of
// such scenarios, in scenario order, with both exact tests (docs/statistics.md). Scenarios
// without rollout rows (a run of one rollout) get neither: one rollout is one sample.
func (r *Report) Summarize() error {
	var summarized []Scenario
	for i := range r.Scenarios {
		s := &r.Scenarios[i]
		s.Statistics = nil
		if len(s.Rollouts) == 0 || s.Result == nil {
			continue
		}
		st, err := statisticsOf(s)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", s.Scenario, err)
		}
		s.Statistics = st
		summarized = append(summarized, *s)
	}
	r.Comparisons = nil
	for i, a := range summarized {
		for _, b := range summarized[i+1:] {
			c, err := stats.Compare(lossesOf(a), lossesOf(b), stats.TwoSided)
			if err != nil {
				return fmt.Errorf("comparing %s and %s: %w", a.Scenario, b.Scenario, err)
			}
			pair := [2]string{a.Scenario, b.Scenario}
			na, nb := len(a.Rollouts), len(b.Rollouts)
			r.Comparisons = append(r.Comparisons,
				Comparison{Scenarios: pair, Test: TestMannWhitney, PValue: c.MannWhitney.P, Alpha: stats.Alpha,
					Significant: c.MannWhitney.Significant(), RolloutsA: na, RolloutsB: nb},
				Comparison{Scenarios: pair, Test: TestFisher, PValue: c.Fisher.P, Alpha: stats.Alpha,
					Significant: c.Fisher.Significant(), RolloutsA: na, RolloutsB: nb})
		}
	}
	return nil
}

// lossesOf is the scenario's failed requests per rollout.
func lossesOf(s Scenario) []int64 {
	out := make([]int64, len(s.Rollouts))
	for i, ro := range s.Rollouts {
		out[i] = ro.Errors
	}
	return out
}

func statisticsOf(s *Scenario) (*Statistics, error) {
	losses := lossesOf(*s)
	lossy, spread := stats.Lossy(losses), stats.Summarize(losses)
	st := &Statistics{
		Rollouts: lossy.N, LossyRollouts: lossy.K,
		LossyInterval: Interval{Low: lossy.Lo, High: lossy.Hi, Level: stats.Level},
		Losses:        Spread{Min: spread.Min, Median: spread.Median, Max: spread.Max},
	}
	rate, err := stats.RequestErrorRate(s.Errors, s.Requests)
	if err != nil {
		return nil, err
	}
	switch {
	case s.Requests == 0:
	case s.Errors == 0:
		st.RequestErrorUpper, st.UpperLevel = rate.Upper, stats.Level
	default:
		st.RequestErrorInterval = &Interval{Low: rate.Lo, High: rate.Hi, Level: stats.Level}
	}
	return st, nil
}

// comparisonLines are the comparisons in words, one line per pair of scenarios (both tests).
func comparisonLines(cs []Comparison) []string {
	var out []string
	for i := 0; i < len(cs); {
		j := i + 1
		for j < len(cs) && cs[j].Scenarios == cs[i].Scenarios {
			j++
		}
		out = append(out, comparisonLine(cs[i:j]))
		i = j
	}
	return out
}

// comparisonLine says whether two scenarios differ, in words a reader can act on:
// "v1 vs v2: not significant with 3 and 3 rollouts (Mann-Whitney test on losses per rollout,
// p = 0.1; Fisher's exact test on lossy rollouts, p = 0.1; alpha 0.05)".
func comparisonLine(group []Comparison) string {
	verdict := func(c Comparison) string {
		if c.Significant {
			return "significant"
		}
		return fmt.Sprintf("not significant with %d and %d rollouts", c.RolloutsA, c.RolloutsB)
	}
	test := func(c Comparison) string {
		name := map[string]string{TestFisher: "Fisher's exact test on lossy rollouts", TestMannWhitney: "Mann-Whitney test on losses per rollout"}[c.Test]
		if name == "" {
			name = c.Test
		}
		return fmt.Sprintf("%s, p = %s", name, strconv.FormatFloat(c.PValue, 'g', 2, 64))
	}
	first := group[0]
	agree := true
	for _, c := range group {
		agree = agree && c.Significant == first.Significant
	}
	parts := make([]string, len(group))
	for i, c := range group {
		parts[i] = test(c)
		if !agree {
			parts[i] = verdict(c) + " (" + parts[i] + ")"
		}
	}
	head := first.Scenarios[0] + " vs " + first.Scenarios[1] + ": "
	alpha := "alpha " + fmtNum(first.Alpha)
	if agree {
		return head + verdict(first) + " (" + strings.Join(parts, "; ") + "; " + alpha + ")"
	}
	return head + strings.Join(parts, "; ") + "; " + alpha
}
