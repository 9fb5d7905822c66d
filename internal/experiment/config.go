package experiment

// What a drill is given (its Config, scenarios and load seams) and what it reports as it goes.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/load"
	"github.com/gracelab/gracelab/internal/report"
)

// Scenario is one manifest set to drill.
type Scenario struct {
	Name      string // "v1"
	Title     string // "v1 no protection"
	Manifests string // where the manifests came from, for the report
	FS        fs.FS  // the manifest directory
	// Disruption is what the cluster's Restart does to the pods (the cluster is wrapped to do
	// it); it names the trigger event and the report's disruption. "" is the rolling restart.
	Disruption cluster.DisruptionKind
}

// verb says what the drill did to the Deployment: "restarting", or "disrupting (evict)".
func (s Scenario) verb() string {
	if w := s.what(); w != "restart" {
		return "disrupting (" + string(s.Disruption) + ")"
	}
	return "restarting"
}

// what names the scenario's disruption in messages: "restart", or "disruption (evict)".
func (s Scenario) what() string {
	if s.Disruption == "" || s.Disruption == cluster.DisruptRestart {
		return "restart"
	}
	return "disruption (" + string(s.Disruption) + ")"
}

// Warner is a cluster that can say why its results may mislead (kube: a --target that
// bypasses the Service). The warnings go into the scenario's report.
type Warner interface {
	Warnings() []string
}

// Sandboxer is a cluster that may run pods in sandboxes (the embedded cluster): the mode it
// used and why it fell back, if it did, go into the scenario's report.
type Sandboxer interface {
	SandboxUsed() (mode, fallback string)
}

// Factory makes the cluster one scenario runs on. It must not start anything: Up does.
type Factory func(Scenario) (cluster.Cluster, error)

// Defaults for zero values of Config.
const (
	DefaultDeployment      = "upstream"
	DefaultSettleTail      = 5 * time.Second // the downstream's upstream timeout
	DefaultUpTimeout       = 2 * time.Minute
	DefaultServingTimeout  = 30 * time.Second
	DefaultRolloutTimeout  = 3 * time.Minute
	DefaultDownTimeout     = time.Minute
	DefaultProgressEvery   = 500 * time.Millisecond
	placeholderURLForCheck = "http://127.0.0.1:1/"
	MaxRollouts            = 1000
)

// Config is a whole drill: the scenarios and how each is run.
type Config struct {
	Scenarios []Scenario
	Factory   Factory
	// Load is the load for every scenario. An empty URL means the cluster's Target; Duration
	// is ignored (the drill decides when load stops).
	Load       load.Config
	Duration   time.Duration // load runs at least this long
	RestartAt  time.Duration // from the load's start
	Deployment string        // restarted; default "upstream"
	// SettleTail is how long load continues after the rollout settled: one upstream timeout,
	// since a request sent to a vanished pod fails only when that timeout expires.
	SettleTail time.Duration
	UpTimeout  time.Duration // bounds Up
	// ServingTimeout bounds the wait, after Up, until the target answers 2xx: a pod without a
	// readiness probe counts as ready before it listens, and the drill measures the restart,
	// not the start-up, just as an operator starts load once the service works.
	ServingTimeout time.Duration
	RolloutTimeout time.Duration // bounds WaitSettled
	// Rollouts is how many rolling restarts run in the one load run (0 means 1); each after
	// the previous one settled plus RolloutGap.
	Rollouts   int
	RolloutGap time.Duration
	// OnRollouts, when set, gets each scenario's rollouts (see Window and Attribute) once its
	// load has finished.
	OnRollouts  func(Scenario, []Rollout)
	DownTimeout time.Duration // bounds Down
	// Progress, when set, is called from the drill's goroutine on every phase change and
	// every ProgressEvery while load runs. It must not block for long.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// StartLoad, when set, starts the load somewhere else than in this process (load pods in
	// the cluster): the target need not be reachable from here, so there is no serving check,
	// and no request is observed one by one (with Rollouts above 1 the run must be a
	// WindowedLoad). It returns once sending has begun or is scheduled; the run's
	// Progress().Elapsed is negative until then.
	StartLoad func(ctx context.Context, lc load.Config) (LoadRun, error)
}

