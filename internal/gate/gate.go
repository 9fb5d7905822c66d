// Package gate owns gracelab's pass/fail verdict for CI: the threshold flags (--max-errors,
// --max-error-rate, --max-disruption, --max-latency, --per-rollout), their evaluation over
// measured rollouts or whole runs, the one-line breach messages, the exit codes every command
// shares, the JUnit XML file (--junit) and the comparison with a baseline report (--baseline).
//
// It works on plain values the caller fills from its report, so it does not depend on the
// report's schema. Wiring, in a command:
//
//	var gf gate.Flags
//	gf.Register(cmd.Flags(), loadBaseline)    // at command construction; a bad value is a flag error (exit 2)
//	th := gf.Thresholds()                     // in RunE, before anything starts
//	... run, write the report ...
//	ev, err := gate.Evaluate(th, measurements) // one Measurement per rollout and one per whole run; the baseline's checks too
//	for _, b := range ev.Breaches() { fmt.Fprintln(stderr, b) }
//	ev.WriteJUnit(file, runFailures)          // with --junit
//	return gate.ExitCode(runFailed, len(ev.Breaches()) > 0)
//
// docs/statistics.md says what each threshold and the baseline regression mean.
package gate

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gracelab/gracelab/internal/stats"
)

// Exit codes shared by every command (load, demo, drill, ablate). When the run failed and a
// threshold was breached too, the run failure wins: its figures cannot be trusted.
const (
	ExitOK       = 0 // completed within thresholds
	ExitFailed   = 1 // the run itself failed
	ExitBadInput = 2 // bad flags, arguments or files: nothing was started
	ExitBreached = 3 // the run completed and a threshold was breached
)

// ExitCode is the exit code of a run that got past its input checks.
func ExitCode(runFailed, breached bool) int {
	switch {
	case runFailed:
		return ExitFailed
	case breached:
		return ExitBreached
	}
	return ExitOK
}

// Quantile names a latency figure a threshold can bound.
type Quantile string

const (
	P50 Quantile = "p50"
	P90 Quantile = "p90"
	P95 Quantile = "p95"
	P99 Quantile = "p99"
	Max Quantile = "max"
)

// Quantiles lists the quantiles --max-latency accepts, in order.
var Quantiles = []Quantile{P50, P90, P95, P99, Max}

// LatencyLimit is one --max-latency QUANTILE=DURATION.
type LatencyLimit struct {
	Quantile Quantile
	Limit    time.Duration
}

// Thresholds are the limits a run is judged by; a nil pointer is a limit not set.
type Thresholds struct {
	MaxErrors     *int64
	MaxErrorRate  *float64 // a fraction: 0.01 is 1 %
	MaxDisruption *time.Duration
	MaxLatency    []LatencyLimit // at most one per quantile, in Quantiles order
	// PerRollout judges every rollout on its own; otherwise the whole run of each scenario.
	PerRollout bool
	// Baseline is an earlier report the run must not regress from (--baseline); nil: none.
	Baseline *Baseline
}

// Empty reports whether no limit and no baseline is set: then nothing can be breached.
func (t Thresholds) Empty() bool { return !t.limited() && t.Baseline == nil }

// limited reports whether any limit on the measurements themselves is set.
func (t Thresholds) limited() bool {
	return t.MaxErrors != nil || t.MaxErrorRate != nil || t.MaxDisruption != nil || len(t.MaxLatency) > 0
}

// Measurement is what one rollout (Rollout >= 1) or one scenario's whole run (Rollout 0) measured.
type Measurement struct {
	Scenario string
	Rollout  int // 1-based; 0 is the whole run
	Requests int64
	Errors   int64
	// LongestDisruption is the longest outage interval.
	LongestDisruption time.Duration
	// Latency holds the measured quantiles; every quantile a threshold names must be present.
	Latency map[Quantile]time.Duration
	// Duration is the rollout's (or run's) duration, for the JUnit test case's time; optional.
	Duration time.Duration

	scope string // overrides Where: a baseline check is over all rollouts
}

// ErrorRate is Errors/Requests, 0 without requests.
func (m Measurement) ErrorRate() float64 {
	if m.Requests == 0 {
		return 0
	}
	return float64(m.Errors) / float64(m.Requests)
}

// Where names the measurement in messages: "v1 rollout 2" or "v1 (whole run)".
func (m Measurement) Where() string {
	if m.scope != "" {
		return m.scope
	}
	if m.Rollout == 0 {
		return m.Scenario + " (whole run)"
	}
	return fmt.Sprintf("%s rollout %d", m.Scenario, m.Rollout)
}

// Check is one threshold judged on one measurement.
type Check struct {
	Measurement Measurement
	Threshold   string // the flag as given: "--max-errors 0", "--max-latency p99=300ms"
	Measured    string // the measured value: "37 errors", "p99 5.01s"
	Passed      bool
	// The same as numbers, for report.json's breaches: Name is "max-errors", "max-error-rate",
	// "max-disruption" or "max-latency p99"; Unit is "requests", "%", "s" or "ms".
	Name         string
	Value, Limit float64
	Unit         string
}

