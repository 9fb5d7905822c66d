// Package stats owns the statistics gracelab reports about repeated rollouts: exact intervals for
// proportions (Clopper-Pearson), a one-sided upper bound for a per-request error rate, Fisher's
// exact test on 2x2 tables, the Mann-Whitney U test on per-rollout counts (exact for small samples,
// ties included), min/median/max summaries, and the verdict wording of a comparison.
//
// Errors come in bursts (one dying pod takes many requests with it), so the rollout is the unit of
// every test here; the per-request figures are labelled as assuming independent requests.
// docs/statistics.md defines each figure; the reference values in the tests come from R's
// binom.test, fisher.test and wilcox.test documentation and well-known worked examples.
//
// Typical use, for one scenario's per-rollout loss counts:
//
//	lossy := stats.Lossy(losses)                  // rollouts that lost any request, 95 % interval
//	sum := stats.Summarize(losses)                // min / median / max
//	cmp := stats.Compare(lossesA, lossesB)        // exact test, Verdict "significant" or not
//	rate := stats.RequestErrorRate(errs, requests) // "0 errors in 8,812 requests: at most 0.034 %"
package stats

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gonum.org/v1/gonum/stat/distuv"
)

// Level is the confidence level of every interval gracelab reports, and Alpha the significance
// level of every test: 95 % and 5 %.
const (
	Level = 0.95
	Alpha = 1 - Level
)

// Count is a per-rollout count: failed requests, for one.
type Count interface{ ~int | ~int64 }

// Proportion is k of n with its exact two-sided interval at Level.
type Proportion struct {
	K, N     int
	Estimate float64 // K/N; 0 when N is 0
	Lo, Hi   float64 // Clopper-Pearson bounds, fractions in [0, 1]
}

// String reads "2 of 5 (40 %, 95 % CI 5.3-85 %)".
func (p Proportion) String() string {
	if p.N == 0 {
		return "0 of 0"
	}
	return fmt.Sprintf("%d of %d (%s %%, 95 %% CI %s-%s %%)", p.K, p.N,
		FormatPercent(p.Estimate), FormatPercent(p.Lo), FormatPercent(p.Hi))
}

// ClopperPearson returns the exact two-sided interval at level (e.g. 0.95) for k successes in n
// trials: the bounds are quantiles of Beta(k, n-k+1) and Beta(k+1, n-k), as in R's binom.test.
func ClopperPearson(k, n int, level float64) (lo, hi float64, err error) {
	if err := checkCount(k, n); err != nil {
		return 0, 0, err
	}
	if !(level > 0 && level < 1) {
		return 0, 0, fmt.Errorf("confidence level %v is not between 0 and 1", level)
	}
	tail := (1 - level) / 2
	if k > 0 {
		lo = distuv.Beta{Alpha: float64(k), Beta: float64(n - k + 1)}.Quantile(tail)
	}
	hi = 1
	if k < n {
		hi = distuv.Beta{Alpha: float64(k + 1), Beta: float64(n - k)}.Quantile(1 - tail)
	}
	return lo, hi, nil
}

// UpperBound is the exact one-sided upper bound at level for k successes in n trials: the true
// rate is at most this with that confidence. For k = 0 it is 1 - (1-level)^(1/n).
func UpperBound(k, n int, level float64) (float64, error) {
	if err := checkCount(k, n); err != nil {
		return 0, err
	}
	if !(level > 0 && level < 1) {
		return 0, fmt.Errorf("confidence level %v is not between 0 and 1", level)
	}
	if k == n {
		return 1, nil
	}
	return distuv.Beta{Alpha: float64(k + 1), Beta: float64(n - k)}.Quantile(level), nil
}

// Lossy is the fraction of rollouts that lost any request, with its exact 95 % interval.
// A negative count can only come from a bug: it panics.
func Lossy[T Count](lossesPerRollout []T) Proportion {
	k := 0
	for _, l := range lossesPerRollout {
		if l < 0 {
			panic(fmt.Sprintf("stats.Lossy: negative loss count %d", l))
		}
		if l > 0 {
			k++
		}
	}
	return NewProportion(k, len(lossesPerRollout))
}

