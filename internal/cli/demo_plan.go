package cli

import (
	"cmp"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/experiment"
	"github.com/gracelab/gracelab/internal/gate"
	"github.com/gracelab/gracelab/internal/image"
	"github.com/gracelab/gracelab/internal/kube"
	"github.com/gracelab/gracelab/internal/localkube"
	"github.com/gracelab/gracelab/internal/report"
	"github.com/gracelab/gracelab/k8s"
)

// Timeouts on a real cluster: the first image pulls and a namespace deletion take minutes.
const (
	kubeUpTimeout      = 5 * time.Minute
	kubeServingTimeout = time.Minute
	kubeDownTimeout    = kube.DefaultDeleteTimeout + 30*time.Second
)

// runPlan is a validated drill (the demo's included): what runDrill needs, nothing parsed
// any more.
type runPlan struct {
	exp         experiment.Config
	settings    report.Settings
	out         string
	endpointLag time.Duration
	port        int
	progress    func(experiment.Progress) // nil: quiet
	thresholds  gate.Thresholds
	junit       string
	kube        *kubePlan  // nil: the embedded cluster
	local       *localPlan // the embedded cluster's objects, programs and target; nil with kube
	disrupt     *disruptionPlan
	// attach, when set, is the cluster of every scenario: a Deployment that already runs.
	attach func(*slog.Logger) (cluster.Cluster, error)
}

// kubePlan is the real cluster a demo runs on: one client for every scenario, and the options
// each scenario's kube.Cluster gets (Manifests and Logger are set per scenario).
type kubePlan struct {
	client  kubernetes.Interface
	context string
	opts    kube.Options
}

