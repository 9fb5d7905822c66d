package cli

import (
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
	"github.com/gracelab/gracelab/internal/image"
	"github.com/gracelab/gracelab/internal/load"
	"github.com/gracelab/gracelab/internal/localkube"
	"github.com/gracelab/gracelab/internal/manifest"
)

// drillOptions are gracelab drill's flags; the timing, load, thresholds and report flags are
// the demo's, and so is the run (runDemo).
type drillOptions struct {
	demoOptions
	files     []string
	recursive bool
	runs      []string
	paths     []string
	sandbox   string
	request   load.RequestFlags
	target    string // not demoOptions.target: that one is --cluster's
	inCluster drillClusterFlags
}

// drillPlan is what the demo's run needs to drill a team's own manifests and programs.
type drillPlan struct {
	docs     []manifest.Document // the honoured objects
	programs *image.Table
	sandbox  localkube.SandboxMode
	target   drillTarget
	skipped  string // manifest.SkippedLine; "" when none
	findings check.Result
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
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ran, err := o.runCluster(cmd, args, streams); ran { // drill_cluster.go
				return err
			}
			// The skipped objects are listed once: as a warning of the scenario (table, report).
			plan, err := o.plan(cmd, streams.In, time.Now())
			return runPlanned(plan, err, o.quiet, streams)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "filename", "f", nil, "manifest file, directory, or - for stdin (repeatable)")
	f.BoolVarP(&o.recursive, "recursive", "R", false, "read directories given with -f recursively")
	f.StringArrayVar(&o.runs, "run", nil, "IMAGE=PROGRAM [ARGS]: the program that plays an image (repeatable)")
	f.StringArrayVar(&o.paths, "path", nil, "CONTAINER_PATH=LOCAL_PATH: where a manifest command's path is on this machine (repeatable)")
	f.StringVar(&o.target, "target", "", "URL of the Service under test, by its cluster DNS name (http://api:8080/path) or the LoadBalancer's local address")
	f.StringVar(&o.deployment, "deployment", "", "Deployment to restart (default: the one behind the target's Service)")
	f.StringVar(&o.sandbox, "sandbox", string(localkube.SandboxAuto), "auto, ns (pods in namespaces of their own) or none")
	f.StringArrayVarP(&o.request.Headers, "header", "H", nil, "request header 'Key: Value' (repeatable)")
	f.StringVar(&o.request.Body, "body", "", "request body: a string, or @FILE")
	f.StringVar(&o.request.ExpectStatus, "expect-status", "", "statuses that count as success: 2xx (default) or a list such as 200,204")
	f.StringVar(&o.request.ExpectBody, "expect-body", "", "a regular expression every successful answer's body must match")
	o.demoOptions.registerRun(cmd)
	o.registerCluster(cmd)
	return cmd
}

// plan reads and checks everything (manifests, programs, target, flags) before anything starts;
// each problem is one usage error.
func (o *drillOptions) plan(cmd *cobra.Command, stdin io.Reader, now time.Time) (*demoPlan, error) {
	if len(o.files) == 0 {
		return nil, usageError("give your manifests with -f FILE|DIR|- (repeatable)")
	}
	if o.target == "" {
		return nil, usageError("--target is required: the URL of your Service as a pod calls it, for example http://api:8080/")
	}
	sandbox, err := localkube.ParseSandboxMode(o.sandbox)
	if err != nil {
		return nil, usageError("%v", err)
	}
	files, err := manifest.Collect(o.files, o.recursive, stdin)
	if err != nil {
		return nil, usageError("%v", err)
	}
	docs, err := manifest.Decode(files, manifest.Options{})
	if err != nil {
		return nil, usageError("%v", err)
	}
	honoured, skipped, err := manifest.Triage(docs, false)
	if err != nil {
		return nil, usageError("%v", err)
	}
	programs, err := image.NewTable(o.runs, o.paths)
	if err != nil {
		return nil, usageError("%v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	for img, args := range localkube.DefaultImages {
		if err := programs.Builtin(img, image.Program{Path: exe, Args: args}); err != nil {
			return nil, err
		}
	}
	target, deployment, err := resolveTarget(o.target, o.deployment, honoured)
	if err != nil {
		return nil, usageError("%v", err)
	}
	d := &drillPlan{docs: honoured, programs: programs, sandbox: sandbox, target: target,
		skipped: manifest.SkippedLine(skipped), findings: check.Run(check.FromDocuments(docs), check.Options{})}
	// New checks the objects and that every image has a program; it starts nothing.
	if _, err := d.cluster(localkube.Options{}); err != nil {
		return nil, usageError("%v", err)
	}

	o.given = []experiment.Scenario{{Name: deployment, Title: deployment, Manifests: strings.Join(o.files, " "), FS: filesFS(files)}}
	o.deployment, o.port = deployment, 0
	if target.lb {
		o.port = int(target.port)
	}
	plan, err := o.demoOptions.plan(cmd, now)
	if err != nil {
		return nil, err
	}
	if err := o.request.Apply(&plan.exp.Load); err != nil {
		return nil, usageError("%v", err)
	}
	// The JSON "status" check is made for the demo's services; a team's is judged by
	// --expect-status and --expect-body.
	plan.exp.Load.Expect.IgnoreJSONStatus = true
	if !target.lb && plan.exp.Load.Header.Get("Host") == "" {
		if plan.exp.Load.Header == nil {
			plan.exp.Load.Header = map[string][]string{}
		}
		plan.exp.Load.Header.Set("Host", target.url.Host) // as the pods' client would send it
	}
	plan.drill, plan.settings.Target = d, o.target
	return plan, nil
}

// cluster makes the embedded cluster of the drilled objects from the demo's options.
func (d *drillPlan) cluster(opts localkube.Options) (cluster.Cluster, error) {
	opts.Manifests, opts.Documents, opts.Programs, opts.Sandbox = nil, d.docs, d.programs, d.sandbox
	c, err := localkube.New(opts)
	if err != nil {
		return nil, err
	}
	return &drillCluster{Cluster: c, plan: d}, nil
}

// writeFindings prints gracelab check's findings for the drilled manifests.
func (d *drillPlan) writeFindings(w io.Writer) {
	fmt.Fprintln(w, "\ngracelab check on these manifests:")
	_ = check.WriteText(w, d.findings, check.TextOptions{NoFix: true})
}

// drillCluster sends the load to the target's Service and reports the skipped objects.
type drillCluster struct {
	*localkube.Cluster
	plan *drillPlan
}

func (c *drillCluster) Target() string {
	t := c.plan.target
	if t.lb {
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
