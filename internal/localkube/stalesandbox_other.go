//go:build !linux

package localkube

import (
	"log/slog"
	"os"
)

// Pod sandboxes run on Linux only (internal/sandbox); elsewhere the directory is never made.

const sandboxDirPrefix = "gracelab-pods-"

func newSandboxDir(root string) (string, error) { return os.MkdirTemp(root, sandboxDirPrefix) }

func removeStaleSandboxDirs(root string, log *slog.Logger) {}
