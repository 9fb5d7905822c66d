//go:build linux

package localkube

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

// TestIntegrationStartupProbeGatesReadiness: with a startup probe and no readiness probe, a
// pod is ready once the startup probe has succeeded, not once its process has started.
func TestIntegrationStartupProbeGatesReadiness(t *testing.T) {
	integration(t)
	t.Parallel()
	// /health answers 503 for the first 2s; the startup probe tries every second.
	a := app{name: "slow", replicas: 1, env: map[string]string{"POD_READY_AFTER": "2s"},
		startup: "httpGet: {path: /health, port: http}\nperiodSeconds: 1\nfailureThreshold: 10\n"}
	c := startCluster(t, Options{}, a)
	pod := firstPod(t, c).Name
	evs := c.Events()
	started := eventOf(t, evs, pod, cluster.PodStarted)
	ready := eventOf(t, evs, pod, cluster.PodReady)
	if d := ready.Time.Sub(started.Time); d < 2*time.Second {
		t.Errorf("ready %s after start, before the startup probe could succeed (>= 2s)", d)
	}
	if !strings.Contains(ready.Detail, "startup probe") {
		t.Errorf("ready detail %q does not say the startup probe made it ready", ready.Detail)
	}
}

// TestIntegrationStartupProbeFailureRestarts: a startup probe that keeps failing has the
// kubelet kill the container, and Up says why.
func TestIntegrationStartupProbeFailureRestarts(t *testing.T) {
	integration(t)
	t.Parallel()
	a := app{name: "never", replicas: 1, env: map[string]string{"POD_READY_AFTER": "1h", "POD_TERM": "graceful"},
		startup: "httpGet: {path: /health, port: http}\nperiodSeconds: 1\nfailureThreshold: 2\n"}
	upFails(t, a, "after startup probe failed: HTTP probe failed with statuscode: 503")
}

// TestIntegrationPostStartRunsFirst: probes (here: readiness without a probe) wait for
// postStart, which runs once the process has started.
func TestIntegrationPostStartRunsFirst(t *testing.T) {
	integration(t)
	t.Parallel()
	a := app{name: "hooked", replicas: 1, postStart: "exec: {command: [sleep, \"1.5\"]}\n"}
	c := startCluster(t, Options{}, a)
	pod := firstPod(t, c).Name
	evs := c.Events()
	started := eventOf(t, evs, pod, cluster.PodStarted)
	ready := eventOf(t, evs, pod, cluster.PodReady)
	if d := ready.Time.Sub(started.Time); d < 1500*time.Millisecond {
		t.Errorf("ready %s after start, before the 1.5s postStart hook returned", d)
	}
}

// TestIntegrationPostStartFailureFailsUp: a failing postStart hook kills the container, and
// Up fails naming the hook.
func TestIntegrationPostStartFailureFailsUp(t *testing.T) {
	integration(t)
	t.Parallel()
	a := app{name: "badhook", replicas: 1, env: map[string]string{"POD_TERM": "graceful"}, postStart: "exec: {command: [\"false\"]}\n"}
	upFails(t, a, "after postStart hook failed: exit status 1")
}

// upFails starts a cluster of a, expects Up to fail with a one-line error containing every
// want, and checks that nothing is left running.
func upFails(t *testing.T, a app, want ...string) {
	t.Helper()
	c, err := New(Options{Manifests: manifests(map[string]string{"a.yaml": a.yaml()}), Executable: os.Args[0], Images: testImages, ReadyTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Up(context.Background())
	t.Logf("Up: %v", err)
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Errorf("Up: %v; want one line containing %q", err, want)
	}
	for _, w := range want {
		if err != nil && !strings.Contains(err.Error(), w) {
			t.Errorf("Up: %v; want it to contain %q", err, w)
		}
	}
	c.Down(context.Background())
	assertGone(t, c.allPIDs()...)
}

// TestIntegrationInitContainersRunToCompletionInOrder: each init container runs alone and to
// completion, in order, before the main container starts.
func TestIntegrationInitContainersRunToCompletionInOrder(t *testing.T) {
	integration(t)
	t.Parallel()
	a := app{name: "inits", replicas: 1, inits: []map[string]string{
		{"POD_EXIT": "0", "POD_EXIT_AFTER": "500ms"},
		{"POD_EXIT": "0"},
	}}
	c := startCluster(t, Options{}, a)
	pod := firstPod(t, c).Name
	evs := c.Events()
	prev := -1
	for _, step := range []struct {
		kind   cluster.EventKind
		detail string
	}{
		{cluster.PodStarted, "init container init-0"}, {cluster.PodExited, "init container init-0: exit code 0"},
		{cluster.PodStarted, "init container init-1"}, {cluster.PodExited, "init container init-1: exit code 0"},
		{cluster.PodStarted, "pid "}, {cluster.PodReady, ""},
	} {
		i := indexOf(evs, prev+1, func(e cluster.Event) bool {
			return e.Pod == pod && e.Kind == step.kind && strings.Contains(e.Detail, step.detail) &&
				(step.detail != "pid " || !strings.Contains(e.Detail, "init container"))
		})
		if i < 0 {
			dumpEvents(t, evs)
			t.Fatalf("no %s %q after event %d", step.kind, step.detail, prev)
		}
		prev = i
	}
}

// TestIntegrationFailingInitContainerFailsUp: an init container that exits non-zero keeps the
// pod from starting, and Up names it.
func TestIntegrationFailingInitContainerFailsUp(t *testing.T) {
	integration(t)
	t.Parallel()
	upFails(t, app{name: "badinit", replicas: 1, inits: []map[string]string{{"POD_EXIT": "4"}}}, "init container init-0: exit code 4")
}
