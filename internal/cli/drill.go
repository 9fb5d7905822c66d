package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing/fstest"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/gracelab/gracelab/internal/check"
	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/experiment"
	"github.com/gracelab/gracelab/internal/gate"
	"github.com/gracelab/gracelab/internal/image"
	"github.com/gracelab/gracelab/internal/load"
	"github.com/gracelab/gracelab/internal/localkube"
	"github.com/gracelab/gracelab/internal/manifest"
)

// drillOptions are the flags of gracelab drill and of its preset gracelab demo: one struct,
// one planning function (plan, demo_plan.go) and one run (runPlanned, demo_run.go). The
// preset (builtin) is the demo's: its built-in manifests and images, scenarios v1,v2,v3, the
// downstream LoadBalancer as the target and the JSON status check.
type drillOptions struct {
	builtin bool // the demo

	inCluster drillClusterFlags // drill --cluster (drill_cluster.go)

	// What runs, the demo's way: built-in scenarios, or one directory of manifests.
	scenarios string
	manifests string
	// What runs, the drill's way: a team's manifests and programs.
	files     []string
	recursive bool
	runs      []string
	paths     []string
	// target is the drill's Service under test, or the demo's downstream URL with --cluster.
	target     string
	deployment string // default: the drill's target's Deployment, the demo's upstream
	request    load.RequestFlags

	// How it runs: the same flags for every preset (registerRun).
	loadFlags
	rolloutFlags
	gate           gate.Flags
	junit          string
	restartAt      time.Duration
	settleTail     time.Duration
	rolloutTimeout time.Duration
	endpointLag    time.Duration
	disruption     disruptionFlags // disruption.go
	sandbox        string
	out            string
	quiet          bool
	port           int // the LoadBalancer's: the demo's --port, or a local --target's

	// Real cluster (demo --cluster).
	kubeFlags
	keep            bool
	imageUpstream   string
	imageDownstream string
}

// localPlan is what runs on the embedded cluster: each scenario's objects, the programs
// that play the images, and where the load goes.
type localPlan struct {
	// docs are each scenario's honoured objects, by scenario name; a scenario without any
	// (the demo's) is read from its directory when its cluster is made.
	docs     map[string][]manifest.Document
	programs *image.Table
	sandbox  localkube.SandboxMode
	target   drillTarget   // zero: the cluster's own, the downstream LoadBalancer
	skipped  string        // manifest.SkippedLine; "" when none
	findings *check.Result // gracelab check on the drilled manifests; nil: none printed
}

// drillTarget is the Service the load goes to.
type drillTarget struct {
	url     *url.URL // as given
	service string
	port    int32
	lb      bool // the LoadBalancer's local address: sent as given
}

func newDrillCommand(streams Streams) *cobra.Command {
	return newDrillCommandFor(&drillOptions{}, streams)
}

