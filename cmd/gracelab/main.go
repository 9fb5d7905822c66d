// Command gracelab runs the graceful-shutdown drill: load, rolling restart, report.
package main

import (
	"os"

	"github.com/gracelab/gracelab/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.StdStreams()))
}
