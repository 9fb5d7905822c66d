package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing/fstest"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/experiment"
	"github.com/gracelab/gracelab/internal/kube"
	"github.com/gracelab/gracelab/internal/load"
	"github.com/gracelab/gracelab/internal/manifest"
	"github.com/gracelab/gracelab/internal/report"
)

// gracelab drill --cluster: a Deployment that already runs on a real cluster, drilled by name,
// with the load sent by a Job of load pods inside the cluster (or from here). Everything after
// the plan is the demo's run: same report, charts, thresholds and exit codes.

// drillClusterFlags are the flags only drill --cluster has.
type drillClusterFlags struct {
	loadPods  int
	loadFrom  string
	loadImage string
	dryRun    bool
	force     bool
}

// Where the load comes from.
const (
	loadFromCluster = "cluster"
	loadFromHere    = "here"
)

// registerCluster adds --cluster, the kubectl-like flags and the in-cluster load's flags, and
// runs drill --cluster before the embedded cluster's drill.
func (o *drillOptions) registerCluster(cmd *cobra.Command, streams Streams) {
	local := cmd.RunE
	cmd.Args = cobra.MaximumNArgs(1)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if ran, err := o.runCluster(cmd, args, streams); ran {
			return err
		}
		return local(cmd, args)
	}
	o.kubeFlags.register(cmd, "drill a Deployment that runs on a real Kubernetes cluster (the kubeconfig's current context), named as deployment/NAME or NAME",
		"namespace of the Deployment (default: the kubeconfig context's, else default); with --cluster")
	f := cmd.Flags()
	c := &o.inCluster
	f.IntVar(&c.loadPods, "load-pods", 1, "load pods sending the load from inside the cluster, the VUs or the rate split evenly; with --cluster")
	f.StringVar(&c.loadFrom, "load-from", "", "cluster (a Job of load pods) or here (this machine); default cluster unless this machine reaches --target; with --cluster")
	f.StringVar(&c.loadImage, "load-image", kube.DefaultLoadImage, "image of the load pods, one the cluster can pull (docs/cluster-drill.md); with --cluster")
	f.BoolVar(&c.dryRun, "dry-run", false, "print what would be created, restarted and deleted, and exit; with --cluster")
	f.BoolVar(&c.force, "force", false, "drill even a paused Deployment, one already rolling out or one with fewer than 2 available replicas; with --cluster")
}

// runCluster plans and runs drill --cluster; ran is false for a drill on the embedded
// cluster, which it leaves to the caller once it has refused the cluster's flags.
func (o *drillOptions) runCluster(cmd *cobra.Command, args []string, streams Streams) (ran bool, err error) {
	if !o.cluster {
		if len(args) > 0 {
			return true, usageError("a Deployment by name (%s) is drilled on a real cluster: add --cluster, or give manifests with -f", args[0])
		}
		if err := o.needCluster(cmd, "kubeconfig", "context", "namespace", "load-pods", "load-from", "load-image", "dry-run", "force"); err != nil {
			return true, err
		}
		return false, nil
	}
	plan, err := o.planCluster(cmd, args, streams)
	if err != nil || plan == nil {
		return true, err // plan == nil: --dry-run printed the plan
	}
	return true, runPlanned(plan, nil, o.quiet, streams)
}

// clusterDrill is a validated drill --cluster before the cluster was contacted.
type clusterDrill struct {
	namespace, deployment string // namespace "" with -f: a generated one
	target                *url.URL
	fromCluster           bool
	client                kubernetes.Interface
	contextName           string
	files                 *clusterFiles // -f: the manifests to deploy first; nil for a Deployment that runs
}

// clusterFiles are the -f manifests drill --cluster applies into a namespace of its own.
type clusterFiles struct {
	fsys             fstest.MapFS // the applied documents as written
	applied, skipped []string     // "Deployment web"
	service          string       // the target's Service
	port             int32
}

