//go:build linux

package cli

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/sandbox"
)

// `gracelab cluster up --sandbox`, run as root, as an unprivileged user, and where user
// namespaces are forbidden; each time gracelab is SIGKILLed at the end and must leave no
// process, mount or namespace behind.

// publicGracelab copies the gracelab binary where any user may run it; processes of that
// copy are this test's alone.
func publicGracelab(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(gracelabBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "gracelab-sandbox-cli-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "gracelab")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
}

// runtimeDirForAnyone is a directory an unprivileged gracelab can write (GRACELAB_RUNTIME_DIR,
// TMPDIR), removed when the test ends.
func runtimeDirForAnyone(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gracelab-sandbox-run-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sandboxedUp is a running `gracelab cluster up` and what it printed.
type sandboxedUp struct {
	cmd    *exec.Cmd
	lines  *lineWaiter
	exited chan struct{}
	target string // the LoadBalancer's URL
	pods   string // the "pods:" line
	names  []string
}

// startSandboxedUp starts cmd (a `gracelab cluster up -f v2`), waits until it is up and
// checks that the downstream answers through the Service proxy.
func startSandboxedUp(t *testing.T, cmd *exec.Cmd) *sandboxedUp {
	t.Helper()
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	u := &sandboxedUp{cmd: cmd, lines: newLineWaiter(pr), exited: make(chan struct{})}
	go func() { cmd.Wait(); pw.Close(); close(u.exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-u.exited
	})
	re := regexp.MustCompile(`downstream \(LoadBalancer\): (http://127\.0\.0\.1:\d+/)`)
	for deadline := time.Now().Add(2 * time.Minute); u.target == ""; {
		if m := re.FindStringSubmatch(u.lines.text()); m != nil {
			u.target = m[1]
			break
		}
		select {
		case <-u.exited:
			t.Fatalf("cluster up exited: %s\n%s\n%s", cmd.ProcessState, u.lines.text(), stderr.String())
		case <-time.After(50 * time.Millisecond): // polling the output
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster up was not up within 2 minutes:\n%s\n%s", u.lines.text(), stderr.String())
		}
	}
	u.pods = u.lines.wait(t, regexp.MustCompile(`(?m)^  pods: .*`), 5*time.Second)[0]
	u.lines.wait(t, regexp.MustCompile(`Ctrl-C tears the cluster down`), 5*time.Second)
	for _, l := range strings.Split(u.lines.text(), "\n") {
		if m := regexp.MustCompile(`^  pod (\S+)`).FindStringSubmatch(l); m != nil {
			u.names = append(u.names, m[1])
		}
	}
	resp, err := http.Get(u.target)
	if err != nil {
		t.Fatalf("through the LoadBalancer: %v\n%s", err, stderr.String())
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"status":"ok"`) {
		t.Fatalf("downstream answered %d %s", resp.StatusCode, body)
	}
	return u
}

// shimNamespaces finds each pod's shim and returns the namespaces it holds that the test
// process does not share: "net:[4026532...]" and so on.
func shimNamespaces(t *testing.T, pods []string) map[string]bool {
	t.Helper()
	mine := map[string]bool{}
	kinds := []string{"net", "mnt", "pid", "uts", "user"}
	for _, k := range kinds {
		if l, err := os.Readlink("/proc/self/ns/" + k); err == nil {
			mine[l] = true
		}
	}
	held := map[string]bool{}
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	shims := 0
	for _, f := range cmdlines {
		b, _ := os.ReadFile(f)
		for _, pod := range pods {
			if !strings.Contains(string(b), "sandbox-shim\x00"+pod+"\x00") {
				continue
			}
			shims++
			for _, k := range kinds {
				if l, err := os.Readlink(filepath.Join(filepath.Dir(f), "ns", k)); err == nil && !mine[l] {
					held[l] = true
				}
			}
		}
	}
	if shims != len(pods) {
		t.Fatalf("%d shims for %d pods %v", shims, len(pods), pods)
	}
	return held
}

// leftovers lists what is left of the pods: processes of exe, processes in or descriptors
// of their namespaces, and mounts of their generated files on the host. Only processes alive
// before the kill count: the kernel reuses a freed namespace's inode number for new ones.
func leftovers(exe string, namespaces map[string]bool, before map[string]string) []string {
	left := processesOf(exe)
	links, _ := filepath.Glob("/proc/[0-9]*/ns/*")
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, l := range append(links, fds...) {
		target, err := os.Readlink(l)
		if err != nil || !namespaces[target] {
			continue
		}
		proc := strings.Join(strings.SplitN(l, "/", 4)[:3], "/") // /proc/PID
		if st, ok := before[proc]; ok && st == startTime(proc) {
			left = append(left, l+" -> "+target)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, m := range strings.Split(string(mounts), "\n") {
		if strings.Contains(m, "gracelab-pods-") {
			left = append(left, "mount: "+m)
		}
	}
	return left
}

// processStarts maps every /proc/PID to its start time.
func processStarts() map[string]string {
	out := map[string]string{}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		out[p] = startTime(p)
	}
	return out
}

// startTime is field 22 of /proc/PID/stat: when the process started, in ticks since boot.
func startTime(proc string) string {
	b, _ := os.ReadFile(proc + "/stat")
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 19 {
			return f[19]
		}
	}
	return ""
}

// killAndCheck SIGKILLs gracelab (no Down, no clean-up code runs) and waits for the kernel to
// take the pods and their namespaces with it.
func killAndCheck(t *testing.T, u *sandboxedUp, exe string, namespaces map[string]bool) {
	t.Helper()
	if len(processesOf(exe)) < 2 {
		t.Fatalf("no pod processes before the kill: %v", processesOf(exe))
	}
	before := processStarts()
	if err := u.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var left []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if left = leftovers(exe, namespaces, before); len(left) == 0 {
			return
		}
	}
	t.Errorf("left behind by a SIGKILLed gracelab:\n%s", strings.Join(left, "\n"))
	for _, l := range processesOf(exe) {
		var pid int
		fmt.Sscanf(l, "%d:", &pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func TestIntegrationClusterUpSandboxedAsRoot(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: real pod sandboxes")
	}
	if os.Geteuid() != 0 {
		t.Skip("runs as root; TestIntegrationClusterUpSandboxedAsNobody covers other users")
	}
	exe := publicGracelab(t)
	cmd := exec.Command(exe, "cluster", "up", "-f", "v2", "--port", "0", "--sandbox", "ns")
	// TMPDIR: the pods' files a SIGKILLed gracelab cannot remove go where the test removes them.
	cmd.Env = append(os.Environ(), "GRACELAB_RUNTIME_DIR="+t.TempDir(), "TMPDIR="+t.TempDir())
	u := startSandboxedUp(t, cmd)
	if !strings.Contains(u.pods, "each in a sandbox of its own (network, mount, PID and UTS namespaces: --sandbox ns); "+sandbox.Limits) {
		t.Errorf("pods line %q does not say they run in sandboxes", u.pods)
	}
	ns := shimNamespaces(t, u.names)
	if len(ns) != 4*len(u.names) { // net, mnt, pid, uts per pod; no user namespace as root
		t.Errorf("the shims hold %d namespaces, want 4 per pod: %v", len(ns), ns)
	}
	killAndCheck(t, u, exe, ns)
}

// As nobody the shim makes a user namespace as well, and everything else works the same.
func TestIntegrationClusterUpSandboxedAsNobody(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: real pod sandboxes")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to another user")
	}
	exe := publicGracelab(t)
	cmd := exec.Command(exe, "cluster", "up", "-f", "v2", "--port", "0", "--sandbox", "ns")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + runtimeDirForAnyone(t), "GRACELAB_RUNTIME_DIR=" + runtimeDirForAnyone(t)}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	u := startSandboxedUp(t, cmd)
	if !strings.Contains(u.pods, "PID, UTS and user namespaces: --sandbox ns); "+sandbox.Limits) {
		t.Errorf("pods line %q does not say they run in user namespaces", u.pods)
	}
	ns := shimNamespaces(t, u.names)
	if len(ns) != 5*len(u.names) {
		t.Errorf("the shims hold %d namespaces, want 5 per pod: %v", len(ns), ns)
	}
	killAndCheck(t, u, exe, ns)
}

// Where user namespaces are forbidden (here for real: a limit of 0 set in a user namespace
// that the test makes, gracelab running as nobody inside), auto falls back to the shared
// loopback, says why, and the cluster works.
func TestIntegrationClusterUpFallsBackWithoutUserNamespaces(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: real processes")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to make the user namespace that forbids others")
	}
	exe := publicGracelab(t)
	cmd := exec.Command("/bin/sh", "-c", `echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv --reuid=65534 --regid=65534 --clear-groups "$0" cluster up -f v2 --port 0 --sandbox auto`, exe)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + runtimeDirForAnyone(t), "GRACELAB_RUNTIME_DIR=" + runtimeDirForAnyone(t)}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
		GidMappingsEnableSetgroups: true,
	}
	u := startSandboxedUp(t, cmd)
	if !strings.Contains(u.pods, "on the host's shared loopback, each at its own 127.x address (--sandbox none), because pod sandboxes are not available here: ") {
		t.Errorf("pods line %q does not say why it fell back", u.pods)
	}
	killAndCheck(t, u, exe, nil)
}
