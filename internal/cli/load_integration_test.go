package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/load"
)

// countingServer answers every request with code and body on a loopback port.
func countingServer(t *testing.T, code int, body string) (string, *atomic.Int64, *sync.Map) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	var methods sync.Map
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		methods.Store(r.Method, true)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/", &n, &methods
}

// silentServer accepts connections, counts them and never answers.
func silentServer(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "http://" + ln.Addr().String() + "/", &n
}

func runMain(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = Main(args, Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	return code, out.String(), errOut.String()
}

func TestIntegrationLoadBadFlagsSendNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: real servers")
	}
	url, served, _ := countingServer(t, 200, `{"status":"ok"}`)
	for _, args := range [][]string{
		{"--vus", "0"}, {"--rate", "-1"}, {"--duration", "-5s"}, {"--duration", "1s", "--think", "3s"},
		{"--json", filepath.Join(t.TempDir(), "missing", "x.json")},
	} {
		code, stdout, stderr := runMain(append([]string{"load", "--url", url, "--duration", "1s"}, args...)...)
		if code != ExitBadArgs || stdout != "" || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := served.Load(); n != 0 {
		t.Errorf("bad flags sent %d requests", n)
	}
}

func TestIntegrationLoadCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: real servers")
	}
	url, served, methods := countingServer(t, 200, `{"status":"ok","retries":1}`)
	jsonPath := filepath.Join(t.TempDir(), "load.json")
	code, stdout, stderr := runMain("load", "--url", url, "--duration", "500ms", "--vus", "3", "--think", "20ms",
		"--method", "post", "--connections", "reuse", "--json", jsonPath, "--max-error-rate", "0")
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if stderr != "" {
		t.Errorf("stderr is not a terminal, yet got %q", stderr)
	}
	for _, want := range []string{"gracelab load: POST " + url, "closed model, 3 VUs, think 20ms", "keep-alive",
		"errors by class: none", "disruptions: none", "latency ms"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var res load.Result
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatalf("JSON: %v", err)
	}
	if res.Requests == 0 || res.Requests != served.Load() || res.OK != res.Requests || res.Retries != res.Requests {
		t.Errorf("result requests %d ok %d retries %d; server saw %d", res.Requests, res.OK, res.Retries, served.Load())
	}
	if _, ok := methods.Load("POST"); !ok || res.Config.Method != "POST" {
		t.Errorf("--method post did not send POST (config %q)", res.Config.Method)
	}
}

func TestIntegrationLoadOpenModelJSONToStdout(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: real servers")
	}
	url, served, _ := countingServer(t, 200, `{"status":"ok"}`)
	code, stdout, stderr := runMain("load", "--url", url, "--rate", "40", "--duration", "500ms", "--json", "-")
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var res load.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("stdout is not the JSON alone: %v\n%s", err, stdout)
	}
	if res.Requests != 20 || served.Load() != 20 || res.Config.Model != load.Open {
		t.Errorf("requests %d, served %d, model %s: want 20 open-model requests", res.Requests, served.Load(), res.Config.Model)
	}
	if !strings.Contains(stderr, "open model, 40 req/s") || !strings.Contains(stderr, "send lag ms") {
		t.Errorf("summary should go to stderr with --json -:\n%s", stderr)
	}
}

// A down target is measured, not rejected; crossing --max-error-rate exits 1 after the report.
func TestIntegrationLoadMaxErrorRate(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: real servers")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/"
	_ = ln.Close()
	code, stdout, stderr := runMain("load", "--url", refused, "--duration", "300ms", "--vus", "2")
	if code != ExitOK || !strings.Contains(stdout, "refused") || !strings.Contains(stdout, "100.00%") {
		t.Errorf("down target without threshold: exit %d, stdout:\n%s\nstderr %q", code, stdout, stderr)
	}
	url, _, _ := countingServer(t, 502, `{"status":"error","kind":"reset"}`)
	code, stdout, stderr = runMain("load", "--url", url, "--duration", "300ms", "--vus", "2", "--max-error-rate", "0.5")
	if code != ExitFailed || !strings.Contains(stdout, "upstream kind: reset") ||
		!strings.Contains(stderr, "error rate 100.00% is above --max-error-rate 50.00%") {
		t.Errorf("threshold crossed: exit %d, stdout:\n%s\nstderr %q", code, stdout, stderr)
	}
}

// The progress bar draws elapsed time and counts on stderr when enabled.
func TestIntegrationLoadProgressBar(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: real servers")
	}
	url, _, _ := countingServer(t, 200, `{"status":"ok"}`)
	cfg := load.Config{URL: url, VUs: 2, Think: 10 * time.Millisecond, Duration: 700 * time.Millisecond, Timeout: time.Second}
	var stdout, stderr bytes.Buffer
	err := runLoad(cfg, loadOutput{maxErrorRate: -1, progress: true}, Streams{Out: &stdout, ErrOut: &stderr, Signals: make(chan os.Signal)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "requests, 0 errors") || !strings.Contains(stderr.String(), "%") {
		t.Errorf("no progress bar on stderr: %q", stderr.String())
	}
	if !strings.Contains(stdout.String(), "requests") {
		t.Errorf("no summary: %q", stdout.String())
	}
}