// checkClusterFlags is every check of drill --cluster's flags that needs no cluster.
func (o *drillOptions) checkClusterFlags(cmd *cobra.Command, args []string) (*clusterDrill, error) {
	changed := cmd.Flags().Changed
	for _, name := range []string{"run", "path", "sandbox"} {
		if changed(name) {
			return nil, usageError("--%s is not for --cluster (images are the cluster's business): drop --%s", name, name)
		}
	}
	for _, name := range []string{"endpoint-lag", "port"} {
		if cmd.Flags().Lookup(name) != nil && changed(name) {
			return nil, usageError("--%s is for the embedded cluster: drop it with --cluster", name)
		}
	}
	withFiles := len(o.files) > 0
	var name string
	switch {
	case withFiles && len(args) > 0:
		return nil, usageError("with -f the Deployment comes from the manifests: drop %s (choose one with --deployment)", args[0])
	case withFiles:
		name = o.deployment
	case len(args) != 1:
		return nil, usageError("name the Deployment to drill: gracelab drill --cluster -n NAMESPACE deployment/NAME --target URL, or give its manifests with -f")
	default:
		name = args[0]
		for _, prefix := range []string{"deployment/", "deployments/", "deploy/", "deployment.apps/", "deployments.apps/"} {
			name = strings.TrimPrefix(name, prefix)
		}
		if name == "" || strings.ContainsAny(name, "/ ") {
			return nil, usageError("%q is not a Deployment: give deployment/NAME or NAME", args[0])
		}
		if changed("deployment") {
			return nil, usageError("--deployment is for -f: with --cluster name the Deployment as the argument (deployment/%s)", name)
		}
	}
	for flag, v := range map[string]string{"kubeconfig": o.kubeconfig, "context": o.context, "namespace": o.namespace, "load-image": o.inCluster.loadImage} {
		if err := nonEmpty(cmd, flag, v); err != nil {
			return nil, err
		}
	}
	if o.target == "" {
		return nil, usageError("--target is required: the URL of the Service as the load pods call it, for example http://%s.NAMESPACE:8080/", cmp.Or(name, "api"))
	}
	u, err := url.Parse(o.target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return nil, usageError("--target %q: want an http URL such as http://%s.shop:8080/path", o.target, cmp.Or(name, "api"))
	}
	c := &o.inCluster
	if c.loadPods < 1 || c.loadPods > 100 {
		return nil, usageError("--load-pods %d is out of range: give 1 to 100", c.loadPods)
	}
	switch c.loadFrom {
	case "":
		// The Service of -f does not exist yet, so whether it is reachable from here is unknown.
		c.loadFrom = loadFromCluster
		if !withFiles && reachableHere(u) {
			c.loadFrom = loadFromHere
		}
	case loadFromCluster, loadFromHere:
	default:
		return nil, usageError("--load-from %q: give cluster or here", c.loadFrom)
	}
	fromCluster := c.loadFrom == loadFromCluster
	if fromCluster && !changed("vus") && !changed("rate") && o.vus%c.loadPods != 0 {
		o.vus += c.loadPods - o.vus%c.loadPods // the default VUs, split evenly
	}
	if !fromCluster {
		for _, flag := range []string{"load-pods", "load-image"} {
			if changed(flag) {
				return nil, usageError("--%s is for load pods: drop it, or use --load-from cluster", flag)
			}
		}
	}
	ns := o.namespace
	if ns == "" && !withFiles {
		ns, _ = kube.ContextNamespace(o.kubeconfig, o.context) // as kubectl: the context's namespace
		if ns == "" {
			ns = "default"
		}
	}
	cd := &clusterDrill{namespace: ns, deployment: name, target: u, fromCluster: fromCluster}
	if withFiles {
		if cd.files, cd.deployment, err = o.readClusterFiles(cmd.InOrStdin(), ns, u); err != nil {
			return nil, err
		}
	}
	if cd.client, cd.contextName, err = o.client(); err != nil {
		return nil, err
	}
	if cd.files != nil {
		// The same checks as demo --cluster's, before anything is created (nothing is sent).
		if _, err := kube.New(cd.client, kube.Options{Manifests: cd.files.fsys, TargetService: cd.files.service}); err != nil {
			return nil, usageError("-f: %v", err)
		}
	}
	return cd, nil
}

