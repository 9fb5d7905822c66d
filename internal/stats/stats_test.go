package stats

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/stat/combin"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.9g, want %.9g (±%g)", what, got, want, tol)
	}
}

// Reference intervals are R's binom.test output (printed to 7 significant digits):
//   - 682 of 925: the example of R's ?binom.test ("Under (the assumption of) simple Mendelian
//     inheritance ..."), 95 % CI 0.7076683 0.7654066;
//   - 9 of 24 and 1 of 1497 (90 %): worked examples of binom.test reproduced in R tutorials,
//     0.1879929 0.5940636 and 3.426347e-05 3.164954e-03;
//   - 542 of 3611 (90 %): 0.1403939 0.1602214 (RPubs exercise solutions);
//   - 0 of 10 and 10 of 10: 0.3084971 = 1 - 0.025^(1/10), the closed form for an empty count.
func TestClopperPearsonMatchesR(t *testing.T) {
	cases := []struct {
		k, n   int
		level  float64
		lo, hi float64
	}{
		{682, 925, 0.95, 0.7076683, 0.7654066},
		{9, 24, 0.95, 0.1879929, 0.5940636},
		{1, 1497, 0.90, 3.426347e-05, 3.164954e-03},
		{542, 3611, 0.90, 0.1403939, 0.1602214},
		{0, 10, 0.95, 0, 0.3084971},
		{10, 10, 0.95, 0.6915029, 1},
	}
	for _, c := range cases {
		lo, hi, err := ClopperPearson(c.k, c.n, c.level)
		if err != nil {
			t.Fatalf("%d of %d: %v", c.k, c.n, err)
		}
		// Seven significant digits, as R prints them.
		near(t, "lower bound", lo, c.lo, math.Abs(c.lo)*1e-6+1e-12)
		near(t, "upper bound", hi, c.hi, math.Abs(c.hi)*1e-6)
	}
}

func TestClopperPearsonRejectsImpossibleCounts(t *testing.T) {
	for _, c := range [][2]int{{-1, 3}, {4, 3}, {0, -1}} {
		if _, _, err := ClopperPearson(c[0], c[1], 0.95); err == nil {
			t.Errorf("%d of %d accepted", c[0], c[1])
		}
	}
	if _, _, err := ClopperPearson(1, 3, 1.5); err == nil {
		t.Error("level 1.5 accepted")
	}
}

