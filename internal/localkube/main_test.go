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
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

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
// after start); POD_EXIT (exit with this code after POD_EXIT_AFTER, printing to stderr);
// POD_BIND=all|localhost (listen on all interfaces or 127.0.0.1 instead of HOST).
func runTestPod() int {
	start := time.Now()
	if c := os.Getenv("POD_EXIT"); c != "" {
		d, _ := time.ParseDuration(os.Getenv("POD_EXIT_AFTER"))
		time.Sleep(d)
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
	host := os.Getenv("HOST")
	switch os.Getenv("POD_BIND") { // a program that ignores HOST
	case "all":
		host = ""
	case "localhost":
		host = "127.0.0.1"
	}
	addr := net.JoinHostPort(host, os.Getenv("PORT"))
	if a := os.Getenv("POD_LISTEN"); a != "" { // a fixed address, as a program's own flag would give
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
	// Wait to be killed; should the test die first, its end of stdin closes and we go.
	io.Copy(io.Discard, os.Stdin)
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
	startup     string
	inits       []map[string]string // one init container (image test/app) per entry, with this env
	postStart   string              // YAML under postStart:
	preStop     string              // YAML under preStop:
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
	if len(a.inits) > 0 {
		b.WriteString("      initContainers:\n")
		for i, env := range a.inits {
			fmt.Fprintf(&b, "      - name: init-%d\n        image: test/app:v1\n        env:\n", i)
			for _, k := range sortedKeys(env) {
				fmt.Fprintf(&b, "        - {name: %s, value: %q}\n", k, env[k])
			}
		}
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
	if a.startup != "" {
		b.WriteString("        startupProbe:\n" + indent(a.startup, 10))
	}
	if a.preStop != "" || a.postStart != "" {
		b.WriteString("        lifecycle:\n")
	}
	if a.postStart != "" {
		b.WriteString("          postStart:\n" + indent(a.postStart, 12))
	}
	if a.preStop != "" {
		b.WriteString("          preStop:\n" + indent(a.preStop, 12))
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

// buildDir holds binaries built for integration tests, removed after the run.
var buildDir string