// LoadRun is a load in progress: a *load.Run in this process, or the merge of load pods'.
type LoadRun interface {
	Progress() load.Progress
	Stop()
	Done() <-chan struct{}
	Result() *load.Result // nil before Done
}

// WindowedLoad is a LoadRun that attributes its requests to the rollouts' windows itself
// (load pods report seconds, not each request).
type WindowedLoad interface {
	Rollouts(windows []Window) []Rollout
}

// RemoteLoad is a LoadRun that knows more than a local one: why its result may mislead
// (clocks not comparable with this machine's) and why it is incomplete (a load pod died).
// Its pods' own results go into the report.
type RemoteLoad interface {
	Warnings() []string
	Incomplete() error
	LoadPods() []report.LoadPod
}

func (c Config) withDefaults() Config {
	if c.Deployment == "" {
		c.Deployment = DefaultDeployment
	}
	if c.UpTimeout <= 0 {
		c.UpTimeout = DefaultUpTimeout
	}
	if c.ServingTimeout <= 0 {
		c.ServingTimeout = DefaultServingTimeout
	}
	if c.RolloutTimeout <= 0 {
		c.RolloutTimeout = DefaultRolloutTimeout
	}
	if c.DownTimeout <= 0 {
		c.DownTimeout = DefaultDownTimeout
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = DefaultProgressEvery
	}
	if c.Progress == nil {
		c.Progress = func(Progress) {}
	}
	if c.Rollouts == 0 {
		c.Rollouts = 1
	}
	return c
}

// Validate reports the first problem in one line naming what to change.
func (c Config) Validate() error {
	switch {
	case len(c.Scenarios) == 0:
		return errors.New("no scenario to run")
	case c.Factory == nil:
		return errors.New("no cluster factory")
	case c.Duration <= 0:
		return fmt.Errorf("duration must be positive, got %s", c.Duration)
	case c.RestartAt < 0:
		return fmt.Errorf("restart-at must not be negative, got %s", c.RestartAt)
	case c.RestartAt >= c.Duration:
		return fmt.Errorf("restart-at (%s) must be less than duration (%s): the restart has to happen under load", c.RestartAt, c.Duration)
	case c.SettleTail < 0:
		return fmt.Errorf("settle tail must not be negative, got %s", c.SettleTail)
	case c.Rollouts < 0 || c.Rollouts > MaxRollouts:
		return fmt.Errorf("rollouts must be between 1 and %d, got %d", MaxRollouts, c.Rollouts)
	case c.RolloutGap < 0:
		return fmt.Errorf("rollout gap must not be negative, got %s", c.RolloutGap)
	}
	seen := map[string]bool{}
	for _, s := range c.Scenarios {
		if s.Name == "" || s.FS == nil {
			return errors.New("every scenario needs a name and manifests")
		}
		if seen[s.Name] {
			return fmt.Errorf("scenario %s is listed twice", s.Name)
		}
		seen[s.Name] = true
	}
	lc := c.Load
	if lc.URL == "" {
		lc.URL = placeholderURLForCheck
	}
	lc.Duration = c.Duration // so the load's own checks (think < duration) apply
	return lc.Validate()
}

// Phase is where a scenario stands.
type Phase string

const (
	PhaseStarting Phase = "starting cluster"
	PhaseLoad     Phase = "load"        // before the restart
	PhaseRollout  Phase = "rolling out" // restart triggered, waiting for it to settle
	// PhaseRecovering: another disruption (a kill, an eviction, ...) triggered, waiting for
	// the Deployment to settle again.
	PhaseRecovering Phase = "recovering"
	PhaseTail       Phase = "settled" // rollout settled, load continues to its end
	PhaseStopping   Phase = "stopping load"
	PhaseTearDown   Phase = "tearing down"
	PhaseDone       Phase = "done"
	PhaseFailed     Phase = "failed"
)

// Progress is a live view of the drill.
type Progress struct {
	Scenario string
	Index    int // 1-based
	Total    int
	Phase    Phase
	Elapsed  time.Duration // since the load started; 0 before
	Planned  time.Duration // how long the load will run, as known now
	Requests int64
	Errors   int64
	Detail   string // the failure, in PhaseFailed
	Rollout  int    // the rollout under way or last done, from 1; 0 before the first
	Rollouts int
	// Disruption is the scenario's disruption: "" for rolling restarts, else what Rollout counts.
	Disruption cluster.DisruptionKind
}