// String is the one-line breach (or pass) message naming scenario, rollout, value and limit:
// "threshold breached: v1 rollout 2: 37 errors, limit --max-errors 0".
func (c Check) String() string {
	verdict := "threshold breached"
	if c.Passed {
		verdict = "within threshold"
	}
	return fmt.Sprintf("%s: %s: %s, limit %s", verdict, c.Measurement.Where(), c.Measured, c.Threshold)
}

// Evaluation is every check of a run, in the order of the measurements judged and, for each, of
// the thresholds (errors, error rate, disruption, latency); then the baseline's.
type Evaluation struct {
	Thresholds Thresholds
	Judged     []Measurement // the measurements judged: the per-rollout ones or the whole-run ones
	Checks     []Check
	// Baseline holds the comparisons with --baseline, per scenario (lossy rollouts, p99).
	Baseline []Check
	// Notes say what the baseline could not compare (a scenario on one side only).
	Notes []string
}

// Breaches are the failed checks, the baseline's last.
func (e Evaluation) Breaches() []Check {
	var out []Check
	for _, c := range append(slices.Clone(e.Checks), e.Baseline...) {
		if !c.Passed {
			out = append(out, c)
		}
	}
	return out
}

// Evaluate judges the measurements by the thresholds: with PerRollout those with Rollout >= 1,
// otherwise those with Rollout 0; give it both kinds and it picks. A measurement without
// requests breaches --max-error-rate (nothing was measured). A latency threshold on a quantile
// the measurement lacks is the caller's error. With a baseline, the rollouts (or, for a
// scenario without any, its whole run) are compared with it: see CompareBaseline.
func Evaluate(t Thresholds, ms []Measurement) (Evaluation, error) {
	ev := Evaluation{Thresholds: t}
	for _, m := range ms {
		if (m.Rollout >= 1) != t.PerRollout {
			continue
		}
		ev.Judged = append(ev.Judged, m)
		add := func(c Check) { c.Measurement = m; ev.Checks = append(ev.Checks, c) }
		if t.MaxErrors != nil {
			add(Check{Threshold: fmt.Sprintf("--max-errors %d", *t.MaxErrors), Measured: fmt.Sprintf("%d errors", m.Errors),
				Passed: m.Errors <= *t.MaxErrors, Name: "max-errors", Value: float64(m.Errors), Limit: float64(*t.MaxErrors), Unit: "requests"})
		}
		if t.MaxErrorRate != nil {
			c := Check{Threshold: fmt.Sprintf("--max-error-rate %g (%s %%)", *t.MaxErrorRate, stats.FormatPercent(*t.MaxErrorRate)),
				Name: "max-error-rate", Value: m.ErrorRate() * 100, Limit: *t.MaxErrorRate * 100, Unit: "%"}
			if m.Requests == 0 {
				c.Measured = "no requests in its window"
			} else {
				c.Measured = fmt.Sprintf("error rate %s %% (%d of %d)", stats.FormatPercent(m.ErrorRate()), m.Errors, m.Requests)
				c.Passed = m.ErrorRate() <= *t.MaxErrorRate
			}
			add(c)
		}
		if t.MaxDisruption != nil {
			add(Check{Threshold: "--max-disruption " + t.MaxDisruption.String(), Measured: "longest disruption " + m.LongestDisruption.String(),
				Passed: m.LongestDisruption <= *t.MaxDisruption, Name: "max-disruption",
				Value: m.LongestDisruption.Seconds(), Limit: t.MaxDisruption.Seconds(), Unit: "s"})
		}
		for _, l := range t.MaxLatency {
			got, ok := m.Latency[l.Quantile]
			if !ok {
				return Evaluation{}, fmt.Errorf("%s has no %s latency to judge --max-latency by", m.Where(), l.Quantile)
			}
			add(Check{Threshold: fmt.Sprintf("--max-latency %s=%s", l.Quantile, l.Limit), Measured: fmt.Sprintf("%s latency %s", l.Quantile, got),
				Passed: got <= l.Limit, Name: "max-latency " + string(l.Quantile),
				Value: float64(got) / float64(time.Millisecond), Limit: float64(l.Limit) / float64(time.Millisecond), Unit: "ms"})
		}
	}
	if len(ev.Judged) == 0 && len(ms) > 0 {
		what := "whole-run"
		if t.PerRollout {
			what = "per-rollout"
		}
		return Evaluation{}, fmt.Errorf("no %s measurements to judge", what)
	}
	if t.Baseline != nil {
		ev.Baseline, ev.Notes = CompareBaseline(*t.Baseline, SamplesOf(ms))
	}
	return ev, nil
}

func parseQuantile(s string) (Quantile, error) {
	q := Quantile(strings.ToLower(strings.TrimSpace(s)))
	for _, known := range Quantiles {
		if q == known {
			return q, nil
		}
	}
	names := make([]string, len(Quantiles))
	for i, k := range Quantiles {
		names[i] = string(k)
	}
	return "", fmt.Errorf("unknown quantile %q: use one of %s", s, strings.Join(names, ", "))
}

// validRate reports whether r is a fraction in [0, 1].
func validRate(r float64) bool { return !math.IsNaN(r) && r >= 0 && r <= 1 }
