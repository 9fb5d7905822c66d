package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/gracelab/gracelab/internal/experiment"
	"github.com/gracelab/gracelab/internal/gate"
	"github.com/gracelab/gracelab/internal/report"
)

// fromMillis is a report's milliseconds as a duration.
func fromMillis(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

// latencyQuantiles maps the report's whole-run latency summary to gate's quantiles.
func latencyQuantiles(l report.Latency) map[gate.Quantile]time.Duration {
	return map[gate.Quantile]time.Duration{gate.P50: fromMillis(l.P50), gate.P90: fromMillis(l.P90), gate.P95: fromMillis(l.P95), gate.P99: fromMillis(l.P99), gate.Max: fromMillis(l.Max)}
}

// measurements are what the thresholds judge: each measured scenario's whole run (rollout 0)
// and each of its rollouts.
func measurements(scenarios []report.Scenario, rollouts map[string][]experiment.Rollout) []gate.Measurement {
	var out []gate.Measurement
	for _, s := range scenarios {
		if s.Result == nil {
			continue
		}
		whole := gate.Measurement{Scenario: s.Scenario, Requests: s.Requests, Errors: s.Errors,
			Latency: latencyQuantiles(s.Latency), Duration: s.End.Sub(s.Start)}
		for _, d := range s.Disruptions {
			whole.LongestDisruption = max(whole.LongestDisruption, d.End.Sub(d.Start))
		}
		out = append(out, whole)
		for _, r := range rollouts[s.Scenario] {
			out = append(out, gate.Measurement{Scenario: s.Scenario, Rollout: r.Index, Requests: r.Requests, Errors: r.Errors,
				LongestDisruption: r.LongestDisruption, Latency: map[gate.Quantile]time.Duration{
					gate.P50: r.Latency.P50, gate.P90: r.Latency.P90, gate.P95: r.Latency.P95, gate.P99: r.Latency.P99, gate.Max: r.LatencyMax},
				Duration: r.End.Sub(r.Start)})
		}
	}
	return out
}

// loadBaseline reads --baseline's report (a directory, report.json or report.json.gz, of any
// schema this gracelab reads) into per-rollout samples: each scenario's rollout rows, or, for a
// report of one rollout per scenario (schema 1 among them), its whole run as the one sample.
// The p99 per rollout is there from schema 2 reports written since it was recorded; without it
// only the lossy rollouts are compared.
func loadBaseline(path string) (*gate.Baseline, error) {
	r, err := report.Read(path)
	if err != nil {
		return nil, err
	}
	b := &gate.Baseline{Source: path}
	for _, s := range r.Scenarios {
		if s.Result == nil {
			continue
		}
		sample := gate.Sample{Scenario: s.Scenario}
		if len(s.Rollouts) == 0 {
			sample.Losses, sample.P99 = []int64{s.Errors}, []time.Duration{fromMillis(s.Latency.P99)}
		}
		withP99 := true
		for _, ro := range s.Rollouts {
			if ro.Requests == 0 {
				continue
			}
			sample.Losses = append(sample.Losses, ro.Errors)
			sample.P99 = append(sample.P99, fromMillis(ro.LatencyP99))
			withP99 = withP99 && ro.LatencyP99 > 0
		}
		if !withP99 {
			sample.P99 = nil
		}
		if len(sample.Losses) > 0 {
			b.Samples = append(b.Samples, sample)
		}
	}
	if len(b.Samples) == 0 {
		return nil, fmt.Errorf("%s: no scenario of that report measured anything to compare with", path)
	}
	return b, nil
}

// evaluate judges the thresholds; nil when there is nothing to judge (no threshold, no
// baseline, no --junit).
func evaluate(th gate.Thresholds, junitPath string, scenarios []report.Scenario, rollouts map[string][]experiment.Rollout) (*gate.Evaluation, error) {
	if th.Empty() && junitPath == "" {
		return nil, nil
	}
	ev, err := gate.Evaluate(th, measurements(scenarios, rollouts))
	if err != nil {
		return nil, err
	}
	return &ev, nil
}

// breachesOf is report.json's record of the breaches.
func breachesOf(ev *gate.Evaluation) []report.Breach {
	if ev == nil {
		return nil
	}
	var out []report.Breach
	for _, c := range ev.Breaches() {
		out = append(out, report.Breach{Threshold: c.Name, Scenario: c.Measurement.Scenario, Rollout: c.Measurement.Rollout,
			Measured: c.Value, Limit: c.Limit, Unit: c.Unit})
	}
	return out
}

// reportRollouts are report.json's rows of a run of several rollouts (none for one).
func reportRollouts(rs []experiment.Rollout, planned int) []report.Rollout {
	if planned < 2 {
		return nil
	}
	var out []report.Rollout
	for _, r := range rs {
		row := report.Rollout{Index: r.Index, RestartAt: r.Start, SettledAt: r.Settled, WindowEnd: r.End,
			Requests: r.Requests, OK: r.OK, Errors: r.Errors, ErrorsByKind: r.ErrorsByKind, UpstreamKinds: r.UpstreamKinds,
			LongestDisruption: r.LongestDisruption.Seconds(), LatencyMax: float64(r.LatencyMax) / float64(time.Millisecond),
			LatencyP99: float64(r.Latency.P99) / float64(time.Millisecond)}
		if !r.Settled.IsZero() {
			row.RolloutSeconds = r.Settled.Sub(r.Start).Seconds()
		}
		out = append(out, row)
	}
	return out
}

// judge acts on the evaluation once the report is written: it writes the JUnit file and prints
// one line per breach on stderr. It returns the exit error for the breaches (nil when none);
// the caller lets a run failure win.
func judge(ev *gate.Evaluation, everr error, junitPath string, scenarios []report.Scenario, streams Streams) error {
	if everr != nil {
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("judging the thresholds: %w", everr)}
	}
	if ev == nil {
		return nil
	}
	if junitPath != "" {
		failures := map[string]string{}
		for _, s := range scenarios {
			if s.Failure != "" {
				failures[s.Scenario] = s.Failure
			}
		}
		f, err := os.Create(junitPath)
		if err == nil {
			err = ev.WriteJUnit(f, failures)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return &ExitError{Code: ExitFailed, Err: fmt.Errorf("writing --junit %s: %w", junitPath, err)}
		}
	}
	for _, note := range ev.Notes {
		fmt.Fprintln(streams.Out, note)
	}
	breaches := ev.Breaches()
	for _, b := range breaches {
		fmt.Fprintln(streams.ErrOut, "gracelab: "+b.String())
	}
	if len(breaches) > 0 {
		return &ExitError{Code: ExitBreached, Err: errReported}
	}
	return nil
}
