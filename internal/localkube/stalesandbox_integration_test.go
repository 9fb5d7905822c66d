//go:build linux

package localkube

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The test binary re-executed as a sandbox directory's owner: it creates the directory under
// $GRACELAB_SANDBOX_OWNER_ROOT as a cluster's Up does, prints it and waits to be killed. With
// $GRACELAB_SANDBOX_SCAN_ROOT instead (run in a mount namespace of its own) it mounts a tmpfs
// at $GRACELAB_SANDBOX_MOUNT_AT, scans and says whether the tmpfs's file survived.
func TestHelperSandboxOwner(t *testing.T) {
	if root := os.Getenv("GRACELAB_SANDBOX_OWNER_ROOT"); root != "" {
		dir, err := newSandboxDir(root)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("dir", dir)
		io.Copy(io.Discard, os.Stdin) // until killed, or the test's end of stdin closes
		os.Exit(0)
	}
	if root := os.Getenv("GRACELAB_SANDBOX_SCAN_ROOT"); root != "" {
		at := os.Getenv("GRACELAB_SANDBOX_MOUNT_AT")
		if err := os.Mkdir(at, 0o755); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		if err := syscall.Mount("tmpfs", at, "tmpfs", 0, "size=1m"); err != nil {
			fmt.Println("error mounting:", err)
			os.Exit(1)
		}
		file := filepath.Join(at, "data")
		if err := os.WriteFile(file, []byte("on the mounted filesystem"), 0o644); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		removeStaleSandboxDirs(root, slog.New(slog.NewTextHandler(os.Stdout, nil)))
		if _, err := os.Stat(file); err != nil {
			fmt.Println("mounted file removed:", err)
		} else {
			fmt.Println("mounted file kept")
		}
		os.Exit(0) // the mount goes with this process's mount namespace
	}
	t.Skip("only a helper process for the stale sandbox directory tests")
}

// startSandboxOwner starts a process that owns a new sandbox directory under root.
func startSandboxOwner(t *testing.T, root string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSandboxOwner$")
	cmd.Env = append(os.Environ(), "GRACELAB_SANDBOX_OWNER_ROOT="+root)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if dir, ok := strings.CutPrefix(sc.Text(), "dir "); ok {
			return cmd, dir
		}
		t.Log("owner process:", sc.Text())
	}
	t.Fatalf("the owner process printed no directory (%v)", sc.Err())
	return nil, ""
}

// markedDir makes a sandbox directory under root with owner's mark.
func markedDir(t *testing.T, root string, owner procOwner) string {
	t.Helper()
	dir, err := os.MkdirTemp(root, sandboxDirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, sandboxOwnerFile), []byte(owner.mark()), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readMark(t *testing.T, dir string) procOwner {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, sandboxOwnerFile))
	if err != nil {
		t.Fatal(err)
	}
	o, err := parseOwnerMark(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func killAndReap(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait() // reaped: no zombie holds the PID
}

func assertExists(t *testing.T, path, what string) {
	t.Helper()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("%s %s was removed: %v", what, path, err)
	}
}

func assertRemoved(t *testing.T, path, what string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("%s %s is still there (%v)", what, path, err)
	}
}

