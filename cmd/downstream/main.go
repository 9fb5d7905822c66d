// Command downstream serves GET/POST / by calling the upstream; configured by environment.
package main

import (
	"os"

	"github.com/gracelab/gracelab/internal/downstream"
)

func main() {
	os.Exit(downstream.Main(os.Getenv, os.Stderr))
}
