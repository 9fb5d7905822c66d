// Package lifecycletest runs gracelab service binaries as real processes in tests, as httptest
// does for handlers: build them once, start them on a port the OS picks, read the address from
// their "listening" log line, scrape their metrics, signal them and wait for their exit.
package lifecycletest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// StartTimeout bounds how long a process may take to log its listening address.
const StartTimeout = 20 * time.Second

// Build compiles each package (an import path such as github.com/gracelab/gracelab/cmd/upstream)
// into dir and returns the binaries' paths in the same order.
func Build(dir string, pkgs ...string) ([]string, error) {
	out := make([]string, 0, len(pkgs))
	for _, pkg := range pkgs {
		bin := filepath.Join(dir, path.Base(pkg))
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		if msg, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
		}
		out = append(out, bin)
	}
	return out, nil
}

// Process is one running service binary.
type Process struct {
	Addr string // host:port from the "listening" log line
	URL  string // "http://" + Addr

	t     testing.TB
	cmd   *exec.Cmd
	logs  *logBuffer
	done  chan struct{}
	state *os.ProcessState
}

// Start runs bin with args and exactly env (KEY=VALUE; nothing is inherited) and waits until it
// logs its listening address. The process is killed at the end of the test if still running.
func Start(t testing.TB, bin string, args []string, env ...string) *Process {
	t.Helper()
	p := &Process{t: t, logs: &logBuffer{listening: make(chan string, 1)}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	// The kernel kills the child if the test binary dies first, so nothing outlives a test.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		p.logs.consume(stderr)
	}()
	go func() {
		<-copied // Wait must not close the pipe before everything was read
		_ = p.cmd.Wait()
		p.state = p.cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case addr := <-p.logs.listening:
		p.Addr = addr
		p.URL = "http://" + addr
	case <-p.done:
		t.Fatalf("%s exited before listening (%v):\n%s", bin, p.state, p.logs)
	case <-time.After(StartTimeout):
		t.Fatalf("%s did not log a listening address within %v:\n%s", bin, StartTimeout, p.logs)
	}
	return p
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// Exited is closed once the process has exited and its log has been read to the end.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Wait waits up to timeout for the exit and returns the process state.
func (p *Process) Wait(timeout time.Duration) *os.ProcessState {
	p.t.Helper()
	select {
	case <-p.done:
		return p.state
	case <-time.After(timeout):
		p.t.Fatalf("process still running after %v:\n%s", timeout, p.logs)
		return nil
	}
}

// Logs returns everything the process wrote to stderr so far.
func (p *Process) Logs() string { return p.logs.String() }

// LogLines returns the JSON log records whose msg starts with prefix, in order.
func (p *Process) LogLines(prefix string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(p.Logs(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		if msg, _ := rec["msg"].(string); strings.HasPrefix(msg, prefix) {
			out = append(out, rec)
		}
	}
	return out
}

// WaitLog polls every 10ms, up to 20s, until a JSON log record's msg starts with prefix.
func (p *Process) WaitLog(prefix string) {
	p.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if len(p.LogLines(prefix)) > 0 {
			return
		}
	}
	p.t.Fatalf("no log line %q within 20s:\n%s", prefix, p.Logs())
}

// Metric scrapes /metrics and returns the value of the sample name{labels} (labels as
// "k=v" pairs); ok is false when the sample is absent.
func (p *Process) Metric(name string, labels ...string) (value float64, ok bool, err error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(p.URL + "/metrics")
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, false, err
	}
	fam, found := families[name]
	if !found {
		return 0, false, nil
	}
	want := map[string]string{}
	for _, kv := range labels {
		k, v, _ := strings.Cut(kv, "=")
		want[k] = v
	}
next:
	for _, m := range fam.GetMetric() {
		for _, lp := range m.GetLabel() {
			if v, set := want[lp.GetName()]; set && v != lp.GetValue() {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true, nil
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true, nil
		}
	}
	return 0, false, nil
}

// WaitMetric polls Metric every 10ms until it equals want, up to 20s.
func (p *Process) WaitMetric(name string, want float64, labels ...string) {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last float64
	for time.Now().Before(deadline) {
		v, ok, err := p.Metric(name, labels...)
		if err == nil && ok && v == want {
			return
		}
		last = v
		time.Sleep(10 * time.Millisecond)
	}
	p.t.Fatalf("%s stayed at %v, want %v", name, last, want)
}

// logBuffer collects stderr and reports the first "listening" address.
type logBuffer struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	listening chan string
}

func (b *logBuffer) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		b.mu.Lock()
		b.buf.Write(line)
		b.buf.WriteByte('\n')
		b.mu.Unlock()
		var rec struct{ Msg, Addr string }
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" && rec.Addr != "" {
			select {
			case b.listening <- rec.Addr:
			default:
			}
		}
	}
	_, _ = io.Copy(io.Discard, r) // a line over 1 MiB: keep draining so the child never blocks
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