// newDrillCommandFor binds the flags to o, so tests can plan without running.
func newDrillCommandFor(o *drillOptions, streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drill -f PATH... --run IMAGE=PROGRAM [ARGS] --target URL",
		Short: "Drill your own service: your manifests and program under a rolling restart, on the embedded cluster",
		Long: `Run your manifests (files, directories, -R, or - for stdin) on the embedded cluster with your
own programs standing in for the images (--run IMAGE=PROGRAM [ARGS], --path for a manifest
command's paths), send load to --target, restart --deployment under load exactly as
'kubectl rollout restart' does, and report the requests lost, as the demo does.

--target is a Service by its cluster DNS name (http://api:8080/path, api.ns, api.ns.svc,
api.ns.svc.cluster.local), sent to the Service's address with that Host header, or the
LoadBalancer Service's local address (http://127.0.0.1:8000/). --deployment defaults to
the Deployment behind the target's Service. Objects that do not change how traffic reaches
pods (ServiceAccounts, HPAs, ...) are skipped and listed once; docs/drill.md has the rest.

Exit codes, timing, report and Ctrl-C are the demo's: 0 when the run completed, 1 when it
failed or was interrupted, 2 for bad input (nothing started, no report written), 3 when a
threshold was breached.`,
		Example: `  gracelab drill -f deploy/ --run ghcr.io/acme/api=./bin/api --target http://api:8080/api/orders
  kubectl kustomize overlays/dev | gracelab drill -f - --run acme/api=./bin/api --target http://api:8080/
  gracelab drill -f k8s/ -R --run acme/api='./bin/api --config /etc/api.yaml' --path /etc/api.yaml=./dev.yaml \
      --target http://127.0.0.1:8000/ --deployment api --max-errors 0`,
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "filename", "f", nil, "manifest file, directory, or - for stdin (repeatable)")
	f.BoolVarP(&o.recursive, "recursive", "R", false, "read directories given with -f recursively")
	f.StringArrayVar(&o.runs, "run", nil, "IMAGE=PROGRAM [ARGS]: the program that plays an image (repeatable)")
	f.StringArrayVar(&o.paths, "path", nil, "CONTAINER_PATH=LOCAL_PATH: where a manifest command's path is on this machine (repeatable)")
	f.StringVar(&o.target, "target", "", "URL of the Service under test, by its cluster DNS name (http://api:8080/path) or the LoadBalancer's local address")
	f.StringVar(&o.deployment, "deployment", "", "Deployment to restart (default: the one behind the target's Service)")
	f.StringArrayVarP(&o.request.Headers, "header", "H", nil, "request header 'Key: Value' (repeatable)")
	f.StringVar(&o.request.Body, "body", "", "request body: a string, or @FILE")
	f.StringVar(&o.request.ExpectStatus, "expect-status", "", "statuses that count as success: 2xx (default) or a list such as 200,204")
	f.StringVar(&o.request.ExpectBody, "expect-body", "", "a regular expression every successful answer's body must match")
	o.registerRun(cmd, streams, localkube.SandboxAuto)
	o.registerCluster(cmd, streams) // drill_cluster.go
	return cmd
}

// registerRun adds the flags of how a drill runs, the same for every preset (load, rollouts,
// thresholds, timing, sandbox, report), and the run itself: plan, then runPlanned.
func (o *drillOptions) registerRun(cmd *cobra.Command, streams Streams, sandbox localkube.SandboxMode) {
	f := cmd.Flags()
	o.loadFlags.register(cmd, "load runs at least this long")
	o.rolloutFlags.register(cmd)
	o.gate.Register(cmd.Flags(), loadBaseline)
	f.StringVar(&o.junit, "junit", "", "write the thresholds' verdict as JUnit XML to this file (a suite per scenario, a case per rollout and threshold)")
	f.DurationVar(&o.restartAt, "restart-at", 5*time.Second, "when the rolling restart of the upstream starts, from the load's start")
	o.disruption.register(cmd)
	f.DurationVar(&o.settleTail, "settle-tail", experiment.DefaultSettleTail, "load continues this long after the rollout settled (one upstream timeout)")
	f.DurationVar(&o.rolloutTimeout, "rollout-timeout", experiment.DefaultRolloutTimeout, "a rollout not settled by then fails the scenario")
	f.DurationVar(&o.endpointLag, "endpoint-lag", 0, "how long an endpoint change takes to reach the Service proxies (default: drawn per change from a real kube-proxy's measured delay)")
	f.StringVar(&o.sandbox, "sandbox", string(sandbox), "auto, ns (pods in namespaces of their own, docs/sandbox.md) or none (each pod on its own 127.x address); embedded cluster")
	f.StringVar(&o.out, "out", "", "report directory (default reports/<timestamp>/)")
	f.BoolVar(&o.quiet, "quiet", false, "no progress display")
	cmd.Args = cobra.NoArgs
	if streams.In != nil {
		cmd.SetIn(streams.In)
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		plan, err := o.plan(cmd, time.Now())
		return runPlanned(plan, err, o.quiet, streams)
	}
}

