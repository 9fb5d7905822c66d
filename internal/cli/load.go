package cli

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gracelab/gracelab/internal/load"
)

// loadOptions are the flags of `gracelab load`.
type loadOptions struct {
	url string
	loadFlags
	jsonPath     string
	maxErrorRate float64
	quiet        bool
	stream       bool
	startAtFile  string
	request      load.RequestFlags
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
			return runLoad(cfg, out, streams)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.url, "url", "", "URL to send requests to (required)")
	o.loadFlags.register(cmd, "how long to send; 0 = until Ctrl-C")
	f.StringVar(&o.jsonPath, "json", "", "write the full result as JSON to this file (- for stdout)")
	f.Float64Var(&o.maxErrorRate, "max-error-rate", 0, "exit 3 when the error rate is above this fraction (0.01 = 1%)")
	f.BoolVar(&o.quiet, "quiet", false, "no progress bar")
	f.BoolVar(&o.stream, "stream", false, "write per-second JSON lines and a summary line to stdout (the load pods of drill --cluster; see docs/cluster-drill.md)")
	f.StringVar(&o.startAtFile, "start-at-file", "", "with --stream: wait until this file holds an RFC 3339 instant, then start at it")
	f.StringArrayVarP(&o.request.Headers, "header", "H", nil, "request header 'Key: Value' (repeatable), or @FILE: one header a line")
	f.StringVar(&o.request.Body, "body", "", "request body: a string, or @FILE")
	f.StringVar(&o.request.ExpectStatus, "expect-status", "", "statuses that count as success: 2xx (default) or a list such as 200,204")
	f.StringVar(&o.request.ExpectBody, "expect-body", "", "a regular expression every successful answer's body must match")
	return cmd
}

// resolve turns the flags into a load configuration, or a usage error naming what to change.
func (o *loadOptions) resolve(cmd *cobra.Command) (load.Config, loadOutput, error) {
	out := loadOutput{jsonPath: o.jsonPath, maxErrorRate: -1, stream: o.stream, startAtFile: o.startAtFile}
	if o.stream && o.jsonPath == "-" || o.startAtFile != "" && !o.stream {
		return load.Config{}, out, usageError("--stream writes stdout and --start-at-file needs --stream: drop --json - or add --stream")
	}
	if o.url == "" {
		return load.Config{}, out, usageError("--url is required, for example --url http://127.0.0.1:8000/")
	}
	cfg, err := o.loadFlags.resolve(cmd)
	if err != nil {
		return cfg, out, err
	}
	cfg.URL = o.url
	if err := o.request.Apply(&cfg); err != nil {
		return cfg, out, usageError("%v", err)
	}
	if cmd.Flags().Changed("max-error-rate") {
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
func runLoad(cfg load.Config, out loadOutput, streams Streams) error {
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
		return streamLoad(cfg, out, streams)
	}
	// Signals are watched before the first request: an interrupt at any instant of the run
	// stops it with a report, never by the signal's default action.
	in, stop := watchInterrupts(streams)
	defer stop()
	run, err := load.Start(cfg)
	if err != nil {
		return usageError("bad flags: %v", err)
	}
	var bar *progressBar
	if out.progress {
		bar = newProgressBar(streams.ErrOut, run)
	}
	interrupted := in.ctx.Done()
wait:
	for {
		select {
		case <-run.Done():
			break wait
		case <-in.hard:
			bar.close()
			return errInterruptedTwice
		case <-interrupted:
			interrupted = nil
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
		return &ExitError{Code: ExitBreached, Err: fmt.Errorf("error rate %.2f%% is above --max-error-rate %.2f%%",
			100*res.ErrorRate, 100*out.maxErrorRate)}
	}
	return nil
}

// streamLoad is runLoad for a load pod: the stream on stdout, ending with its summary line.
func streamLoad(cfg load.Config, out loadOutput, streams Streams) error {
	in, stop := watchInterrupts(streams)
	defer stop()
	var at time.Time
	if out.startAtFile != "" {
		var err error
		if at, err = load.WaitStartFile(out.startAtFile, in.ctx.Done()); err != nil {
			return err
		}
	}
	run, errc, err := load.StartStream(cfg, at, streams.Out, time.Second)
	if err != nil {
		return usageError("bad flags: %v", err)
	}
	select {
	case <-run.Done():
	case <-in.ctx.Done():
		run.Stop() // the pod is being deleted: report what was measured
	}
	<-run.Done()
	if err := <-errc; err != nil {
		return fmt.Errorf("writing the stream: %w", err)
	}
	// No text summary: stderr shares the pod's log with the stream, and the container runtime
	// may interleave it with the long summary line.
	return nil
}
