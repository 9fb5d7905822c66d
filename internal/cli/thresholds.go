package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/gracelab/gracelab/internal/experiment"
	"github.com/gracelab/gracelab/internal/gate"
	"github.com/gracelab/gracelab/internal/report"
)

// latencyQuantiles maps the report's whole-run latency summary to gate's quantiles.
func latencyQuantiles(l report.Latency) map[gate.Quantile]time.Duration {
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	return map[gate.Quantile]time.Duration{gate.P50: ms(l.P50), gate.P90: ms(l.P90), gate.P95: ms(l.P95), gate.P99: ms(l.P99), gate.Max: ms(l.Max)}
}

// measurements are what the thresholds judge: each measured scenario's whole run (rollout 0)
// and each of its rollouts (only the max latency is known per rollout).
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
				LongestDisruption: r.LongestDisruption, Latency: map[gate.Quantile]time.Duration{gate.Max: r.LatencyMax},
				Duration: r.End.Sub(r.Start)})
		}
	}
	return out
}

// judge evaluates the thresholds after the report is written, prints one line per breach on
// stderr and writes the JUnit file. It returns the exit error for the breaches (nil when
// none); the caller lets a run failure win.
func judge(th gate.Thresholds, junitPath string, scenarios []report.Scenario, rollouts map[string][]experiment.Rollout, streams Streams) error {
	if th.Empty() && junitPath == "" {
		return nil
	}
	ev, err := gate.Evaluate(th, measurements(scenarios, rollouts))
	if err != nil {
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("judging the thresholds: %w", err)}
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
	breaches := ev.Breaches()
	for _, b := range breaches {
		fmt.Fprintln(streams.ErrOut, "gracelab: "+b.String())
	}
	if len(breaches) > 0 {
		return &ExitError{Code: ExitBreached, Err: errReported}
	}
	return nil
}
