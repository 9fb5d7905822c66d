//go:build linux

package localkube

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/sandbox"
)

// sandboxedApps is a program that binds all interfaces on one fixed port, as real programs
// do: two replicas of api, and web, which calls api by its Service name.
func sandboxedApps(graceful bool) []app {
	env := map[string]string{"POD_LISTEN": ":8080", "POD_TERM": "die"}
	api := app{name: "api", replicas: 2, env: env,
		strategy:  "rollingUpdate: {maxSurge: 1, maxUnavailable: 0}",
		readiness: "httpGet: {path: /health, port: http}\nperiodSeconds: 1"}
	if graceful {
		api.env = map[string]string{"POD_LISTEN": ":8080", "POD_TERM": "graceful"}
		api.preStop = "httpGet: {path: \"/prestop?ms=1500\", port: http}"
	}
	web := app{name: "web", replicas: 1, env: map[string]string{
		"POD_LISTEN": ":8080", "POD_TERM": "graceful", "CALL_URL": "http://api.default.svc.cluster.local:8080/"},
		readiness: "httpGet: {path: /health, port: http}\nperiodSeconds: 1"}
	return []app{api, web}
}

func startSandboxed(t *testing.T, marker string, apps ...app) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real pod sandboxes")
	}
	files := map[string]string{}
	for _, a := range apps {
		files[a.name+".yaml"] = a.yaml()
	}
	c, err := New(Options{Manifests: manifests(files), Executable: os.Args[0], Sandbox: SandboxNS,
		Images: map[string][]string{"test/app": {"testpod", marker}}, EndpointLag: 300 * time.Millisecond,
		ReadyTimeout: 30 * time.Second, LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Up(ctx); err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Cleanup(func() {
		var shims []string
		for _, e := range c.Events() {
			if e.Kind == cluster.PodCreated {
				shims = append(shims, sandbox.ShimArg+"\x00"+e.Pod+"\x00")
			}
		}
		c.Down(context.Background())
		if _, err := os.Stat(c.sandboxDir); !os.IsNotExist(err) {
			t.Errorf("the sandboxes' directory %s is left after Down (%v)", c.sandboxDir, err)
		}
		waitNoProcess(t, marker)
		for _, s := range shims {
			waitNoProcess(t, s)
		}
		if t.Failed() {
			dumpEvents(t, c.Events())
		}
	})
	if c.SandboxMode() != SandboxNS {
		t.Fatalf("sandbox mode %q", c.SandboxMode())
	}
	return c
}

// markedProcesses lists host processes whose command line has marker.
func markedProcesses(marker string) []string {
	var found []string
	files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), marker) {
			found = append(found, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

func waitNoProcess(t *testing.T, marker string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(markedProcesses(marker)) > 0 {
		if time.Now().After(deadline) {
			t.Errorf("pod processes left behind: %v", markedProcesses(marker))
			return
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

func callThrough(addr string) (string, error) {
	client := &http.Client{Timeout: 8 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/call")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// TestIntegrationSandboxedPodsShareAFixedPort: three pods bind :8080 on all interfaces; web
// reaches api by its cluster DNS name through its sandbox's Service listener; both api pods
// answer.
func TestIntegrationSandboxedPodsShareAFixedPort(t *testing.T) {
	marker := fmt.Sprintf("--marker=sb-%d", time.Now().UnixNano())
	c := startSandboxed(t, marker, sandboxedApps(true)...)
	web, ok := c.ServiceAddr("web", 8080)
	if !ok {
		t.Fatal("no web Service")
	}
	seen := map[string]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for len(seen) < 2 {
		body, err := callThrough(web)
		if err != nil {
			t.Fatalf("web -> api: %v", err)
		}
		seen[body] = true
		if time.Now().After(deadline) {
			t.Fatalf("only %v answered", seen)
		}
	}
	for name := range seen {
		if !strings.HasPrefix(name, "api-") {
			t.Errorf("answered by %q, not an api pod", name)
		}
	}
	if n := len(markedProcesses(marker)); n != 3 {
		t.Errorf("%d pod programs, want 3: %v", n, markedProcesses(marker))
	}
	for _, p := range c.Pods() {
		if n := len(markedProcesses(sandbox.ShimArg + "\x00" + p.Name + "\x00")); n != 1 {
			t.Errorf("pod %s has %d shims, want 1", p.Name, n)
		}
	}
}

// TestIntegrationSandboxedRollout restarts api under load from web: without graceful shutdown
// the rollout loses requests, with a preStop delay and a drain it loses none.
func TestIntegrationSandboxedRollout(t *testing.T) {
	for _, graceful := range []bool{false, true} {
		t.Run(fmt.Sprintf("graceful=%v", graceful), func(t *testing.T) {
			marker := fmt.Sprintf("--marker=sbr-%d", time.Now().UnixNano())
			c := startSandboxed(t, marker, sandboxedApps(graceful)...)
			web, _ := c.ServiceAddr("web", 8080)
			if _, err := callThrough(web); err != nil {
				t.Fatalf("before the rollout: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			type result struct {
				err error
				at  time.Time
			}
			results := make(chan result, 10000)
			stop := make(chan struct{})
			done := make(chan struct{})
			const workers = 6
			for range workers {
				go func() {
					defer func() { done <- struct{}{} }()
					for {
						select {
						case <-stop:
							return
						default:
						}
						at := time.Now()
						_, err := callThrough(web)
						results <- result{err, at}
					}
				}()
			}
			if err := c.Restart(ctx, "api"); err != nil {
				t.Fatal(err)
			}
			if err := c.WaitSettled(ctx, "api"); err != nil {
				t.Fatal(err)
			}
			// Until the last old pod is gone and the proxies have caught up.
			if err := c.waitFor(ctx, func() (bool, error) {
				return countKind(c.Events(), cluster.PodDeleted) >= 2, nil
			}); err != nil {
				t.Fatal(err)
			}
			close(stop)
			for range workers {
				<-done
			}
			close(results)
			var n, failed int
			var first error
			for r := range results {
				n++
				if r.err != nil {
					failed++
					if first == nil {
						first = r.err
					}
					if failed <= 5 {
						t.Logf("failed at %s: %v", r.at.Format("15:04:05.000"), r.err)
					}
				}
			}
			t.Logf("graceful=%v: %d requests, %d failed (first: %v)", graceful, n, failed, first)
			if n < 50 {
				t.Fatalf("only %d requests: the load did not run", n)
			}
			if graceful && failed > 0 {
				t.Errorf("with preStop and drain %d of %d requests failed: %v", failed, n, first)
			}
			if !graceful && failed == 0 {
				t.Errorf("without graceful shutdown no request failed in %d", n)
			}
		})
	}
}

// The dead pod's network: refused while the sandbox lingers.
func TestIntegrationSandboxDialRefusedAfterExit(t *testing.T) {
	marker := fmt.Sprintf("--marker=sbd-%d", time.Now().UnixNano())
	c := startSandboxed(t, marker, app{name: "api", replicas: 1, env: map[string]string{"POD_LISTEN": ":8080"},
		readiness: "httpGet: {path: /health, port: http}\nperiodSeconds: 1"})
	c.mu.Lock()
	var p *pod
	for _, q := range c.pods {
		p = q
	}
	inst := p.inst
	c.mu.Unlock()
	conn, err := p.dial(context.Background(), net.JoinHostPort(p.ip, "8080"))
	if err != nil {
		t.Fatalf("dial the running pod: %v", err)
	}
	conn.Close()
	inst.signal(sigKILL)
	<-inst.exited
	if _, err := p.dial(context.Background(), net.JoinHostPort(p.ip, "8080")); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("dial after the process died: %v, want connection refused", err)
	}
}

// An init container runs to completion inside the pod's sandbox before the container starts
// (its exit status comes from the shim, not from a process gracelab started itself).
func TestIntegrationSandboxedInitContainer(t *testing.T) {
	marker := fmt.Sprintf("--marker=sbi-%d", time.Now().UnixNano())
	c := startSandboxed(t, marker, app{name: "api", replicas: 1, env: map[string]string{"POD_LISTEN": ":8080"},
		inits: []map[string]string{{"POD_EXIT": "0"}}})
	evs := c.Events()
	pod := c.Pods()[0].Name
	exited := indexOf(evs, 0, podDetail(pod, cluster.PodExited, "init container init-0: exit code 0"))
	started := indexOf(evs, 0, func(e cluster.Event) bool {
		return e.Kind == cluster.PodStarted && e.Pod == pod && !strings.Contains(e.Detail, "init container")
	})
	if exited < 0 || started < exited {
		dumpEvents(t, evs)
		t.Fatalf("init container exit (event %d) should precede the container's start (event %d)", exited, started)
	}
}