// readClusterFiles reads the -f manifests drill --cluster deploys: the Deployments, Services
// and PodDisruptionBudgets (what demo --cluster applies; the rest is listed as skipped), the
// target's Service among them and the Deployment to restart.
func (o *drillOptions) readClusterFiles(stdin io.Reader, namespace string, target *url.URL) (*clusterFiles, string, error) {
	files, err := manifest.Collect(o.files, o.recursive, stdin)
	if err != nil {
		return nil, "", usageError("%v", err)
	}
	docs, err := manifest.Decode(files, manifest.Options{})
	if errors.Is(err, manifest.ErrNoObjects) {
		return nil, "", usageError("-f %s: no object in the manifests: give the files of your Deployment and Service", strings.Join(o.files, " -f "))
	}
	if err != nil {
		return nil, "", usageError("%v", err)
	}
	cf := &clusterFiles{fsys: fstest.MapFS{}}
	var kept []manifest.Document
	for _, d := range docs {
		switch d.Object.(type) {
		case *appsv1.Deployment, *corev1.Service, *policyv1.PodDisruptionBudget:
			kept = append(kept, d)
			cf.fsys[fmt.Sprintf("%02d-%s.yaml", len(kept), strings.ToLower(d.Kind())+"-"+d.Name())] = &fstest.MapFile{Data: d.Raw}
			cf.applied = append(cf.applied, d.Kind()+" "+d.Name())
		default:
			cf.skipped = append(cf.skipped, d.String())
		}
	}
	// The load pods run in the namespace the manifests go to: the Service is named there by
	// its name, or with that namespace.
	resolve := *target
	if svc, ns, ok := serviceDNS(target.Hostname()); ok && ns != "" {
		if ns != namespace {
			where := "a new namespace of a generated name (no -n given)"
			if namespace != "" {
				where = "namespace " + namespace
			}
			return nil, "", usageError("--target %s names namespace %s, but -f deploys into %s: name the Service as the load pods there call it, http://%s/", target, ns, where, net.JoinHostPort(svc, cmp.Or(target.Port(), "80")))
		}
		resolve.Host = svc
		if p := target.Port(); p != "" {
			resolve.Host = net.JoinHostPort(svc, p)
		}
	}
	t, deployment, err := resolveTarget(resolve.String(), o.deployment, kept)
	if err != nil {
		return nil, "", usageError("%v", err)
	}
	if t.lb {
		return nil, "", usageError("--target %s: with --cluster name the Service by its cluster DNS name, as the load pods call it (http://%s:%d/)", target, t.service, t.port)
	}
	cf.service, cf.port = t.service, t.port
	return cf, deployment, nil
}

