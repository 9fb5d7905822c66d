package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gracelab/gracelab/internal/report"
)

func newReportCommand(streams Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "report DIR",
		Short: "Re-render a drill's table, charts, REPORT.md and report.html from its report.json",
		Long: `Read DIR/report.json (written by gracelab demo, here or on a real cluster elsewhere) and
write the charts, REPORT.md and report.html next to it again, then print the comparison table.
report.json itself is left as it is.`,
		Example: `  gracelab report reports/20260314-092653/`,
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return runReport(args[0], streams)
		},
	}
}

func runReport(dir string, streams Streams) error {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return usageError("%s is not a directory: give the report directory a drill wrote", dir)
	}
	r, err := report.ReadDir(dir)
	if err != nil {
		return &ExitError{Code: ExitFailed, Err: err}
	}
	if err := report.WriteTable(streams.Out, r); err != nil {
		return err
	}
	for _, line := range r.BreachLines() {
		fmt.Fprintln(streams.Out, line)
	}
	files, err := report.Render(dir, r)
	printFiles(streams, dir, files)
	if err != nil {
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("rendering the report: %w", err)}
	}
	return nil
}

// printFiles names what a report directory now holds.
func printFiles(streams Streams, dir string, files report.Files) {
	fmt.Fprintf(streams.Out, "\nReport in %s:\n", dir)
	for _, p := range files.List() {
		fmt.Fprintf(streams.Out, "  %s\n", p)
	}
}
