package cli

// Running an ablation: each scenario through the drill's run path, then the verdict and its report.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gracelab/gracelab/internal/ablate"
	"github.com/gracelab/gracelab/internal/experiment"
	"github.com/gracelab/gracelab/internal/report"
)

// ablationReport is report.json of an ablation: the runs' scenarios, and the verdict.
type ablationReport struct {
	*report.Report
	Ablation ablate.Outcome `json:"ablation"`
}

// runAblation prints the variants and the estimate, runs each scenario through the drill's run
// path (its report in <out>/runs/<scenario>/), and writes the verdict. The first signal stops
// the scenario under way and skips the rest; the finished ones are judged.
func runAblation(ap *ablatePlan, quiet bool, streams Streams) error {
	if err := writeScaled(streams.Out, ap.scaled); err != nil {
		return err
	}
	if err := ablate.WriteList(streams.Out, ap.variants, ap.skipped); err != nil {
		return err
	}
	first := ap.runs[0].plan.exp
	if line := ap.disruptionLine(); line != "" {
		fmt.Fprintf(streams.Out, "\n%s\n", line)
	}
	fmt.Fprintf(streams.Out, "\n%d scenarios (bases and variants), %d %ss each, %s apart plus a %s tail: about %s.\n\n",
		len(ap.runs), ap.repeat, ap.unit(), first.RolloutGap, first.SettleTail, ap.estimate.Round(10*time.Second))
	if err := os.MkdirAll(ap.out, 0o755); err != nil {
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("creating the report directory: %w", err)}
	}

	// One watcher for the whole ablation; each scenario's run gets the signals through its own
	// channel, so a signal between two scenarios still stops the ablation.
	signals := streams.Signals
	if signals == nil {
		ch := make(chan os.Signal, 2)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(ch)
		signals = ch
	}
	var mu sync.Mutex
	var current chan os.Signal
	interrupted := false
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case s := <-signals:
				mu.Lock()
				interrupted = true
				if current != nil {
					select {
					case current <- s:
					default:
					}
				}
				mu.Unlock()
			case <-done:
				return
			}
		}
	}()

	var progress func(experiment.Progress)
	if !quiet {
		progress = newDrillProgress(streams.ErrOut, isTerminal(streams.ErrOut)).update
	}
	measured := map[string]ablate.Measured{}
	var reports []*report.Report
	var failed []string
	breached := false
	start := time.Now()
	var estimatedDone time.Duration
	for i, r := range ap.runs {
		mu.Lock()
		stop := interrupted
		current = make(chan os.Signal, 2)
		sig := current
		mu.Unlock()
		if stop {
			break
		}
		p := *r.plan
		if progress != nil {
			index, total := i+1, len(ap.runs)
			p.progress = func(pr experiment.Progress) {
				pr.Index, pr.Total = index, total
				progress(pr)
			}
		}
		if err := os.MkdirAll(p.out, 0o755); err != nil {
			return &ExitError{Code: ExitFailed, Err: fmt.Errorf("creating the report directory: %w", err)}
		}
		// The scenario's own table goes to a file; the terminal gets the verdict at the end.
		summary, err := os.Create(filepath.Join(p.out, "summary.txt"))
		if err != nil {
			return &ExitError{Code: ExitFailed, Err: err}
		}
		runErr := runDrill(&p, Streams{In: streams.In, Out: summary, ErrOut: streams.ErrOut, Signals: sig})
		summary.Close()
		mu.Lock()
		stop = interrupted
		mu.Unlock()

		var exitErr *ExitError
		if errors.As(runErr, &exitErr) && exitErr.Code == ExitBreached {
			breached, runErr = true, nil
		}
		rep, rerr := report.ReadDir(p.out)
		if rerr != nil || len(rep.Scenarios) == 0 {
			if !stop {
				failed = append(failed, r.name)
				fmt.Fprintf(streams.ErrOut, "gracelab: %s: %v\n", r.name, errors.Join(runErr, rerr))
			}
			continue // not run: no report
		}
		reports = append(reports, rep)
		m := measuredOf(rep.Scenarios[0])
		switch {
		case stop:
			m.Failure = "interrupted"
		case runErr != nil && m.Failure == "":
			m.Failure = runErr.Error()
		}
		if m.Failure != "" && !stop {
			failed = append(failed, r.name)
		}
		measured[r.name] = m
		estimatedDone += ap.perRun[i]
		left := time.Duration(0)
		for _, e := range ap.perRun[i+1:] {
			left += e
		}
		// Correct the rest of the estimate by how the finished scenarios compared with theirs.
		left = time.Duration(float64(left) * float64(time.Since(start)) / float64(estimatedDone))
		line := fmt.Sprintf("[%d/%d] %s: losses per %s %s", i+1, len(ap.runs), r.name, ap.unit(), strings.Trim(fmt.Sprint(m.Losses), "[]"))
		if m.Failure != "" {
			line += " (" + m.Failure + ")"
		}
		if i+1 < len(ap.runs) && !stop {
			line += fmt.Sprintf("; about %s left", left.Round(10*time.Second))
		}
		fmt.Fprintln(streams.ErrOut, line)
	}
	mu.Lock()
	stopped := interrupted
	mu.Unlock()

	outcome, err := ablate.Assess(ap.variants, measured, ap.repeat, ap.skipped)
	if err != nil {
		return &ExitError{Code: ExitFailed, Err: err}
	}
	outcome = outcome.Under(string(ap.disruption))
	if len(reports) == 0 {
		return &ExitError{Code: ExitFailed, Err: errors.New("interrupted before any scenario ran: no report")}
	}
	fmt.Fprintf(streams.Out, "\nVerdict (losses are the failed requests sent in each %s's window):\n", ap.unit())
	if err := outcome.WriteTable(streams.Out); err != nil {
		return err
	}
	if err := outcome.WriteParagraphs(streams.Out); err != nil {
		return err
	}
	if err := writeAblationReport(ap.out, reports, outcome); err != nil {
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("writing the report: %w", err)}
	}
	fmt.Fprintf(streams.Out, "\nReport in %s:\n  %s\n  %s\n  %s (each scenario's report, charts and logs)\n", ap.out,
		filepath.Join(ap.out, report.FileName), filepath.Join(ap.out, report.MarkdownName), filepath.Join(ap.out, "runs"))

	switch {
	case stopped:
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("interrupted: the report judges the %d finished scenarios", len(measured)-countFailed(measured))}
	case len(failed) > 0:
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("the run failed for %s (see above and the logs)", strings.Join(failed, ", "))}
	case breached:
		return &ExitError{Code: ExitBreached, Err: errors.New("a threshold was breached (see each scenario's summary.txt)")}
	}
	return nil
}

