//go:build linux

package localkube

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/sandbox"
)

// The test binary doubles as the pods' program: run with "testpod" as its first argument it
// is a small HTTP server configured by env, so unit tests get real processes, real sockets and
// real signals without waiting for the real services.
func TestMain(m *testing.M) {
	if sandbox.IsShim() { // re-executed as a pod sandbox's shim
		os.Exit(sandbox.ShimMain())
	}
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "testpod":
			os.Exit(runTestPod())
		case "clusterchild":
			os.Exit(runClusterChild())
		}
	}
	flag.Parse()
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// runTestPod: env HOST, PORT (or POD_LISTEN, an address that overrides both, as a program
// with a fixed port would); POD_TERM=die|ignore|graceful (default die: Go's default
// SIGTERM disposition); POD_READY_AFTER, POD_LIVE_FAIL_AFTER, POD_HEALTH_FAIL_AFTER (durations
// after start); POD_EXIT (exit with this code at once, after printing to stderr).
func runTestPod() int {
	start := time.Now()
	if c := os.Getenv("POD_EXIT"); c != "" {
		fmt.Fprintln(os.Stderr, "testpod: exiting on purpose")
		n, _ := strconv.Atoi(c)
		return n
	}
	dur := func(k string) time.Duration {
		d, _ := time.ParseDuration(os.Getenv(k))
		return d
	}
	readyAfter, liveFail, healthFail := dur("POD_READY_AFTER"), dur("POD_LIVE_FAIL_AFTER"), dur("POD_HEALTH_FAIL_AFTER")
	var terminating sync.Once
	termCh := make(chan struct{})
	drained := make(chan struct{}) // graceful: closed once Shutdown has drained
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, os.Getenv("HOSTNAME")) })
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-termCh:
			w.WriteHeader(503)
			return
		default:
		}
		if time.Since(start) < readyAfter || (healthFail > 0 && time.Since(start) > healthFail) {
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/live", func(w http.ResponseWriter, r *http.Request) {
		if liveFail > 0 && time.Since(start) > liveFail {
			w.WriteHeader(500)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "12345")
		w.(http.Flusher).Flush()
		time.Sleep(time.Duration(ms) * time.Millisecond)
		io.WriteString(w, "67890")
	})
	mux.HandleFunc("/prestop", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(os.Environ()) })
	// /call fetches CALL_URL (a Service by its cluster DNS name) and answers with its body.
	mux.HandleFunc("/call", func(w http.ResponseWriter, r *http.Request) {
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Get(os.Getenv("CALL_URL"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			http.Error(w, fmt.Sprintf("status %d, %v", resp.StatusCode, err), http.StatusBadGateway)
			return
		}
		w.Write(b)
	})
	srv := &http.Server{Handler: mux}
	// Signal handling first: once the pod listens, its SIGTERM behaviour is in place.
	switch os.Getenv("POD_TERM") {
	case "ignore":
		signal.Ignore(syscall.SIGTERM)
	case "graceful":
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		go func() {
			<-sig
			terminating.Do(func() { close(termCh) })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
			close(drained)
		}()
	}
	addr := net.JoinHostPort(os.Getenv("HOST"), os.Getenv("PORT"))
	if a := os.Getenv("POD_LISTEN"); a != "" {
		addr = a
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testpod:", err)
		return 2
	}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return 1
	}
	<-drained // Serve returns as Shutdown starts; the in-flight requests are not done yet
	return 0
}

// runClusterChild starts a cluster from testdata/basic, prints its pods as JSON and waits to
// be killed (the Pdeathsig test SIGKILLs it).
func runClusterChild() int {
	c, err := New(Options{Manifests: os.DirFS(os.Args[2]), Executable: os.Args[0], Images: testImages, EndpointLag: 100 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := c.Up(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(c.Pods())
	time.Sleep(time.Minute) // bounded: the test kills us long before
	c.Down(context.Background())
	return 0
}

var testImages = map[string][]string{"test/app": {"testpod"}}

// app is a parameterised test manifest: a Deployment and a Service named name.
type app struct {
	name        string
	replicas    int
	strategy    string // YAML under spec: strategy:, "" for none
	minReady    int
	grace       int // terminationGracePeriodSeconds, 0 for the default
	env         map[string]string
	readiness   string // YAML of a probe under readinessProbe:
	liveness    string
	preStop     string // YAML under preStop:
	serviceType string
	port        int
}

func (a app) yaml() string {
	var b strings.Builder
	port := a.port
	if port == 0 {
		port = 8080
	}
	fmt.Fprintf(&b, `apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: %[2]d
  minReadySeconds: %[3]d
  selector:
    matchLabels: {app: %[1]s}
`, a.name, a.replicas, a.minReady)
	if a.strategy != "" {
		b.WriteString("  strategy:\n" + indent(a.strategy, 4))
	}
	fmt.Fprintf(&b, `  template:
    metadata:
      labels: {app: %[1]s}
    spec:
`, a.name)
	if a.grace > 0 {
		fmt.Fprintf(&b, "      terminationGracePeriodSeconds: %d\n", a.grace)
	}
	fmt.Fprintf(&b, `      containers:
      - name: app
        image: test/app:v1
        ports:
        - {containerPort: %d, name: http}
`, port)
	if len(a.env) > 0 {
		b.WriteString("        env:\n")
		for _, k := range sortedKeys(a.env) {
			fmt.Fprintf(&b, "        - {name: %s, value: %q}\n", k, a.env[k])
		}
	}
	if a.readiness != "" {
		b.WriteString("        readinessProbe:\n" + indent(a.readiness, 10))
	}
	if a.liveness != "" {
		b.WriteString("        livenessProbe:\n" + indent(a.liveness, 10))
	}
	if a.preStop != "" {
		b.WriteString("        lifecycle:\n          preStop:\n" + indent(a.preStop, 12))
	}
	st := a.serviceType
	if st == "" {
		st = "ClusterIP"
	}
	fmt.Fprintf(&b, `---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
spec:
  type: %[2]s
  selector: {app: %[1]s}
  ports:
  - {port: %[3]d, targetPort: http}
`, a.name, st, port)
	return b.String()
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(pad + l + "\n")
	}
	return b.String()
}

func manifests(files map[string]string) fstest.MapFS {
	fs := fstest.MapFS{}
	for name, content := range files {
		fs[name] = &fstest.MapFile{Data: []byte(content)}
	}
	return fs
}

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
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not accept connections: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Errorf("pod process %d is still running", pid)
				syscall.Kill(pid, syscall.SIGKILL)
				break
			}
			time.Sleep(20 * time.Millisecond)
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
	fmt.Fprintf(&b, "t0 = %s\n", t0.Format("15:04:05.000"))
	for _, e := range evs {
		fmt.Fprintf(&b, "%8.3fs %-20s %-28s %s\n", e.Time.Sub(t0).Seconds(), e.Kind, e.Pod, e.Detail)
	}
	t.Logf("events:\n%s", b.String())
}

// buildDir holds binaries built for integration tests, removed after the run.
var (
	buildDir  string
	buildOnce sync.Once
	buildErr  error
	buildPath string
)

// gracelabBinary builds ./cmd/gracelab once per test run.
func gracelabBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "localkube-it-")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "gracelab")
		cmd := exec.Command("go", "build", "-o", buildPath, "../../cmd/gracelab")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/gracelab: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}
