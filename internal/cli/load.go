package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gracelab/gracelab/internal/load"
)

// loadOptions are the flags of `gracelab load`.
type loadOptions struct {
	url          string
	method       string
	connections  string
	vus          int
	think        time.Duration
	rate         float64
	maxInFlight  int
	duration     time.Duration
	timeout      time.Duration
	jsonPath     string
	maxErrorRate float64
	quiet        bool
	stream       bool
	startAtFile  string
}

// loadOutput is what runLoad does with a result besides printing the summary.
type loadOutput struct {
	jsonPath     string  // "" none, "-" stdout (the summary then goes to stderr)
	maxErrorRate float64 // < 0: no threshold
	progress     bool    // draw the progress bar on ErrOut
	stream       bool    // per-second JSON lines on stdout (a load pod of drill --cluster)
	startAtFile  string  // wait until this file names the common start instant
}

func newLoadCommand(streams Streams) *cobra.Command {
	o := &loadOptions{}
	cmd := &cobra.Command{
		Use:   "load --url URL",
		Short: "Send HTTP load to a URL and account for every request",
		Long: `Send HTTP requests to a URL and record exactly one outcome per request:
ok, body_not_ok, http_5xx, http_4xx, refused, reset, eof, timeout, dropped or other.

Closed model (default): --vus virtual users each send, wait, think, repeat (like k6).
Open model (--rate): requests at fixed arrival times; a slot that finds --max-in-flight
requests in flight is recorded as dropped, so a slow server cannot lower the rate unseen.

The first Ctrl-C (or SIGTERM) stops sending, waits for requests in flight (up to
--timeout) and prints the report; a second one exits at once.`,
		Example: `  gracelab load --url http://127.0.0.1:8000/ --duration 10s
  gracelab load --url http://127.0.0.1:8000/ --rate 200 --duration 30s --json load.json
  gracelab load --url http://127.0.0.1:8000/ --connections reuse --method POST --max-error-rate 0.01`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, out, err := o.resolve(cmd)
			if err != nil {
				return err
			}
			out.progress = !o.quiet && isTerminal(streams.ErrOut)
			signals := make(chan os.Signal, 2)
			signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(signals)
			return runLoad(cfg, out, streams, signals)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.url, "url", "", "URL to send requests to (required)")
	f.StringVar(&o.method, "method", "GET", "GET or POST (POST is never retried by Go's transport on a stale keep-alive connection)")
	f.StringVar(&o.connections, "connections", load.ConnectionsNew, "new (a TCP connection per request) or reuse (keep-alive)")
	f.IntVar(&o.vus, "vus", 15, "closed model: virtual users")
	f.DurationVar(&o.think, "think", 100*time.Millisecond, "closed model: pause after each response")
	f.Float64Var(&o.rate, "rate", 0, "open model: requests per second at fixed arrival times")
	f.IntVar(&o.maxInFlight, "max-in-flight", 0, "open model: cap on requests in flight; 0 = rate × timeout, at most 10000")
	f.DurationVar(&o.duration, "duration", 30*time.Second, "how long to send; 0 = until Ctrl-C")
	f.DurationVar(&o.timeout, "timeout", load.DefaultTimeout, "per-request timeout")
	f.StringVar(&o.jsonPath, "json", "", "write the full result as JSON to this file (- for stdout)")
	f.Float64Var(&o.maxErrorRate, "max-error-rate", 0, "exit 1 when the error rate is above this fraction (0.01 = 1%)")
	f.BoolVar(&o.quiet, "quiet", false, "no progress bar")
	f.BoolVar(&o.stream, "stream", false, "write per-second JSON lines and a summary line to stdout (the load pods of drill --cluster; see docs/cluster-drill.md)")
	f.StringVar(&o.startAtFile, "start-at-file", "", "with --stream: wait until this file holds an RFC 3339 instant, then start at it")
	return cmd
}