// NewProportion is k of n with its 95 % Clopper-Pearson interval; it panics on k outside [0, n],
// which only a bug can produce.
func NewProportion(k, n int) Proportion {
	p := Proportion{K: k, N: n}
	if n == 0 {
		return p
	}
	lo, hi, err := ClopperPearson(k, n, Level)
	if err != nil {
		panic("stats.NewProportion: " + err.Error())
	}
	p.Estimate, p.Lo, p.Hi = float64(k)/float64(n), lo, hi
	return p
}

// ErrorRate is a per-request error rate. Requests are treated as independent samples, which they
// are not (errors come in bursts), so its String says so.
type ErrorRate struct {
	Errors, Requests int
	Rate             float64 // Errors/Requests
	// Upper is the one-sided 95 % upper bound when Errors is 0; otherwise Lo and Hi are the
	// two-sided 95 % Clopper-Pearson interval.
	Upper, Lo, Hi float64
}

// RequestErrorRate computes the per-request error rate with its exact bound or interval.
func RequestErrorRate[T Count](errors, requests T) (ErrorRate, error) {
	errs, n := int(errors), int(requests)
	if err := checkCount(errs, n); err != nil {
		return ErrorRate{}, err
	}
	r := ErrorRate{Errors: errs, Requests: n}
	if n == 0 {
		return r, nil
	}
	r.Rate = float64(errs) / float64(n)
	var err error
	if errs == 0 {
		r.Upper, err = UpperBound(0, n, Level)
	} else {
		r.Lo, r.Hi, err = ClopperPearson(errs, n, Level)
	}
	return r, err
}

// String reads "0 errors in 8,812 requests: at most 0.034 % (one-sided 95 %, assuming
// independent requests)" or "25 errors in 3,015 requests: 0.83 % (95 % CI 0.54-1.2 %, assuming
// independent requests)".
func (r ErrorRate) String() string {
	p := message.NewPrinter(language.English)
	switch {
	case r.Requests == 0:
		return "no requests"
	case r.Errors == 0:
		return p.Sprintf("0 errors in %d requests: at most %s %% (one-sided 95 %%, assuming independent requests)",
			r.Requests, FormatPercent(r.Upper))
	default:
		return p.Sprintf("%d errors in %d requests: %s %% (95 %% CI %s-%s %%, assuming independent requests)",
			r.Errors, r.Requests, FormatPercent(r.Rate), FormatPercent(r.Lo), FormatPercent(r.Hi))
	}
}

// FormatPercent writes a fraction as a percentage with at most two significant digits ("0.034",
// "0.83", "31", "1"), never in exponent notation.
func FormatPercent(fraction float64) string {
	pct := fraction * 100
	if pct == 0 {
		return "0"
	}
	decimals := max(0, 1-int(math.Floor(math.Log10(math.Abs(pct)))))
	if decimals == 0 {
		return fmt.Sprintf("%.0f", pct)
	}
	// Round to two significant digits, print without exponent, drop trailing zeros ("1.0" -> "1").
	scale := math.Pow(10, float64(decimals))
	s := fmt.Sprintf("%.*f", decimals, math.Round(pct*scale)/scale)
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}

// Summary is min / median / max (and mean) of per-rollout values.
type Summary struct {
	N                      int
	Min, Median, Max, Mean float64
}

// String reads "min 0 / median 2 / max 7".
func (s Summary) String() string {
	if s.N == 0 {
		return "no rollouts"
	}
	return fmt.Sprintf("min %g / median %g / max %g", s.Min, s.Median, s.Max)
}

// Summarize returns min, median (the mean of the two middle values for an even count), max and
// mean of xs; all zero for no values.
func Summarize[T Count | ~float64](xs []T) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	v := toFloats(xs)
	sort.Float64s(v)
	n := len(v)
	med := v[n/2]
	if n%2 == 0 {
		med = (v[n/2-1] + v[n/2]) / 2
	}
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return Summary{N: n, Min: v[0], Median: med, Max: v[n-1], Mean: sum / float64(n)}
}

func toFloats[T Count | ~float64](xs []T) []float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = float64(x)
	}
	return v
}

func checkCount(k, n int) error {
	if n < 0 || k < 0 || k > n {
		return fmt.Errorf("count %d of %d is impossible", k, n)
	}
	return nil
}
