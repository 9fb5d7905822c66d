package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/experiment"
)

func TestDrillProgressPlainLines(t *testing.T) {
	var buf bytes.Buffer
	pp := newDrillProgress(&buf, false)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pp.now = func() time.Time { return now }
	pp.update(experiment.Progress{Scenario: "v1", Index: 1, Total: 3, Phase: experiment.PhaseStarting})
	pp.update(experiment.Progress{Scenario: "v1", Index: 1, Total: 3, Phase: experiment.PhaseLoad, Elapsed: 100 * time.Millisecond, Planned: 30 * time.Second, Requests: 4})
	// Same phase, before plainEvery: no line.
	now = now.Add(plainEvery - time.Millisecond)
	pp.update(experiment.Progress{Scenario: "v1", Index: 1, Total: 3, Phase: experiment.PhaseLoad, Elapsed: 600 * time.Millisecond, Planned: 30 * time.Second, Requests: 40})
	// Same phase, plainEvery after the last line: repeated.
	now = now.Add(time.Millisecond)
	pp.update(experiment.Progress{Scenario: "v1", Index: 1, Total: 3, Phase: experiment.PhaseLoad, Elapsed: 5100 * time.Millisecond, Planned: 30 * time.Second, Requests: 400})
	pp.update(experiment.Progress{Scenario: "v1", Index: 1, Total: 3, Phase: experiment.PhaseFailed, Elapsed: 6 * time.Second, Planned: 30 * time.Second, Requests: 490, Errors: 3, Detail: "the cluster did not come up: boom"})
	want := "[1/3] v1: starting cluster\n" +
		"[1/3] v1: load, 0.1s of 30s, 4 requests, 0 errors\n" +
		"[1/3] v1: load, 5.1s of 30s, 400 requests, 0 errors\n" +
		"[1/3] v1: failed, 6.0s of 30s, 490 requests, 3 errors: the cluster did not come up: boom\n"
	if got := buf.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestDrillProgressBar(t *testing.T) {
	var buf bytes.Buffer
	pp := newDrillProgress(&buf, true)
	pp.update(experiment.Progress{Scenario: "v2", Index: 2, Total: 3, Phase: experiment.PhaseStarting})
	pp.update(experiment.Progress{Scenario: "v2", Index: 2, Total: 3, Phase: experiment.PhaseLoad, Elapsed: time.Second, Planned: 10 * time.Second, Requests: 100})
	pp.update(experiment.Progress{Scenario: "v2", Index: 2, Total: 3, Phase: experiment.PhaseRollout, Elapsed: 5 * time.Second, Planned: 10 * time.Second, Requests: 500})
	pp.update(experiment.Progress{Scenario: "v2", Index: 2, Total: 3, Phase: experiment.PhaseDone, Elapsed: 10 * time.Second, Planned: 10 * time.Second, Requests: 1000})
	out := buf.String()
	for _, want := range []string{"[2/3] v2: starting cluster", "10%", "50%", "rolling out: 500 requests", "[2/3] v2: done, 10.0s of 10s, 1000 requests, 0 errors"} {
		if !strings.Contains(out, want) {
			t.Errorf("bar output lacks %q:\n%q", want, out)
		}
	}
}

// Repeated kills are counted as kills, not rollouts.
func TestDrillProgressCountsTheDisruption(t *testing.T) {
	var buf bytes.Buffer
	pp := newDrillProgress(&buf, false)
	pp.update(experiment.Progress{Scenario: "v3", Index: 1, Total: 2, Phase: experiment.PhaseRecovering, Elapsed: 5 * time.Second,
		Planned: 30 * time.Second, Rollout: 2, Rollouts: 3, Disruption: "kill"})
	pp.update(experiment.Progress{Scenario: "v3", Index: 2, Total: 2, Phase: experiment.PhaseRollout, Elapsed: 5 * time.Second,
		Planned: 30 * time.Second, Rollout: 2, Rollouts: 3})
	out := buf.String()
	for _, want := range []string{"[1/2] v3: recovering (kill 2/3)", "[2/2] v3: rolling out (rollout 2/3)"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q:\n%s", want, out)
		}
	}
}
