package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestIntegrationDemo is the short demo CI runs: the three built-in scenarios on the embedded
// cluster, real binaries, ports the OS chooses.
func TestIntegrationDemo(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "report")
	began := time.Now()
	stdout, stderr, code := runGracelab(t, 5*time.Minute, "", "demo", "--duration", "8s", "--restart-at", "2s", "--endpoint-lag", "300ms",
		"--port", "0", "--out", out)
	t.Logf("demo took %s\nstdout:\n%s\nstderr:\n%s", time.Since(began).Round(time.Second), stdout, stderr)
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}

	// The table and the files it names.
	for _, want := range []string{"v1 no protection", "v2 graceful", "v3 graceful + retry", "requests", "rollout duration",
		filepath.Join(out, "report.json"), filepath.Join(out, "REPORT.md"), filepath.Join(out, "report.html")} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	// Plain progress lines (stderr is not a terminal).
	if !regexp.MustCompile(`\[1/3\] v1: load, \d+\.\ds of 8s, \d+ requests, \d+ errors`).MatchString(stderr) {
		t.Errorf("no progress line on stderr")
	}

	// report.json has the documented fields.
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Schema    int              `json:"schema"`
		Cluster   string           `json:"cluster"`
		Host      map[string]any   `json:"host"`
		Settings  map[string]any   `json:"settings"`
		Scenarios []map[string]any `json:"scenarios"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Schema != 2 || doc.Cluster != "embedded" || doc.Host["cores"] == nil || doc.Settings["restart_at"] != "2s" || len(doc.Scenarios) != 3 {
		t.Fatalf("report header: schema %d cluster %q host %v settings %v scenarios %d", doc.Schema, doc.Cluster, doc.Host, doc.Settings, len(doc.Scenarios))
	}
	errorsOf := map[string]float64{}
	for _, s := range doc.Scenarios {
		name, _ := s["scenario"].(string)
		for _, field := range []string{"scenario", "title", "manifests", "restart_at", "rollout_duration_s", "start", "end", "requests", "ok",
			"errors", "error_rate", "errors_by_kind", "upstream_kinds", "retries", "latency_ms", "timeline", "disruptions", "events"} {
			if _, ok := s[field]; !ok {
				t.Errorf("%s: report.json lacks %q", name, field)
			}
		}
		if f, ok := s["failure"]; ok {
			t.Errorf("%s failed: %v", name, f)
		}
		lat, _ := s["latency_ms"].(map[string]any)
		for _, q := range []string{"avg", "p50", "p95", "p99", "max"} {
			if _, ok := lat[q]; !ok {
				t.Errorf("%s: latency_ms lacks %s", name, q)
			}
		}
		if n, _ := s["requests"].(float64); n < 100 {
			t.Errorf("%s: only %v requests", name, n)
		}
		if evs, _ := s["events"].([]any); len(evs) < 10 {
			t.Errorf("%s: only %d events", name, len(evs))
		}
		errorsOf[name], _ = s["errors"].(float64)
	}
	// v1's failures sit at the old pods' SIGTERM: each disruption starts within a few seconds
	// of one (in-flight requests were sent just before it; refused and black-holed ones
	// until the endpoint removal reached the proxy).
	for _, s := range doc.Scenarios {
		if s["scenario"] != "v1" {
			continue
		}
		start, _ := time.Parse(time.RFC3339Nano, s["start"].(string))
		var sigterms []float64
		for _, e := range s["events"].([]any) {
			ev := e.(map[string]any)
			if ev["kind"] == "sigterm" {
				at, _ := time.Parse(time.RFC3339Nano, ev["time"].(string))
				sigterms = append(sigterms, at.Sub(start).Seconds())
			}
		}
		if len(sigterms) != 2 {
			t.Errorf("v1: %d SIGTERM events, want one per old pod (2)", len(sigterms))
		}
		for _, d := range s["disruptions"].([]any) {
			from := d.(map[string]any)["start_offset_s"].(float64)
			near := false
			for _, st := range sigterms {
				near = near || (from > st-1 && from < st+3)
			}
			if !near {
				t.Errorf("v1: a disruption starts at %.1fs, not next to a SIGTERM (%v)", from, sigterms)
			}
		}
	}
	if errorsOf["v1"] == 0 {
		t.Errorf("v1 had no errors under a rolling restart")
	}
	if errorsOf["v2"] != 0 || errorsOf["v3"] != 0 {
		t.Errorf("v2 and v3 must have 0 errors: v2 %v, v3 %v", errorsOf["v2"], errorsOf["v3"])
	}

	for _, name := range []string{"REPORT.md", "report.html", "comparison.svg", "timeline-v1.svg", "timeline-v2.png", "timeline-v3.png"} {
		if st, err := os.Stat(filepath.Join(out, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing: %v", name, err)
		}
	}
	f, err := os.Open(filepath.Join(out, "timeline-v1.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("timeline-v1.png: %v", err)
	}
	md, _ := os.ReadFile(filepath.Join(out, "REPORT.md"))
	if !strings.Contains(string(md), "requests failed between") || !strings.Contains(string(md), "No request failed") {
		t.Errorf("REPORT.md does not tell what happened:\n%s", md)
	}
	if logs, _ := filepath.Glob(filepath.Join(out, "logs", "v1", "*.log")); len(logs) < 2 {
		t.Errorf("no pod logs under %s: %v", filepath.Join(out, "logs", "v1"), logs)
	}
}

// lineWaiter collects a process's output and waits for lines matching a pattern.
type lineWaiter struct {
	mu    sync.Mutex
	lines []string
	added chan struct{}
	eof   chan struct{} // closed once r is read to its end
}

func newLineWaiter(r io.Reader) *lineWaiter {
	w := &lineWaiter{added: make(chan struct{}, 1), eof: make(chan struct{})}
	go func() {
		defer close(w.eof)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			w.mu.Lock()
			w.lines = append(w.lines, sc.Text())
			w.mu.Unlock()
			select {
			case w.added <- struct{}{}:
			default:
			}
		}
	}()
	return w
}

func (w *lineWaiter) wait(t *testing.T, re *regexp.Regexp, within time.Duration) []string {
	t.Helper()
	deadline := time.After(within)
	for {
		w.mu.Lock()
		for _, l := range w.lines {
			if m := re.FindStringSubmatch(l); m != nil {
				w.mu.Unlock()
				return m
			}
		}
		w.mu.Unlock()
		select {
		case <-w.added:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no line matching %s within %s; output so far:\n%s", re, within, w.text())
		}
	}
}

func (w *lineWaiter) text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}

// TestIntegrationTwoTerminals is the original demo's workflow without Kubernetes: a cluster in
// one process, load from the test, the restart from a third process.
func TestIntegrationTwoTerminals(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: real cluster processes")
	}
	exe := ownGracelab(t)
	runtimeDir := t.TempDir()
	env := append(os.Environ(), "GRACELAB_RUNTIME_DIR="+runtimeDir)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	up := exec.CommandContext(ctx, exe, "cluster", "up", "-f", "v2", "--port", "0", "--endpoint-lag", "300ms")
	up.Env = env
	pr, pw := io.Pipe()
	up.Stdout = pw
	var upErr bytes.Buffer
	up.Stderr = &upErr
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = up.Process.Kill()
	}()
	lines := newLineWaiter(pr)
	target := lines.wait(t, regexp.MustCompile(`downstream \(LoadBalancer\): (http://127\.0\.0\.1:\d+/)`), time.Minute)[1]
	lines.wait(t, regexp.MustCompile(`gracelab restart deployment upstream`), 5*time.Second)

	// The downstream answers through the LoadBalancer.
	resp, err := http.Get(target)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"status":"ok"`) {
		t.Fatalf("downstream answered %d %s", resp.StatusCode, body)
	}

	// Terminal 2: load through the rollout. Terminal 3: the restart, two seconds in.
	loadJSON := filepath.Join(t.TempDir(), "load.json")
	loadCmd := exec.CommandContext(ctx, exe, "load", "--url", target, "--duration", "16s", "--quiet", "--json", loadJSON)
	var loadOut bytes.Buffer
	loadCmd.Stdout, loadCmd.Stderr = &loadOut, &loadOut
	if err := loadCmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	restart := exec.CommandContext(ctx, exe, "restart", "deployment", "upstream")
	restart.Env = env
	out, err := restart.CombinedOutput()
	if exitCode(t, err) != 0 || !strings.Contains(string(out), "deployment upstream restarted") {
		t.Fatalf("restart: %v\n%s", err, out)
	}
	lines.wait(t, regexp.MustCompile(`restart_triggered\s+deployment upstream`), 10*time.Second)
	lines.wait(t, regexp.MustCompile(`prestop_started\s+upstream-`), 30*time.Second)
	lines.wait(t, regexp.MustCompile(`rollout_complete`), time.Minute)
	if code := exitCode(t, loadCmd.Wait()); code != 0 {
		t.Fatalf("load exited %d:\n%s", code, loadOut.String())
	}
	var res struct {
		Requests int64 `json:"requests"`
		Errors   int64 `json:"errors"`
	}
	if raw, err := os.ReadFile(loadJSON); err != nil || json.Unmarshal(raw, &res) != nil {
		t.Fatalf("load result: %v\n%s", err, loadOut.String())
	}
	if res.Requests < 100 || res.Errors != 0 {
		t.Errorf("v2 under a rolling restart from another terminal: %d requests, %d errors; want 0 errors\n%s", res.Requests, res.Errors, loadOut.String())
	}

	unknown := exec.CommandContext(ctx, exe, "restart", "deployment", "nope")
	unknown.Env = env
	out, err = unknown.CombinedOutput()
	if exitCode(t, err) != 1 || !strings.Contains(string(out), "nope") {
		t.Errorf("restart of an unknown deployment: %v\n%s", err, out)
	}

	if err := up.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = up.Wait()
	pw.Close()
	if code := exitCode(t, err); code != 0 {
		t.Errorf("cluster up exited %d after Ctrl-C; stderr:\n%s", code, upErr.String())
	}
	lines.wait(t, regexp.MustCompile(`The embedded cluster is down\.`), 5*time.Second)
	assertNoneLeft(t, exe)

	// With the cluster gone, restart says so.
	restart = exec.CommandContext(ctx, exe, "restart", "deployment", "upstream")
	restart.Env = env
	out, err = restart.CombinedOutput()
	if exitCode(t, err) != 1 || !strings.Contains(string(out), "no embedded cluster is running") {
		t.Errorf("restart without a cluster: %v\n%s", err, out)
	}
}

// Ctrl-C during the demo still writes the report of what ran and leaves nothing behind.
func TestIntegrationDemoInterrupt(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "report")
	g := startGracelab(t, 3*time.Minute, "demo", "--scenarios", "v1,v2", "--duration", "30s", "--restart-at", "20s", "--port", "0", "--out", out)
	g.stderr.wait(t, regexp.MustCompile(`\[1/2\] v1: load, [1-9]\d*\.\ds`), time.Minute)
	g.interrupt(t)
	if code := g.wait(t); code != ExitFailed {
		t.Errorf("interrupted demo exited %d, want 1", code)
	}
	g.stderr.wait(t, regexp.MustCompile(`interrupted: stopping the load`), 0)
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatalf("no report after an interrupt: %v\nstdout:\n%s\nstderr:\n%s", err, g.stdout.String(), g.stderr.text())
	}
	var doc struct {
		Scenarios []struct {
			Scenario string `json:"scenario"`
			Failure  string `json:"failure"`
			Requests int    `json:"requests"`
		} `json:"scenarios"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Scenarios) != 1 || doc.Scenarios[0].Scenario != "v1" || !strings.Contains(doc.Scenarios[0].Failure, "interrupted") || doc.Scenarios[0].Requests == 0 {
		t.Errorf("report after interrupt: %+v", doc.Scenarios)
	}
	if !strings.Contains(g.stdout.String(), "v1 failed: interrupted before the restart") {
		t.Errorf("stdout does not show the interrupted scenario:\n%s", g.stdout.String())
	}
}

