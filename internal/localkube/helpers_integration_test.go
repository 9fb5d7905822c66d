//go:build linux

package localkube

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
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

// startCluster builds and starts a cluster of test pods; Down runs at cleanup and the test
// fails if any pod process survives it.
func startCluster(t *testing.T, opts Options, apps ...app) *Cluster {
	t.Helper()
	files := map[string]string{}
	for _, a := range apps {
		files[a.name+".yaml"] = a.yaml()
	}
	if opts.Manifests == nil {
		opts.Manifests = manifests(files)
	}
	if opts.Executable == "" {
		opts.Executable = os.Args[0]
	}
	if opts.Images == nil {
		opts.Images = testImages
	}
	if opts.EndpointLag == 0 {
		opts.EndpointLag = 300 * time.Millisecond
	}
	if opts.NetworkLinger == 0 {
		opts.NetworkLinger = 800 * time.Millisecond // fixed, short: tests wait for pods to go
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	if opts.LogDir == "" {
		opts.LogDir = t.TempDir()
	}
	c, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Up(ctx); err != nil {
		t.Fatalf("Up: %v", err)
	}
	// A pod without a readiness probe is ready once its process has started, which on a
	// loaded machine can be well before it listens. Tests about what comes later wait.
	for _, p := range c.Pods() {
		waitListening(t, net.JoinHostPort(p.IP, "8080"))
	}
	var pids []int
	t.Cleanup(func() {
		for _, p := range c.Pods() {
			pids = append(pids, p.PID)
		}
		if err := c.Down(context.Background()); err != nil {
			t.Errorf("Down: %v", err)
		}
		assertGone(t, c.allPIDs()...)
		if t.Failed() {
			dumpEvents(t, c.Events())
		}
	})
	return c
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	var err error
	poll(t, 20*time.Second, func() bool {
		var c net.Conn
		if c, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
		}
		return err == nil
	}, func() string { return addr + " does not accept connections: " + err.Error() })
}

// poll checks cond every 10ms until it holds and fails the test (with why()) if it does not
// within the deadline: how tests wait for what they cannot be told.
func poll(t *testing.T, within time.Duration, cond func() bool, why func() string) {
	t.Helper()
	if !eventually(within, cond) {
		t.Fatal(why())
	}
}

