package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gracelab/gracelab/internal/kube"
	"github.com/gracelab/gracelab/internal/localkube"
)

// restartOptions are the flags of `gracelab restart deployment NAME`.
type restartOptions struct {
	kubeFlags
}

func newRestartCommand(streams Streams) *cobra.Command {
	o := &restartOptions{}
	cmd := &cobra.Command{
		Use:   "restart deployment NAME",
		Short: "Rolling-restart a Deployment, like kubectl rollout restart (embedded cluster, or --cluster)",
		Long: `Trigger a rolling restart of a Deployment in the embedded cluster that
'gracelab cluster up' keeps running in another terminal: its pod template gets a new
kubectl.kubernetes.io/restartedAt annotation, exactly what 'kubectl rollout restart' does.
The command returns once the restart is triggered; the cluster's terminal shows the rollout.

With --cluster it sends the same patch to a real Kubernetes cluster (the kubeconfig's
current context, or --kubeconfig, --context), for example to restart the upstream while
'gracelab demo --cluster --keep' or your own load runs. Without --namespace it looks for
the one namespace labelled as gracelab's that holds the Deployment.`,
		Example: `  gracelab cluster up -f v2            # terminal 1
  gracelab load --url http://127.0.0.1:8000/ --duration 60s   # terminal 2
  gracelab restart deployment upstream  # terminal 3

  # on Kubernetes, with the downstream on Docker Desktop's LoadBalancer:
  gracelab demo --cluster --target http://localhost:8000/ --scenarios v2 --keep
  gracelab load --url http://localhost:8000/ --duration 60s
  gracelab restart deployment upstream --cluster [--namespace gracelab-XXXXX]`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 2 || (args[0] != "deployment" && args[0] != "deploy" && args[0] != "deployments") {
				return usageError("usage: gracelab restart deployment NAME")
			}
			if args[1] == "" {
				return usageError("the deployment name is empty")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.needCluster(cmd, "kubeconfig", "context", "namespace"); err != nil {
				return err
			}
			for name, v := range map[string]string{"kubeconfig": o.kubeconfig, "context": o.context, "namespace": o.namespace} {
				if err := nonEmpty(cmd, name, v); err != nil {
					return err
				}
			}
			in, stop := watchInterrupts(streams)
			defer stop()
			done := make(chan error, 1)
			go func() {
				if o.cluster {
					done <- runKubeRestart(in.ctx, args[1], o, streams)
				} else {
					done <- runRestart(in.ctx, args[1], streams)
				}
			}()
			err, hard := await(in, done)
			if hard != nil {
				return hard
			}
			return err
		},
	}
	o.kubeFlags.register(cmd, "restart on a real Kubernetes cluster (the kubeconfig's current context) instead of the embedded one",
		"namespace of the Deployment (default: the kubeconfig context's, else the one gracelab namespace that holds it); with --cluster")
	return cmd
}

func runRestart(ctx context.Context, name string, streams Streams) error {
	if err := localkube.RestartViaControl(ctx, name); err != nil {
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("restarting deployment %s: %w", name, err)}
	}
	fmt.Fprintf(streams.Out, "deployment %s restarted (rollout triggered; watch it in the cluster's terminal)\n", name)
	return nil
}

// runKubeRestart patches the Deployment as `kubectl rollout restart` does.
func runKubeRestart(ctx context.Context, name string, o *restartOptions, streams Streams) error {
	client, _, err := o.client()
	if err != nil {
		return err
	}
	ns := o.namespace
	if ns == "" {
		ns, _ = kube.ContextNamespace(o.kubeconfig, o.context) // as kubectl: the context's namespace
	}
	if ns == "" {
		if ns, err = kube.FindNamespace(ctx, client, name); err != nil {
			return &ExitError{Code: ExitFailed, Err: fmt.Errorf("restarting deployment %s: %w", name, err)}
		}
	}
	if err := kube.RolloutRestart(ctx, client, ns, name); err != nil {
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("restarting deployment %s: %w", name, err)}
	}
	fmt.Fprintf(streams.Out, "deployment %s restarted in namespace %s\n", name, ns)
	return nil
}
