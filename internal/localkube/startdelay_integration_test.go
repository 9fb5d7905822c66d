//go:build linux

package localkube

import (
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

// TestPodStartDelay: a new pod's process starts PodStartDelay after the pod is created, as a
// real kubelet's sandbox and container creation take (docs/fidelity.md), so a rollout without
// readiness probes still replaces its pods one step at a time.
func TestIntegrationPodStartDelay(t *testing.T) {
	integration(t)
	t.Parallel()
	const delay = 1500 * time.Millisecond
	c := startCluster(t, Options{PodStartDelay: delay}, app{name: "v1", replicas: 2})
	restartAndSettle(t, c, "v1")

	evs := c.Events()
	restart := indexOf(evs, 0, kindIs(cluster.RestartTriggered))
	if restart < 0 {
		t.Fatal("no restart_triggered event")
	}
	created := map[string]time.Time{}
	var starts []time.Time
	for _, e := range evs[restart:] {
		switch e.Kind {
		case cluster.PodCreated:
			created[e.Pod] = e.Time
		case cluster.PodStarted:
			c0, ok := created[e.Pod]
			if !ok {
				t.Fatalf("pod %s started without a pod_created after the restart", e.Pod)
			}
			if gap := e.Time.Sub(c0); gap < delay {
				t.Errorf("pod %s started %s after its creation, before the %s start delay", e.Pod, gap, delay)
			}
			starts = append(starts, e.Time)
		}
	}
	if len(starts) != 2 {
		t.Fatalf("%d new pods started, want 2", len(starts))
	}
	// Default strategy (maxSurge 25% -> 1, maxUnavailable 25% -> 0): the second new pod is
	// created only once the first is ready, so the starts are at least one delay apart.
	if gap := starts[1].Sub(starts[0]); gap < delay {
		t.Errorf("the new pods started %s apart: the rollout did not wait for the first", gap)
	}
}

// By default a pod's start delay is drawn per pod from the lab's (created -> containerd's
// StartContainer returned, 0.73-1.44 s on a quiet machine; docs/fidelity.md), not one fixed
// value for every pod.
func TestIntegrationPodStartDrawnFromTheLab(t *testing.T) {
	integration(t)
	t.Parallel()
	c := startCluster(t, Options{Seed: 6}, app{name: "v1", replicas: 2})
	restartAndSettle(t, c, "v1")
	evs := c.Events()
	restart := indexOf(evs, 0, kindIs(cluster.RestartTriggered))
	lo, hi := measuredPodStart[0], measuredPodStart[len(measuredPodStart)-1]
	const slack = 700 * time.Millisecond // timers and exec on a loaded machine
	var gaps []time.Duration
	for _, e := range evs[restart:] {
		if e.Kind != cluster.PodCreated {
			continue
		}
		gap := eventOf(t, evs, e.Pod, cluster.PodStarted).Time.Sub(e.Time)
		if gap < lo || gap > hi+slack {
			t.Errorf("pod %s started %s after its creation, outside the measured %s-%s", e.Pod, gap, lo, hi)
		}
		gaps = append(gaps, gap)
	}
	if len(gaps) != 2 {
		t.Fatalf("%d new pods, want 2", len(gaps))
	}
	// Seed 6 draws 1.26 s and 0.77 s for them: a fixed delay would give both the same.
	if d := (gaps[0] - gaps[1]).Abs(); d < 250*time.Millisecond {
		t.Errorf("both pods started %s and %s after creation: not drawn per pod", gaps[0], gaps[1])
	}
}

// TestPodStartDelayNegativeMeansNone: a negative delay starts the process at once.
func TestIntegrationPodStartDelayNegativeMeansNone(t *testing.T) {
	integration(t)
	t.Parallel()
	c := startCluster(t, Options{PodStartDelay: -1}, app{name: "v1", replicas: 1})
	evs := c.Events()
	p := firstPod(t, c).Name
	created := eventOf(t, evs, p, cluster.PodCreated)
	started := eventOf(t, evs, p, cluster.PodStarted)
	// Generous for a loaded machine, far below the 1s default.
	if gap := started.Time.Sub(created.Time); gap > 700*time.Millisecond {
		t.Errorf("pod started %s after creation with no start delay", gap)
	}
}
