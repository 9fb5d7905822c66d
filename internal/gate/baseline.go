package gate

import (
	"fmt"
	"slices"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/gracelab/gracelab/internal/stats"
)

// Sample is one scenario's per-rollout figures, from the current run or a baseline report. A
// schema-1 report (one rollout per scenario) gives one value in each.
type Sample struct {
	Scenario string
	Losses   []int64         // failed requests per rollout
	P99      []time.Duration // p99 latency per rollout
}

// Regression is one way the current run is worse than the baseline beyond the baseline's interval.
type Regression struct {
	Scenario string
	What     string // "lossy rollouts" or "p99 latency"
	Message  string // one line naming scenario, both values and the bound
}

func (r Regression) String() string { return r.Message }

// CompareBaseline compares the current run with a baseline, scenario by scenario (scenarios
// missing on either side are skipped: the caller says so). Definitions (docs/statistics.md):
//
//   - lossy rollouts regress when the current fraction of rollouts that lost any request is above
//     the upper end of the baseline's exact 95 % Clopper-Pearson interval;
//   - p99 latency regresses when the current median of per-rollout p99s is above P99Bound of the
//     baseline's per-rollout p99s (an order-statistic upper confidence bound for their median).
func CompareBaseline(baseline, current []Sample) []Regression {
	byName := map[string]Sample{}
	for _, b := range baseline {
		byName[b.Scenario] = b
	}
	var out []Regression
	for _, cur := range current {
		base, ok := byName[cur.Scenario]
		if !ok {
			continue
		}
		if len(base.Losses) > 0 && len(cur.Losses) > 0 {
			b, c := stats.Lossy(base.Losses), stats.Lossy(cur.Losses)
			if c.Estimate > b.Hi {
				out = append(out, Regression{cur.Scenario, "lossy rollouts", fmt.Sprintf(
					"regression: %s: %d of %d rollouts lost requests (%s %%), baseline %d of %d (95 %% CI up to %s %%)",
					cur.Scenario, c.K, c.N, stats.FormatPercent(c.Estimate), b.K, b.N, stats.FormatPercent(b.Hi))})
			}
		}
		if len(base.P99) > 0 && len(cur.P99) > 0 {
			bound, conf := P99Bound(base.P99)
			med := medianDuration(cur.P99)
			if med > bound {
				out = append(out, Regression{cur.Scenario, "p99 latency", fmt.Sprintf(
					"regression: %s: median p99 %s over %d rollouts, baseline bound %s (%s %% one-sided, over %d rollouts)",
					cur.Scenario, med, len(cur.P99), bound, stats.FormatPercent(conf), len(base.P99))})
			}
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
