package report

import (
	"math"
	"strings"
	"testing"
)

func withRollouts(name string, requests int64, losses ...int64) Scenario {
	s := Scenario{Scenario: name, Result: &Result{Requests: requests}}
	for i, l := range losses {
		s.Rollouts = append(s.Rollouts, Rollout{Index: i + 1, Requests: requests / int64(len(losses)), Errors: l})
		s.Errors += l
	}
	s.OK = s.Requests - s.Errors
	return s
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

// Reference values: Clopper-Pearson for 3 of 3 is [0.025^(1/3), 1] = [0.2924, 1] and for 0 of 3
// [0, 1 - 0.025^(1/3)] = [0, 0.7076] (R: binom.test(3, 3)); the one-sided bound for 0 errors in
// 2,405 requests is 1 - 0.05^(1/2405) = 0.0012449. The exact tests on 3 against 3 rollouts:
// complete separation gives 2/C(6,3) = 0.1 two-sided for both; 3 of 3 lossy against 1 of 3 gives
// Fisher p = 0.4 (R: fisher.test(matrix(c(3,1,0,2), 2))).
func TestSummarize(t *testing.T) {
	r := &Report{Scenarios: []Scenario{
		withRollouts("v1", 1000, 60, 106, 64),
		withRollouts("v2", 2405, 0, 0, 0),
		withRollouts("v3", 2400, 0, 1, 0),
		{Scenario: "one", Result: &Result{Requests: 10}}, // a single rollout: no statistics
	}}
	if err := r.Summarize(); err != nil {
		t.Fatal(err)
	}
	v1, v2, v3 := r.Scenarios[0].Statistics, r.Scenarios[1].Statistics, r.Scenarios[2].Statistics
	if r.Scenarios[3].Statistics != nil {
		t.Errorf("a run without rollout rows got statistics %+v", r.Scenarios[3].Statistics)
	}
	if v1.Rollouts != 3 || v1.LossyRollouts != 3 || !near(v1.LossyInterval.Low, 0.2924018, 1e-6) || v1.LossyInterval.High != 1 ||
		v1.LossyInterval.Level != 0.95 || v1.Losses != (Spread{Min: 60, Median: 64, Max: 106}) {
		t.Errorf("v1 %+v", v1)
	}
	// 230 of 1000 requests failed: R's binom.test(230, 1000) gives 0.2043 - 0.2573.
	if v1.RequestErrorUpper != 0 || v1.RequestErrorInterval == nil || !near(v1.RequestErrorInterval.Low, 0.2043, 1e-4) ||
		!near(v1.RequestErrorInterval.High, 0.2573, 1e-4) {
		t.Errorf("v1 per-request %+v %+v", v1.RequestErrorUpper, v1.RequestErrorInterval)
	}
	if v2.LossyRollouts != 0 || v2.LossyInterval.Low != 0 || !near(v2.LossyInterval.High, 0.7075982, 1e-6) ||
		!near(v2.RequestErrorUpper, 0.0012449, 1e-7) || v2.UpperLevel != 0.95 || v2.RequestErrorInterval != nil {
		t.Errorf("v2 %+v", v2)
	}
	if v3.LossyRollouts != 1 || v3.Losses != (Spread{Min: 0, Median: 0, Max: 1}) {
		t.Errorf("v3 %+v", v3)
	}
	want := []struct {
		a, b, test string
		p          float64
	}{
		{"v1", "v2", TestMannWhitney, 0.1}, {"v1", "v2", TestFisher, 0.1},
		{"v1", "v3", TestMannWhitney, 0.1}, {"v1", "v3", TestFisher, 0.4},
		{"v2", "v3", TestMannWhitney, 1}, {"v2", "v3", TestFisher, 1},
	}
	if len(r.Comparisons) != len(want) {
		t.Fatalf("comparisons %+v", r.Comparisons)
	}
	for i, w := range want {
		c := r.Comparisons[i]
		if c.Scenarios != [2]string{w.a, w.b} || c.Test != w.test || !near(c.PValue, w.p, 1e-9) || c.Significant ||
			c.RolloutsA != 3 || c.RolloutsB != 3 || c.Alpha != 0.05 {
			t.Errorf("comparison %d: %+v, want %+v", i, c, w)
		}
	}
	lines := comparisonLines(r.Comparisons)
	if len(lines) != 3 || lines[0] != "v1 vs v2: not significant with 3 and 3 rollouts (Mann-Whitney test on losses per rollout, p = 0.1; Fisher's exact test on lossy rollouts, p = 0.1; alpha 0.05)" {
		t.Errorf("lines %q", lines)
	}
}

// Five rollouts each, every one of A lossy and none of B: p = 2/C(10,5) = 0.0079 for both tests.
func TestSummarizeSignificant(t *testing.T) {
	r := &Report{Scenarios: []Scenario{withRollouts("v1", 500, 3, 9, 1, 4, 2), withRollouts("v2", 500, 0, 0, 0, 0, 0)}}
	if err := r.Summarize(); err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Comparisons {
		if !c.Significant || !near(c.PValue, 2.0/252, 1e-9) {
			t.Errorf("%+v, want significant at p = 0.0079", c)
		}
	}
	if got := comparisonLines(r.Comparisons); len(got) != 1 || !strings.HasPrefix(got[0], "v1 vs v2: significant (Mann-Whitney") {
		t.Errorf("%q", got)
	}
	// Tests that disagree each say their own verdict.
	r.Comparisons[1].Significant, r.Comparisons[1].PValue = false, 0.2
	if got := comparisonLines(r.Comparisons)[0]; got != "v1 vs v2: significant (Mann-Whitney test on losses per rollout, p = 0.0079); not significant with 5 and 5 rollouts (Fisher's exact test on lossy rollouts, p = 0.2); alpha 0.05" {
		t.Errorf("%q", got)
	}
}

func TestBreachLineNumbers(t *testing.T) {
	for _, c := range []struct {
		b    Breach
		want string
	}{
		{Breach{Threshold: "baseline lossy rollouts", Scenario: "v2", Measured: 50, Limit: 30.849710337, Unit: "%"}, "v2: baseline lossy rollouts measured 50 %, limit 30.8 %"},
		{Breach{Threshold: "max-latency max", Scenario: "v1", Rollout: 2, Measured: 5010.7, Limit: 1000, Unit: "ms"}, "v1 rollout 2: max-latency max measured 5011 ms, limit 1000 ms"},
		{Breach{Threshold: "max-error-rate", Scenario: "v1", Measured: 0.034512, Limit: 0.01, Unit: "%"}, "v1: max-error-rate measured 0.0345 %, limit 0.01 %"},
	} {
		if got := breachLine(c.b); got != c.want {
			t.Errorf("got  %q\nwant %q", got, c.want)
		}
	}
}