func countFailed(m map[string]ablate.Measured) int {
	n := 0
	for _, x := range m {
		if x.Failure != "" {
			n++
		}
	}
	return n
}

// measuredOf reads a scenario's per-rollout losses from its report: its rollouts when it ran
// several, else the run as one.
func measuredOf(s report.Scenario) ablate.Measured {
	m := ablate.Measured{Failure: s.Failure}
	if s.Result == nil {
		if m.Failure == "" {
			m.Failure = "nothing measured"
		}
		return m
	}
	if len(s.Rollouts) == 0 {
		m.Losses = []int64{s.Errors}
		if s.RolloutSeconds > 0 {
			m.RolloutSeconds = []float64{s.RolloutSeconds}
		}
		m.WorstLatency = time.Duration(s.Latency.Max * float64(time.Millisecond))
		return m
	}
	for _, r := range s.Rollouts {
		m.Losses = append(m.Losses, r.Errors)
		if r.RolloutSeconds > 0 {
			m.RolloutSeconds = append(m.RolloutSeconds, r.RolloutSeconds)
		}
		m.WorstLatency = max(m.WorstLatency, time.Duration(r.LatencyMax*float64(time.Millisecond)))
	}
	return m
}

// writeAblationReport writes <out>/report.json (every scenario's report merged, and the
// verdict under "ablation") and <out>/REPORT.md (the verdict, then the scenarios as demo's
// REPORT.md shows them; their charts are in runs/<scenario>/).
func writeAblationReport(out string, reports []*report.Report, outcome ablate.Outcome) error {
	merged := *reports[0]
	merged.Scenarios, merged.Breaches, merged.Comparisons = nil, nil, nil
	merged.Settings.Scenarios = nil
	merged.Created = time.Now().UTC()
	for _, r := range reports {
		merged.Scenarios = append(merged.Scenarios, r.Scenarios...)
		merged.Breaches = append(merged.Breaches, r.Breaches...)
		merged.Settings.Scenarios = append(merged.Settings.Scenarios, r.Settings.Scenarios...)
	}
	var js bytes.Buffer
	if err := (ablationReport{Report: &merged, Ablation: outcome}).writeJSON(&js); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, report.FileName), js.Bytes(), 0o644); err != nil {
		return err
	}
	var md bytes.Buffer
	md.WriteString("# gracelab ablate: which protection prevents the errors\n\n")
	link := func(s string) string {
		return filepath.ToSlash(filepath.Join("runs", safeDirName(s), report.MarkdownName))
	}
	if err := outcome.WriteMarkdown(&md, link); err != nil {
		return err
	}
	md.WriteString("\n---\n\n")
	if err := report.WriteMarkdown(&md, &merged, nil); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, report.MarkdownName), md.Bytes(), 0o644)
}

func (r ablationReport) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