// twoTimeouts matches a summary of exactly two requests, both timeouts.
var twoTimeouts = regexp.MustCompile(`(?s)requests +2 .*timeout +2\n`)

// Injected signals: the first stops the run and still reports; the second exits at once.
func TestIntegrationLoadInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: real servers")
	}
	url, accepted := silentServer(t)
	cfg := load.Config{URL: url, VUs: 2, Timeout: 500 * time.Millisecond} // no duration: until interrupted
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	signals := make(chan os.Signal, 2)
	var stdout, stderr bytes.Buffer
	errc := make(chan error, 1)
	go func() {
		errc <- runLoad(cfg, loadOutput{maxErrorRate: -1}, Streams{Out: &stdout, ErrOut: &stderr, Signals: signals})
	}()
	waitFor("2 connections", func() bool { return accepted.Load() >= 2 })
	signals <- os.Interrupt
	if err := <-errc; err != nil {
		t.Fatalf("one interrupt: %v", err)
	}
	// The report counts both in-flight requests as timeouts: it waited for them.
	if !twoTimeouts.MatchString(stdout.String()) || !strings.Contains(stderr.String(), "stopping: waiting up to 500ms for 2 requests") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}

	before := accepted.Load()
	stdout.Reset()
	cfg.Timeout = 10 * time.Second // long, so exiting at once is told apart from waiting
	go func() {
		errc <- runLoad(cfg, loadOutput{maxErrorRate: -1}, Streams{Out: &stdout, ErrOut: io.Discard, Signals: signals})
	}()
	waitFor("2 more connections", func() bool { return accepted.Load() >= before+2 })
	start := time.Now()
	signals <- os.Interrupt
	signals <- syscall.SIGTERM
	err := <-errc
	var exitErr *ExitError
	if !errors.As(err, &exitErr) || exitErr.Code != ExitFailed || !strings.Contains(err.Error(), "interrupted twice") {
		t.Errorf("two interrupts: %v", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("second interrupt took %s to exit: it should not wait for requests in flight", waited)
	}
	if stdout.Len() != 0 {
		t.Errorf("report printed after a second interrupt:\n%s", stdout.String())
	}
}

// Real signals to a real process: this test re-runs its own binary as `gracelab load`.
func TestIntegrationLoadSignals(t *testing.T) {
	if args := os.Getenv("GRACELAB_LOAD_CHILD_ARGS"); args != "" {
		os.Exit(Main(strings.Split(args, "\x1f"), StdStreams()))
	}
	if testing.Short() {
		t.Skip("integration test: real processes")
	}
	url, accepted := silentServer(t)
	child := func(timeout string, signals ...os.Signal) (code int, stdout, stderr string, waited time.Duration) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestIntegrationLoadSignals$")
		args := []string{"load", "--url", url, "--vus", "2", "--duration", "0", "--timeout", timeout}
		cmd.Env = append(os.Environ(), "GRACELAB_LOAD_CHILD_ARGS="+strings.Join(args, "\x1f"))
		var out bytes.Buffer
		errPipe, errWriter := io.Pipe()
		errOut := newLineWaiter(errPipe)
		cmd.Stdout, cmd.Stderr = &out, errWriter
		before := accepted.Load()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(20 * time.Second); accepted.Load() < before+2; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("child sent nothing; stderr %q", errOut.text())
			}
		}
		start := time.Now()
		for i, s := range signals {
			if err := cmd.Process.Signal(s); err != nil {
				t.Fatal(err)
			}
			if i < len(signals)-1 {
				// Two signals sent at once may arrive as one: wait until the first was seen.
				errOut.wait(t, regexp.MustCompile("^stopping"), 10*time.Second)
			}
		}
		err := cmd.Wait()
		errWriter.Close()
		<-errOut.eof
		waited = time.Since(start)
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String(), errOut.text() + "\n", waited
	}

	code, stdout, stderr, _ := child("700ms", syscall.SIGTERM)
	if code != ExitOK || !twoTimeouts.MatchString(stdout) || !strings.Contains(stderr, "stopping") {
		t.Errorf("SIGTERM: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	code, stdout, stderr, waited := child("10s", os.Interrupt, os.Interrupt)
	if code != ExitFailed || stdout != "" || !strings.Contains(stderr, "interrupted twice") {
		t.Errorf("two SIGINTs: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if waited > 5*time.Second {
		t.Errorf("two SIGINTs: took %s to exit", waited)
	}
}
