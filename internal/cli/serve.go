package cli

import (
	"errors"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/gracelab/gracelab/internal/downstream"
	"github.com/gracelab/gracelab/internal/upstream"
)

// errReported marks a failure the service has already printed; Main adds no second line.
var errReported = errors.New("already reported")

// services maps the serve command's argument to the service's Main.
var services = map[string]func(getenv func(string) string, stderr io.Writer) int{
	"upstream":   upstream.Main,
	"downstream": downstream.Main,
}

// newServeCommand runs one service in this process, configured only by environment variables
// as in its own binary, so the embedded cluster can run an installed gracelab binary as a pod.
// It installs no signal handler of its own: with SHUTDOWN=immediate SIGTERM kills the process.
func newServeCommand(streams Streams) *cobra.Command {
	return &cobra.Command{
		Use:       "serve upstream|downstream",
		Short:     "Run the upstream or downstream service (configured by environment variables)",
		Hidden:    true,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"upstream", "downstream"},
		RunE: func(_ *cobra.Command, args []string) error {
			run, ok := services[args[0]]
			if !ok {
				return usageError("serve: unknown service %q: want upstream or downstream", args[0])
			}
			if code := run(os.Getenv, streams.ErrOut); code != ExitOK {
				return &ExitError{Code: code, Err: errReported}
			}
			return nil
		},
	}
}
