//go:build linux

package sandbox_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/sandbox"
)

// The test binary plays three parts besides the tests: the shim (re-executed by Start), a pod
// program (GRACELAB_SANDBOX_TEST_PROG), and a gracelab-like parent that makes a sandbox and
// then waits to be killed (GRACELAB_SANDBOX_TEST_PARENT).
func TestMain(m *testing.M) {
	if sandbox.IsShim() {
		os.Exit(sandbox.ShimMain())
	}
	switch os.Getenv("GRACELAB_SANDBOX_TEST_PROG") {
	case "serve":
		os.Exit(serveProgram())
	case "dial":
		os.Exit(dialProgram())

	}
	switch os.Getenv("GRACELAB_SANDBOX_TEST_PARENT") {
	case "hold":
		os.Exit(holdParent())
	case "probe":
		os.Exit(probeParent())
	case "limit-userns":
		os.Exit(limitUserns())
	}
	os.Exit(m.Run())
}

// serveProgram binds all interfaces on a fixed port, as real programs do, and answers with its
// hostname and what a name resolves to inside the pod.
func serveProgram() int {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		host, _ := os.Hostname()
		fmt.Fprintf(w, "host=%s", host)
		if n := r.URL.Query().Get("resolve"); n != "" {
			addrs, err := net.LookupHost(n)
			fmt.Fprintf(w, " resolve=%s err=%v", strings.Join(addrs, ","), err)
		}
	})
	fmt.Fprintln(os.Stderr, http.ListenAndServe(":8080", nil))
	return 1
}

// dialProgram connects to a Service by name and port, writes a line and prints the answer.
func dialProgram() int {
	c, err := net.DialTimeout("tcp", os.Getenv("TARGET"), 10*time.Second)
	if err != nil {
		fmt.Println("dial error:", err)
		return 1
	}
	defer c.Close()
	fmt.Fprintln(c, "hello from the pod")
	line, err := bufio.NewReader(c).ReadString('\n')
	fmt.Print("answer: ", line)
	if err != nil {
		return 1
	}
	return 0
}

func start(t *testing.T, name string, cfg sandbox.Config) *sandbox.Sandbox {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real sandboxes")
	}
	cfg.Name = name
	cfg.Dir = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sb, err := sandbox.Start(ctx, "", cfg, nil)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { sb.Close() })
	return sb
}

