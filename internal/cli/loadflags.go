package cli

import (
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gracelab/gracelab/internal/load"
)

// loadFlags are the load generator's flags, defined once for every command that sends load
// (load, demo, drill): register adds them to a command, resolve turns them into a
// load.Config. The URL is not among them: each command has its own target.
type loadFlags struct {
	method      string
	connections string
	vus         int
	think       time.Duration
	rate        float64
	maxInFlight int
	duration    time.Duration
	timeout     time.Duration
}

// register adds --method, --connections, --vus, --think, --rate, --max-in-flight, --duration
// and --timeout to cmd; durationHelp says what --duration means for this command.
func (l *loadFlags) register(cmd *cobra.Command, durationHelp string) {
	f := cmd.Flags()
	f.StringVar(&l.method, "method", "GET", "GET or POST (POST is never retried by Go's transport on a stale keep-alive connection)")
	f.StringVar(&l.connections, "connections", load.ConnectionsNew, "new (a TCP connection per request) or reuse (keep-alive)")
	f.IntVar(&l.vus, "vus", 15, "closed model: virtual users")
	f.DurationVar(&l.think, "think", 100*time.Millisecond, "closed model: pause after each response")
	f.Float64Var(&l.rate, "rate", 0, "open model: requests per second at fixed arrival times (instead of --vus/--think)")
	f.IntVar(&l.maxInFlight, "max-in-flight", 0, "open model: cap on requests in flight; 0 = rate × timeout, at most 10000")
	f.DurationVar(&l.duration, "duration", 30*time.Second, durationHelp)
	f.DurationVar(&l.timeout, "timeout", load.DefaultTimeout, "per-request timeout")
}

// resolve picks the model (open when --rate is given, else closed) and checks every value
// with load's own rules, as if sent to a placeholder URL when the config has none yet. Each
// problem is a usage error naming the flag.
func (l *loadFlags) resolve(cmd *cobra.Command) (load.Config, error) {
	changed := cmd.Flags().Changed
	cfg := load.Config{
		Method: strings.ToUpper(l.method), Connections: l.connections, Duration: l.duration, Timeout: l.timeout,
	}
	if changed("rate") {
		if changed("vus") || changed("think") {
			return cfg, usageError("--vus and --think are for the closed model: drop them, or drop --rate")
		}
		cfg.Model, cfg.Rate, cfg.MaxInFlight = load.Open, l.rate, l.maxInFlight
	} else {
		if changed("max-in-flight") {
			return cfg, usageError("--max-in-flight is for the open model: add --rate, or drop it")
		}
		cfg.Model, cfg.VUs, cfg.Think = load.Closed, l.vus, l.think
	}
	if l.timeout == 0 {
		return cfg, usageError("--timeout 0 would wait forever: give a positive per-request timeout (default 10s, at most 1m)")
	}
	check := cfg
	check.URL = "http://127.0.0.1/"
	if err := check.Validate(); err != nil {
		return cfg, usageError("bad flags: %v", err)
	}
	return cfg, nil
}
