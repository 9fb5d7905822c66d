package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing/fstest"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/experiment"
	"github.com/gracelab/gracelab/internal/kube"
	"github.com/gracelab/gracelab/internal/load"
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
	namespace, deployment string
	target                *url.URL
	fromCluster           bool
	client                kubernetes.Interface
	contextName           string
}

// checkClusterFlags is every check of drill --cluster's flags that needs no cluster.
func (o *drillOptions) checkClusterFlags(cmd *cobra.Command, args []string) (*clusterDrill, error) {
	changed := cmd.Flags().Changed
	for _, name := range []string{"run", "path", "sandbox", "header", "body", "expect-status", "expect-body"} {
		if changed(name) {
			return nil, usageError("--%s is not for --cluster (images are the cluster's business; request options are not passed to load pods yet): drop --%s", name, name)
		}
	}
	for _, name := range []string{"endpoint-lag", "port"} {
		if cmd.Flags().Lookup(name) != nil && changed(name) {
			return nil, usageError("--%s is for the embedded cluster: drop it with --cluster", name)
		}
	}
	if len(o.files) > 0 {
		return nil, usageError("drill --cluster -f is not supported yet: apply your manifests with kubectl and drill the Deployment by name (gracelab drill --cluster -n NS deployment/NAME --target URL)")
	}
	if len(args) != 1 {
		return nil, usageError("name the Deployment to drill: gracelab drill --cluster -n NAMESPACE deployment/NAME --target URL")
	}
	name := args[0]
	for _, prefix := range []string{"deployment/", "deployments/", "deploy/", "deployment.apps/", "deployments.apps/"} {
		name = strings.TrimPrefix(name, prefix)
	}
	if name == "" || strings.ContainsAny(name, "/ ") {
		return nil, usageError("%q is not a Deployment: give deployment/NAME or NAME", args[0])
	}
	if changed("deployment") {
		return nil, usageError("--deployment is for -f: with --cluster name the Deployment as the argument (deployment/%s)", name)
	}
	for flag, v := range map[string]string{"kubeconfig": o.kubeconfig, "context": o.context, "namespace": o.namespace, "load-image": o.inCluster.loadImage} {
		if err := nonEmpty(cmd, flag, v); err != nil {
			return nil, err
		}
	}
	if o.target == "" {
		return nil, usageError("--target is required: the URL of the Service as the load pods call it, for example http://%s.NAMESPACE:8080/", name)
	}
	u, err := url.Parse(o.target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return nil, usageError("--target %q: want an http URL such as http://%s.shop:8080/path", o.target, name)
	}
	c := &o.inCluster
	if c.loadPods < 1 || c.loadPods > 100 {
		return nil, usageError("--load-pods %d is out of range: give 1 to 100", c.loadPods)
	}
	switch c.loadFrom {
	case "":
		c.loadFrom = loadFromCluster
		if reachableHere(u) {
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
	} else {
		if o.rollouts > 1 || o.gate.Thresholds().PerRollout {
			return nil, usageError("--rollouts and --per-rollout need every request's outcome, which load pods do not report one by one: drop them, or use --load-from here")
		}
	}
	ns := o.namespace
	if ns == "" {
		ns, _ = kube.ContextNamespace(o.kubeconfig, o.context) // as kubectl: the context's namespace
	}
	if ns == "" {
		ns = "default"
	}
	client, contextName, err := o.client()
	if err != nil {
		return nil, err
	}
	return &clusterDrill{namespace: ns, deployment: name, target: u, fromCluster: fromCluster, client: client, contextName: contextName}, nil
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
	plan.exp.Scenarios = []experiment.Scenario{{Name: cd.deployment, Title: "deployment/" + cd.deployment + " in " + cd.namespace,
		Manifests: "deployment/" + cd.deployment + " (namespace " + cd.namespace + ", as it runs)", FS: fstest.MapFS{}}}
	plan.settings.Scenarios = []string{cd.deployment}
	plan.exp.Load.URL = cd.target.String()
	plan.exp.UpTimeout, plan.exp.ServingTimeout, plan.exp.DownTimeout = kubeUpTimeout, kubeServingTimeout, kubeDownTimeout
	plan.settings.EndpointLag, plan.settings.Target = 0, cd.target.String()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	loadPods, job := 0, ""
	if cd.fromCluster {
		loadPods, job = o.inCluster.loadPods, kube.LoadJobName(cd.deployment, time.Now())
		// The Job is rendered now, so a load that does not split is bad input.
		lc := plan.exp.Load
		lc.Duration = o.duration
		if _, err := kube.LoadJob(kube.LoadJobOptions{Namespace: cd.namespace, Name: job, Pods: loadPods, Load: lc, Image: o.inCluster.loadImage}); err != nil {
			return nil, usageError("%v", err)
		}
	}
	dp, err := kube.PlanDrill(ctx, cd.client, cd.namespace, cd.deployment, loadPods, job)
	if err != nil {
		return nil, &ExitError{Code: ExitFailed, Err: err}
	}
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
	perms := kube.DrillPermissions(cd.fromCluster)
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
	if cd.fromCluster {
		// The pods send until stopped; this is only their cap should the stop never come.
		budget := o.duration + time.Duration(plan.exp.Rollouts)*(o.rolloutTimeout+o.settleTail) + time.Minute
		image, pods := o.inCluster.loadImage, o.inCluster.loadPods
		plan.exp.StartLoad = func(ctx context.Context, lc load.Config) (experiment.LoadRun, error) {
			lc.Duration = budget
			l, err := kube.StartClusterLoad(ctx, cd.client, kube.ClusterLoadOptions{Job: kube.LoadJobOptions{
				Namespace: cd.namespace, Name: kube.LoadJobName(cd.deployment, time.Now()), Image: image, Pods: pods, Load: lc}})
			if err != nil {
				return nil, err
			}
			return &podsLoad{ClusterLoad: l}, nil
		}
	}
	return plan, nil
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
