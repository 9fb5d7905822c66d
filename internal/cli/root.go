// Package cli is gracelab's command layer: cobra commands that parse and validate flags, then
// hand a plain options struct to the package that does the work. Only Main decides exit codes.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/gracelab/gracelab/internal/gate"
	"github.com/gracelab/gracelab/internal/report"
)

// Streams are the IO a command may use; tests pass buffers, and a channel of signals.
type Streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// Signals replaces this process's SIGINT and SIGTERM when set (see watchInterrupts).
	Signals <-chan os.Signal
}

// StdStreams returns the process's standard streams.
func StdStreams() Streams {
	return Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
}

// Exit codes shared by every command (docs/exit-codes.md), defined once in gate.
const (
	ExitOK       = gate.ExitOK
	ExitFailed   = gate.ExitFailed   // the run itself failed (or was interrupted)
	ExitBadArgs  = gate.ExitBadInput // bad flags or arguments: nothing was done
	ExitBreached = gate.ExitBreached // the run completed and its report is written, but a threshold was breached
)

// ExitError carries an exit code up to Main; the message is printed once, there.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// usageError marks bad input: exit code 2, nothing was sent or started.
func usageError(format string, args ...any) error {
	return &ExitError{Code: ExitBadArgs, Err: fmt.Errorf(format, args...)}
}

// NewRootCommand builds the gracelab command tree.
func NewRootCommand(streams Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "gracelab",
		Short: "Measure what a Kubernetes rolling restart does to requests in flight",
		Long: `gracelab proves with measurements why graceful shutdown matters during a
Kubernetes rolling restart. It runs two services (upstream, downstream) as v1 (no
protection), v2 (preStop, SIGTERM drain, readiness, maxUnavailable 0) and v3 (v2 plus
client retries), drives load through them, restarts the upstream mid-load and compares.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       report.CurrentHost().Gracelab,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	// Flag parse errors are bad input: exit 2 with the message, as for any other usage error.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &ExitError{Code: ExitBadArgs, Err: err}
	})
	// Runnable, so cobra checks the root's arguments with its Args (an unknown command is a
	// usage error) instead of printing the help.
	root.Args = cobra.NoArgs
	root.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	root.AddCommand(
		// Each command registers here.
		newLoadCommand(streams),
		newServeCommand(streams),
		newDemoCommand(streams),
		newClusterCommand(streams),
		newRestartCommand(streams),
		newReportCommand(streams),
		newCheckCommand(streams),
		newDrillCommand(streams),
		newAblateCommand(streams),
		newKillContainerCommand(streams),
	)
	usageArgs(root)
	return root
}

// usageArgs makes every argument error of cmd and its subcommands a usage error (exit 2),
// cobra's own (unknown command, wrong count) included.
func usageArgs(cmd *cobra.Command) {
	check := cmd.Args
	if check == nil {
		check = cobra.ArbitraryArgs
	}
	cmd.Args = func(c *cobra.Command, args []string) error {
		err := check(c, args)
		var exitErr *ExitError
		if err == nil || errors.As(err, &exitErr) {
			return err
		}
		return &ExitError{Code: ExitBadArgs, Err: err}
	}
	for _, sub := range cmd.Commands() {
		usageArgs(sub)
	}
}

// Main runs the command line and returns the process exit code.
func Main(args []string, streams Streams) int {
	root := NewRootCommand(streams)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	if !errors.Is(err, errReported) {
		fmt.Fprintf(streams.ErrOut, "gracelab: %v\n", err)
	}
	var exitErr *ExitError
	if errors.As(err, &exitErr) {
		return exitErr.Code
	}
	return ExitFailed
}
