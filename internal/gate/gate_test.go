package gate

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"slices"

	junit "github.com/joshdk/go-junit"
	"github.com/spf13/pflag"
)

// loadNamed is a BaselineLoader over fixed baselines by path (reading real reports is the
// command's part, tested there).
func loadNamed(path string) (*Baseline, error) {
	if path != "base" {
		return nil, errors.New(path + " not found")
	}
	return &Baseline{Source: path, Samples: []Sample{{Scenario: "v1", Losses: []int64{3}}}}, nil
}

func parse(t *testing.T, args ...string) (Thresholds, error) {
	t.Helper()
	var f Flags
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	f.Register(fs, loadNamed)
	err := fs.Parse(args)
	return f.Thresholds(), err
}

func TestFlagsParse(t *testing.T) {
	th, err := parse(t, "--max-errors", "0", "--max-error-rate", "1%", "--max-disruption", "2s",
		"--max-latency", "max=1s", "--max-latency", "p99=300ms,p50=150ms", "--per-rollout")
	if err != nil {
		t.Fatal(err)
	}
	if th.MaxErrors == nil || *th.MaxErrors != 0 || th.MaxErrorRate == nil || *th.MaxErrorRate != 0.01 ||
		th.MaxDisruption == nil || *th.MaxDisruption != 2*time.Second || !th.PerRollout {
		t.Fatalf("thresholds %+v", th)
	}
	want := []LatencyLimit{{P50, 150 * time.Millisecond}, {P99, 300 * time.Millisecond}, {Max, time.Second}}
	if len(th.MaxLatency) != len(want) {
		t.Fatalf("latency limits %v, want %v", th.MaxLatency, want)
	}
	for i := range want {
		if th.MaxLatency[i] != want[i] {
			t.Errorf("latency limit %d = %v, want %v", i, th.MaxLatency[i], want[i])
		}
	}
	th, err = parse(t)
	if err != nil || !th.Empty() || th.PerRollout {
		t.Errorf("no flags: %+v %v", th, err)
	}
	th, _ = parse(t, "--max-error-rate", "0.005")
	if *th.MaxErrorRate != 0.005 || th.Empty() {
		t.Errorf("fraction: %+v", th)
	}
}