// eventually reports whether cond held within the deadline, checking every 10ms.
func eventually(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// allPIDs lists every pod process the cluster ever started.
func (c *Cluster) allPIDs() []int {
	var pids []int
	for _, e := range c.Events() {
		if e.Kind == cluster.PodStarted {
			if s, ok := strings.CutPrefix(e.Detail, "pid "); ok {
				s, _, _ = strings.Cut(s, ",")
				n, _ := strconv.Atoi(s)
				pids = append(pids, n)
			}
		}
	}
	return pids
}

// assertGone fails unless every pid is gone (or a zombie of someone else) within 10s.
func assertGone(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		if !eventually(time.Until(deadline), func() bool { return !alive(pid) }) {
			t.Errorf("pod process %d is still running", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func alive(pid int) bool {
	if pid <= 0 || !processAlive(pid) {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return runtime.GOOS != "linux"
	}
	// A zombie has exited; only its parent has yet to reap it.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func dumpEvents(t *testing.T, evs []cluster.Event) {
	t.Helper()
	if len(evs) == 0 {
		return
	}
	t0 := evs[0].Time
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%8.3fs %-20s %-28s %s\n", e.Time.Sub(t0).Seconds(), e.Kind, e.Pod, e.Detail)
	}
	t.Logf("events:\n%s", b.String())
}

// gracelabBinary builds ./cmd/gracelab once per test run.
func gracelabBinary(t *testing.T) string { return binary(t, "../../cmd/gracelab") }

var (
	buildMu      sync.Mutex
	builds       = map[string]*build{}
	buildDirErr  error
	buildDirOnce sync.Once
)

type build struct {
	once sync.Once
	path string
	err  error
}

// binary builds the Go package at pkg (relative to this directory) once per test run.
func binary(t *testing.T, pkg string) string {
	t.Helper()
	buildDirOnce.Do(func() { buildDir, buildDirErr = os.MkdirTemp("", "localkube-it-") })
	if buildDirErr != nil {
		t.Fatal(buildDirErr)
	}
	buildMu.Lock()
	b := builds[pkg]
	if b == nil {
		b = &build{}
		builds[pkg] = b
	}
	buildMu.Unlock()
	b.once.Do(func() {
		b.path = filepath.Join(buildDir, filepath.Base(pkg))
		if out, err := exec.Command("go", "build", "-o", b.path, pkg).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// restartAndSettle restarts name and waits for the rollout and the old pods to be gone.
func restartAndSettle(t *testing.T, c *Cluster, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Restart(ctx, name); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if err := c.WaitSettled(ctx, name); err != nil {
		t.Fatalf("WaitSettled: %v", err)
	}
}

func indexOf(evs []cluster.Event, from int, match func(cluster.Event) bool) int {
	for i := max(from, 0); i < len(evs); i++ {
		if match(evs[i]) {
			return i
		}
	}
	return -1
}

func kindIs(k cluster.EventKind) func(cluster.Event) bool {
	return func(e cluster.Event) bool { return e.Kind == k }
}

func podKind(pod string, k cluster.EventKind) func(cluster.Event) bool {
	return func(e cluster.Event) bool { return e.Kind == k && e.Pod == pod }
}

// waitEvent polls the cluster's events until match holds for one of them (bounded).
func waitEvent(t *testing.T, c *Cluster, within time.Duration, match func(cluster.Event) bool) cluster.Event {
	t.Helper()
	var found cluster.Event
	poll(t, within, func() bool {
		evs := c.Events()
		i := indexOf(evs, 0, match)
		if i >= 0 {
			found = evs[i]
		}
		return i >= 0
	}, func() string { return "no matching event within " + within.String() })
	return found
}

func firstPod(t *testing.T, c *Cluster) PodInfo {
	t.Helper()
	pods := c.Pods()
	if len(pods) == 0 {
		t.Fatal("no pods")
	}
	return pods[0]
}

// outcome of one request sent through a Service proxy.
type outcome struct {
	start, end time.Time
	pod        string // who answered, when someone did
	err        error
}

func (o outcome) kind() string {
	switch {
	case o.err == nil:
		return "ok"
	case errors.Is(o.err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(o.err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(o.err, io.EOF), errors.Is(o.err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "other: " + o.err.Error()
}

// getOnce sends GET / on a fresh connection with a deadline and returns who answered.
func getOnce(addr string, timeout time.Duration) outcome {
	o := outcome{start: time.Now()}
	defer func() { o.end = time.Now() }()
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		o.err = err
		o.end = time.Now()
		return o
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		o.err = err
		o.end = time.Now()
		return o
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		o.err = err
		o.end = time.Now()
		return o
	}
	b, err := io.ReadAll(resp.Body)
	o.pod, o.err, o.end = string(b), err, time.Now()
	return o
}

// load is a closed-loop client: n workers send one request each, pause for pace (their think
// time), and again, until stop (at most 90s). Results are kept as they complete, so a test can
// wait on what the load has seen so far instead of sleeping.
type load[T any] struct {
	mu   sync.Mutex
	out  []T
	wg   sync.WaitGroup
	stop chan struct{}
}

func startLoad[T any](n int, pace time.Duration, send func() T) *load[T] {
	l := &load[T]{stop: make(chan struct{})}
	deadline := time.Now().Add(90 * time.Second)
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for time.Now().Before(deadline) {
				r := send()
				l.mu.Lock()
				l.out = append(l.out, r)
				l.mu.Unlock()
				select {
				case <-l.stop:
					return
				case <-time.After(pace):
				}
			}
		}()
	}
	return l
}

// waitFor waits until cond holds for the results so far (bounded).
func (l *load[T]) waitFor(t *testing.T, what string, cond func([]T) bool) {
	t.Helper()
	poll(t, 60*time.Second, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return cond(l.out)
	}, func() string { return "the load never saw " + what })
}

// finish stops the load, lets every request in flight complete and returns all results.
func (l *load[T]) finish() []T {
	close(l.stop)
	l.wg.Wait()
	return l.out
}

// hammer sends GET / through addr from n workers, 5ms apart, each bounded by timeout.
func hammer(addr string, n int, timeout time.Duration) *load[outcome] {
	return startLoad(n, 5*time.Millisecond, func() outcome { return getOnce(addr, timeout) })
}

func eventOf(t *testing.T, evs []cluster.Event, pod string, k cluster.EventKind) cluster.Event {
	t.Helper()
	i := indexOf(evs, 0, podKind(pod, k))
	if i < 0 {
		dumpEvents(t, evs)
		t.Fatalf("no %s event for %s", k, pod)
	}
	return evs[i]
}

// integration skips a test that starts real processes under -short.
func integration(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts real pod processes")
	}
}
