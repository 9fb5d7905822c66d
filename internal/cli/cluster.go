package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/experiment"
	"github.com/gracelab/gracelab/internal/localkube"
	"github.com/gracelab/gracelab/k8s"
)

// clusterUpOptions are the flags of `gracelab cluster up`.
type clusterUpOptions struct {
	file        string
	port        int
	endpointLag time.Duration
	logDir      string
	sandbox     string
}

func newClusterCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Run the embedded cluster in the foreground",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError("missing subcommand: gracelab cluster up -f DIR")
		},
	}
	cmd.AddCommand(newClusterUpCommand(streams))
	return cmd
}

func newClusterUpCommand(streams Streams) *cobra.Command {
	o := &clusterUpOptions{}
	cmd := &cobra.Command{
		Use:   "up -f DIR|v1|v2|v3",
		Short: "Run a manifest directory on the embedded cluster until Ctrl-C",
		Long: `Run the Deployments and Services of a manifest directory as local processes (the
embedded cluster) and keep them running in the foreground, printing every pod and
endpoint change. The LoadBalancer Service (the downstream) listens on 127.0.0.1:--port.

From another terminal, send load with 'gracelab load' (or k6) and trigger a rolling
restart with 'gracelab restart deployment upstream'. Ctrl-C tears everything down;
a second Ctrl-C exits at once (the pods die with this process).

-f takes a directory, or the name of a built-in scenario (v1, v2, v3), or the name of a
built-in manifest directory (k8s/v2-graceful/), which works without the source tree.`,
		Example: `  gracelab cluster up -f k8s/v2-graceful/
  gracelab cluster up -f v1 --port 8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.file == "" {
				return usageError("-f is required: a manifest directory, or one of v1, v2, v3")
			}
			if o.port < 0 || o.port > 65535 {
				return usageError("--port %d is out of range: give 1-65535 (0 lets the OS choose)", o.port)
			}
			if cmd.Flags().Changed("endpoint-lag") && o.endpointLag <= 0 {
				return usageError("--endpoint-lag must be positive, for example 1s")
			}
			if _, err := localkube.ParseSandboxMode(o.sandbox); err != nil {
				return usageError("%v", err)
			}
			catalog, err := experiment.Catalog(k8s.FS, "k8s")
			if err != nil {
				return err
			}
			sc, err := experiment.Resolve(o.file, catalog)
			if err != nil {
				return usageError("-f: %v", err)
			}
			return runClusterUp(sc, o, streams)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "manifest directory, or a built-in scenario: v1, v2, v3 (required)")
	f.IntVar(&o.port, "port", localkube.DefaultLoadBalancerPort, "port of the LoadBalancer Service on 127.0.0.1 (0: the OS chooses)")
	f.DurationVar(&o.endpointLag, "endpoint-lag", 0, "how long an endpoint change takes to reach the Service proxies (default: drawn per change from a real kube-proxy's measured delay)")
	f.StringVar(&o.logDir, "log-dir", "", "write each pod's stdout and stderr to DIR/<pod>.log (default: discarded)")
	f.StringVar(&o.sandbox, "sandbox", string(localkube.SandboxAuto), "auto, ns (pods in namespaces of their own) or none (docs/sandbox.md)")
	return cmd
}

// checkPortFree says clearly when the LoadBalancer port is taken, before anything starts.
func checkPortFree(port int) error {
	if port == 0 {
		return nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port %d on 127.0.0.1 is taken (by another program, or a `gracelab cluster up` still running): free it, or choose another with --port", port)
	}
	return ln.Close()
}

// runClusterUp starts the cluster, serves the control endpoint and prints events until the
// first signal, then tears down. A second signal returns at once.
func runClusterUp(sc experiment.Scenario, o *clusterUpOptions, streams Streams) error {
	if err := checkPortFree(o.port); err != nil {
		return &ExitError{Code: ExitFailed, Err: err}
	}
	mode, _ := localkube.ParseSandboxMode(o.sandbox) // checked with the flags
	c, err := localkube.New(localkube.Options{Manifests: sc.FS, EndpointLag: o.endpointLag, LoadBalancerPort: o.port, LogDir: o.logDir, Sandbox: mode})
	if err != nil {
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("manifests %s: %w", sc.Manifests, err)}
	}

	in, stop := watchInterrupts(streams)
	defer stop()
	ctx := in.ctx
	go func() {
		<-ctx.Done()
		if !in.interrupted() {
			return
		}
		fmt.Fprintln(streams.ErrOut, "stopping: tearing the cluster down (Ctrl-C again to exit at once)")
	}()

	fmt.Fprintf(streams.Out, "Starting the embedded cluster from %s ...\n", sc.Manifests)
	upDone := make(chan error, 1)
	go func() { upDone <- c.Up(ctx) }()
	err, hard := await(in, upDone)
	if hard != nil {
		return hard
	}
	if err != nil {
		if ctx.Err() != nil {
			return &ExitError{Code: ExitFailed, Err: errors.New("interrupted while the cluster was starting; nothing is left running")}
		}
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("the cluster did not come up: %w", err)}
	}

	down := func() error {
		dctx, dcancel := context.WithTimeout(context.Background(), time.Minute)
		defer dcancel()
		done := make(chan error, 1)
		go func() { done <- c.Down(dctx) }()
		err, hard := await(in, done)
		if hard != nil {
			return hard
		}
		if err != nil {
			return &ExitError{Code: ExitFailed, Err: fmt.Errorf("tearing the cluster down: %w", err)}
		}
		fmt.Fprintln(streams.Out, "The embedded cluster is down.")
		return nil
	}
	ctlAddr, err := c.ServeControl(ctx)
	if err != nil {
		derr := down()
		return &ExitError{Code: ExitFailed, Err: errors.Join(fmt.Errorf("control endpoint: %w", err), derr)}
	}

	target := c.Target()
	fmt.Fprintf(streams.Out, "The embedded cluster is up: %s\n", sc.Manifests)
	fmt.Fprintf(streams.Out, "  pods: %s\n", c.SandboxSummary())
	for _, w := range c.Warnings() {
		fmt.Fprintf(streams.ErrOut, "warning: %s\n", w)
	}
	fmt.Fprintf(streams.Out, "  downstream (LoadBalancer): %s/\n", target)
	for _, p := range c.Pods() {
		fmt.Fprintf(streams.Out, "  pod %-34s %-15s pid %d\n", p.Name, p.IP, p.PID)
	}
	fmt.Fprintf(streams.Out, "  control endpoint: %s (state file %s)\n", ctlAddr, localkube.StateFile())
	fmt.Fprintf(streams.Out, "From another terminal:\n")
	fmt.Fprintf(streams.Out, "  gracelab load --url %s/ --duration 60s\n", target)
	fmt.Fprintf(streams.Out, "  gracelab restart deployment upstream\n")
	fmt.Fprintf(streams.Out, "Ctrl-C tears the cluster down. Events:\n")

	printEvents(ctx, c, streams)
	return down()
}

// printEvents prints the cluster's events as they happen, until ctx ends.
func printEvents(ctx context.Context, c cluster.Cluster, streams Streams) {
	seen := len(c.Events()) // start-up events are summed up by the pod list above
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		evs := c.Events()
		for _, e := range evs[min(seen, len(evs)):] {
			fmt.Fprintln(streams.Out, "  "+formatEvent(e))
		}
		seen = len(evs)
	}
}

func formatEvent(e cluster.Event) string {
	s := fmt.Sprintf("%s  %-19s", e.Time.Format("15:04:05.000"), e.Kind)
	switch {
	case e.Pod != "":
		s += " " + e.Pod
	case e.Deployment != "":
		s += " deployment " + e.Deployment
	}
	if e.Detail != "" {
		s += "  " + e.Detail
	}
	return s
}
