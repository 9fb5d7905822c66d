package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/experiment"
	"github.com/gracelab/gracelab/internal/kube"
	"github.com/gracelab/gracelab/internal/localkube"
	"github.com/gracelab/gracelab/internal/report"
	"github.com/gracelab/gracelab/internal/sandbox"
)

// runPlanned runs a planned drill (the demo's included), with the terminal progress unless
// quiet; planErr, when set, is returned as it is.
func runPlanned(plan *runPlan, planErr error, quiet bool, streams Streams) error {
	if planErr != nil {
		return planErr
	}
	if !quiet {
		plan.progress = newDrillProgress(streams.ErrOut, isTerminal(streams.ErrOut)).update
	}
	return runDrill(plan, streams)
}

// runDrill runs the drill on the embedded cluster or Kubernetes and writes the report. The
// first signal interrupts the drill (the report of what ran is still written); a second
// returns at once.
func runDrill(plan *runPlan, streams Streams) error {
	if plan.kube == nil {
		if err := checkPortFree(plan.port); err != nil {
			return &ExitError{Code: ExitFailed, Err: err}
		}
	}
	if err := os.MkdirAll(plan.out, 0o755); err != nil {
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("creating the report directory: %w", err)}
	}

	// Each scenario's cluster log and pod logs go under <out>/logs/<scenario>/.
	var logMu sync.Mutex
	var logFiles []*os.File
	defer func() {
		logMu.Lock()
		defer logMu.Unlock()
		for _, f := range logFiles {
			f.Close()
		}
	}()
	exp := plan.exp
	exp.Factory = func(sc experiment.Scenario) (cluster.Cluster, error) {
		dir := filepath.Join(plan.out, "logs", safeDirName(sc.Name))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		f, err := os.Create(filepath.Join(dir, "cluster.log"))
		if err != nil {
			return nil, err
		}
		logMu.Lock()
		logFiles = append(logFiles, f)
		logMu.Unlock()
		logger := slog.New(slog.NewTextHandler(f, nil))
		if plan.attach != nil {
			return plan.attach(logger)
		}
		if plan.kube != nil {
			opts := plan.kube.opts
			opts.Manifests, opts.Logger = sc.FS, logger
			c, err := kube.New(plan.kube.client, opts)
			if err != nil {
				return nil, err // not a typed nil in the interface
			}
			return c, nil
		}
		return plan.local.cluster(sc, localkube.Options{
			EndpointLag: plan.endpointLag, LoadBalancerPort: plan.port, Logger: logger, LogDir: dir, Nodes: plan.disrupt.nodeCount(),
		})
	}
	exp.Factory = plan.disrupt.wrap(exp.Factory, streams.ErrOut)
	exp.Progress = plan.progress
	var rolloutsMu sync.Mutex
	rollouts := map[string][]experiment.Rollout{}
	exp.OnRollouts = func(sc experiment.Scenario, rs []experiment.Rollout) {
		rolloutsMu.Lock()
		defer rolloutsMu.Unlock()
		rollouts[sc.Name] = rs
	}
	clusterName, logsNote := "embedded", "cluster and pod logs"
	if plan.kube != nil {
		clusterName, logsNote = "kubernetes ("+plan.kube.context+")", "what gracelab did on the cluster"
		fmt.Fprintf(streams.ErrOut, "Running on Kubernetes, context %s\n", plan.kube.context)
	}

	in, stop := watchInterrupts(streams)
	defer stop()
	type result struct {
		scenarios []report.Scenario
		err       error
	}
	done := make(chan result, 1)
	go func() {
		s, err := experiment.Run(in.ctx, exp)
		done <- result{s, err}
	}()

	var res result
	select {
	case res = <-done:
	case <-in.ctx.Done():
		fmt.Fprintln(streams.ErrOut, "interrupted: stopping the load and tearing the cluster down; the report of what ran will still be written (Ctrl-C again to exit at once)")
		var hard error
		if res, hard = await(in, done); hard != nil {
			plan.disrupt.restoreAll(streams.ErrOut) // nothing stays cordoned or scaled
			if plan.kube != nil {
				return &ExitError{Code: ExitFailed, Err: fmt.Errorf("%w; %s", hard, leftBehind(plan.kube.opts))}
			}
			return hard
		}
	}
	if len(res.scenarios) == 0 {
		if res.err != nil {
			return &ExitError{Code: ExitFailed, Err: fmt.Errorf("interrupted before any scenario ran: %w", res.err)}
		}
		return &ExitError{Code: ExitFailed, Err: errors.New("no scenario ran")}
	}

	settings := plan.settings
	for _, s := range res.scenarios {
		if s.Result != nil && settings.Target == "" {
			settings.Target = s.Result.Config.URL
			break
		}
	}
	rolloutsMu.Lock()
	for i, sc := range res.scenarios {
		res.scenarios[i].Rollouts = reportRollouts(rollouts[sc.Scenario], exp.Rollouts)
	}
	// Judged before writing so report.json holds the breaches; printed after it is written.
	ev, everr := evaluate(plan.thresholds, plan.junit, res.scenarios, rollouts)
	rolloutsMu.Unlock()
	plan.disrupt.label(res.scenarios)
	rep := &report.Report{
		Schema: report.SchemaVersion, Created: time.Now().UTC(), Cluster: clusterName,
		Host: report.CurrentHost(), Settings: settings, Scenarios: res.scenarios, Breaches: breachesOf(ev),
	}
	if err := rep.Summarize(); err != nil {
		return &ExitError{Code: ExitFailed, Err: err}
	}
	// The failure first: a table of a scenario that measured nothing says nothing.
	measured := false
	for _, s := range rep.Scenarios {
		if s.Failure != "" {
			fmt.Fprintf(streams.ErrOut, "gracelab: scenario %s failed: %s\n", s.Scenario, s.Failure)
		}
		measured = measured || s.Result != nil
	}
	if measured {
		fmt.Fprintln(streams.Out)
		if err := plan.disrupt.writeTable(streams.Out, rep); err != nil {
			return err
		}
		if exp.Rollouts > 1 {
			rolloutsMu.Lock()
			writeRollouts(streams.Out, res.scenarios, rollouts)
			rolloutsMu.Unlock()
		}
		if plan.local != nil {
			plan.local.writeFindings(streams.Out)
		}
		writeSandboxLine(streams.Out, rep.Scenarios)
	}
	files, werr := report.WriteAll(plan.out, rep)
	printFiles(streams, plan.out, files)
	fmt.Fprintf(streams.Out, "  %s (%s)\n", filepath.Join(plan.out, "logs"), logsNote)

	// Judged after the report is written; a run failure below wins over a breach.
	verdict := judge(ev, everr, plan.junit, res.scenarios, streams)
	switch {
	case res.err != nil:
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("interrupted: the report holds what ran (%w)", res.err)}
	case werr != nil:
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("writing the report: %w", werr)}
	case rep.Failed():
		var failed []string
		for _, s := range rep.Scenarios {
			if s.Failure != "" {
				failed = append(failed, s.Scenario)
			}
		}
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("the run failed for %s (see above and the logs)", strings.Join(failed, ", "))}
	}
	return verdict
}