func TestFlagsRejectBadValues(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-errors", "-1"}, "not a count of errors"},
		{[]string{"--max-errors", "few"}, "not a count of errors"},
		{[]string{"--max-error-rate", "5"}, "not a rate between 0 and 1"},
		{[]string{"--max-error-rate", "150%"}, "not a rate between 0 and 1"},
		{[]string{"--max-error-rate", "lots"}, "not a number"},
		{[]string{"--max-disruption", "2"}, "not a duration"},
		{[]string{"--max-disruption", "-1s"}, "negative"},
		{[]string{"--max-latency", "p99"}, "not QUANTILE=DURATION"},
		{[]string{"--max-latency", "p98=1s"}, "unknown quantile \"p98\": use one of p50, p90, p95, p99, max"},
		{[]string{"--max-latency", "p99=fast"}, "not a duration"},
		{[]string{"--max-latency", "p99=0s"}, "above zero"},
		{[]string{"--max-latency", "p99=1s", "--max-latency", "p99=2s"}, "p99 is limited twice"},
	} {
		_, err := parse(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one containing %q", c.args, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error is not one line: %q", c.args, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func rollouts() []Measurement {
	lat := func(p99, max time.Duration) map[Quantile]time.Duration {
		return map[Quantile]time.Duration{P50: 150 * time.Millisecond, P90: 190 * time.Millisecond, P95: 195 * time.Millisecond, P99: p99, Max: max}
	}
	return []Measurement{
		{Scenario: "v1", Rollout: 1, Requests: 1000, Errors: 37, LongestDisruption: 1200 * time.Millisecond, Latency: lat(5*time.Second, 5010*time.Millisecond), Duration: 12 * time.Second},
		{Scenario: "v1", Rollout: 2, Requests: 1000, Errors: 0, LongestDisruption: 0, Latency: lat(200*time.Millisecond, 210*time.Millisecond), Duration: 11 * time.Second},
		{Scenario: "v1", Rollout: 0, Requests: 2500, Errors: 37, LongestDisruption: 1200 * time.Millisecond, Latency: lat(300*time.Millisecond, 5010*time.Millisecond), Duration: 30 * time.Second},
		{Scenario: "v2", Rollout: 1, Requests: 1000, Errors: 0, Latency: lat(200*time.Millisecond, 220*time.Millisecond), Duration: 14 * time.Second},
		{Scenario: "v2", Rollout: 2, Requests: 1000, Errors: 0, Latency: lat(201*time.Millisecond, 230*time.Millisecond), Duration: 14 * time.Second},
		{Scenario: "v2", Rollout: 0, Requests: 2500, Errors: 0, Latency: lat(201*time.Millisecond, 230*time.Millisecond), Duration: 30 * time.Second},
	}
}

func TestEvaluatePerRollout(t *testing.T) {
	th := Thresholds{MaxErrors: ptr(int64(0)), MaxLatency: []LatencyLimit{{P99, 300 * time.Millisecond}}, PerRollout: true}
	ev, err := Evaluate(th, rollouts())
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Judged) != 4 || len(ev.Checks) != 8 {
		t.Fatalf("judged %d, checks %d; want 4 rollouts and 8 checks", len(ev.Judged), len(ev.Checks))
	}
	b := ev.Breaches()
	if len(b) != 2 {
		t.Fatalf("breaches %v, want 2 (v1 rollout 1: errors and p99)", b)
	}
	if got, want := b[0].String(), "threshold breached: v1 rollout 1: 37 errors, limit --max-errors 0"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got, want := b[1].String(), "threshold breached: v1 rollout 1: p99 latency 5s, limit --max-latency p99=300ms"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if c := b[1]; c.Name != "max-latency p99" || c.Value != 5000 || c.Limit != 300 || c.Unit != "ms" {
		t.Errorf("numbers of %v: %s %v %v %s", c, c.Name, c.Value, c.Limit, c.Unit)
	}
	if code := ExitCode(false, len(b) > 0); code != ExitBreached {
		t.Errorf("exit %d, want %d", code, ExitBreached)
	}
}

func TestEvaluateWholeRun(t *testing.T) {
	th := Thresholds{MaxErrorRate: ptr(0.01), MaxDisruption: ptr(time.Second)}
	ev, err := Evaluate(th, rollouts())
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Judged) != 2 {
		t.Fatalf("judged %v, want the two whole runs", ev.Judged)
	}
	b := ev.Breaches()
	// v1: 37/2500 = 1.48 % > 1 %, and 1.2s > 1s; v2 within both.
	if len(b) != 2 || b[0].Measurement.Scenario != "v1" || b[1].Measurement.Scenario != "v1" {
		t.Fatalf("breaches %v", b)
	}
	if got, want := b[0].String(), "threshold breached: v1 (whole run): error rate 1.5 % (37 of 2500), limit --max-error-rate 0.01 (1 %)"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if c := b[0]; c.Name != "max-error-rate" || c.Value != 1.48 || c.Limit != 1 || c.Unit != "%" {
		t.Errorf("numbers: %s %v %v %s", c.Name, c.Value, c.Limit, c.Unit)
	}
	if c := b[1]; c.Name != "max-disruption" || c.Value != 1.2 || c.Limit != 1 || c.Unit != "s" {
		t.Errorf("numbers: %s %v %v %s", c.Name, c.Value, c.Limit, c.Unit)
	}
	// No requests at all is a breach of an error-rate limit: nothing was measured.
	ev, _ = Evaluate(th, []Measurement{{Scenario: "x"}})
	if len(ev.Breaches()) != 1 || !strings.Contains(ev.Breaches()[0].Measured, "no requests") {
		t.Errorf("empty measurement: %v", ev.Breaches())
	}
}

