package cli

import (
	"github.com/spf13/cobra"

	"github.com/gracelab/gracelab/internal/localkube"
)

func newDemoCommand(streams Streams) *cobra.Command {
	return newDemoCommandFor(&drillOptions{}, streams)
}

// newDemoCommandFor binds the flags to o, so tests can plan without running. The demo is the
// drill's preset: its built-in manifests and images, scenarios v1,v2,v3, the load through the
// downstream LoadBalancer, the JSON status check; the flags of how it runs are the drill's.
func newDemoCommandFor(o *drillOptions, streams Streams) *cobra.Command {
	o.builtin = true
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
--image-downstream. --endpoint-lag, --port and --sandbox are for the embedded cluster only.

The demo is a preset of 'gracelab drill': the same run with the built-in manifests and images,
the load sent through the downstream's LoadBalancer and each answer's JSON "status" checked.
Its pods share the host's loopback unless --sandbox says otherwise (docs/sandbox.md): the
demo's figures were measured that way.

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
	}
	f := cmd.Flags()
	f.StringVar(&o.scenarios, "scenarios", "v1,v2,v3", "built-in scenarios to run, in order")
	f.StringVar(&o.manifests, "manifests", "", "run this manifest directory instead, as one scenario named after it")
	f.IntVar(&o.port, "port", localkube.DefaultLoadBalancerPort, "port of the downstream LoadBalancer on 127.0.0.1 (0: the OS chooses)")
	o.kubeFlags.register(cmd, "run on a real Kubernetes cluster (the kubeconfig's current context) instead of the embedded one",
		"namespace to deploy into (default: a new gracelab-XXXXX, deleted afterwards unless --keep); with --cluster")
	f.BoolVar(&o.keep, "keep", false, "leave the namespace and objects in place afterwards; with --cluster")
	f.StringVar(&o.target, "target", "", "URL of the downstream Service as this machine reaches it (default: its LoadBalancer address, else its ClusterIP); with --cluster")
	f.StringVar(&o.imageUpstream, "image-upstream", "", "image for the upstream container instead of the manifests'; with --cluster")
	f.StringVar(&o.imageDownstream, "image-downstream", "", "image for the downstream container instead of the manifests'; with --cluster")
	o.registerRun(cmd, streams, localkube.SandboxNone)
	return cmd
}
