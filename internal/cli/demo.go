package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/experiment"
	"github.com/gracelab/gracelab/internal/kube"
	"github.com/gracelab/gracelab/internal/load"
	"github.com/gracelab/gracelab/internal/localkube"
	"github.com/gracelab/gracelab/internal/report"
	"github.com/gracelab/gracelab/k8s"
)

// demoOptions are the flags of `gracelab demo`.
type demoOptions struct {
	scenarios      string
	manifests      string
	duration       time.Duration
	restartAt      time.Duration
	settleTail     time.Duration
	rolloutTimeout time.Duration
	vus            int
	think          time.Duration
	rate           float64
	timeout        time.Duration
	connections    string
	method         string
	endpointLag    time.Duration
	port           int
	out            string
	quiet          bool

	// Real cluster (--cluster).
	kubeFlags
	keep            bool
	target          string
	imageUpstream   string
	imageDownstream string
}

// Timeouts on a real cluster: the first image pulls and a namespace deletion take minutes.
const (
	kubeUpTimeout      = 5 * time.Minute
	kubeServingTimeout = time.Minute
	kubeDownTimeout    = kube.DefaultDeleteTimeout + 30*time.Second
)

// demoPlan is a validated demo: what runDemo needs, nothing parsed any more.
type demoPlan struct {
	exp         experiment.Config
	settings    report.Settings
	out         string
	endpointLag time.Duration
	port        int
	progress    func(experiment.Progress) // nil: quiet
	executable  string                    // pods' binary; "" = this one
	kube        *kubePlan                 // nil: the embedded cluster
}

// kubePlan is the real cluster a demo runs on: one client for every scenario, and the options
// each scenario's kube.Cluster gets (Manifests and Logger are set per scenario).
type kubePlan struct {
	client  kubernetes.Interface
	context string
	opts    kube.Options
}

func newDemoCommand(streams Streams) *cobra.Command {
	return newDemoCommandFor(&demoOptions{}, streams)
}

