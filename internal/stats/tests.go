package stats

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/stat/combin"
	"gonum.org/v1/gonum/stat/distuv"
)

// Alternative is the alternative hypothesis of a test, named as in R.
type Alternative int

const (
	// TwoSided: the two samples differ, in either direction.
	TwoSided Alternative = iota
	// Greater: the first sample tends to be larger (for Fisher: odds ratio above 1, i.e. the
	// first row is more often in the first column).
	Greater
	// Less: the first sample tends to be smaller.
	Less
)

func (a Alternative) String() string {
	switch a {
	case Greater:
		return "greater"
	case Less:
		return "less"
	default:
		return "two-sided"
	}
}

// Result is the outcome of one test.
type Result struct {
	Test        string // "Fisher's exact test" or "Mann-Whitney U test"
	Alternative Alternative
	Statistic   float64 // Fisher: the top-left cell; Mann-Whitney: U of the first sample (R's W)
	P           float64 // the p-value
	Exact       bool    // false when a normal approximation was used
}

// Significant reports whether P is at or below Alpha. A tiny tolerance keeps exact p-values that
// equal Alpha in theory (1/20 for 3 against 3 rollouts) from missing it by rounding.
func (r Result) Significant() bool { return r.P <= Alpha*(1+1e-9) }

// Fisher is Fisher's exact test on the 2x2 table
//
//	| a  b |   e.g. scenario A: lossy rollouts a, clean rollouts b
//	| c  d |        scenario B: lossy rollouts c, clean rollouts d
//
// conditioned on its margins, as R's fisher.test: Greater means the odds ratio ad/bc is above 1
// (A is lossy more often than B). The two-sided p-value sums the probabilities of all tables no
// more likely than the observed one (with R's relative tolerance of 1e-7).
func Fisher(a, b, c, d int, alt Alternative) (Result, error) {
	if a < 0 || b < 0 || c < 0 || d < 0 {
		return Result{}, fmt.Errorf("table %d %d / %d %d has a negative cell", a, b, c, d)
	}
	row1, row2, col1 := a+b, c+d, a+c
	lo, hi := max(0, col1-row2), min(row1, col1)
	logP := func(x int) float64 {
		return combin.LogGeneralizedBinomial(float64(row1), float64(x)) +
			combin.LogGeneralizedBinomial(float64(row2), float64(col1-x)) -
			combin.LogGeneralizedBinomial(float64(row1+row2), float64(col1))
	}
	res := Result{Test: "Fisher's exact test", Alternative: alt, Statistic: float64(a), Exact: true}
	var p float64
	switch alt {
	case Greater:
		for x := a; x <= hi; x++ {
			p += math.Exp(logP(x))
		}
	case Less:
		for x := lo; x <= a; x++ {
			p += math.Exp(logP(x))
		}
	default:
		observed := logP(a)
		for x := lo; x <= hi; x++ {
			if lp := logP(x); lp <= observed+math.Log1p(1e-7) {
				p += math.Exp(lp)
			}
		}
	}
	res.P = math.Min(p, 1)
	return res, nil
}

// ExactLimit is the largest total sample size for which MannWhitney computes the exact
// distribution; beyond it a normal approximation is used (as R does from 50 values on).
const ExactLimit = 100

// MannWhitney is the Mann-Whitney U (Wilcoxon rank-sum) test of x against y. Greater means x
// tends to be larger than y. The statistic is U of x: the number of pairs (xi, yj) with xi > yj,
// plus half the ties (R's W).
//
// Up to ExactLimit values in all, the p-value is exact: the permutation distribution of the rank
// sum given the observed ties (mid-ranks), as exactRankTests::wilcox.exact and coin compute it,
// so zero-heavy per-rollout counts are handled exactly. Beyond it, a normal approximation with
// tie and continuity correction, as R's wilcox.test.
func MannWhitney(x, y []float64, alt Alternative) (Result, error) {
	if len(x) == 0 || len(y) == 0 {
		return Result{}, errors.New("Mann-Whitney test: each sample needs at least one value")
	}
	for _, v := range append(append([]float64(nil), x...), y...) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Result{}, fmt.Errorf("Mann-Whitney test: value %v is not a finite number", v)
		}
	}
	if len(x)+len(y) <= ExactLimit {
		return mannWhitneyExact(x, y, alt), nil
	}
	return mannWhitneyNormal(x, y, alt), nil
}

