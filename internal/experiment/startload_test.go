package experiment

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/load"
	"github.com/gracelab/gracelab/internal/report"
)

// remote plays load sent from elsewhere (load pods): a real run, plus what such a load says.
type remote struct {
	*load.Run
	started load.Config
}

func (r *remote) Warnings() []string         { return []string{"clocks within ±1s"} }
func (r *remote) Incomplete() error          { return errors.New("the load is incomplete: pod b died") }
func (r *remote) LoadPods() []report.LoadPod { return []report.LoadPod{{Pod: "a"}, {Pod: "b"}} }

// With StartLoad the drill does not probe the target from here (it may not reach it), runs
// the load StartLoad gives, and reports its warnings, its pods and its incompleteness.
func TestRunWithLoadFromElsewhere(t *testing.T) {
	t.Parallel()
	j := &journal{}
	cfg := drillConfig(j, map[string]script{"a": {settleAfter: 100 * time.Millisecond, unavailable: time.Hour}}, "a")
	var r *remote
	cfg.StartLoad = func(_ context.Context, lc load.Config) (LoadRun, error) {
		run, err := load.Start(lc)
		if err != nil {
			return nil, err
		}
		r = &remote{Run: run, started: lc}
		return r, nil
	}
	out, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := out[0]
	if r == nil || r.started.URL == "" || r.started.Observe != nil {
		t.Fatalf("StartLoad not called with the target and without Observe: %+v", r)
	}
	if s.Result == nil || s.Requests == 0 {
		t.Fatalf("no result from the load (failure %q): the serving check ran from here", s.Failure)
	}
	if !strings.Contains(s.Failure, "pod b died") || len(s.LoadPods) != 2 || !slices.Contains(s.Warnings, "clocks within ±1s") {
		t.Errorf("failure %q, pods %v, warnings %q", s.Failure, s.LoadPods, s.Warnings)
	}

	// Several rollouts: the load attributes its requests to the windows itself.
	cfg.Rollouts, cfg.RolloutGap = 2, 0
	var got []Rollout
	cfg.OnRollouts = func(_ Scenario, rs []Rollout) { got = rs }
	cfg.StartLoad = func(_ context.Context, lc load.Config) (LoadRun, error) {
		run, err := load.Start(lc)
		if err != nil {
			return nil, err
		}
		return &windowed{remote: remote{Run: run}}, nil
	}
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Requests != 1 || got[1].Requests != 2 || got[0].Index != 1 || !got[0].Start.Before(got[1].Start) {
		t.Errorf("rollouts %+v: want the load's own attribution of the 2 windows", got)
	}
}

// windowed is a remote load that attributes its requests itself, as load pods do.
type windowed struct{ remote }

func (w *windowed) Rollouts(windows []Window) []Rollout {
	out := make([]Rollout, len(windows))
	for i, win := range windows {
		out[i] = Rollout{Window: win, Requests: int64(i + 1)}
	}
	return out
}