// teamObjects reads and checks the drill's manifests, programs and target: its one scenario,
// what runs it, and the Deployment to restart. Each problem is one usage error.
func (o *drillOptions) teamObjects(stdin io.Reader) ([]experiment.Scenario, *localPlan, string, error) {
	if len(o.files) == 0 {
		return nil, nil, "", usageError("give your manifests with -f FILE|DIR|- (repeatable)")
	}
	if o.target == "" {
		return nil, nil, "", usageError("--target is required: the URL of your Service as a pod calls it, for example http://api:8080/")
	}
	files, err := manifest.Collect(o.files, o.recursive, stdin)
	if err != nil {
		return nil, nil, "", usageError("%v", err)
	}
	docs, err := manifest.Decode(files, manifest.Options{})
	if errors.Is(err, manifest.ErrNoObjects) {
		return nil, nil, "", usageError("-f %s: no object in the manifests: give the files of your Deployment and Service", strings.Join(o.files, " -f "))
	}
	if err != nil {
		return nil, nil, "", usageError("%v", err)
	}
	honoured, skipped, err := manifest.Triage(docs, false)
	if err != nil {
		return nil, nil, "", usageError("%v", err)
	}
	programs, err := image.NewTable(o.runs, o.paths)
	if err != nil {
		return nil, nil, "", usageError("%v", err)
	}
	if err := addBuiltinImages(programs); err != nil {
		return nil, nil, "", err
	}
	if err := checkCommands(honoured, programs); err != nil {
		return nil, nil, "", usageError("%v", err)
	}
	target, deployment, err := resolveTarget(o.target, o.deployment, honoured)
	if err != nil {
		return nil, nil, "", usageError("%v", err)
	}
	sc := experiment.Scenario{Name: deployment, Title: deployment, Manifests: strings.Join(o.files, " "), FS: filesFS(files)}
	findings := check.Run(check.FromDocuments(docs), check.Options{})
	l := &localPlan{docs: map[string][]manifest.Document{sc.Name: honoured}, programs: programs, target: target,
		skipped: manifest.SkippedLine(skipped), findings: &findings}
	// New checks the objects and that every image has a program; it starts nothing.
	if _, err := l.cluster(sc, localkube.Options{}); err != nil {
		return nil, nil, "", usageError("%v", err)
	}
	return []experiment.Scenario{sc}, l, deployment, nil
}

// checkCommands checks that every container's command names a program on this machine
// (--path) before anything starts, not as its pod is created. A command that starts with a
// $(VAR) reference is checked then, once expanded.
func checkCommands(docs []manifest.Document, programs *image.Table) error {
	for _, d := range docs {
		dep, ok := d.Object.(*appsv1.Deployment)
		if !ok {
			continue
		}
		spec := dep.Spec.Template.Spec
		for _, ct := range slices.Concat(spec.InitContainers, spec.Containers) {
			if len(ct.Command) == 0 || strings.Contains(ct.Command[0], "$(") {
				continue
			}
			if _, err := programs.Argv(ct.Image, ct.Command, ct.Args); err != nil {
				return fmt.Errorf("%s: Deployment %s, container %s: %v", d.Where(), dep.Name, ct.Name, err)
			}
		}
	}
	return nil
}

// addBuiltinImages maps the demo's images to this gracelab's hidden serve command: they
// stay built in, for the demo and for every drill.
func addBuiltinImages(programs *image.Table) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	for img, args := range localkube.DefaultImages {
		if err := programs.Builtin(img, image.Program{Path: exe, Args: args}); err != nil {
			return err
		}
	}
	return nil
}

// cluster makes scenario sc's embedded cluster from the run's options: its objects (or its
// directory), the programs, the sandbox, the target.
func (l *localPlan) cluster(sc experiment.Scenario, opts localkube.Options) (cluster.Cluster, error) {
	opts.Manifests, opts.Documents, opts.Programs, opts.Sandbox = sc.FS, l.docs[sc.Name], l.programs, l.sandbox
	c, err := localkube.New(opts)
	if err != nil {
		return nil, err
	}
	return &drillCluster{Cluster: c, plan: l}, nil
}

// writeFindings prints gracelab check's findings for the drilled manifests, if any were made.
func (l *localPlan) writeFindings(w io.Writer) {
	if l.findings == nil {
		return
	}
	fmt.Fprintln(w, "\ngracelab check on these manifests:")
	_ = check.WriteText(w, *l.findings, check.TextOptions{NoFix: true})
}

// drillCluster sends the load to the target's Service and reports the skipped objects.
type drillCluster struct {
	*localkube.Cluster
	plan *localPlan
}

func (c *drillCluster) Target() string {
	t := c.plan.target
	switch {
	case t.url == nil:
		return c.Cluster.Target()
	case t.lb:
		return t.url.String()
	}
	addr, ok := c.ServiceAddr(t.service, t.port)
	if !ok {
		return ""
	}
	u := *t.url
	u.Host = addr
	return u.String()
}

func (c *drillCluster) Warnings() []string {
	w := c.Cluster.Warnings()
	if c.plan.skipped != "" {
		w = append([]string{c.plan.skipped}, w...)
	}
	return w
}