// reachableHere says whether this machine can open a connection to the target: a name that
// does not resolve here (a cluster DNS name) or an address that does not answer (a ClusterIP
// this machine has no route to) is not.
func reachableHere(u *url.URL) bool {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// planCluster checks the flags, then asks the cluster: the plan, the permissions, the
// refusals. --dry-run prints the plan and returns a nil plan.
func (o *drillOptions) planCluster(cmd *cobra.Command, args []string, streams Streams) (*runPlan, error) {
	cd, err := o.checkClusterFlags(cmd, args)
	if err != nil {
		return nil, err
	}
	// The run's flags are checked as the demo --cluster's (one built-in scenario stands in
	// for the Deployment, then is replaced by it).
	o.deployment = cd.deployment
	builtin, scenarios := o.builtin, o.scenarios
	o.builtin, o.scenarios = true, "v1"
	plan, err := o.plan(cmd, time.Now())
	o.builtin, o.scenarios = builtin, scenarios
	if err != nil {
		return nil, err
	}
	where := "namespace " + cd.namespace
	sc := experiment.Scenario{Name: cd.deployment, Title: "deployment/" + cd.deployment + " in " + cd.namespace,
		Manifests: "deployment/" + cd.deployment + " (namespace " + cd.namespace + ", as it runs)", FS: fstest.MapFS{}}
	if cd.files != nil {
		if cd.namespace == "" {
			where = "a new namespace"
		}
		sc.Title = "deployment/" + cd.deployment + " from -f, in " + where
		sc.Manifests, sc.FS = strings.Join(o.files, " "), cd.files.fsys
	}
	plan.exp.Scenarios = []experiment.Scenario{sc}
	plan.settings.Scenarios = []string{cd.deployment}
	if err := plan.disrupt.retarget(&plan.exp.Scenarios[0]); err != nil {
		return nil, err
	}
	plan.exp.Load.URL = cd.target.String()
	if err := o.request.Apply(&plan.exp.Load); err != nil {
		return nil, usageError("%v", err)
	}
	plan.exp.UpTimeout, plan.exp.ServingTimeout, plan.exp.DownTimeout = kubeUpTimeout, kubeServingTimeout, kubeDownTimeout
	plan.settings.EndpointLag, plan.settings.Target = 0, cd.target.String()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	loadPods, job := 0, ""
	jobOpts := func(namespace, name string, lc load.Config) kube.LoadJobOptions {
		return kube.LoadJobOptions{Namespace: namespace, Name: name, Image: o.inCluster.loadImage, Pods: o.inCluster.loadPods, Load: lc}
	}
	if cd.fromCluster {
		loadPods, job = o.inCluster.loadPods, kube.LoadJobName(cd.deployment, time.Now())
		// The Job and its Secret are rendered now, so a load that does not split is bad input.
		lc := plan.exp.Load
		lc.Duration = o.duration
		if _, err := kube.LoadJob(jobOpts(cmp.Or(cd.namespace, "placeholder"), job, lc)); err != nil {
			return nil, usageError("%v", err)
		}
	}
	var dp *kube.DrillPlan
	if cd.files != nil {
		dp, err = kube.PlanApply(ctx, cd.client, cd.namespace, cd.deployment, strings.Join(o.files, " -f "), cd.files.applied, cd.files.skipped, loadPods, job)
	} else {
		dp, err = kube.PlanDrill(ctx, cd.client, cd.namespace, cd.deployment, loadPods, job)
	}
	if err != nil {
		return nil, &ExitError{Code: ExitFailed, Err: err}
	}
	dp.Request = kube.RequestSummary(plan.exp.Load)
	if o.inCluster.dryRun {
		fmt.Fprint(streams.Out, dp.String())
		fmt.Fprintf(streams.Out, "  load     %s from %s", plan.exp.Load.URL, o.inCluster.loadFrom)
		if cd.fromCluster {
			fmt.Fprintf(streams.Out, " (image %s)", o.inCluster.loadImage)
		}
		fmt.Fprintln(streams.Out)
		if img := plan.disrupt.killHelperImage(); img != "" {
			fmt.Fprintf(streams.Out, "  kill     through pod gracelab-kill-* (image %s; hostPID, root, CAP_KILL) on the killed pod's node, deleted after the kill\n", img)
		}
		return nil, nil
	}
	needs := kube.Needs{LoadPods: cd.fromCluster, RequestSecret: dp.Request != "", Apply: cd.files != nil}
	perms := kube.DrillPermissions(needs)
	helper := plan.disrupt.killHelperImage()
	if helper != "" {
		perms = append(perms, kube.KillHelperPermissions()...)
	}
	if err := kube.CheckPermissions(ctx, cd.client, cd.namespace, perms); err != nil {
		return nil, &ExitError{Code: ExitFailed, Err: err}
	}
	if helper != "" {
		if err := kube.CheckKillHelper(ctx, cd.client, cd.namespace, helper); err != nil {
			return nil, &ExitError{Code: ExitFailed, Err: err}
		}
	}
	if err := dp.Refused(o.inCluster.force); err != nil {
		return nil, &ExitError{Code: ExitFailed, Err: err}
	}

	// The namespace the load Job goes to: with -f, known once the cluster is up.
	var mu sync.Mutex
	namespace := func() string { mu.Lock(); defer mu.Unlock(); return cd.namespace }
	if cd.files != nil {
		plan.kube = &kubePlan{client: cd.client, context: cd.contextName, opts: kube.Options{Namespace: cd.namespace,
			TargetService: cd.files.service, RolloutTimeout: o.rolloutTimeout}}
		if !cd.fromCluster {
			// Load from here goes to the Service's ClusterIP, found once it exists.
			plan.exp.Load.URL = ""
			if plan.exp.Load.Header.Get("Host") == "" {
				if plan.exp.Load.Header == nil {
					plan.exp.Load.Header = http.Header{}
				}
				plan.exp.Load.Header.Set("Host", cd.target.Host)
			}
		}
		plan.attach = func(logger *slog.Logger) (cluster.Cluster, error) {
			opts := plan.kube.opts
			opts.Manifests, opts.Logger = cd.files.fsys, logger
			c, err := kube.New(cd.client, opts)
			if err != nil {
				return nil, err
			}
			return &appliedCluster{Cluster: c, client: cd.client, target: cd.target, files: cd.files, namespaceKnown: func(ns string) {
				mu.Lock()
				defer mu.Unlock()
				cd.namespace = ns
			}}, nil
		}
	} else {
		plan.kube = &kubePlan{client: cd.client, context: cd.contextName, opts: kube.Options{Namespace: cd.namespace, Keep: true}}
		opts := kube.Options{Namespace: cd.namespace, Target: plan.exp.Load.URL, RolloutTimeout: o.rolloutTimeout}
		plan.attach = func(logger *slog.Logger) (cluster.Cluster, error) {
			opts.Logger = logger
			c, err := kube.Attach(context.Background(), cd.client, opts, cd.deployment)
			if err != nil {
				return nil, err
			}
			return c, nil
		}
	}
	if cd.fromCluster {
		// The pods send until stopped; this is only their cap should the stop never come.
		budget := o.duration + time.Duration(plan.exp.Rollouts)*(o.rolloutTimeout+o.settleTail+plan.exp.RolloutGap) + time.Minute
		plan.exp.StartLoad = func(ctx context.Context, lc load.Config) (experiment.LoadRun, error) {
			lc.Duration = budget
			l, err := kube.StartClusterLoad(ctx, cd.client, kube.ClusterLoadOptions{Job: jobOpts(namespace(), kube.LoadJobName(cd.deployment, time.Now()), lc)})
			if err != nil {
				return nil, err
			}
			return &podsLoad{ClusterLoad: l}, nil
		}
	}
	return plan, nil
}

// appliedCluster is the cluster of drill --cluster -f: the manifests applied into a namespace
// of its own, whose name the load Job needs once it is known, and, for load from here, the
// target at its Service's ClusterIP.
type appliedCluster struct {
	*kube.Cluster
	client         kubernetes.Interface
	target         *url.URL
	files          *clusterFiles
	namespaceKnown func(string)
}

func (c *appliedCluster) Up(ctx context.Context) error {
	err := c.Cluster.Up(ctx)
	if err == nil {
		c.namespaceKnown(c.Namespace())
	}
	return err
}

// Target is the --target URL at the Service's ClusterIP, as this machine reaches it.
func (c *appliedCluster) Target() string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := c.client.CoreV1().Services(c.Namespace()).Get(ctx, c.files.service, metav1.GetOptions{})
	if err != nil || svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return ""
	}
	u := *c.target
	u.Host = net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(c.files.port)))
	return u.String()
}

