package ablate

import (
	"fmt"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/gracelab/gracelab/internal/stats"
)

// Verdict is what an ablation says about one protection.
type Verdict string

const (
	Needed       Verdict = "needed"
	NoEffect     Verdict = "no measurable effect at this scale"
	Inconclusive Verdict = "inconclusive: more rollouts needed"
)

// Judgement is the verdict on one protection with the figures behind it.
type Judgement struct {
	Verdict       Verdict
	Without, With stats.Summary    // losses per rollout
	LossyWithout  stats.Proportion // rollouts that lost any request, without the protection
	LossyWith     stats.Proportion
	Test          stats.Result // one-sided Mann-Whitney: without loses more than with
	Reason        string       // one line
}

// Judge decides whether a protection is needed from per-rollout loss counts without it and with
// it (for a removal variant: the variant and its base; for an additive one: v1 and the variant):
//
//   - needed: the exact one-sided Mann-Whitney test says losses without it are higher (p <= 0.05);
//   - inconclusive: more rollouts needed, when either side has fewer rollouts than any result
//     could reach significance with (stats.MinRollouts), or when losses lean higher without it
//     (U above half its range) without reaching significance;
//   - no measurable effect at this scale otherwise: losses without it were not higher.
func Judge[T stats.Count](without, with []T) (Judgement, error) {
	j := Judgement{Without: stats.Summarize(without), With: stats.Summarize(with),
		LossyWithout: stats.Lossy(without), LossyWith: stats.Lossy(with)}
	if len(without) == 0 || len(with) == 0 {
		j.Verdict = Inconclusive
		j.Reason = fmt.Sprintf("%d rollouts without and %d with: nothing to compare", len(without), len(with))
		return j, nil
	}
	cmp, err := stats.Compare(without, with, stats.Greater)
	if err != nil {
		return Judgement{}, err
	}
	j.Test = cmp.MannWhitney
	m, n := float64(len(without)), float64(len(with))
	minN := stats.MinRollouts(stats.Greater)
	switch {
	case j.Test.Significant():
		j.Verdict = Needed
		j.Reason = fmt.Sprintf("without it %s lost requests per rollout (lossy %d of %d), with it %s (lossy %d of %d): p = %.2g",
			j.Without, j.LossyWithout.K, j.LossyWithout.N, j.With, j.LossyWith.K, j.LossyWith.N, j.Test.P)
	case len(without) < minN || len(with) < minN:
		j.Verdict = Inconclusive
		j.Reason = fmt.Sprintf("%d and %d rollouts: at least %d on each side are needed before any difference can be significant",
			len(without), len(with), minN)
	case j.Test.Statistic > m*n/2:
		j.Verdict = Inconclusive
		j.Reason = fmt.Sprintf("losses lean higher without it (%s against %s) but not significantly (p = %.2g)",
			j.Without, j.With, j.Test.P)
	default:
		j.Verdict = NoEffect
		j.Reason = fmt.Sprintf("without it %s, with it %s: not higher", j.Without, j.With)
		if j.LossyWithout.K == 0 {
			j.Reason = fmt.Sprintf("no rollout lost a request without it (0 of %d; at most %s %% of rollouts would, 95 %%)",
				j.LossyWithout.N, stats.FormatPercent(j.LossyWithout.Hi))
		}
	}
	return j, nil
}

// RolloutsNeeded is the smallest number of rollouts per variant with which Judge says "needed"
// with probability at least power, when without the protection a rollout loses requests with
// probability lossyFraction and with it never: the chance that enough of the unprotected
// rollouts are lossy for the exact test to reach significance, counting only lossy or clean (the
// least informative counts; on them the exact Mann-Whitney test is Fisher's one-sided test, which
// is what is computed). It gives up beyond limit rollouts (ok false). For a protection whose
// absence loses requests in every rollout (v1's case) it is stats.MinRollouts: 3.
func RolloutsNeeded(lossyFraction, power float64, limit int) (n int, ok bool) {
	if !(lossyFraction > 0 && lossyFraction <= 1) || !(power > 0 && power <= 1) {
		return 0, false
	}
	for n = stats.MinRollouts(stats.Greater); n <= limit; n++ {
		if detectionPower(lossyFraction, n) >= power {
			return n, true
		}
	}
	return 0, false
}

// detectionPower is the probability that k ~ Binomial(n, q) lossy rollouts against n clean ones
// are significant.
func detectionPower(q float64, n int) float64 {
	b := distuv.Binomial{N: float64(n), P: q}
	var p float64
	for k := 1; k <= n; k++ {
		r, err := stats.Fisher(k, n-k, 0, n, stats.Greater)
		if err != nil || !r.Significant() {
			continue
		}
		if q == 1 { // gonum's Prob is NaN at P = 1
			if k == n {
				p += 1
			}
			continue
		}
		p += b.Prob(float64(k))
	}
	return p
}
