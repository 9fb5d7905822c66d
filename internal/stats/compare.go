package stats

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/combin"
)

// Verdict is how a comparison between two scenarios reads.
type Verdict string

const (
	Significant    Verdict = "significant"
	NotSignificant Verdict = "not significant with this many rollouts"
)

// Comparison compares two scenarios' per-rollout loss counts. The verdict is the Mann-Whitney
// test's on the counts (exact for small samples); Fisher's test on lossy versus clean rollouts
// is reported beside it, as it answers the narrower "does A lose at all more often than B".
type Comparison struct {
	LossyA, LossyB Proportion
	MannWhitney    Result // on the counts, A against B
	Fisher         Result // on lossy/clean rollouts, A's row first
	Verdict        Verdict
}

// Compare tests the per-rollout loss counts of scenario A against B. With Greater, the question
// is "does A lose more than B"; with TwoSided, "do they differ".
func Compare[T Count](a, b []T, alt Alternative) (Comparison, error) {
	if len(a) == 0 || len(b) == 0 {
		return Comparison{}, fmt.Errorf("comparing %d against %d rollouts: each side needs at least one", len(a), len(b))
	}
	c := Comparison{LossyA: Lossy(a), LossyB: Lossy(b)}
	var err error
	if c.MannWhitney, err = MannWhitney(toFloats(a), toFloats(b), alt); err != nil {
		return Comparison{}, err
	}
	if c.Fisher, err = Fisher(c.LossyA.K, c.LossyA.N-c.LossyA.K, c.LossyB.K, c.LossyB.N-c.LossyB.K, alt); err != nil {
		return Comparison{}, err
	}
	c.Verdict = NotSignificant
	if c.MannWhitney.Significant() {
		c.Verdict = Significant
	}
	return c, nil
}

// String reads "significant (Mann-Whitney p = 0.0079, exact)".
func (c Comparison) String() string {
	how := "exact"
	if !c.MannWhitney.Exact {
		how = "normal approximation"
	}
	return fmt.Sprintf("%s (Mann-Whitney p = %.2g, %s)", c.Verdict, c.MannWhitney.P, how)
}

// MinRollouts is the smallest number of rollouts per scenario (the same on both sides) with which
// the exact Mann-Whitney test can reach significance at Alpha at all: when every rollout of one
// scenario loses more than every rollout of the other, the one-sided p-value is 1/C(2n, n) and the
// two-sided one twice that. Fewer rollouts can never give "significant", whatever happens; more
// are needed when the losses overlap.
func MinRollouts(alt Alternative) int {
	for n := 1; ; n++ {
		p := math.Exp(-combin.LogGeneralizedBinomial(float64(2*n), float64(n)))
		if alt == TwoSided {
			p *= 2
		}
		if (Result{P: p}).Significant() {
			return n
		}
	}
}
