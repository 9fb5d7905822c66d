package gate

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Flags holds the threshold flags of one command. Register them on the command's flag set; each
// value is checked as it is parsed, so a bad one is a flag error (exit 2) before anything starts.
type Flags struct {
	th Thresholds
}

// Register adds --max-errors, --max-error-rate, --max-disruption, --max-latency (repeatable) and
// --per-rollout to fs; with a loader, --baseline too, which reads its report as it is parsed.
func (f *Flags) Register(fs *pflag.FlagSet, load BaselineLoader) {
	fs.Var(&maxErrorsValue{&f.th.MaxErrors}, "max-errors", "breach when more than N requests fail (per rollout with --per-rollout, else per scenario's whole run)")
	fs.Var(&rateValue{&f.th.MaxErrorRate}, "max-error-rate", "breach when the error rate is above R, a fraction (0.01) or a percentage (1%)")
	fs.Var(&durationValue{&f.th.MaxDisruption}, "max-disruption", "breach when the longest outage interval is longer than D (e.g. 2s)")
	fs.Var(&latencyValue{&f.th.MaxLatency}, "max-latency", "breach when a latency quantile is above a duration: QUANTILE=DURATION with QUANTILE one of p50, p90, p95, p99, max (repeatable, e.g. p99=300ms)")
	fs.BoolVar(&f.th.PerRollout, "per-rollout", false, "judge the thresholds on every rollout on its own instead of each scenario's whole run")
	if load != nil {
		fs.Var(&baselineValue{&f.th.Baseline, load}, "baseline", "compare with an earlier report (its directory or report.json): breach when a scenario's share of lossy rollouts or its p99 is worse beyond the baseline's interval (docs/statistics.md)")
	}
}

type baselineValue struct {
	p    **Baseline
	load BaselineLoader
}

func (v *baselineValue) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("give the directory or report.json of an earlier run")
	}
	b, err := v.load(s)
	if err != nil {
		return err
	}
	*v.p = b
	return nil
}
func (v *baselineValue) String() string {
	if *v.p == nil {
		return ""
	}
	return (*v.p).Source
}
func (v *baselineValue) Type() string { return "DIR|report.json" }

// Thresholds returns the limits given on the command line (all nil when none was).
func (f *Flags) Thresholds() Thresholds {
	th := f.th
	th.MaxLatency = append([]LatencyLimit(nil), f.th.MaxLatency...)
	return th
}

// ParseLatency parses one QUANTILE=DURATION, e.g. "p99=300ms" or "max=1s".
func ParseLatency(s string) (LatencyLimit, error) {
	name, dur, ok := strings.Cut(s, "=")
	if !ok {
		return LatencyLimit{}, fmt.Errorf("%q is not QUANTILE=DURATION (e.g. p99=300ms)", s)
	}
	q, err := parseQuantile(name)
	if err != nil {
		return LatencyLimit{}, err
	}
	d, err := time.ParseDuration(strings.TrimSpace(dur))
	if err != nil {
		return LatencyLimit{}, fmt.Errorf("%q: %q is not a duration (e.g. 300ms, 1s)", s, dur)
	}
	if d <= 0 {
		return LatencyLimit{}, fmt.Errorf("%q: the limit must be above zero", s)
	}
	return LatencyLimit{Quantile: q, Limit: d}, nil
}

// ParseRate parses a fraction ("0.01") or a percentage ("1%") into a fraction in [0, 1].
func ParseRate(s string) (float64, error) {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(t, "%")), 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number: give a fraction (0.01) or a percentage (1%%)", s)
	}
	if pct {
		v /= 100
	}
	if !validRate(v) {
		return 0, fmt.Errorf("%q is not a rate between 0 and 1 (0 %% and 100 %%): give 0.01 or 1%% for 1 %%", s)
	}
	return v, nil
}

type maxErrorsValue struct{ p **int64 }

func (v *maxErrorsValue) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a count of errors (0 or more)", s)
	}
	*v.p = &n
	return nil
}
func (v *maxErrorsValue) String() string {
	if *v.p == nil {
		return ""
	}
	return strconv.FormatInt(**v.p, 10)
}
func (v *maxErrorsValue) Type() string { return "N" }

type rateValue struct{ p **float64 }

func (v *rateValue) Set(s string) error {
	r, err := ParseRate(s)
	if err != nil {
		return err
	}
	*v.p = &r
	return nil
}
func (v *rateValue) String() string {
	if *v.p == nil {
		return ""
	}
	return strconv.FormatFloat(**v.p, 'g', -1, 64)
}
func (v *rateValue) Type() string { return "R" }

type durationValue struct{ p **time.Duration }

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 500ms, 2s)", s)
	}
	if d < 0 {
		return fmt.Errorf("%q is negative", s)
	}
	*v.p = &d
	return nil
}
func (v *durationValue) String() string {
	if *v.p == nil {
		return ""
	}
	return (**v.p).String()
}
func (v *durationValue) Type() string { return "D" }

// latencyValue collects repeated --max-latency flags (comma-separated lists too), keeping them in
// Quantiles order and refusing the same quantile twice.
type latencyValue struct{ p *[]LatencyLimit }

func (v *latencyValue) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		l, err := ParseLatency(part)
		if err != nil {
			return err
		}
		for _, have := range *v.p {
			if have.Quantile == l.Quantile {
				return fmt.Errorf("%s is limited twice (%s and %s): give each quantile once", l.Quantile, have.Limit, l.Limit)
			}
		}
		*v.p = insertInOrder(*v.p, l)
	}
	return nil
}

func insertInOrder(ls []LatencyLimit, l LatencyLimit) []LatencyLimit {
	rank := func(q Quantile) int {
		for i, k := range Quantiles {
			if k == q {
				return i
			}
		}
		return len(Quantiles)
	}
	i := 0
	for i < len(ls) && rank(ls[i].Quantile) < rank(l.Quantile) {
		i++
	}
	return append(ls[:i], append([]LatencyLimit{l}, ls[i:]...)...)
}

func (v *latencyValue) String() string {
	parts := make([]string, len(*v.p))
	for i, l := range *v.p {
		parts[i] = fmt.Sprintf("%s=%s", l.Quantile, l.Limit)
	}
	return strings.Join(parts, ",")
}
func (v *latencyValue) Type() string { return "QUANTILE=DURATION" }
