package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/sandbox"
)

// The integration tests run real binaries, each built once per test run into binDir.
var (
	binMu     sync.Mutex
	binDir    string
	binBuilds = map[string]*binBuild{}
)

type binBuild struct {
	once sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	// A command run in-process (through Main) that starts the embedded cluster re-executes
	// this test binary (os.Executable) as its pod sandboxes' shim and as the built-in images'
	// `gracelab serve`: it must then be gracelab, as cmd/gracelab is, not run the whole suite
	// again inside a pod.
	if sandbox.IsShim() {
		os.Exit(sandbox.ShimMain())
	}
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(Main(os.Args[1:], StdStreams()))
	}
	// The integration tests (t.Parallel) mostly wait on rollouts and processes, not the CPU:
	// run 8 at once unless -parallel says otherwise (its default, GOMAXPROCS, is 2 on 2 cores).
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", "8")
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// built builds the main package pkg the first time a test needs it.
func built(t *testing.T, pkg string) string {
	t.Helper()
	binMu.Lock()
	b := binBuilds[pkg]
	if b == nil {
		b = &binBuild{}
		binBuilds[pkg] = b
	}
	if binDir == "" {
		var err error
		if binDir, err = os.MkdirTemp("", "gracelab-cli-test-"); err != nil {
			binMu.Unlock()
			t.Fatal(err)
		}
	}
	dir := binDir
	binMu.Unlock()
	b.once.Do(func() {
		b.path = filepath.Join(dir, path.Base(pkg))
		if out, err := exec.Command("go", "build", "-o", b.path, pkg).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// gracelabBinary is ./cmd/gracelab, built once.
func gracelabBinary(t *testing.T) string {
	return built(t, "github.com/gracelab/gracelab/cmd/gracelab")
}

// teamappBinary is a team's program (internal/localkube/testdata/teamapp: not one of
// gracelab's services), built once.
func teamappBinary(t *testing.T) string {
	return built(t, "github.com/gracelab/gracelab/internal/localkube/testdata/teamapp")
}

// ownGracelab is the gracelab binary under a path of the test's own (a hard link), so that
// processesOf finds this test's processes only (pods included), whatever runs in parallel.
func ownGracelab(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "gracelab")
	if err := os.Link(gracelabBinary(t), exe); err != nil {
		t.Fatal(err)
	}
	return exe
}

// runGracelab runs the real gracelab with args and stdin (none when empty) for at most
// timeout, checks it left no process behind, and returns its output and exit code. Tests
// that call it are integration tests: skipped under -short.
func runGracelab(t *testing.T, timeout time.Duration, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs the real gracelab")
	}
	exe := ownGracelab(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("gracelab %s: still running after %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), timeout, out.String(), errOut.String())
	}
	code = exitCode(t, err)
	assertNoneLeft(t, exe)
	return out.String(), errOut.String(), code
}

// startedGracelab is a real gracelab running in the background, for tests that signal it
// mid-run: its stderr is read line by line, its stdout kept.
type startedGracelab struct {
	exe    string
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr *lineWaiter
	pw     *io.PipeWriter
}

// startGracelab starts the real gracelab with args (an integration test: skipped under -short);
// it is killed at timeout or when the test ends.
func startGracelab(t *testing.T, timeout time.Duration, args ...string) *startedGracelab {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs the real gracelab")
	}
	g := &startedGracelab{exe: ownGracelab(t)}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	g.cmd = exec.CommandContext(ctx, g.exe, args...)
	var pr *io.PipeReader
	pr, g.pw = io.Pipe()
	g.cmd.Stdout, g.cmd.Stderr = &g.stdout, g.pw
	if err := g.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = g.cmd.Wait() // a no-op error when the test waited already
		g.pw.Close()
	})
	g.stderr = newLineWaiter(pr)
	return g
}

// interrupt sends SIGINT.
func (g *startedGracelab) interrupt(t *testing.T) {
	t.Helper()
	if err := g.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
}

// interruptTwice sends SIGINT, waits until gracelab says it is stopping (two signals sent at
// once may reach it as one), then sends the second.
func (g *startedGracelab) interruptTwice(t *testing.T, stopping *regexp.Regexp) {
	t.Helper()
	g.interrupt(t)
	g.stderr.wait(t, stopping, 10*time.Second)
	g.interrupt(t)
}

// wait waits for gracelab to exit, checks it left no process behind, and returns its exit code.
func (g *startedGracelab) wait(t *testing.T) int {
	t.Helper()
	err := g.cmd.Wait()
	g.pw.Close()
	code := exitCode(t, err)
	<-g.stderr.eof
	assertNoneLeft(t, g.exe)
	return code
}

// processesOf lists the live processes running exe (pods included: they are gracelab too).
func processesOf(exe string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		if target, err := os.Readlink(p); err == nil && target == exe {
			cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
			out = append(out, filepath.Base(filepath.Dir(p))+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return out
}

// assertNoneLeft waits a little for exiting processes, then fails if any gracelab remains.
func assertNoneLeft(t *testing.T, exe string) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if left = processesOf(exe); len(left) == 0 {
			return
		}
	}
	t.Errorf("processes left behind: %v", left)
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatal(err)
	return -1
}

// An embedded cluster run in-process makes its pod sandboxes with this test binary as the
// shim (os.Executable): TestMain must make it one, or the sandbox's process runs this whole
// suite and the cluster falls back to no sandbox (or fails with --sandbox ns).
func TestIntegrationTestBinaryIsASandboxShim(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: real pod sandboxes")
	}
	probe := func(exe string) error { // a minute: a loaded machine starts the race-enabled binary slowly
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return sandbox.Probe(ctx, exe, t.TempDir(), nil)
	}
	if err := probe(gracelabBinary(t)); err != nil {
		t.Skipf("pod sandboxes are not available here: %v", err)
	}
	if err := probe(""); err != nil {
		t.Fatalf("a sandbox with this test binary as its shim: %v", err)
	}
}

// The built-in images run `gracelab serve NAME`, which in-process runs make this test binary.
func TestIntegrationTestBinaryServes(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: real processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, os.Args[0], "serve", "sidecar").CombinedOutput()
	if code := exitCode(t, err); code != ExitBadArgs || strings.Count(string(out), "\n") != 1 || !strings.Contains(string(out), "sidecar") {
		t.Errorf("this test binary as `gracelab serve sidecar`: exit %d, output %q; want gracelab's one usage line, exit 2", code, out)
	}
}