// A second Ctrl-C exits at once, without a report; the pods die with the process.
func TestIntegrationDemoInterruptTwice(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "report")
	g := startGracelab(t, 3*time.Minute, "demo", "--scenarios", "v2", "--duration", "30s", "--restart-at", "20s", "--port", "0", "--out", out)
	g.stderr.wait(t, regexp.MustCompile(`\[1/1\] v2: load, [1-9]\d*\.\ds`), time.Minute)
	g.interruptTwice(t, regexp.MustCompile(`^interrupted: stopping the load`))
	if code := g.wait(t); code != ExitFailed {
		t.Errorf("twice interrupted demo exited %d, want 1", code)
	}
	g.stderr.wait(t, regexp.MustCompile(`interrupted twice: exiting at once without a report`), 0)
	if _, err := os.Stat(filepath.Join(out, "report.json")); err == nil {
		t.Error("a report was written after the second Ctrl-C")
	}
}

// Exit codes end to end on a workload whose outcome is certain: v1 loses requests in every
// rollout, so --max-errors 0 is breached (exit 3, one line naming v1) and a limit no run can
// reach is not (exit 0). The other codes: 2 in TestDemoBadFlags, 1 in
// TestDemoFailedScenarioErrorFirst and TestIntegrationDemoInterrupt.
func TestIntegrationDemoThresholdExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, maxErrors string
		code            int
	}{{"breached", "0", ExitBreached}, {"within", "1000000", ExitOK}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			junit := filepath.Join(dir, "r.xml")
			stdout, stderr, code := runGracelab(t, 4*time.Minute, "", "demo", "--quiet", "--scenarios", "v1", "--duration", "4s", "--restart-at", "1s",
				"--rollouts", "2", "--rollout-gap", "500ms", "--settle-tail", "5s", "--port", "0", "--out", filepath.Join(dir, "report"),
				"--max-errors", tc.maxErrors, "--per-rollout", "--junit", junit)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			breaches := regexp.MustCompile(`(?m)^gracelab: threshold breached: v1 rollout [12]: \d+ errors, limit --max-errors 0$`).FindAllString(stderr, -1)
			if tc.code == ExitBreached && (len(breaches) != 2 || strings.Count(stderr, "\n") != 2) {
				t.Errorf("want one breach line per rollout and nothing else on stderr:\n%s", stderr)
			}
			if tc.code == ExitOK && stderr != "" {
				t.Errorf("stderr within the limits: %s", stderr)
			}
			raw, err := os.ReadFile(junit)
			if err != nil || !strings.Contains(string(raw), `<testsuite name="v1" tests="2"`) {
				t.Errorf("junit: %v\n%s", err, raw)
			}
			raw, err = os.ReadFile(filepath.Join(dir, "report", "report.json"))
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Scenarios []struct {
					Rollouts []struct {
						Index    int   `json:"index"`
						Requests int64 `json:"requests"`
						Errors   int64 `json:"errors"`
					} `json:"rollouts"`
				} `json:"scenarios"`
				Breaches []map[string]any `json:"breaches"`
			}
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			if rs := doc.Scenarios[0].Rollouts; len(rs) != 2 || rs[0].Index != 1 || rs[1].Index != 2 || rs[0].Errors == 0 || rs[1].Errors == 0 {
				t.Errorf("report.json rollouts %+v: want two, each with v1's errors", rs)
			}
			if wantBreaches := map[int]int{ExitBreached: 2, ExitOK: 0}[tc.code]; len(doc.Breaches) != wantBreaches {
				t.Errorf("report.json breaches %v, want %d", doc.Breaches, wantBreaches)
			}
		})
	}
}