// plan validates every flag, and reads and checks what runs (manifests, programs, target),
// before anything starts; each problem is a usage error that names the flag. The demo's
// preset (builtin) runs its built-in scenarios; the drill runs the team's objects.
func (o *drillOptions) plan(cmd *cobra.Command, now time.Time) (*runPlan, error) {
	changed := cmd.Flags().Changed
	if changed("disrupt-at") && !changed("restart-at") { // the same setting (disruption.go checks both given)
		o.restartAt = o.disruption.disruptAt
	}
	switch {
	case o.duration <= 0:
		return nil, usageError("--duration must be positive, for example 30s")
	case changed("disrupt-at") && (o.restartAt < 0 || o.restartAt >= o.duration):
		return nil, usageError("--disrupt-at (%s) must be >= 0 and < --duration (%s): the disruption has to happen under load", o.restartAt, o.duration)
	case o.restartAt < 0:
		return nil, usageError("--restart-at must not be negative")
	case o.restartAt >= o.duration:
		return nil, usageError("--restart-at (%s) must be < --duration (%s): the restart has to happen under load", o.restartAt, o.duration)
	case o.settleTail < 0:
		return nil, usageError("--settle-tail must not be negative")
	case o.rolloutTimeout <= 0:
		return nil, usageError("--rollout-timeout must be positive")
	case changed("endpoint-lag") && o.endpointLag <= 0:
		return nil, usageError("--endpoint-lag must be positive, for example 1s")
	case o.port < 0 || o.port > 65535:
		return nil, usageError("--port %d is out of range: give 1-65535 (0 lets the OS choose)", o.port)
	}
	sandbox, err := localkube.ParseSandboxMode(o.sandbox)
	if err != nil {
		return nil, usageError("%v", err)
	}
	if o.builtin {
		if err := o.needCluster(cmd, "kubeconfig", "context", "namespace", "keep", "target", "image-upstream", "image-downstream"); err != nil {
			return nil, err
		}
	}
	if o.cluster {
		switch {
		case changed("endpoint-lag"):
			return nil, usageError("--endpoint-lag is for the embedded cluster: drop it with --cluster (Kubernetes propagates endpoints itself)")
		case changed("port"):
			return nil, usageError("--port is for the embedded cluster: drop it with --cluster and give the downstream's URL with --target")
		case changed("sandbox"):
			return nil, usageError("--sandbox is for the embedded cluster: drop it with --cluster (Kubernetes gives every pod its own sandbox)")
		}
		for name, v := range map[string]string{"kubeconfig": o.kubeconfig, "context": o.context, "namespace": o.namespace,
			"target": o.target, "image-upstream": o.imageUpstream, "image-downstream": o.imageDownstream} {
			if err := nonEmpty(cmd, name, v); err != nil {
				return nil, err
			}
		}
	}

	var scenarios []experiment.Scenario
	var local *localPlan
	deployment, port := o.deployment, o.port
	if o.builtin {
		if scenarios, err = o.builtinScenarios(cmd); err != nil {
			return nil, err
		}
		programs, err := image.NewTable(nil, nil)
		if err != nil {
			return nil, err
		}
		if err := addBuiltinImages(programs); err != nil {
			return nil, err
		}
		local = &localPlan{programs: programs}
	} else {
		if scenarios, local, deployment, err = o.teamObjects(cmd.InOrStdin()); err != nil {
			return nil, err
		}
		port = 0
		if local.target.lb {
			port = int(local.target.port)
		}
	}
	local.sandbox = sandbox

	lc, err := o.loadFlags.resolve(cmd)
	if err != nil {
		return nil, err
	}
	if !o.builtin {
		if err := o.request.Apply(&lc); err != nil {
			return nil, usageError("%v", err)
		}
		// The JSON "status" check is made for the demo's services; a team's is judged by
		// --expect-status and --expect-body.
		lc.Expect.IgnoreJSONStatus = true
		if t := local.target; !t.lb && lc.Header.Get("Host") == "" {
			if lc.Header == nil {
				lc.Header = map[string][]string{}
			}
			lc.Header.Set("Host", t.url.Host) // as the pods' client would send it
		}
	}
	rollouts, gap, err := o.rolloutFlags.resolve(cmd, o.settleTail)
	if err != nil {
		return nil, err
	}
	th := o.gate.Thresholds()

	out := o.out
	if out == "" {
		out = filepath.Join("reports", now.Format("20060102-150405"))
	}
	if _, err := os.Stat(filepath.Join(out, report.FileName)); err == nil {
		return nil, usageError("--out %s already holds a report: choose another directory", out)
	}

	exp := experiment.Config{
		Scenarios: scenarios, Load: lc, Duration: o.duration, RestartAt: o.restartAt,
		Deployment: cmp.Or(deployment, experiment.DefaultDeployment), SettleTail: o.settleTail, RolloutTimeout: o.rolloutTimeout,
		Rollouts: rollouts, RolloutGap: gap,
	}
	exp.Factory = func(experiment.Scenario) (cluster.Cluster, error) { return nil, errors.New("no cluster factory") }
	if err := exp.Validate(); err != nil {
		return nil, usageError("bad flags: %v", err)
	}
	var kp *kubePlan
	if o.cluster {
		if kp, err = o.kubePlan(scenarios); err != nil {
			return nil, err
		}
		local = nil
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
		PerRollout: th.PerRollout, Target: o.target,
	}
	if rollouts > 1 {
		settings.Rollouts, settings.RolloutGap = rollouts, report.Duration(gap)
	}
	for _, name := range []string{"max-errors", "max-error-rate", "max-disruption", "max-latency", "baseline"} {
		if fl := cmd.Flags().Lookup(name); fl.Changed {
			settings.Thresholds = append(settings.Thresholds, name+"="+fl.Value.String())
		}
	}
	if kp != nil {
		settings.EndpointLag = 0
	}
	dp, err := o.disruption.plan(cmd, o.cluster, &o.restartAt, &exp, &settings, local)
	if err != nil {
		return nil, err
	}
	return &runPlan{exp: exp, settings: settings, out: out, endpointLag: o.endpointLag, port: port, kube: kp,
		local: local, thresholds: th, junit: o.junit, disrupt: dp}, nil
}

// builtinScenarios are the demo's scenarios: the built-in ones --scenarios names, or the
// directory --manifests gives, read when its cluster is made.
func (o *drillOptions) builtinScenarios(cmd *cobra.Command) ([]experiment.Scenario, error) {
	if cmd.Flags().Changed("manifests") {
		if cmd.Flags().Changed("scenarios") {
			return nil, usageError("--manifests and --scenarios exclude each other: --manifests runs one directory of your own")
		}
		sc, err := experiment.FromDir(o.manifests)
		if err != nil {
			return nil, usageError("--manifests: %v", err)
		}
		return []experiment.Scenario{sc}, nil
	}
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
	scenarios, err := experiment.Select(catalog, names)
	if err != nil {
		return nil, usageError("--scenarios: %v", err)
	}
	return scenarios, nil
}

// kubePlan builds the client (nothing is contacted yet) and checks every scenario's manifests,
// image overrides and target with kube.New, so bad input fails before anything is created.
func (o *drillOptions) kubePlan(scenarios []experiment.Scenario) (*kubePlan, error) {
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
