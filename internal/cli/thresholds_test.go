package cli

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/experiment"
	"github.com/gracelab/gracelab/internal/gate"
	"github.com/gracelab/gracelab/internal/report"
)

func lossyAndClean() ([]report.Scenario, map[string][]experiment.Rollout) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v1 := report.Scenario{Scenario: "v1", Result: &report.Result{Start: t0, End: t0.Add(30 * time.Second), Requests: 1000, Errors: 37,
		Latency:     report.Latency{P50: 10, P90: 20, P95: 30, P99: 5010, Max: 5050},
		Disruptions: []report.Disruption{{Start: t0.Add(5 * time.Second), End: t0.Add(12 * time.Second)}}}}
	v2 := report.Scenario{Scenario: "v2", Result: &report.Result{Start: t0, End: t0.Add(30 * time.Second), Requests: 1200,
		Latency: report.Latency{P50: 10, P90: 20, P95: 30, P99: 40, Max: 90}}}
	broken := report.Scenario{Scenario: "v3", Failure: "the cluster did not come up"}
	rollouts := map[string][]experiment.Rollout{
		"v1": {{Window: experiment.Window{Index: 1}, Requests: 300, Errors: 37, LatencyMax: 5050 * time.Millisecond},
			{Window: experiment.Window{Index: 2}, Requests: 300}},
		"v2": {{Window: experiment.Window{Index: 1}, Requests: 400}, {Window: experiment.Window{Index: 2}, Requests: 400}},
	}
	return []report.Scenario{v1, v2, broken}, rollouts
}

