package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/spf13/cobra"

	"github.com/gracelab/gracelab/internal/localkube"
)

func newRestartCommand(streams Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "restart deployment NAME",
		Short: "Rolling-restart a Deployment of the running embedded cluster, like kubectl rollout restart",
		Long: `Trigger a rolling restart of a Deployment in the embedded cluster that
'gracelab cluster up' keeps running in another terminal: its pod template gets a new
kubectl.kubernetes.io/restartedAt annotation, exactly what 'kubectl rollout restart' does.
The command returns once the restart is triggered; the cluster's terminal shows the rollout.`,
		Example: `  gracelab cluster up -f v2            # terminal 1
  gracelab load --url http://127.0.0.1:8000/ --duration 60s   # terminal 2
  gracelab restart deployment upstream  # terminal 3`,
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
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runRestart(ctx, args[1], streams)
		},
	}
}

func runRestart(ctx context.Context, name string, streams Streams) error {
	if err := localkube.RestartViaControl(ctx, name); err != nil {
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("restarting deployment %s: %w", name, err)}
	}
	fmt.Fprintf(streams.Out, "deployment %s restarted (rollout triggered; watch it in the cluster's terminal)\n", name)
	return nil
}
