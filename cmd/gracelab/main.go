// Command gracelab runs the graceful-shutdown drill: load, rolling restart, report.
package main

import (
	"os"

	"github.com/gracelab/gracelab/internal/cli"
	"github.com/gracelab/gracelab/internal/sandbox"
)

func main() {
	if sandbox.IsShim() { // re-executed as a pod sandbox's supervisor
		os.Exit(sandbox.ShimMain())
	}
	os.Exit(cli.Main(os.Args[1:], cli.StdStreams()))
}