func run(t *testing.T, sb *sandbox.Sandbox, prog string, env ...string) (*sandbox.Process, *os.File) {
	t.Helper()
	exe, _ := os.Executable()
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	p, err := sb.Run(context.Background(), sandbox.ProcSpec{
		Path: exe, Args: []string{exe, "-marker=" + t.Name()},
		Env:    append([]string{"GRACELAB_SANDBOX_TEST_PROG=" + prog}, env...),
		Stdout: out, Stderr: out,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, out
}

// get sends an HTTP request to the pod through a connection the shim dialled inside it,
// retrying until the program listens or the deadline passes.
func get(t *testing.T, sb *sandbox.Sandbox, path string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		body, err := getOnce(sb, path)
		if err == nil {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s in the sandbox: %v", path, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

func getOnce(sb *sandbox.Sandbox, path string) (string, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return sb.Dial(ctx, "127.0.0.1:8080")
		},
	}}
	resp, err := client.Get("http://pod" + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestIntegrationTwoPodsBindTheSamePort(t *testing.T) {
	a := start(t, "api-a", sandbox.Config{})
	b := start(t, "api-b", sandbox.Config{})
	run(t, a, "serve")
	run(t, b, "serve")
	if got := get(t, a, "/"); got != "host=api-a" {
		t.Errorf("pod a answered %q, want host=api-a", got)
	}
	if got := get(t, b, "/"); got != "host=api-b" {
		t.Errorf("pod b answered %q, want host=api-b", got)
	}
	// Nothing of the pods is on the host's loopback.
	if c, err := net.DialTimeout("tcp", "127.0.0.1:8080", time.Second); err == nil {
		c.Close()
		t.Log("note: something on the host listens on 127.0.0.1:8080 (not the pods: they answered with their own names)")
	}
}

func TestIntegrationNamesResolveToServices(t *testing.T) {
	sb := start(t, "web", sandbox.Config{
		Hosts:  []sandbox.HostEntry{{IP: "127.96.0.7", Names: []string{"api", "api.shop", "api.shop.svc", "api.shop.svc.cluster.local"}}},
		Search: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local"},
	})
	run(t, sb, "serve")
	for _, name := range []string{"api", "api.shop.svc.cluster.local"} {
		got := get(t, sb, "/?resolve="+name)
		if want := "host=web resolve=127.96.0.7 err=<nil>"; got != want {
			t.Errorf("resolving %s inside the pod: %q, want %q", name, got, want)
		}
	}
	hosts, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(hosts), "api.shop.svc.cluster.local") {
		t.Error("the sandbox's /etc/hosts leaked onto the host")
	}
}

func TestIntegrationServiceTrafficComesOut(t *testing.T) {
	// The pod itself listens on all interfaces at the Service's port, as most programs do.
	sb := start(t, "client", sandbox.Config{
		Hosts:  []sandbox.HostEntry{{IP: "127.96.0.9", Names: []string{"api"}}},
		Listen: []string{"127.96.0.9:8080"},
	})
	run(t, sb, "serve")
	get(t, sb, "/")
	p, out := run(t, sb, "dial", "TARGET=api:8080")
	var acc sandbox.Accepted
	select {
	case acc = <-sb.Accepted():
	case <-time.After(15 * time.Second):
		t.Fatal("no connection came out of the sandbox")
	}
	if acc.Listen != "127.96.0.9:8080" {
		t.Errorf("accepted on %q", acc.Listen)
	}
	line, err := bufio.NewReader(acc.Conn).ReadString('\n')
	if err != nil || line != "hello from the pod\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	fmt.Fprintln(acc.Conn, "hello from the Service")
	acc.Conn.Close()
	<-p.Done
	if !p.Status.Exited() || p.Status.ExitStatus() != 0 {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("pod program: %v, output %s", p.Status, b)
	}
	if b, _ := os.ReadFile(out.Name()); string(b) != "answer: hello from the Service\n" {
		t.Errorf("pod program printed %q", b)
	}
}

func TestIntegrationSignalAndDeadPodRefuses(t *testing.T) {
	sb := start(t, "api", sandbox.Config{})
	p, _ := run(t, sb, "serve")
	get(t, sb, "/")
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done:
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if !p.Status.Signaled() || p.Status.Signal() != syscall.SIGTERM {
		t.Errorf("status %v, want killed by SIGTERM", p.Status)
	}
	// The process is gone but the pod's network is not: a connection is refused at once.
	_, err := sb.Dial(context.Background(), "127.0.0.1:8080")
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("dial to a dead pod: %v, want connection refused", err)
	}
}

// markerProcs lists host processes whose command line carries marker.
func markerProcs(t *testing.T, marker string) []string {
	t.Helper()
	var found []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), marker) {
			found = append(found, f)
		}
	}
	return found
}

func waitGone(t *testing.T, marker string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(markerProcs(t, marker)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("processes left behind: %v", markerProcs(t, marker))
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

func TestIntegrationCloseLeavesNothing(t *testing.T) {
	sb := start(t, "api", sandbox.Config{})
	run(t, sb, "serve")
	get(t, sb, "/")
	if len(markerProcs(t, "-marker="+t.Name())) == 0 {
		t.Fatal("the pod process is not visible on the host: the test cannot see what it checks")
	}
	sb.Close()
	waitGone(t, "-marker="+t.Name())
}

// holdParent plays gracelab: it makes a sandbox running a pod program, says so, and waits.
func holdParent() int {
	dir := os.Getenv("DIR")
	sb, err := sandbox.Start(context.Background(), "", sandbox.Config{Name: "held", Dir: dir}, nil)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	exe, _ := os.Executable()
	if _, err := sb.Run(context.Background(), sandbox.ProcSpec{Path: exe, Args: []string{exe, "-marker=" + os.Getenv("MARKER")},
		Env: []string{"GRACELAB_SANDBOX_TEST_PROG=serve"}}); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("ready")
	select {}
}

func TestIntegrationKilledParentLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real sandboxes")
	}
	marker := fmt.Sprintf("-marker=killed-%d", time.Now().UnixNano())
	exe, _ := os.Executable()
	dir := t.TempDir()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "GRACELAB_SANDBOX_TEST_PARENT=hold", "DIR="+dir, "MARKER="+strings.TrimPrefix(marker, "-marker="))
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("parent: %q", line)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(markerProcs(t, marker)) == 0 { // the pod process starts right after the reply
		if time.Now().After(deadline) {
			t.Fatal("the pod process never appeared")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	waitGone(t, marker)
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), dir) {
		t.Errorf("a sandbox mount is left on the host: %s", mounts)
	}
}