// newDemoCommandFor binds the flags to o, so tests can plan without running.
func newDemoCommandFor(o *demoOptions, streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole drill (v1, v2, v3 under a rolling restart) on the embedded cluster or Kubernetes",
		Long: `For each scenario (the manifest directories built into gracelab: v1 no protection,
v2 graceful, v3 graceful + retry) start the embedded cluster, send load through the
downstream, restart the upstream Deployment at --restart-at exactly as 'kubectl rollout
restart' does, and keep the load running for at least --duration and until the rollout
has settled (no old pod left) plus --settle-tail. Then print the comparison table and
write the report directory: report.json, REPORT.md, report.html and timeline charts.

With --cluster the same drill runs on a real Kubernetes cluster, the kubeconfig's current
context (or --kubeconfig, --context). Each scenario's manifests are applied server-side
into a new namespace gracelab-XXXXX, labelled as gracelab's and deleted afterwards unless
--keep (with --namespace, an existing namespace is used and never deleted; gracelab
refuses to touch upstream/downstream objects it did not create there). The load goes to
--target, the URL where this machine reaches the downstream Service (Docker Desktop's
LoadBalancer: http://localhost:8000/; else a NodePort, or the ClusterIP where the host
routes to it; default: the Service's LoadBalancer address, else its ClusterIP). A target
that matches none of the Service's addresses (a kubectl port-forward pins one pod and
bypasses the Service) is reported as a warning. The images must be pullable by the
cluster (load them into kind or minikube first) or overridden with --image-upstream and
--image-downstream. --endpoint-lag and --port are for the embedded cluster only.

Exit code 0 when the run completed, whatever the errors it measured; 1 when the run itself
failed (a cluster did not come up, a rollout did not settle) or was interrupted; 2 for bad
flags. Ctrl-C stops the current scenario, tears its cluster down and still writes the
report of what ran; a second Ctrl-C exits at once.`,
		Example: `  gracelab demo
  gracelab demo --duration 60s --restart-at 10s          # the original demo's timing
  gracelab demo --scenarios v1 --rate 150 --connections reuse
  gracelab demo --manifests ./my-app/ --port 8080
  gracelab demo --cluster --target http://localhost:8000/   # Docker Desktop Kubernetes
  gracelab demo --cluster --context kind-kind --scenarios v2 --keep   # target: the LoadBalancer (cloud-provider-kind)
  gracelab demo --cluster --namespace lab --target http://192.168.49.2:31234/ \
      --image-upstream registry.example/upstream:1.2 --image-downstream registry.example/downstream:1.2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plan, err := o.plan(cmd, time.Now())
			if err != nil {
				return err
			}
			if !o.quiet {
				pp := experiment.NewProgressPrinter(streams.ErrOut, isTerminal(streams.ErrOut))
				plan.progress = pp.Update
			}
			signals := make(chan os.Signal, 2)
			signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(signals)
			return runDemo(plan, streams, signals)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.scenarios, "scenarios", "v1,v2,v3", "built-in scenarios to run, in order")
	f.StringVar(&o.manifests, "manifests", "", "run this manifest directory instead, as one scenario named after it")
	f.DurationVar(&o.duration, "duration", 30*time.Second, "load runs at least this long")
	f.DurationVar(&o.restartAt, "restart-at", 5*time.Second, "when the rolling restart of the upstream starts, from the load's start")
	f.DurationVar(&o.settleTail, "settle-tail", experiment.DefaultSettleTail, "load continues this long after the rollout settled (one upstream timeout)")
	f.DurationVar(&o.rolloutTimeout, "rollout-timeout", experiment.DefaultRolloutTimeout, "a rollout not settled by then fails the scenario")
	f.IntVar(&o.vus, "vus", 15, "closed model: virtual users")
	f.DurationVar(&o.think, "think", 100*time.Millisecond, "closed model: pause after each response")
	f.Float64Var(&o.rate, "rate", 0, "open model: requests per second at fixed arrival times (instead of --vus/--think)")
	f.DurationVar(&o.timeout, "timeout", load.DefaultTimeout, "per-request timeout of the load")
	f.StringVar(&o.connections, "connections", load.ConnectionsNew, "new (a TCP connection per request) or reuse (keep-alive)")
	f.StringVar(&o.method, "method", "GET", "GET or POST")
	f.DurationVar(&o.endpointLag, "endpoint-lag", time.Second, "how long an endpoint change takes to reach the Service proxies (kube-proxy's sync)")
	f.IntVar(&o.port, "port", localkube.DefaultLoadBalancerPort, "port of the downstream LoadBalancer on 127.0.0.1 (0: the OS chooses)")
	f.StringVar(&o.out, "out", "", "report directory (default reports/<timestamp>/)")
	f.BoolVar(&o.quiet, "quiet", false, "no progress display")
	o.kubeFlags.register(cmd, "run on a real Kubernetes cluster (the kubeconfig's current context) instead of the embedded one",
		"namespace to deploy into (default: a new gracelab-XXXXX, deleted afterwards unless --keep); with --cluster")
	f.BoolVar(&o.keep, "keep", false, "leave the namespace and objects in place afterwards; with --cluster")
	f.StringVar(&o.target, "target", "", "URL of the downstream Service as this machine reaches it (default: its LoadBalancer address, else its ClusterIP); with --cluster")
	f.StringVar(&o.imageUpstream, "image-upstream", "", "image for the upstream container instead of the manifests'; with --cluster")
	f.StringVar(&o.imageDownstream, "image-downstream", "", "image for the downstream container instead of the manifests'; with --cluster")
	return cmd
}

// plan validates every flag before anything starts; each problem is a usage error that names
// the flag.
func (o *demoOptions) plan(cmd *cobra.Command, now time.Time) (*demoPlan, error) {
	changed := cmd.Flags().Changed
	switch {
	case o.duration <= 0:
		return nil, usageError("--duration must be positive, for example 30s")
	case o.restartAt < 0:
		return nil, usageError("--restart-at must not be negative")
	case o.restartAt >= o.duration:
		return nil, usageError("--restart-at (%s) must be < --duration (%s): the restart has to happen under load", o.restartAt, o.duration)
	case o.settleTail < 0:
		return nil, usageError("--settle-tail must not be negative")
	case o.rolloutTimeout <= 0:
		return nil, usageError("--rollout-timeout must be positive")
	case o.endpointLag <= 0:
		return nil, usageError("--endpoint-lag must be positive, for example 1s")
	case o.port < 0 || o.port > 65535:
		return nil, usageError("--port %d is out of range: give 1-65535 (0 lets the OS choose)", o.port)
	case o.timeout <= 0:
		return nil, usageError("--timeout must be positive, for example 10s")
	}
	if err := o.needCluster(cmd, "kubeconfig", "context", "namespace", "keep", "target", "image-upstream", "image-downstream"); err != nil {
		return nil, err
	}
	if o.cluster {
		switch {
		case changed("endpoint-lag"):
			return nil, usageError("--endpoint-lag is for the embedded cluster: drop it with --cluster (Kubernetes propagates endpoints itself)")
		case changed("port"):
			return nil, usageError("--port is for the embedded cluster: drop it with --cluster and give the downstream's URL with --target")
		}
		for name, v := range map[string]string{"kubeconfig": o.kubeconfig, "context": o.context, "namespace": o.namespace,
			"target": o.target, "image-upstream": o.imageUpstream, "image-downstream": o.imageDownstream} {
			if err := nonEmpty(cmd, name, v); err != nil {
				return nil, err
			}
		}
	}

	var scenarios []experiment.Scenario
	if changed("manifests") {
		if changed("scenarios") {
			return nil, usageError("--manifests and --scenarios exclude each other: --manifests runs one directory of your own")
		}
		sc, err := experiment.FromDir(o.manifests)
		if err != nil {
			return nil, usageError("--manifests: %v", err)
		}
		scenarios = []experiment.Scenario{sc}
	} else {
		catalog, err := experiment.Catalog(k8s.FS, "k8s")
		if err != nil {
			return nil, err
		}
		var names []string
		for _, n := range strings.Split(o.scenarios, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
		if scenarios, err = experiment.Select(catalog, names); err != nil {
			return nil, usageError("--scenarios: %v", err)
		}
	}

	lc := load.Config{Method: strings.ToUpper(o.method), Timeout: o.timeout, Connections: o.connections}
	if changed("rate") {
		if changed("vus") || changed("think") {
			return nil, usageError("--vus and --think are for the closed model: drop them, or drop --rate")
		}
		lc.Model, lc.Rate = load.Open, o.rate
	} else {
		lc.Model, lc.VUs, lc.Think = load.Closed, o.vus, o.think
	}

	out := o.out
	if out == "" {
		out = filepath.Join("reports", now.Format("20060102-150405"))
	}
	if _, err := os.Stat(filepath.Join(out, report.FileName)); err == nil {
		return nil, usageError("--out %s already holds a report: choose another directory", out)
	}

	exp := experiment.Config{
		Scenarios: scenarios, Load: lc, Duration: o.duration, RestartAt: o.restartAt,
		Deployment: experiment.DefaultDeployment, SettleTail: o.settleTail, RolloutTimeout: o.rolloutTimeout,
	}
	exp.Factory = func(experiment.Scenario) (cluster.Cluster, error) { return nil, errors.New("no cluster factory") }
	if err := exp.Validate(); err != nil {
		return nil, usageError("bad flags: %v", err)
	}
	var kp *kubePlan
	if o.cluster {
		var err error
		if kp, err = o.kubePlan(scenarios); err != nil {
			return nil, err
		}
		exp.UpTimeout, exp.ServingTimeout, exp.DownTimeout = kubeUpTimeout, kubeServingTimeout, kubeDownTimeout
	}
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.Name
	}
	settings := report.Settings{
		Scenarios: names, Duration: report.Duration(o.duration), RestartAt: report.Duration(o.restartAt),
		Deployment: exp.Deployment, SettleTail: report.Duration(o.settleTail), Model: string(lc.Model),
		VUs: lc.VUs, Think: report.Duration(lc.Think), Rate: lc.Rate, Timeout: report.Duration(lc.Timeout),
		Connections: lc.Connections, Method: lc.Method, EndpointLag: report.Duration(o.endpointLag),
	}
	if kp != nil {
		settings.EndpointLag, settings.Target = 0, o.target
	}
	return &demoPlan{exp: exp, settings: settings, out: out, endpointLag: o.endpointLag, port: o.port, kube: kp}, nil
}

// kubePlan builds the client (nothing is contacted yet) and checks every scenario's manifests,
// image overrides and target with kube.New, so bad input fails before anything is created.
func (o *demoOptions) kubePlan(scenarios []experiment.Scenario) (*kubePlan, error) {
	client, contextName, err := o.client()
	if err != nil {
		return nil, err
	}
	images := map[string]string{}
	if o.imageUpstream != "" {
		images["upstream"] = o.imageUpstream
	}
	if o.imageDownstream != "" {
		images["downstream"] = o.imageDownstream
	}
	kp := &kubePlan{client: client, context: contextName, opts: kube.Options{
		Kubeconfig: o.kubeconfig, Context: o.context, Namespace: o.namespace, Keep: o.keep,
		Images: images, Target: o.target, RolloutTimeout: o.rolloutTimeout,
	}}
	for _, sc := range scenarios {
		opts := kp.opts
		opts.Manifests = sc.FS
		if _, err := kube.New(client, opts); err != nil {
			return nil, usageError("--cluster: scenario %s: %v", sc.Name, err)
		}
	}
	return kp, nil
}

// runDemo runs the drill on the embedded cluster and writes the report. The first signal
// interrupts the drill (the report of what ran is still written); a second returns at once.
func runDemo(plan *demoPlan, streams Streams, signals <-chan os.Signal) error {
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
		if plan.kube != nil {
			opts := plan.kube.opts
			opts.Manifests, opts.Logger = sc.FS, logger
			c, err := kube.New(plan.kube.client, opts)
			if err != nil {
				return nil, err // not a typed nil in the interface
			}
			return c, nil
		}
		return localkube.New(localkube.Options{
			Manifests: sc.FS, Executable: plan.executable, EndpointLag: plan.endpointLag,
			LoadBalancerPort: plan.port, Logger: logger, LogDir: dir,
		})
	}
	exp.Progress = plan.progress
	clusterName, logsNote := "embedded", "cluster and pod logs"
	if plan.kube != nil {
		clusterName, logsNote = "kubernetes ("+plan.kube.context+")", "what gracelab did on the cluster"
		fmt.Fprintf(streams.ErrOut, "Running on Kubernetes, context %s\n", plan.kube.context)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		scenarios []report.Scenario
		err       error
	}
	done := make(chan result, 1)
	go func() {
		s, err := experiment.Run(ctx, exp)
		done <- result{s, err}
	}()

	var res result
	select {
	case res = <-done:
	case <-signals:
		fmt.Fprintln(streams.ErrOut, "interrupted: stopping the load and tearing the cluster down; the report of what ran will still be written (Ctrl-C again to exit at once)")
		cancel()
		select {
		case res = <-done:
		case <-signals:
			if plan.kube != nil {
				return &ExitError{Code: ExitFailed, Err: fmt.Errorf("interrupted twice: exiting at once without a report; %s", leftBehind(plan.kube.opts))}
			}
			return &ExitError{Code: ExitFailed, Err: errors.New("interrupted twice: exiting at once without a report")}
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
	rep := &report.Report{
		Schema: report.SchemaVersion, Created: time.Now().UTC(), Cluster: clusterName,
		Host: report.CurrentHost(), Settings: settings, Scenarios: res.scenarios,
	}
	fmt.Fprintln(streams.Out)
	if err := report.WriteTable(streams.Out, rep); err != nil {
		return err
	}
	files, werr := report.WriteAll(plan.out, rep)
	printFiles(streams, plan.out, files)
	fmt.Fprintf(streams.Out, "  %s (%s)\n", filepath.Join(plan.out, "logs"), logsNote)

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
	return nil
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