// midRanks2 returns twice the mid-rank of every value of x then y (integers), and the sizes of
// the tie groups.
func midRanks2(x, y []float64) (ranks2 []int, ties []int) {
	type item struct {
		v float64
		i int
	}
	all := make([]item, 0, len(x)+len(y))
	for i, v := range x {
		all = append(all, item{v, i})
	}
	for i, v := range y {
		all = append(all, item{v, len(x) + i})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v })
	ranks2 = make([]int, len(all))
	for start := 0; start < len(all); {
		end := start
		for end < len(all) && all[end].v == all[start].v {
			end++
		}
		// Ranks start+1 .. end share their mean; twice it is start+1+end.
		for k := start; k < end; k++ {
			ranks2[all[k].i] = start + 1 + end
		}
		ties = append(ties, end-start)
		start = end
	}
	return ranks2, ties
}

// uStatistic is U of x from twice x's rank sum.
func uStatistic(rankSum2, m int) float64 {
	return float64(rankSum2)/2 - float64(m*(m+1))/2
}

func mannWhitneyExact(x, y []float64, alt Alternative) Result {
	m := len(x)
	ranks2, _ := midRanks2(x, y)
	observed := 0
	for _, r := range ranks2[:m] {
		observed += r
	}
	maxSum := 0
	for _, r := range ranks2 {
		maxSum += r
	}
	// ways[j][s]: subsets of j values (of those seen so far) whose doubled ranks sum to s.
	ways := make([][]float64, m+1)
	for j := range ways {
		ways[j] = make([]float64, maxSum+1)
	}
	ways[0][0] = 1
	for i, r := range ranks2 {
		for j := min(i+1, m); j >= 1; j-- {
			prev, cur := ways[j-1], ways[j]
			for s := maxSum; s >= r; s-- {
				cur[s] += prev[s-r]
			}
		}
	}
	var total, upper, lower float64
	for s, w := range ways[m] {
		total += w
		if s >= observed {
			upper += w
		}
		if s <= observed {
			lower += w
		}
	}
	upper, lower = upper/total, lower/total
	res := Result{Test: "Mann-Whitney U test", Alternative: alt, Statistic: uStatistic(observed, m), Exact: true}
	switch alt {
	case Greater:
		res.P = upper
	case Less:
		res.P = lower
	default:
		res.P = math.Min(1, 2*math.Min(upper, lower))
	}
	return res
}

func mannWhitneyNormal(x, y []float64, alt Alternative) Result {
	m, n := float64(len(x)), float64(len(y))
	ranks2, ties := midRanks2(x, y)
	sum2 := 0
	for _, r := range ranks2[:len(x)] {
		sum2 += r
	}
	u := uStatistic(sum2, len(x))
	res := Result{Test: "Mann-Whitney U test", Alternative: alt, Statistic: u}
	total := m + n
	tieTerm := 0.0
	for _, t := range ties {
		tf := float64(t)
		tieTerm += tf*tf*tf - tf
	}
	sigma := math.Sqrt(m * n / 12 * ((total + 1) - tieTerm/(total*(total-1))))
	z := u - m*n/2
	if sigma == 0 {
		res.P = 1
		return res
	}
	var correction float64
	switch alt {
	case Greater:
		correction = 0.5
	case Less:
		correction = -0.5
	default:
		correction = 0.5 * sign(z)
	}
	z = (z - correction) / sigma
	std := distuv.UnitNormal
	switch alt {
	case Greater:
		res.P = std.Survival(z)
	case Less:
		res.P = std.CDF(z)
	default:
		res.P = math.Min(1, 2*math.Min(std.CDF(z), std.Survival(z)))
	}
	return res
}

func sign(v float64) float64 {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}