// probeParent tries one sandbox and reports the outcome on stdout.
func probeParent() int {
	dir, err := os.MkdirTemp("", "sandbox-probe")
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	sb, err := sandbox.Start(context.Background(), "", sandbox.Config{Name: "probe", Dir: dir}, nil)
	if err != nil {
		fmt.Println("unsupported:", errors.Is(err, sandbox.ErrUnsupported), err)
		return 0
	}
	defer sb.Close()
	exe, _ := os.Executable()
	p, err := sb.Run(context.Background(), sandbox.ProcSpec{Path: exe, Args: []string{exe}, Env: []string{"GRACELAB_SANDBOX_TEST_PROG=serve"}})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		body, err := getOnce(sb, "/")
		if err == nil {
			fmt.Printf("ok uid=%d %s\n", os.Geteuid(), body)
			p.Signal(syscall.SIGKILL)
			return 0
		}
		if time.Now().After(deadline) {
			fmt.Println("error:", err)
			return 1
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unprivileged runs the test binary as nobody, from a copy nobody can execute.
func unprivileged(t *testing.T, env ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real sandboxes")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to another user")
	}
	cmd := exec.Command(publicCopy(t))
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "TMPDIR=/tmp"}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// publicCopy copies the test binary where any user may run it.
func publicCopy(t *testing.T) string {
	t.Helper()
	exe, _ := os.Executable()
	dir, err := os.MkdirTemp("", "sandbox-unpriv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	copyExe := filepath.Join(dir, "sandbox.test")
	if err := os.WriteFile(copyExe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return copyExe
}

func TestIntegrationUnprivilegedUser(t *testing.T) {
	got := unprivileged(t, "GRACELAB_SANDBOX_TEST_PARENT=probe")
	if got != "ok uid=65534 host=probe" {
		t.Errorf("as nobody: %q, want a working sandbox", got)
	}
}

// limitUserns forbids new user namespaces below its own and runs the probe as nobody there:
// the refusal a host's policy gives, made for real.
func limitUserns() int {
	if err := os.WriteFile("/proc/sys/user/max_user_namespaces", []byte("0"), 0); err != nil {
		fmt.Println("error: limiting user namespaces:", err)
		return 1
	}
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = []string{"GRACELAB_SANDBOX_TEST_PARENT=probe", "TMPDIR=/tmp"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	return 0
}

func TestIntegrationRefusedNamespacesSayWhy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to make the user namespace that forbids others")
	}
	cmd := exec.Command(publicCopy(t))
	cmd.Env = []string{"GRACELAB_SANDBOX_TEST_PARENT=limit-userns"}
	cmd.Dir = "/"
	// A user namespace mapping the whole uid range, in which the child may set its own limit.
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
		// The child switches to nobody, which takes setgroups.
		GidMappingsEnableSetgroups: true,
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := string(out); !strings.HasPrefix(got, "unsupported: true ") {
		t.Errorf("with user namespaces forbidden: %q, want an ErrUnsupported refusal", got)
	}
}

// A start given up half-way (the drill failing, Ctrl-C) must return, and leave no shim.
func TestIntegrationStartGivenUpReturns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real sandboxes")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // before the shim can say it is ready
	done := make(chan error, 1)
	go func() {
		sb, err := sandbox.Start(ctx, "", sandbox.Config{Name: "given-up", Dir: t.TempDir()}, nil)
		if err == nil { // the shim won the race: still a sandbox to close
			err = sb.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Start with a cancelled context: %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Start with a cancelled context did not return in 30 s (Close waits for a reader that never sees the shim go)")
	}
}
