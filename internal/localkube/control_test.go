//go:build linux

package localkube

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestControlReportsAStaleStateFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GRACELAB_RUNTIME_DIR", dir)
	// A process that has exited: its pid is free.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := writeState(StateFile(), ControlState{PID: cmd.Process.Pid, Addr: "127.0.0.1:1", Token: "x"}); err != nil {
		t.Fatal(err)
	}
	err := RestartViaControl(context.Background(), "upstream")
	if err == nil || !strings.Contains(err.Error(), "stale state file") || !strings.Contains(err.Error(), "no longer running") {
		t.Fatalf("stale file: %v", err)
	}
	if _, err := os.Stat(StateFile()); !errors.Is(err, os.ErrNotExist) {
		t.Error("the stale state file was not removed")
	}
	os.WriteFile(filepath.Join(dir, "cluster.json"), []byte("{not json"), 0o600)
	if err := RestartViaControl(context.Background(), "upstream"); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt file: %v", err)
	}
}

func TestStateFileLocation(t *testing.T) {
	t.Setenv("GRACELAB_RUNTIME_DIR", "")
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	if got := StateFile(); got != "/run/user/1000/gracelab/cluster.json" {
		t.Errorf("with XDG_RUNTIME_DIR: %s", got)
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	if got := StateFile(); !strings.HasPrefix(got, os.TempDir()) {
		t.Errorf("without XDG_RUNTIME_DIR: %s", got)
	}
}