// writeRollouts prints one row per rollout of each scenario.
func writeRollouts(w io.Writer, scenarios []report.Scenario, rollouts map[string][]experiment.Rollout) {
	unit, tookHeader := "rollout", "rollout took"
	for _, s := range scenarios {
		if s.Disruption != "" && s.Disruption != string(cluster.DisruptRestart) {
			unit, tookHeader = "disruption", "recovery took"
		}
	}
	if unit == "rollout" {
		fmt.Fprintln(w, "\nRollouts (the requests sent from each restart until it settled plus the tail):")
	} else {
		fmt.Fprintln(w, "\nDisruptions (the requests sent from each disruption until the Deployment settled plus the tail):")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintf(tw, "scenario\t%s\trequests\terrors\tlongest disruption\tworst latency\t%s\n", unit, tookHeader)
	for _, s := range scenarios {
		for _, r := range rollouts[s.Scenario] {
			took := "did not settle"
			if !r.Settled.IsZero() {
				took = fmt.Sprintf("%.1fs", r.Settled.Sub(r.Start).Seconds())
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2fs\t%.0fms\t%s\n", s.Scenario, r.Index, r.Requests, r.Errors,
				r.LongestDisruption.Seconds(), float64(r.LatencyMax)/float64(time.Millisecond), took)
		}
	}
	_ = tw.Flush()
}

// leftBehind says how to clean up by hand what an abandoned run may leave on the cluster.
func leftBehind(o kube.Options) string {
	sel := "app.kubernetes.io/managed-by=gracelab"
	if o.Keep {
		return "--keep was given: nothing is deleted anyway"
	}
	if o.Namespace != "" {
		return fmt.Sprintf("gracelab's objects may be left in namespace %s: kubectl delete deployments,services -n %s -l %s", o.Namespace, o.Namespace, sel)
	}
	return "gracelab's namespace may be left behind: kubectl delete namespaces -l " + sel
}

// safeDirName keeps a scenario name usable as one path element.
func safeDirName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 {
			return '-'
		}
		return r
	}, s)
	if s == "" || s == "." || s == ".." {
		return "scenario"
	}
	return s
}

// writeSandboxLine says once how the embedded cluster ran the pods and, in sandboxes, what a
// pod cannot reach there.
func writeSandboxLine(w io.Writer, scenarios []report.Scenario) {
	for _, s := range scenarios {
		if line := report.SandboxLine(s); line != "" {
			if s.Sandbox == "ns" {
				line = strings.TrimSuffix(line, ".") + ": " + sandbox.Limits + "."
			}
			fmt.Fprintln(w, "\n"+line)
			return
		}
	}
}