// The issue's own example: 0 errors in 8,812 requests is at most 0.034 % at 95 % one-sided, the
// closed form 1 - 0.05^(1/n) (the "rule of three" gives 3/n = 0.034 % too).
func TestZeroErrorsUpperBound(t *testing.T) {
	up, err := UpperBound(0, 8812, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "upper bound", up, 1-math.Pow(0.05, 1.0/8812), 1e-12)
	r, err := RequestErrorRate(0, 8812)
	if err != nil {
		t.Fatal(err)
	}
	want := "0 errors in 8,812 requests: at most 0.034 % (one-sided 95 %, assuming independent requests)"
	if got := r.String(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// One error in 10 at 95 % one-sided: R's binom.test(1, 10, alternative = "less") prints
	// 0.3941633 as the upper end.
	up, _ = UpperBound(1, 10, 0.95)
	near(t, "upper bound of 1 of 10", up, 0.3941633, 1e-6)
}

func TestRequestErrorRateWithErrors(t *testing.T) {
	r, err := RequestErrorRate(25, 3015)
	if err != nil {
		t.Fatal(err)
	}
	s := r.String()
	if !strings.HasPrefix(s, "25 errors in 3,015 requests: 0.83 % (95 % CI ") || !strings.Contains(s, "assuming independent requests") {
		t.Errorf("got %q", s)
	}
	if _, err := RequestErrorRate(int64(5), int64(3)); err == nil {
		t.Error("5 errors in 3 requests accepted")
	}
	if !(r.Lo < r.Rate && r.Rate < r.Hi) {
		t.Errorf("interval %v-%v does not hold the rate %v", r.Lo, r.Hi, r.Rate)
	}
}

func TestLossyAndSummary(t *testing.T) {
	losses := []int{33, 0, 67, 41, 0, 12}
	p := Lossy(losses)
	if p.K != 4 || p.N != 6 {
		t.Fatalf("lossy %d of %d, want 4 of 6", p.K, p.N)
	}
	lo, hi, _ := ClopperPearson(4, 6, 0.95)
	if p.Lo != lo || p.Hi != hi {
		t.Errorf("interval %v-%v, want %v-%v", p.Lo, p.Hi, lo, hi)
	}
	if got := p.String(); got != "4 of 6 (67 %, 95 % CI 22-96 %)" {
		t.Errorf("proportion %q", got)
	}
	s := Summarize(losses)
	if s.Min != 0 || s.Median != 22.5 || s.Max != 67 || s.N != 6 {
		t.Errorf("summary %+v", s)
	}
	if got := Summarize([]int{5, 1, 3}).Median; got != 3 {
		t.Errorf("odd median %v, want 3", got)
	}
	if got := Summarize([]int{}).String(); got != "no rollouts" {
		t.Errorf("empty summary %q", got)
	}
}

func TestFormatPercent(t *testing.T) {
	for in, want := range map[float64]string{0.00033996: "0.034", 0.0083: "0.83", 0.3085: "31", 1: "100", 0: "0", 0.000015: "0.0015", 0.01: "1", 0.106: "11", 0.0105: "1.1"} {
		if got := FormatPercent(in); got != want {
			t.Errorf("FormatPercent(%v) = %q, want %q", in, got, want)
		}
	}
}

// Reference p-values:
//   - R's ?fisher.test, "Tea tasting" (Agresti 2002, p. 91): matrix 3 1 / 1 3, greater: 0.2429
//     (exactly 17/70); two-sided 34/70 = 0.4857.
//   - R's ?fisher.test, "Convictions" (Fisher 1962): matrix 2 15 / 10 3 (R fills columns first
//     from c(2, 10, 15, 3)), less: 0.0004652; two-sided: 0.0005367.
//   - Wikipedia's "Fisher's exact test" dieting example, 1 9 / 11 3: two-sided 0.002759 (QI
//     Macros' manual reports the same table as 0.00276).
//   - A small table with a zero cell, 4 0 / 2 5 (Calcugator's manual): one-tailed 0.0454545,
//     two-tailed 0.0606061.
func TestFisherMatchesR(t *testing.T) {
	cases := []struct {
		a, b, c, d int
		alt        Alternative
		p, tol     float64
	}{
		{3, 1, 1, 3, Greater, 17.0 / 70, 1e-12},
		{3, 1, 1, 3, TwoSided, 34.0 / 70, 1e-12},
		{2, 15, 10, 3, Less, 0.0004652, 5e-8},
		{2, 15, 10, 3, TwoSided, 0.0005367, 5e-8},
		{1, 9, 11, 3, TwoSided, 0.002759, 5e-7},
		{4, 0, 2, 5, Greater, 0.0454545, 5e-8},
		{4, 0, 2, 5, TwoSided, 0.0606061, 5e-8},
		{0, 0, 0, 0, TwoSided, 1, 1e-12},
		{0, 5, 0, 5, TwoSided, 1, 1e-12},
	}
	for _, c := range cases {
		r, err := Fisher(c.a, c.b, c.c, c.d, c.alt)
		if err != nil {
			t.Fatal(err)
		}
		near(t, "p of "+c.alt.String()+" Fisher", r.P, c.p, c.tol)
	}
	if _, err := Fisher(-1, 0, 0, 0, TwoSided); err == nil {
		t.Error("negative cell accepted")
	}
}

// Reference values:
//   - R's ?wilcox.test two-sample example (Hollander & Wolfe 1973, p. 69, permeability of the
//     chorioamnion), alternative "greater": W = 35, p-value = 0.1272 (exact, no ties).
//   - endmemo's wilcox.test page, data with ties, normal approximation with continuity
//     correction: W = 51.5, p-value = 0.5966.
func TestMannWhitneyMatchesR(t *testing.T) {
	x := []float64{0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46}
	y := []float64{1.15, 0.88, 0.90, 0.74, 1.21}
	r, err := MannWhitney(x, y, Greater)
	if err != nil {
		t.Fatal(err)
	}
	if r.Statistic != 35 || !r.Exact {
		t.Errorf("W = %v exact %v, want 35 exact", r.Statistic, r.Exact)
	}
	near(t, "p", r.P, 0.1272, 5e-5)

	x = []float64{1, 5, 9, 24, 56, 21, 3, 7, 21, 4}
	y = []float64{12, 15, 5, 9, 9, 14, 56, 22, 3, 7, 32, 5}
	r = mannWhitneyNormal(x, y, TwoSided)
	if r.Statistic != 51.5 {
		t.Errorf("W = %v, want 51.5", r.Statistic)
	}
	near(t, "p", r.P, 0.5966, 5e-5)
}

// With ties the exact p-value is checked against brute force: every way of choosing which of
// the pooled values belong to x, counted directly.
func TestMannWhitneyExactWithTiesMatchesEnumeration(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 40; trial++ {
		m, n := 1+rng.IntN(7), 1+rng.IntN(7)
		x, y := make([]float64, m), make([]float64, n)
		for i := range x {
			x[i] = float64(rng.IntN(4)) // many zeros and ties, like per-rollout losses
		}
		for i := range y {
			y[i] = float64(rng.IntN(3))
		}
		for _, alt := range []Alternative{Greater, Less, TwoSided} {
			got, err := MannWhitney(x, y, alt)
			if err != nil {
				t.Fatal(err)
			}
			near(t, "exact p with ties", got.P, bruteForceP(x, y, alt), 1e-9)
		}
	}
}

func bruteForceP(x, y []float64, alt Alternative) float64 {
	pooled := append(append([]float64(nil), x...), y...)
	u := func(xs []float64, ys []float64) float64 {
		var s float64
		for _, a := range xs {
			for _, b := range ys {
				switch {
				case a > b:
					s++
				case a == b:
					s += 0.5
				}
			}
		}
		return s
	}
	observed := u(x, y)
	var ge, le, total float64
	gen := combin.NewCombinationGenerator(len(pooled), len(x))
	idx := make([]int, len(x))
	for gen.Next() {
		gen.Combination(idx)
		in := map[int]bool{}
		var xs, ys []float64
		for _, i := range idx {
			in[i] = true
			xs = append(xs, pooled[i])
		}
		for i, v := range pooled {
			if !in[i] {
				ys = append(ys, v)
			}
		}
		s := u(xs, ys)
		total++
		if s >= observed-1e-9 {
			ge++
		}
		if s <= observed+1e-9 {
			le++
		}
	}
	switch alt {
	case Greater:
		return ge / total
	case Less:
		return le / total
	}
	return math.Min(1, 2*math.Min(ge, le)/total)
}

func TestMannWhitneyRejectsBadSamples(t *testing.T) {
	if _, err := MannWhitney(nil, []float64{1}, TwoSided); err == nil {
		t.Error("empty sample accepted")
	}
	if _, err := MannWhitney([]float64{math.NaN()}, []float64{1}, TwoSided); err == nil {
		t.Error("NaN accepted")
	}
	r, err := MannWhitney([]float64{0, 0, 0}, []float64{0, 0}, TwoSided)
	if err != nil || r.P != 1 {
		t.Errorf("identical samples: p %v err %v, want 1", r.P, err)
	}
}

// The demo's outcome: v1 lost 33 to 67 requests in four rollouts, v2 none.
func TestCompareVerdicts(t *testing.T) {
	c, err := Compare([]int{33, 67, 41, 52}, []int{0, 0, 0, 0}, TwoSided)
	if err != nil {
		t.Fatal(err)
	}
	// Perfect separation of 4 against 4: two-sided exact p = 2/C(8,4) = 2/70.
	near(t, "p", c.MannWhitney.P, 2.0/70, 1e-12)
	if c.Verdict != Significant {
		t.Errorf("verdict %q, want significant", c.Verdict)
	}
	// The same with 2 rollouts each can never be significant.
	c, _ = Compare([]int{33, 67}, []int{0, 0}, TwoSided)
	if c.Verdict != "not significant with this many rollouts" {
		t.Errorf("verdict %q with 2 rollouts", c.Verdict)
	}
	// A rare loss: one lossy rollout of 10 against none.
	c, _ = Compare([]int{0, 0, 0, 3, 0, 0, 0, 0, 0, 0}, make([]int, 10), Greater)
	if c.Verdict != NotSignificant || c.LossyA.K != 1 {
		t.Errorf("rare loss: %+v", c)
	}
	if _, err := Compare(nil, []int{1}, TwoSided); err == nil {
		t.Error("empty side accepted")
	}
}

func TestMinRollouts(t *testing.T) {
	// One-sided: 1/C(6,3) = 0.05 reaches Alpha at 3; two-sided: 2/C(8,4) = 0.029 at 4, while
	// 2/C(6,3) = 0.1 does not.
	if got := MinRollouts(Greater); got != 3 {
		t.Errorf("one-sided %d, want 3", got)
	}
	if got := MinRollouts(TwoSided); got != 4 {
		t.Errorf("two-sided %d, want 4", got)
	}
	for _, alt := range []Alternative{Greater, TwoSided} {
		n := MinRollouts(alt)
		sep := func(n int) Result {
			hi, lo := make([]int, n), make([]int, n)
			for i := range hi {
				hi[i] = 10 + i
			}
			c, _ := Compare(hi, lo, alt)
			return c.MannWhitney
		}
		if !sep(n).Significant() || sep(n-1).Significant() {
			t.Errorf("%v: %d rollouts is not the smallest that can be significant", alt, n)
		}
	}
}
