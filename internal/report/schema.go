package report

import (
	"runtime"
	"runtime/debug"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

// The types below are report.json, schema 2. They are the report's own: no other package's
// JSON tags reach the file, so a change elsewhere cannot silently change what users keep
// (golden_test.go holds the file's exact shape). Schema 1 is the same layout without the
// fields marked "schema 2", so every schema 1 file decodes into these types as it is.

// Report is the whole of report.json.
type Report struct {
	Schema    int        `json:"schema"`
	Created   time.Time  `json:"created"`
	Cluster   string     `json:"cluster"` // "embedded" or "kubernetes (<context>)"
	Host      Host       `json:"host"`
	Settings  Settings   `json:"settings"`
	Scenarios []Scenario `json:"scenarios"`
	// Comparisons test scenarios against each other over their rollouts (schema 2).
	Comparisons []Comparison `json:"comparisons,omitempty"`
	// Breaches are the thresholds the run broke, judged after the report was written (schema 2).
	Breaches []Breach `json:"breaches,omitempty"`
}

// Host is the machine the drill ran on.
type Host struct {
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	Cores     int    `json:"cores"`
	GoVersion string `json:"go_version"`
	Gracelab  string `json:"gracelab_version"`
}

// CurrentHost describes this machine and binary.
func CurrentHost() Host {
	version := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	return Host{OS: runtime.GOOS, Arch: runtime.GOARCH, Cores: runtime.NumCPU(), GoVersion: runtime.Version(), Gracelab: version}
}

// Settings are the drill's parameters, as given (defaults filled in).
type Settings struct {
	Scenarios   []string `json:"scenarios"`
	Duration    Duration `json:"duration"`   // the least time load runs
	RestartAt   Duration `json:"restart_at"` // from the load's start
	Deployment  string   `json:"restart_deployment"`
	SettleTail  Duration `json:"settle_tail"` // load keeps running this long after the rollout settled
	Model       string   `json:"model"`
	VUs         int      `json:"vus,omitempty"`
	Think       Duration `json:"think,omitempty"`
	Rate        float64  `json:"rate,omitempty"`
	Timeout     Duration `json:"timeout"`
	Connections string   `json:"connections"`
	Method      string   `json:"method"`
	EndpointLag Duration `json:"endpoint_lag,omitempty"` // embedded cluster only
	Target      string   `json:"target,omitempty"`
	// Disruption is what was done to the pods (schema 2): one of Disruptions; empty is restart.
	Disruption string `json:"disruption,omitempty"`
	// Rollouts is how many disruptions ran in one load run (schema 2); 0 means 1.
	Rollouts int `json:"rollouts,omitempty"`
	// RolloutGap is the pause after one rollout settled before the next started (schema 2).
	RolloutGap Duration `json:"rollout_gap,omitempty"`
	// Thresholds are the limits the run was judged against, as given ("max-errors=0").
	Thresholds []string `json:"thresholds,omitempty"`
	// PerRollout says the thresholds were judged per rollout rather than over the run.
	PerRollout bool `json:"per_rollout,omitempty"`
}

// The disruptions a drill can apply. Restart is the rolling restart, the default.
const (
	DisruptionRestart = "restart"
	DisruptionDelete  = "delete"
	DisruptionEvict   = "evict"
	DisruptionDrain   = "drain"
	DisruptionKill    = "kill"
	DisruptionScale   = "scale"
	DisruptionAll     = "all" // Settings only: every kind, one per scenario (a matrix)
)

// Scenario is one drill: a manifest set under a disruption with load. Result is nil when the
// scenario failed before its load started; its fields sit at the scenario's top level in JSON.
type Scenario struct {
	Scenario  string   `json:"scenario"`
	Title     string   `json:"title"`
	Manifests string   `json:"manifests"`
	Failure   string   `json:"failure,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	// Disruption is what was done to the pods (schema 2); empty is restart.
	Disruption string `json:"disruption,omitempty"`
	// Sandbox is how the embedded cluster ran the pods (schema 2): "ns", each in namespaces of
	// its own, or "none", the host's shared loopback; empty on Kubernetes.
	Sandbox string `json:"sandbox,omitempty"`
	// SandboxFallback is why --sandbox auto fell back to "none" (schema 2).
	SandboxFallback string `json:"sandbox_fallback,omitempty"`
	// RestartAt is when the (first) disruption was triggered.
	RestartAt      time.Time `json:"restart_at"`
	RolloutSeconds float64   `json:"rollout_duration_s"` // the first rollout's, or the only one's
	*Result
	// Rollouts has one entry per rollout when the run had several (schema 2).
	Rollouts []Rollout `json:"rollouts,omitempty"`
	// Statistics summarise the rollouts (schema 2).
	Statistics *Statistics     `json:"statistics,omitempty"`
	Events     []cluster.Event `json:"events"`
	// LoadPods are the load pods' own results when the load came from pods in the cluster
	// (schema 2); the scenario's result is their merge.
	LoadPods []LoadPod `json:"load_pods,omitempty"`
}

// LoadPod is one load pod's share of a scenario's load.
type LoadPod struct {
	Pod string `json:"pod"`
	// Complete: its stream ended with a summary and no record was missing.
	Complete bool `json:"complete"`
	// Lost: its requests in flight when it died, counted in the lost class.
	Lost int64 `json:"lost"`
	// StartSkew is its start minus the common start, by its own clock.
	StartSkew Duration `json:"start_skew"`
	Problems  []string `json:"problems,omitempty"`
	Result    *Result  `json:"result"`
}

// Result is what the load measured. Times are absolute so cluster events can be placed on
// the same axis; timeline seconds and disruption offsets count from Start. Error classes and
// upstream kinds are keyed by their names (ErrorClasses; the downstream's `kind`).
type Result struct {
	Start   time.Time  `json:"start"`
	SendEnd time.Time  `json:"send_end"` // when requests stopped being started
	End     time.Time  `json:"end"`      // when the last outcome was recorded
	Config  LoadConfig `json:"config"`

	Requests      int64            `json:"requests"` // every outcome recorded: OK + Errors
	Sent          int64            `json:"sent"`     // requests actually sent (Requests - dropped)
	OK            int64            `json:"ok"`
	Errors        int64            `json:"errors"`
	ErrorRate     float64          `json:"error_rate"` // Errors / Requests
	RPS           float64          `json:"rps"`
	ErrorsByKind  map[string]int64 `json:"errors_by_kind"`
	UpstreamKinds map[string]int64 `json:"upstream_kinds"` // over 5xx answers, the downstream's `kind`
	Retries       int64            `json:"retries"`
	// ReusedConn counts failures on keep-alive connections used before (docs/keepalive.md).
	ReusedConn ReusedConnFailures `json:"failed_on_reused_connection,omitzero"`

	Latency Latency  `json:"latency_ms"` // every sent request, failed ones included
	SendLag *SendLag `json:"send_lag_ms,omitempty"`

	Timeline    []Second     `json:"timeline"`
	Disruptions []Disruption `json:"disruptions"`
}

// ReusedConnFailures counts failed requests whose failing attempt went out on a pooled
// keep-alive connection that had carried requests before: the race with a server closing it.
type ReusedConnFailures struct {
	Own      int64 `json:"own,omitempty"`      // the load generator's connection (a transport error)
	Upstream int64 `json:"upstream,omitempty"` // the downstream's, per its 5xx body's reused_connection
}

// LoadConfig is the load as it ran.
type LoadConfig struct {
	URL         string  `json:"url"`
	Method      string  `json:"method"`
	Model       string  `json:"model"`
	VUs         int     `json:"vus,omitempty"`
	Think       string  `json:"think,omitempty"` // a Go duration, "100ms"
	Rate        float64 `json:"rate,omitempty"`
	MaxInFlight int     `json:"max_in_flight,omitempty"`
	Duration    string  `json:"duration"`
	Timeout     string  `json:"timeout"`
	Connections string  `json:"connections"`
}

// Latency summarises a latency histogram, in milliseconds.
type Latency struct {
	Avg float64 `json:"avg"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// SendLag is the open model's lag between scheduled and actual send, in milliseconds.
type SendLag struct {
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Late int64   `json:"late"`
}

// Second is one second of the timeline: the requests sent in it and how they ended.
type Second struct {
	Second       int              `json:"second"` // offset from Start
	Requests     int64            `json:"requests"`
	OK           int64            `json:"ok"`
	Errors       int64            `json:"errors"`
	ErrorsByKind map[string]int64 `json:"errors_by_kind"`
	// UpstreamKinds splits this second's 5xx answers by the downstream's `kind` (schema 2;
	// absent in older files, whose charts then show 5xx unsplit).
	UpstreamKinds map[string]int64 `json:"upstream_kinds,omitempty"`
	P50           float64          `json:"p50_ms"`
	P99           float64          `json:"p99_ms"`
	Max           float64          `json:"max_ms"`
}

// Disruption is a run of failures sent less than a second apart.
type Disruption struct {
	Start          time.Time        `json:"start"`
	End            time.Time        `json:"end"`
	StartOffset    float64          `json:"start_offset_s"`
	EndOffset      float64          `json:"end_offset_s"`
	RequestsFailed int64            `json:"requests_failed"`
	FirstError     string           `json:"first_error"`
	Classes        map[string]int64 `json:"classes"`
	// UpstreamKinds splits its 5xx answers by the downstream's `kind` (schema 2).
	UpstreamKinds map[string]int64 `json:"upstream_kinds,omitempty"`
}

// Rollout is one disruption of a repeated run (schema 2). A request belongs to the rollout
// in whose window (restart to window end) it was sent.
type Rollout struct {
	Index     int       `json:"index"` // from 1
	RestartAt time.Time `json:"restart_at"`
	SettledAt time.Time `json:"settled_at,omitempty"` // zero when it never settled
	WindowEnd time.Time `json:"window_end"`           // settled plus the tail

	Requests      int64            `json:"requests"`
	OK            int64            `json:"ok"`
	Errors        int64            `json:"errors"`
	ErrorsByKind  map[string]int64 `json:"errors_by_kind,omitempty"`
	UpstreamKinds map[string]int64 `json:"upstream_kinds,omitempty"`
	// LongestDisruption is the longest run of failures in the window, in seconds.
	LongestDisruption float64 `json:"longest_disruption_s"`
	LatencyMax        float64 `json:"latency_max_ms"` // the worst latency in the window
	LatencyP99        float64 `json:"latency_p99_ms,omitempty"`
	RolloutSeconds    float64 `json:"rollout_duration_s"` // restart to settled
}

// Statistics summarise a scenario's rollouts, the rollout being the unit: errors come in
// bursts, so requests are not independent samples (schema 2).
type Statistics struct {
	Rollouts      int `json:"rollouts"`       // n
	LossyRollouts int `json:"lossy_rollouts"` // k: rollouts that lost any request
	// LossyInterval is the exact (Clopper-Pearson) interval for k/n.
	LossyInterval Interval `json:"lossy_interval"`
	// Losses are the errors per rollout.
	Losses Spread `json:"losses_per_rollout"`
	// RequestErrorUpper is the one-sided upper bound on the per-request error rate when no
	// request failed, assuming independent requests; 0 when errors were seen.
	RequestErrorUpper float64 `json:"request_error_upper,omitempty"`
	UpperLevel        float64 `json:"upper_level,omitempty"` // its confidence, 0.95
	// RequestErrorInterval is the exact two-sided interval of the per-request error rate when
	// requests failed, assuming independent requests (which they are not: a lower bound on the
	// uncertainty).
	RequestErrorInterval *Interval `json:"request_error_interval,omitempty"`
}

// Interval is a confidence interval of a fraction.
type Interval struct {
	Low   float64 `json:"low"`
	High  float64 `json:"high"`
	Level float64 `json:"level"` // 0.95
}

// Spread is the minimum, median and maximum of a count over rollouts.
type Spread struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

// Comparison tests two scenarios against each other over their rollouts (schema 2).
type Comparison struct {
	Scenarios [2]string `json:"scenarios"`
	// Test names the test: "fisher_exact" (lossy or not) or "mann_whitney" (losses per rollout).
	Test        string  `json:"test"`
	PValue      float64 `json:"p_value"`
	Alpha       float64 `json:"alpha"` // the significance level, 0.05
	Significant bool    `json:"significant"`
	RolloutsA   int     `json:"rollouts_a"`
	RolloutsB   int     `json:"rollouts_b"`
}

// Breach is one threshold the run broke (schema 2).
type Breach struct {
	Threshold string  `json:"threshold"` // as given: "max-errors", "max-latency p99"
	Scenario  string  `json:"scenario"`
	Rollout   int     `json:"rollout,omitempty"` // 0: judged over the whole run
	Measured  float64 `json:"measured"`
	Limit     float64 `json:"limit"`
	Unit      string  `json:"unit,omitempty"` // "requests", "%", "s", "ms"
}