func TestIntegrationStaleSandboxDirs(t *testing.T) {
	integration(t)
	root := t.TempDir()
	killed, killedDir := startSandboxOwner(t, root)
	_, liveDir := startSandboxOwner(t, root)
	// What a sandbox leaves: a pod's directory with its generated files.
	if err := os.MkdirAll(filepath.Join(killedDir, "api-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(killedDir, "api-1", "hosts"), []byte("127.0.0.1 localhost\n"), 0o644)
	killAndReap(t, killed)
	dead := readMark(t, killedDir)
	if dead.PID != killed.Process.Pid {
		t.Fatalf("the mark names PID %d, the owner was %d", dead.PID, killed.Process.Pid)
	}

	ownDir, err := newSandboxDir(root)
	if err != nil {
		t.Fatal(err)
	}
	self, err := selfOwner()
	if err != nil {
		t.Fatal(err)
	}
	reused := self // this very PID, but started at another time: an earlier owner's PID reused
	reused.Start++
	reusedDir := markedDir(t, root, reused)
	otherNS := dead // a dead PID, but in a PID namespace we cannot see into
	otherNS.PIDNS = "pid:[1]"
	otherNSDir := markedDir(t, root, otherNS)
	legacyDir, err := os.MkdirTemp(root, sandboxDirPrefix) // no mark: an older gracelab's
	if err != nil {
		t.Fatal(err)
	}
	// A dead owner's directory outside root, reached through a symlink in root.
	outside := markedDir(t, t.TempDir(), dead)
	link := filepath.Join(root, sandboxDirPrefix+"link")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	// A dead owner's mark in a directory not named as ours.
	unnamed := filepath.Join(root, "other")
	os.Mkdir(unnamed, 0o755)
	os.WriteFile(filepath.Join(unnamed, sandboxOwnerFile), []byte(dead.mark()), 0o600)

	var logged bytes.Buffer
	removeStaleSandboxDirs(root, slog.New(slog.NewTextHandler(&logged, nil)))

	assertRemoved(t, killedDir, "the SIGKILLed owner's directory")
	assertRemoved(t, reusedDir, "the directory of a PID now reused")
	assertExists(t, liveDir, "a live process's directory")
	assertExists(t, ownDir, "this process's own directory")
	assertExists(t, otherNSDir, "a directory of another PID namespace")
	assertExists(t, legacyDir, "an unmarked directory")
	assertExists(t, link, "a symlink")
	assertExists(t, filepath.Join(outside, sandboxOwnerFile), "a directory outside the temp directory")
	assertExists(t, filepath.Join(unnamed, sandboxOwnerFile), "a directory not named gracelab-pods-*")
	for _, want := range []string{
		fmt.Sprintf("dir=%s reason=\"its owner, PID %d, has exited\"", killedDir, dead.PID),
		fmt.Sprintf("dir=%s reason=\"its owner, PID %d, has exited (the PID is another process's now)\"", reusedDir, self.PID),
	} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logged.String())
		}
	}
	if n := strings.Count(logged.String(), "removed a stale sandbox directory"); n != 2 {
		t.Errorf("%d removals logged, want 2:\n%s", n, logged.String())
	}
}

// A dead owner's directory with a filesystem mounted inside is left: removing it would empty
// the mounted filesystem. The scan runs in a child with a mount namespace of its own, so the
// mount never shows outside it.
func TestIntegrationStaleSandboxDirWithMount(t *testing.T) {
	integration(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	root := t.TempDir()
	killed, dir := startSandboxOwner(t, root)
	killAndReap(t, killed)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSandboxOwner$")
	cmd.Env = append(os.Environ(), "GRACELAB_SANDBOX_SCAN_ROOT="+root, "GRACELAB_SANDBOX_MOUNT_AT="+filepath.Join(dir, "mnt"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scan in a mount namespace: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "mounted file kept") || !strings.Contains(string(out), "a filesystem is mounted inside") {
		t.Errorf("the scan did not leave the directory with a mount inside:\n%s", out)
	}
	assertExists(t, dir, "the directory that had a mount inside")
	// Here, with nothing mounted in it, the same directory goes.
	removeStaleSandboxDirs(root, slog.New(slog.DiscardHandler))
	assertRemoved(t, dir, "the SIGKILLed owner's directory")
}

// A cluster's Up removes what a SIGKILLed cluster left, and marks its own directory.
func TestIntegrationStaleSandboxDirRemovedByUp(t *testing.T) {
	integration(t)
	root := t.TempDir()
	t.Setenv("TMPDIR", root) // os.TempDir, which Up scans
	killed, killedDir := startSandboxOwner(t, root)
	_, liveDir := startSandboxOwner(t, root)
	killAndReap(t, killed)
	c := startSandboxed(t, "stale-sandbox-up-marker", app{name: "api", replicas: 1, env: map[string]string{"POD_LISTEN": ":8080"}})
	assertRemoved(t, killedDir, "the SIGKILLed owner's directory")
	assertExists(t, liveDir, "a live process's directory")
	if filepath.Dir(c.sandboxDir) != root {
		t.Fatalf("the cluster's directory %s is not under %s", c.sandboxDir, root)
	}
	self, err := selfOwner()
	if err != nil {
		t.Fatal(err)
	}
	if got := readMark(t, c.sandboxDir); got != self {
		t.Errorf("the cluster's directory is marked %+v, want this process %+v", got, self)
	}
}