// podsLoad is the load pods' run as the drill sees it: the merged result, and what it says
// about clocks, dead pods and each pod's share.
type podsLoad struct {
	*kube.ClusterLoad
}

// clockTolerance: a bound on the pods' clocks tighter than this is not worth a warning.
const clockTolerance = 100 * time.Millisecond

func (p *podsLoad) Warnings() []string {
	out := p.ClusterLoad.Warnings()
	m := p.Merged()
	if m == nil {
		return out
	}
	var worst time.Duration
	var unknown []string
	for _, pr := range m.Pods {
		d, ok := pr.Clock.Error()
		if !ok {
			unknown = append(unknown, pr.Pod)
			continue
		}
		worst = max(worst, d)
		if skew := pr.StartSkew; skew > 500*time.Millisecond || skew < -500*time.Millisecond {
			out = append(out, fmt.Sprintf("load pod %s started %s after the common start (it saw the announcement late): its first second is short", pr.Pod, skew.Round(time.Millisecond)))
		}
	}
	if len(unknown) > 0 {
		out = append(out, fmt.Sprintf("the clocks of load pods %s cannot be compared with this machine's: their requests may be misplaced against the cluster events by an unknown amount", strings.Join(unknown, ", ")))
	}
	if worst > clockTolerance {
		out = append(out, fmt.Sprintf("the load pods' clocks are compared with this machine's only within ±%s (from the start announcement's round trip): requests and cluster events on the timeline may be misplaced by that much",
			worst.Round(time.Millisecond)))
	}
	if !m.Incomplete {
		out = append(out, m.Problems...)
	}
	return out
}