func TestJudgeOneLinePerBreachAndJUnit(t *testing.T) {
	scenarios, rollouts := lossyAndClean()
	zero := int64(0)
	junit := filepath.Join(t.TempDir(), "r.xml")
	var stderr bytes.Buffer
	err := judgeNow(gate.Thresholds{MaxErrors: &zero, PerRollout: true}, junit, scenarios, rollouts, Streams{ErrOut: &stderr})
	var exitErr *ExitError
	if !errors.As(err, &exitErr) || exitErr.Code != ExitBreached {
		t.Fatalf("judge: %v, want exit %d", err, ExitBreached)
	}
	if want := "gracelab: threshold breached: v1 rollout 1: 37 errors, limit --max-errors 0\n"; stderr.String() != want {
		t.Errorf("stderr %q, want exactly %q", stderr.String(), want)
	}
	raw, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Suites []struct {
			Name  string `xml:"name,attr"`
			Cases []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
				Error   *struct{} `xml:"error"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("JUnit does not parse: %v\n%s", err, raw)
	}
	failures, errs, cases := 0, 0, 0
	for _, s := range doc.Suites {
		for _, c := range s.Cases {
			cases++
			if c.Failure != nil {
				failures++
			}
			if c.Error != nil {
				errs++
			}
		}
	}
	if len(doc.Suites) != 3 || cases != 5 || failures != 1 || errs != 1 {
		t.Errorf("%d suites, %d cases, %d failures, %d errors; want 3 suites, 4 rollout cases + 1 run case, 1 failure (v1 rollout 1), 1 error (v3's run):\n%s",
			len(doc.Suites), cases, failures, errs, raw)
	}

	ev, _ := evaluate(gate.Thresholds{MaxErrors: &zero, PerRollout: true}, "", scenarios, rollouts)
	if got := breachesOf(ev); len(got) != 1 || got[0] != (report.Breach{Threshold: "max-errors", Scenario: "v1", Rollout: 1, Measured: 37, Limit: 0, Unit: "requests"}) {
		t.Errorf("report.json breaches %+v", got)
	}

	// Whole run: v1 breaches --max-latency p99 and --max-disruption, v2 does not.
	stderr.Reset()
	limit, p99 := 2*time.Second, gate.LatencyLimit{Quantile: gate.P99, Limit: 300 * time.Millisecond}
	err = judgeNow(gate.Thresholds{MaxDisruption: &limit, MaxLatency: []gate.LatencyLimit{p99}}, "", scenarios, rollouts, Streams{ErrOut: &stderr})
	if !errors.As(err, &exitErr) || exitErr.Code != ExitBreached || strings.Count(stderr.String(), "\n") != 2 ||
		!strings.Contains(stderr.String(), "v1 (whole run): longest disruption 7s, limit --max-disruption 2s") ||
		!strings.Contains(stderr.String(), "v1 (whole run): p99 latency 5.01s") || strings.Contains(stderr.String(), "v2") {
		t.Errorf("whole run: %v\n%s", err, stderr.String())
	}

	// Per rollout, every quantile is the window's own: v1's first rollout has a 5s p99.
	stderr.Reset()
	rollouts["v1"][0].Latency.P99 = 5 * time.Second
	err = judgeNow(gate.Thresholds{MaxLatency: []gate.LatencyLimit{p99}, PerRollout: true}, "", scenarios, rollouts, Streams{ErrOut: &stderr})
	if want := "gracelab: threshold breached: v1 rollout 1: p99 latency 5s, limit --max-latency p99=300ms\n"; !errors.As(err, &exitErr) || stderr.String() != want {
		t.Errorf("per-rollout p99: %v\n%q, want %q", err, stderr.String(), want)
	}

	// Within the limits: no line, no error.
	stderr.Reset()
	many := int64(100)
	if err := judgeNow(gate.Thresholds{MaxErrors: &many}, "", scenarios, rollouts, Streams{ErrOut: &stderr}); err != nil || stderr.Len() != 0 {
		t.Errorf("within limits: %v %q", err, stderr.String())
	}
}

func TestDemoThresholdFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-errors", "-1"}, "--max-errors"},
		{[]string{"--max-latency", "p42=1s"}, "--max-latency"},
		{[]string{"--max-latency", "p99=300ms,p99=1s"}, "p99 is limited twice"},
	} {
		code, stdout, stderr := runMain(append([]string{"demo", "--quiet"}, tc.args...)...)
		if code != ExitBadArgs || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 with %q", tc.args, code, stderr, tc.want)
		}
	}
}

func judgeNow(th gate.Thresholds, junit string, scenarios []report.Scenario, rollouts map[string][]experiment.Rollout, streams Streams) error {
	ev, err := evaluate(th, junit, scenarios, rollouts)
	return judge(ev, err, junit, scenarios, streams)
}

// A schema-1 report (docs/fidelity) is a baseline of one rollout per scenario: its whole run.
// v2 and v3 lost nothing there; a run whose v2 loses in every rollout regresses, and so does a
// p99 above the baseline's own (its only p99, a 50 % bound).
func TestBaselineFromSchema1Report(t *testing.T) {
	b, err := loadBaseline("../../docs/fidelity/e1.json.gz")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Samples) != 3 || b.Samples[0].Scenario != "v1" || b.Samples[0].Losses[0] != 30 ||
		b.Samples[1].Losses[0] != 0 || b.Samples[1].P99[0] != 203775*time.Microsecond {
		t.Fatalf("samples %+v", b.Samples)
	}
	scenarios, rollouts := lossyAndClean()
	rollouts["v2"][0].Errors, rollouts["v2"][1].Errors = 2, 1 // v2 now loses in both rollouts
	rollouts["v2"][0].Latency.P99, rollouts["v2"][1].Latency.P99 = 200*time.Millisecond, 210*time.Millisecond
	var stdout, stderr bytes.Buffer
	junit := filepath.Join(t.TempDir(), "r.xml")
	err = judgeNow(gate.Thresholds{Baseline: b}, junit, scenarios, rollouts, Streams{Out: &stdout, ErrOut: &stderr})
	var exitErr *ExitError
	if !errors.As(err, &exitErr) || exitErr.Code != ExitBreached {
		t.Fatalf("judge: %v, want exit %d", err, ExitBreached)
	}
	want := "gracelab: threshold breached: v2 over 2 rollouts: 2 of 2 rollouts lost requests (100 %), limit --baseline ../../docs/fidelity/e1.json.gz: lossy rollouts at most 98 % (there 0 of 1, the upper end of its 95 % CI)\n" +
		"gracelab: threshold breached: v2 over 2 rollouts: median p99 205ms, limit --baseline ../../docs/fidelity/e1.json.gz: median p99 at most 204ms (a 50 % upper bound for the median of its 1 rollouts' p99)\n"
	if stderr.String() != want {
		t.Errorf("stderr\n%s\nwant\n%s", stderr.String(), want)
	}
	// v1 lost in one of two rollouts (baseline: 1 of 1): no regression; its p99 per rollout is
	// unknown here (0), below the baseline's. v3 failed to run: named, not compared.
	if !strings.Contains(stdout.String(), "this run has no scenario v3 of baseline ../../docs/fidelity/e1.json.gz: not compared") {
		t.Errorf("stdout %q", stdout.String())
	}
	raw, err := os.ReadFile(junit)
	if err != nil || strings.Count(string(raw), `type="baseline"`) != 2 {
		t.Errorf("junit: %v\n%s", err, raw)
	}
	ev, _ := evaluate(gate.Thresholds{Baseline: b}, "", scenarios, rollouts)
	if got := breachesOf(ev); len(got) != 2 || got[0].Threshold != "baseline lossy rollouts" || got[0].Scenario != "v2" ||
		got[0].Measured != 100 || got[1].Threshold != "baseline p99" || got[1].Unit != "ms" {
		t.Errorf("report.json breaches %+v", got)
	}
}

// A schema-2 report with rollout rows is a baseline of its rollouts, p99 included; a bad path
// is one line and exit 2 before anything starts.
func TestBaselineFlagOnDemoAndDrill(t *testing.T) {
	dir := t.TempDir()
	scenarios, rollouts := lossyAndClean()
	for i, s := range scenarios {
		scenarios[i].Rollouts = reportRollouts(rollouts[s.Scenario], 2)
		if s.Result != nil {
			scenarios[i].OK = s.Requests - s.Errors
		}
	}
	rep := &report.Report{Schema: report.SchemaVersion, Scenarios: scenarios}
	f, err := os.Create(filepath.Join(dir, report.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, err := loadBaseline(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Samples) != 2 || len(b.Samples[0].Losses) != 2 || b.Samples[0].Losses[0] != 37 || b.Samples[0].P99 != nil {
		t.Errorf("samples %+v (rows without a p99: none compared)", b.Samples)
	}
	for _, cmd := range []string{"demo", "drill"} {
		code, stdout, stderr := runMain(cmd, "--quiet", "--baseline", filepath.Join(dir, "missing"))
		if code != ExitBadArgs || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "missing not found") {
			t.Errorf("%s --baseline missing: exit %d, stderr %q", cmd, code, stderr)
		}
	}
}
