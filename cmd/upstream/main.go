// Command upstream serves GET/POST /api/data after simulated work; configured by environment.
package main

import (
	"os"

	"github.com/gracelab/gracelab/internal/upstream"
)

func main() {
	os.Exit(upstream.Main(os.Getenv, os.Stderr))
}
