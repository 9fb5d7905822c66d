package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gracelab/gracelab/internal/check"
	"github.com/gracelab/gracelab/internal/manifest"
	"github.com/gracelab/gracelab/internal/report"
)

// checkOptions are gracelab check's flags.
type checkOptions struct {
	kubeFlags
	files       []string
	recursive   bool
	output      string
	failOn      string
	ignore      []string
	propagation time.Duration
	drain       time.Duration
	kubeVersion string
}

func newCheckCommand(streams Streams) *cobra.Command {
	o := &checkOptions{}
	cmd := &cobra.Command{
		Use:   "check (-f PATH ... | --cluster)",
		Short: "Find what will drop requests in a rollout, before it happens",
		Long: `Check manifests (or a namespace's live objects) for what the drills measure: a preStop delay
against endpoint propagation, the grace period against preStop plus drain, a shell as PID 1,
probes, rollout strategy, PodDisruptionBudgets, sidecars. Each finding has a rule ID, a
severity, the object and container, what will happen, and the fix as YAML. docs/check.md
has a section per rule.

Exit code: 1 when a finding at or above --fail-on exists, 0 otherwise, 2 for bad input.`,
		Example: `  gracelab check -f deploy/
  helm template . | gracelab check -f -
  gracelab check -f k8s/ -R -o sarif > check.sarif
  gracelab check --cluster --namespace shop`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCheck(cmd, o, streams)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "filename", "f", nil, "manifest file, directory, or - for stdin (repeatable)")
	f.BoolVarP(&o.recursive, "recursive", "R", false, "read directories given with -f recursively")
	f.StringVarP(&o.output, "output", "o", "text", "text, json or sarif")
	f.StringVar(&o.failOn, "fail-on", "warning", "exit 1 when a finding at or above this severity exists: error, warning, info or none")
	f.StringSliceVar(&o.ignore, "ignore", nil, "rule IDs not to report (repeatable or comma-separated); counted as suppressed")
	f.DurationVar(&o.propagation, "propagation", check.DefaultPropagation, "endpoint propagation budget: the shortest preStop delay that passes")
	f.DurationVar(&o.drain, "drain", check.DefaultDrain, "time a container needs after SIGTERM to drain, added to preStop for the grace period")
	f.StringVar(&o.kubeVersion, "kube-version", "", "Kubernetes version of the target cluster, such as 1.34 (default: the server's with --cluster, else unknown)")
	o.kubeFlags.register(cmd, "check the live objects of a real cluster (read-only: get and list) instead of files",
		"namespace to check with --cluster (default: all namespaces)")
	return cmd
}

// checkOptions validated into the checker's options, before anything is read.
func (o *checkOptions) validate(cmd *cobra.Command) (check.Options, check.Severity, error) {
	var opts check.Options
	if err := o.needCluster(cmd, "kubeconfig", "context", "namespace"); err != nil {
		return opts, 0, err
	}
	if o.cluster == (len(o.files) > 0) {
		return opts, 0, usageError("give manifests with -f FILE|DIR|- or check a live cluster with --cluster (one of the two)")
	}
	if o.recursive && o.cluster {
		return opts, 0, usageError("-R reads directories given with -f; it does nothing with --cluster")
	}
	switch o.output {
	case "text", "json", "sarif":
	default:
		return opts, 0, usageError("-o %q: want text, json or sarif", o.output)
	}
	failOn, err := check.ParseSeverity(o.failOn)
	if err != nil {
		return opts, 0, usageError("--fail-on: %v", err)
	}
	if o.propagation <= 0 || o.drain < 0 {
		return opts, 0, usageError("--propagation must be positive and --drain not negative (got %s, %s)", o.propagation, o.drain)
	}
	known := map[string]bool{}
	for _, r := range check.Rules {
		known[r.ID] = true
	}
	for _, id := range o.ignore {
		if !known[strings.TrimSpace(id)] {
			return opts, 0, usageError("--ignore %q: no such rule (docs/check.md lists them)", id)
		}
		opts.Ignore = append(opts.Ignore, strings.TrimSpace(id))
	}
	if o.kubeVersion != "" {
		if opts.KubeMinor, err = check.ParseMinor(o.kubeVersion); err != nil {
			return opts, 0, usageError("--kube-version: %v", err)
		}
	}
	opts.Propagation, opts.Drain = o.propagation, o.drain
	return opts, failOn, nil
}

func runCheck(cmd *cobra.Command, o *checkOptions, streams Streams) error {
	opts, failOn, err := o.validate(cmd)
	if err != nil {
		return err
	}
	var objs []check.Object
	if o.cluster {
		client, _, err := o.client()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
		defer cancel()
		if objs, err = check.FromCluster(ctx, client, o.namespace); err != nil {
			return &ExitError{Code: ExitFailed, Err: err}
		}
		if opts.KubeMinor == 0 {
			if opts.KubeMinor, err = check.ServerMinor(client); err != nil {
				return &ExitError{Code: ExitFailed, Err: err}
			}
		}
	} else {
		files, err := manifest.Collect(o.files, o.recursive, streams.In)
		if err != nil {
			return usageError("%v", err)
		}
		docs, err := manifest.Decode(files, manifest.Options{Lenient: true})
		if err != nil && !errors.Is(err, manifest.ErrNoObjects) {
			return usageError("%v", err)
		}
		objs = check.FromDocuments(docs)
	}
	res := check.Run(objs, opts)
	switch o.output {
	case "json":
		err = check.WriteJSON(streams.Out, res)
	case "sarif":
		err = check.WriteSARIF(streams.Out, res, report.CurrentHost().Gracelab)
	default:
		err = check.WriteText(streams.Out, res, check.TextOptions{Colour: isTerminal(streams.Out) && os.Getenv("NO_COLOR") == ""})
	}
	if err != nil {
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("writing the findings: %w", err)}
	}
	if res.Fails(failOn) {
		return &ExitError{Code: ExitFailed, Err: errReported}
	}
	return nil
}
