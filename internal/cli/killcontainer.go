package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/gracelab/gracelab/internal/kube"
)

// gracelab kill-container: what the kill helper pod runs on the target pod's node
// (docs/disruptions.md). Hidden: it is not a command for people.

// killMessageFile is where the kubelet picks up a container's termination message.
const killMessageFile = "/dev/termination-log"

func newKillContainerCommand(streams Streams) *cobra.Command {
	var id, proc, message string
	cmd := &cobra.Command{
		Use:    "kill-container --container-id RUNTIME://ID",
		Short:  "SIGKILL a container's first process on this node (run by gracelab's kill helper pod)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cid, err := kube.ParseContainerID(id)
			if err != nil {
				return usageError("--container-id: %v", err)
			}
			p, err := kube.KillContainerProcess(proc, cid, 5*time.Second)
			line := ""
			if err == nil {
				line = fmt.Sprintf("killed pid %d (%s, pid %d in the container, %d processes) of container %s%s%s",
					p.PID, p.Command, p.NSPID, p.Procs, id, kube.KilledAtSeparator, p.KilledAt.UTC().Format(time.RFC3339Nano))
				fmt.Fprintln(streams.Out, line)
			} else {
				line = err.Error()
			}
			if werr := writeTerminationMessage(message, line); werr != nil {
				fmt.Fprintf(streams.ErrOut, "gracelab: writing the termination message: %v\n", werr)
			}
			if err != nil {
				return &ExitError{Code: ExitFailed, Err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "container-id", "", "the container as the pod's status names it (containerd://ID)")
	f.StringVar(&proc, "proc", "/proc", "the proc file system to search (the host's, with hostPID)")
	f.StringVar(&message, "message-file", killMessageFile, "where to write the outcome for the kubelet")
	return cmd
}

// writeTerminationMessage writes the line the kubelet hands gracelab as the container's
// termination message; outside a pod the file does not exist and is not created.
func writeTerminationMessage(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = f.WriteString(line)
	return errors.Join(err, f.Close())
}