// resolve turns the flags into a load configuration, or a usage error naming what to change.
func (o *loadOptions) resolve(cmd *cobra.Command) (load.Config, loadOutput, error) {
	changed := cmd.Flags().Changed
	cfg := load.Config{
		URL: o.url, Method: strings.ToUpper(o.method), Duration: o.duration, Timeout: o.timeout,
		Connections: o.connections,
	}
	out := loadOutput{jsonPath: o.jsonPath, maxErrorRate: -1, stream: o.stream, startAtFile: o.startAtFile}
	if o.stream && o.jsonPath == "-" || o.startAtFile != "" && !o.stream {
		return cfg, out, usageError("--stream writes stdout and --start-at-file needs --stream: drop --json - or add --stream")
	}
	if o.url == "" {
		return cfg, out, usageError("--url is required, for example --url http://127.0.0.1:8000/")
	}
	if changed("rate") {
		if changed("vus") || changed("think") {
			return cfg, out, usageError("--vus and --think are for the closed model: drop them, or drop --rate")
		}
		cfg.Model, cfg.Rate, cfg.MaxInFlight = load.Open, o.rate, o.maxInFlight
	} else {
		if changed("max-in-flight") {
			return cfg, out, usageError("--max-in-flight is for the open model: add --rate, or drop it")
		}
		cfg.Model, cfg.VUs, cfg.Think = load.Closed, o.vus, o.think
	}
	if o.timeout == 0 {
		return cfg, out, usageError("--timeout 0 would wait forever: give a positive per-request timeout (default 10s, at most 1m)")
	}
	if changed("max-error-rate") {
		if !(o.maxErrorRate >= 0 && o.maxErrorRate <= 1) {
			return cfg, out, usageError("--max-error-rate %v is not a fraction between 0 and 1: give 0.01 for 1%%", o.maxErrorRate)
		}
		out.maxErrorRate = o.maxErrorRate
	}
	if err := cfg.Validate(); err != nil {
		return cfg, out, usageError("bad flags: %v", err)
	}
	return cfg, out, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// runLoad sends load until the duration ends or a signal arrives, then prints the summary and
// writes the JSON. The first signal stops the run and still reports; a second exits at once.
func runLoad(cfg load.Config, out loadOutput, streams Streams, signals <-chan os.Signal) error {
	// Create the JSON file first: a path that cannot be written is bad input, found before
	// anything is sent.
	var jsonFile *os.File
	if out.jsonPath != "" && out.jsonPath != "-" {
		f, err := os.Create(out.jsonPath)
		if err != nil {
			return usageError("--json: %v", err)
		}
		defer f.Close()
		jsonFile = f
	}
	if out.stream {
		return streamLoad(cfg, out, streams, signals)
	}
	run, err := load.Start(cfg)
	if err != nil {
		return usageError("bad flags: %v", err)
	}
	var bar *progressBar
	if out.progress {
		bar = newProgressBar(streams.ErrOut, run)
	}
	interrupted := false
wait:
	for {
		select {
		case <-run.Done():
			break wait
		case <-signals:
			if interrupted {
				bar.close()
				return &ExitError{Code: ExitFailed, Err: errors.New("interrupted twice: exiting without a report")}
			}
			interrupted = true
			run.Stop()
			bar.pause()
			fmt.Fprintf(streams.ErrOut, "stopping: waiting up to %s for %d requests in flight (interrupt again to exit now)\n",
				run.Config().Timeout, run.Progress().InFlight)
		case <-bar.tick():
			bar.update()
		}
	}
	bar.close()
	res := run.Result()

	summary := streams.Out
	if out.jsonPath == "-" {
		summary = streams.ErrOut
	}
	if err := res.WriteSummary(summary); err != nil {
		return fmt.Errorf("writing the summary: %w", err)
	}
	switch {
	case jsonFile != nil:
		if err := res.WriteJSON(jsonFile); err != nil {
			return fmt.Errorf("writing %s: %w", out.jsonPath, err)
		}
		if err := jsonFile.Close(); err != nil {
			return fmt.Errorf("writing %s: %w", out.jsonPath, err)
		}
	case out.jsonPath == "-":
		if err := res.WriteJSON(streams.Out); err != nil {
			return fmt.Errorf("writing the JSON: %w", err)
		}
	}
	if out.maxErrorRate >= 0 && res.ErrorRate > out.maxErrorRate {
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("error rate %.2f%% is above --max-error-rate %.2f%%",
			100*res.ErrorRate, 100*out.maxErrorRate)}
	}
	return nil
}

// progressBar shows elapsed time, requests and errors on stderr. A nil *progressBar is off.
type progressBar struct {
	bar    *progressbar.ProgressBar
	run    *load.Run
	ticker *time.Ticker
	total  time.Duration
}

func newProgressBar(w io.Writer, run *load.Run) *progressBar {
	total := run.Config().Duration
	max := int64(-1) // unknown length: a spinner with the elapsed time
	if total > 0 {
		max = total.Milliseconds()
	}
	b := &progressBar{run: run, total: total, ticker: time.NewTicker(200 * time.Millisecond)}
	b.bar = progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(total > 0),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionClearOnFinish(),
	)
	b.update()
	return b
}

func (b *progressBar) tick() <-chan time.Time {
	if b == nil {
		return nil // blocks forever: no ticks when the bar is off
	}
	return b.ticker.C
}

func (b *progressBar) update() {
	p := b.run.Progress()
	b.bar.Describe(fmt.Sprintf("%d requests, %d errors, %d in flight", p.Requests, p.Errors, p.InFlight))
	if b.total > 0 {
		_ = b.bar.Set64(min(p.Elapsed, b.total).Milliseconds())
	}
}

// pause clears the bar so a message can be printed; the next update redraws it.
func (b *progressBar) pause() {
	if b != nil {
		_ = b.bar.Clear()
	}
}

func (b *progressBar) close() {
	if b == nil {
		return
	}
	b.ticker.Stop()
	_ = b.bar.Finish() // with ClearOnFinish: erased, and the spinner goroutine ends
	_ = b.bar.Clear()
}

// streamLoad is runLoad for a load pod: the stream on stdout, the summary on stderr.
func streamLoad(cfg load.Config, out loadOutput, streams Streams, signals <-chan os.Signal) error {
	var at time.Time
	if out.startAtFile != "" {
		var err error
		if at, err = load.WaitStartFile(out.startAtFile, signals); err != nil {
			return err
		}
	}
	run, errc, err := load.StartStream(cfg, at, streams.Out, time.Second)
	if err != nil {
		return usageError("bad flags: %v", err)
	}
	select {
	case <-run.Done():
	case <-signals:
		run.Stop() // the pod is being deleted: report what was measured
	}
	<-run.Done()
	if err := <-errc; err != nil {
		return fmt.Errorf("writing the stream: %w", err)
	}
	return run.Result().WriteSummary(streams.ErrOut)
}
