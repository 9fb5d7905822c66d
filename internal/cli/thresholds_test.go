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
		{[]string{"--per-rollout", "--max-latency", "p99=300ms"}, "--per-rollout judges only --max-latency max=D"},
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