// resolveTarget finds the Service --target names (by cluster DNS name, or the LoadBalancer at
// a loopback address) and the Deployment to restart: the one given, else the only one its
// selector matches.
func resolveTarget(raw, deployment string, docs []manifest.Document) (drillTarget, string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return drillTarget{}, "", fmt.Errorf("--target %q: want an http URL such as http://api:8080/path", raw)
	}
	port := int32(80)
	if u.Scheme == "https" {
		port = 443
	}
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return drillTarget{}, "", fmt.Errorf("--target %q: bad port %q", raw, p)
		}
		port = int32(n)
	}
	var services []*corev1.Service
	var deploys []*appsv1.Deployment
	for _, d := range docs {
		switch obj := d.Object.(type) {
		case *corev1.Service:
			services = append(services, obj)
		case *appsv1.Deployment:
			deploys = append(deploys, obj)
		}
	}
	t := drillTarget{url: u}
	var svc *corev1.Service
	host := u.Hostname()
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		for _, s := range services {
			if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
				svc = s
			}
		}
		if svc == nil {
			return t, "", fmt.Errorf("--target %s: a local address reaches only a LoadBalancer Service, and the manifests have none: name a Service, for example http://%s:%d/", raw, firstName(services), port)
		}
		t.lb, t.service, t.port = true, svc.Name, port
	} else {
		name, ns, ok := serviceDNS(host)
		for _, s := range services {
			if ok && s.Name == name && (ns == "" || ns == namespaceOf(s.Namespace)) {
				svc = s
			}
		}
		if svc == nil {
			return t, "", fmt.Errorf("--target %s: no Service %q in the manifests (Services: %s)", raw, host, strings.Join(names(services), ", "))
		}
		var ports []string
		for _, p := range svc.Spec.Ports {
			ports = append(ports, strconv.Itoa(int(p.Port)))
		}
		if !slices.Contains(ports, strconv.Itoa(int(port))) {
			return t, "", fmt.Errorf("--target %s: Service %s has no port %d (its ports: %s)", raw, svc.Name, port, strings.Join(ports, ", "))
		}
		t.service, t.port = svc.Name, port
	}
	if deployment != "" {
		for _, d := range deploys {
			if d.Name == deployment {
				return t, deployment, nil
			}
		}
		return t, "", fmt.Errorf("--deployment %s: no such Deployment in the manifests", deployment)
	}
	var behind []string
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	for _, d := range deploys {
		if namespaceOf(d.Namespace) == namespaceOf(svc.Namespace) && len(svc.Spec.Selector) > 0 && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			behind = append(behind, d.Name)
		}
	}
	switch len(behind) {
	case 0:
		return t, "", fmt.Errorf("--target %s: no Deployment is behind Service %s: name the one to restart with --deployment", raw, svc.Name)
	case 1:
		return t, behind[0], nil
	}
	return t, "", fmt.Errorf("--target %s: Deployments %s are all behind Service %s: choose one with --deployment", raw, strings.Join(behind, ", "), svc.Name)
}

// serviceDNS splits a Service's cluster DNS name: name, name.ns, name.ns.svc,
// name.ns.svc.cluster.local. ns is "" when not given.
func serviceDNS(host string) (name, ns string, ok bool) {
	host = strings.TrimSuffix(strings.TrimSuffix(host, "."), ".cluster.local")
	host = strings.TrimSuffix(host, ".svc")
	parts := strings.Split(host, ".")
	switch len(parts) {
	case 1:
		return parts[0], "", true
	case 2:
		return parts[0], parts[1], true
	}
	return "", "", false
}

func namespaceOf(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

func names(services []*corev1.Service) []string {
	out := make([]string, len(services))
	for i, s := range services {
		out[i] = s.Name
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}

func firstName(services []*corev1.Service) string {
	if len(services) == 0 {
		return "api"
	}
	return services[0].Name
}

// filesFS holds the manifests read for the report's scenario (the cluster runs the decoded
// documents, not these).
func filesFS(files []manifest.File) fstest.MapFS {
	fsys := fstest.MapFS{}
	for i, f := range files {
		fsys[fmt.Sprintf("%02d-%s", i+1, filepath.Base(f.Name))] = &fstest.MapFile{Data: f.Data}
	}
	return fsys
}