func TestEvaluateErrors(t *testing.T) {
	if _, err := Evaluate(Thresholds{MaxLatency: []LatencyLimit{{P90, time.Second}}}, []Measurement{{Scenario: "v1", Requests: 1}}); err == nil ||
		!strings.Contains(err.Error(), "v1 (whole run) has no p90 latency") {
		t.Errorf("missing quantile: %v", err)
	}
	if _, err := Evaluate(Thresholds{PerRollout: true}, []Measurement{{Scenario: "v1"}}); err == nil {
		t.Error("per-rollout judging without per-rollout measurements accepted")
	}
}

func TestExitCode(t *testing.T) {
	for _, c := range []struct {
		failed, breached bool
		want             int
	}{{false, false, 0}, {true, false, 1}, {false, true, 3}, {true, true, 1}} {
		if got := ExitCode(c.failed, c.breached); got != c.want {
			t.Errorf("ExitCode(%v, %v) = %d, want %d", c.failed, c.breached, got, c.want)
		}
	}
}

// The file is read back with an established JUnit reader (joshdk/go-junit, used by CI tools),
// not compared as text.
func TestJUnitReadByJUnitParser(t *testing.T) {
	th := Thresholds{MaxErrors: ptr(int64(0)), MaxLatency: []LatencyLimit{{Max, time.Second}}, PerRollout: true}
	ev, err := Evaluate(th, rollouts())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := ev.WriteJUnit(&buf, map[string]string{"v3": "the cluster did not come up: <timeout> & more"}); err != nil {
		t.Fatal(err)
	}
	suites, err := junit.Ingest(buf.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if len(suites) != 3 {
		t.Fatalf("%d suites, want v1, v2, v3:\n%s", len(suites), buf.String())
	}
	byName := map[string]junit.Suite{}
	for _, s := range suites {
		byName[s.Name] = s
	}
	v1 := byName["v1"]
	v1.Aggregate()
	if v1.Totals.Tests != 4 || v1.Totals.Failed != 2 || v1.Totals.Passed != 2 {
		t.Errorf("v1 totals %+v, want 4 tests, 2 failed", v1.Totals)
	}
	var failed []junit.Test
	for _, tc := range v1.Tests {
		if tc.Status == junit.StatusFailed {
			failed = append(failed, tc)
		}
		if tc.Classname != "gracelab.v1" {
			t.Errorf("classname %q", tc.Classname)
		}
	}
	if len(failed) != 2 || failed[0].Name != "rollout 1: --max-errors 0" ||
		failed[0].Message != "threshold breached: v1 rollout 1: 37 errors, limit --max-errors 0" ||
		failed[1].Message != "threshold breached: v1 rollout 1: max latency 5.01s, limit --max-latency max=1s" {
		t.Errorf("failed cases %+v", failed)
	}
	if failed[0].Duration != 12*time.Second {
		t.Errorf("duration %v, want the rollout's 12s", failed[0].Duration)
	}
	v2 := byName["v2"]
	v2.Aggregate()
	if v2.Totals.Tests != 4 || v2.Totals.Passed != 4 {
		t.Errorf("v2 totals %+v, want 4 passed", v2.Totals)
	}
	v3 := byName["v3"]
	if len(v3.Tests) != 1 || v3.Tests[0].Status != junit.StatusError || v3.Tests[0].Message != "the run failed: the cluster did not come up: <timeout> & more" {
		t.Errorf("v3 %+v", v3.Tests)
	}
}

func TestJUnitWithoutThresholdsHasACasePerRollout(t *testing.T) {
	ev, err := Evaluate(Thresholds{PerRollout: true}, rollouts())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := ev.WriteJUnit(&buf, nil); err != nil {
		t.Fatal(err)
	}
	suites, err := junit.Ingest(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range suites {
		s.Aggregate()
		if s.Totals.Tests != 2 || s.Totals.Passed != 2 || s.Tests[0].Name != "rollout 1" {
			t.Errorf("suite %s: %+v", s.Name, s.Tests)
		}
	}
}

func TestCompareBaseline(t *testing.T) {
	base := Baseline{Source: "old/report.json", Samples: []Sample{
		{Scenario: "v2", Losses: []int64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, P99: ms(200, 201, 199, 202, 200, 203, 198, 200, 204, 201)},
		{Scenario: "v1", Losses: []int64{33, 67, 41}, P99: ms(5000)},
		{Scenario: "gone", Losses: []int64{0}},
	}}
	// v2 now loses in 5 of 10 rollouts: above the baseline's 0-of-10 bound (30.8 %).
	// Its median p99 205ms is above the baseline's bound (the 9th of 10 sorted, 203ms).
	cur := []Sample{
		{Scenario: "v2", Losses: []int64{0, 3, 0, 1, 0, 0, 2, 5, 0, 1}, P99: ms(205, 206, 204, 205, 207, 205, 205, 206, 204, 205)},
		{Scenario: "v1", Losses: []int64{50}, P99: ms(4000)},
		{Scenario: "new", Losses: []int64{1}},
	}
	checks, notes := CompareBaseline(base, cur)
	if len(checks) != 4 {
		t.Fatalf("checks %v", checks)
	}
	var failed []Check
	for _, c := range checks {
		if !c.Passed {
			failed = append(failed, c)
		}
	}
	if len(failed) != 2 || failed[0].Name != "baseline lossy rollouts" || failed[1].Name != "baseline p99" {
		t.Fatalf("failed %v", failed)
	}
	if want := "threshold breached: v2 over 10 rollouts: 5 of 10 rollouts lost requests (50 %), limit --baseline old/report.json: lossy rollouts at most 31 % (there 0 of 10, the upper end of its 95 % CI)"; failed[0].String() != want {
		t.Errorf("got  %q\nwant %q", failed[0].String(), want)
	}
	if want := "threshold breached: v2 over 10 rollouts: median p99 205ms, limit --baseline old/report.json: median p99 at most 203ms (a 99 % upper bound for the median of its 10 rollouts' p99)"; failed[1].String() != want {
		t.Errorf("got  %q\nwant %q", failed[1].String(), want)
	}
	if c := failed[0]; c.Value != 50 || c.Limit < 30.8 || c.Limit > 30.9 || c.Unit != "%" {
		t.Errorf("numbers %+v", c)
	}
	if want := []string{"baseline old/report.json has no scenario new: not compared", "this run has no scenario gone of baseline old/report.json: not compared"}; !slices.Equal(notes, want) {
		t.Errorf("notes %q, want %q", notes, want)
	}
	// 3 of 10 lossy is inside the 0-of-10 interval: no regression at this many rollouts.
	cur[0].Losses = []int64{0, 3, 0, 1, 0, 0, 0, 0, 0, 0}
	cur[0].P99 = ms(200, 201, 202, 200, 201, 202, 199, 200, 201, 202)
	checks, _ = CompareBaseline(base, cur)
	for _, c := range checks {
		if !c.Passed {
			t.Errorf("within the intervals: %v", c)
		}
	}
}

// A schema-1 baseline has one rollout per scenario: 0 of 1 lossy allows up to 97.5 %, so only a
// run whose every rollout lost requests regresses; its p99 is its own bound, at 50 %.
func TestCompareBaselineOneRollout(t *testing.T) {
	base := Baseline{Source: "e1", Samples: []Sample{{Scenario: "v2", Losses: []int64{0}, P99: ms(210)}}}
	checks, _ := CompareBaseline(base, []Sample{{Scenario: "v2", Losses: []int64{0, 2, 0}, P99: ms(200, 209, 230)}})
	if len(checks) != 2 || !checks[0].Passed || !checks[1].Passed {
		t.Errorf("1 of 3 lossy and median p99 209ms against 0 of 1 and 210ms: %v", checks)
	}
	checks, _ = CompareBaseline(base, []Sample{{Scenario: "v2", Losses: []int64{1, 2, 4}, P99: ms(200, 211, 230)}})
	if len(checks) != 2 || checks[0].Passed || checks[1].Passed ||
		!strings.Contains(checks[1].Threshold, "a 50 % upper bound for the median of its 1 rollouts' p99") {
		t.Errorf("3 of 3 lossy and median p99 211ms: %v", checks)
	}
}

// Evaluate compares the rollouts with the baseline whatever the thresholds judge, and the JUnit
// file gets a case per comparison; windows without requests are no sample.
func TestEvaluateWithBaseline(t *testing.T) {
	base := &Baseline{Source: "base", Samples: []Sample{
		{Scenario: "v1", Losses: make([]int64, 10), P99: ms(5000, 5000, 5000, 5000, 5000)},
		{Scenario: "v2", Losses: []int64{0, 0}},
	}}
	ms := append(rollouts(), Measurement{Scenario: "v2", Rollout: 3}) // an empty window
	ev, err := Evaluate(Thresholds{Baseline: base, PerRollout: true}, ms)
	if err != nil {
		t.Fatal(err)
	}
	b := ev.Breaches()
	if len(ev.Baseline) != 3 || len(b) != 1 || b[0].Name != "baseline lossy rollouts" || b[0].Measurement.Scenario != "v1" ||
		b[0].Measured != "1 of 2 rollouts lost requests (50 %)" {
		t.Fatalf("baseline checks %v, breaches %v", ev.Baseline, b)
	}
	if got := SamplesOf(ms); len(got) != 2 || len(got[1].Losses) != 2 || len(got[1].P99) != 2 {
		t.Errorf("samples %+v: v2's empty third window counted", got)
	}
	var buf bytes.Buffer
	if err := ev.WriteJUnit(&buf, nil); err != nil {
		t.Fatal(err)
	}
	suites, err := junit.Ingest(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range suites {
		s.Aggregate()
		var names []string
		for _, tc := range s.Tests {
			names = append(names, tc.Name)
		}
		switch s.Name {
		case "v1":
			if s.Totals.Tests != 4 || s.Totals.Failed != 1 || names[2] != "baseline: lossy rollouts" || names[3] != "baseline: p99" ||
				s.Tests[2].Message != b[0].String() {
				t.Errorf("v1: %+v %q", s.Totals, names)
			}
		case "v2":
			if s.Totals.Tests != 4 || s.Totals.Failed != 0 {
				t.Errorf("v2: %+v %q", s.Totals, names)
			}
		}
	}
	// Without per-rollout measurements, a scenario's whole run is its one sample.
	got := SamplesOf([]Measurement{{Scenario: "v1", Requests: 10, Errors: 2, Latency: map[Quantile]time.Duration{P99: time.Second}}})
	if len(got) != 1 || !slices.Equal(got[0].Losses, []int64{2}) || !slices.Equal(got[0].P99, []time.Duration{time.Second}) {
		t.Errorf("whole-run sample %+v", got)
	}
}

func TestBaselineFlag(t *testing.T) {
	th, err := parse(t, "--baseline", "base", "--max-errors", "0")
	if err != nil || th.Baseline == nil || th.Baseline.Source != "base" || th.Empty() {
		t.Errorf("--baseline base: %+v %v", th, err)
	}
	if th, _ := parse(t, "--baseline", "base"); th.Empty() {
		t.Error("a baseline alone is something to judge")
	}
	if _, err := parse(t, "--baseline", "nope"); err == nil || !strings.Contains(err.Error(), "nope not found") {
		t.Errorf("unreadable baseline: %v", err)
	}
}

func ms(ds ...int) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = time.Duration(d) * time.Millisecond
	}
	return out
}

func TestP99Bound(t *testing.T) {
	// n = 10: P(B <= 7) = 0.9453 < 0.95, P(B <= 8) = 0.9893: the 9th smallest.
	b, conf := P99Bound(ms(10, 1, 9, 2, 8, 3, 7, 4, 6, 5))
	if b != 9*time.Millisecond || conf < 0.989 || conf > 0.9894 {
		t.Errorf("bound %v at %v, want 9ms at 0.9893", b, conf)
	}
	// n = 5: only the maximum reaches 95 % (1 - 1/32 = 0.969).
	b, conf = P99Bound(ms(5, 1, 4, 2, 3))
	if b != 5*time.Millisecond || conf != 1-1.0/32 {
		t.Errorf("bound %v at %v", b, conf)
	}
	// n = 1 (a schema-1 report): the value itself, at 50 %.
	b, conf = P99Bound(ms(300))
	if b != 300*time.Millisecond || conf != 0.5 {
		t.Errorf("bound %v at %v", b, conf)
	}
}