func (p *podsLoad) Incomplete() error {
	var errs []error
	if err := p.Err(); err != nil {
		errs = append(errs, err)
	}
	if err := p.Unreached(); err != nil {
		errs = append(errs, err)
	}
	if m := p.Merged(); m != nil && m.Incomplete {
		errs = append(errs, fmt.Errorf("the load is incomplete: %s", strings.Join(m.Problems, "; ")))
	}
	return errors.Join(errs...)
}

func (p *podsLoad) LoadPods() []report.LoadPod {
	m := p.Merged()
	if m == nil {
		return nil
	}
	out := make([]report.LoadPod, len(m.Pods))
	for i, pr := range m.Pods {
		out[i] = report.LoadPod{Pod: pr.Pod, Complete: pr.Complete, Lost: pr.Lost, StartSkew: report.Duration(pr.StartSkew),
			Problems: pr.Problems, Result: report.FromLoad(pr.Result)}
	}
	return out
}

// Rollouts attributes the pods' requests to the rollouts' windows by whole seconds (the pods
// stream seconds, not each request): a second belongs to the window its middle falls in; its
// failures keep their own send times, so the longest disruption is as exact as a local run's.
func (p *podsLoad) Rollouts(windows []experiment.Window) []experiment.Rollout {
	return rolloutsOf(p, windows)
}

// rolloutsOf is podsLoad.Rollouts over anything that has the spans (a load.Merger in tests).
func rolloutsOf(spans interface {
	Span(from, to time.Time) load.Span
}, windows []experiment.Window) []experiment.Rollout {
	out := make([]experiment.Rollout, len(windows))
	for i, w := range windows {
		s := spans.Span(w.Start, w.End)
		r := experiment.Rollout{Window: w, Requests: s.Requests, OK: s.Counts[load.OK], ErrorsByKind: map[string]int64{}, UpstreamKinds: map[string]int64{},
			LatencyMax: s.LatencyMax(), Latency: experiment.Quantiles{P50: s.LatencyAt(50), P90: s.LatencyAt(90), P95: s.LatencyAt(95), P99: s.LatencyAt(99)}}
		for class, n := range s.Counts {
			if class != load.OK && n > 0 {
				r.Errors += n
				r.ErrorsByKind[string(class)] += n
			}
		}
		for kind, n := range s.Kinds {
			r.UpstreamKinds[kind] += n
		}
		// The failures alone, in one unbounded window, give the longest disruption as
		// experiment.Attribute measures it.
		failures := make([]load.Sample, len(s.Failures))
		for j, f := range s.Failures {
			failures[j] = load.Sample{Sent: f.Sent, End: f.End, Latency: f.End.Sub(f.Sent), Outcome: f.Class, Kind: f.Kind}
		}
		all := experiment.Window{End: time.Unix(1<<40, 0)}
		r.LongestDisruption = experiment.Attribute([]experiment.Window{all}, failures)[0].LongestDisruption
		out[i] = r
	}
	return out
}
