//go:build linux

package localkube

import (
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

const healthProbe = `httpGet: {path: /health, port: http}
periodSeconds: 1
`

// rolloutRevisions returns the old and new revision of the last restart of deployment d.
func rolloutRevisions(t *testing.T, evs []cluster.Event, d string) (restartIdx int, oldRev, newRev string) {
	t.Helper()
	restartIdx = -1
	for i, e := range evs {
		if e.Kind == cluster.RestartTriggered && e.Deployment == d {
			restartIdx = i
			newRev = e.Revision
		}
	}
	if restartIdx < 0 {
		t.Fatal("no restart_triggered event")
	}
	for _, e := range evs[:restartIdx] {
		if e.Kind == cluster.PodCreated && e.Deployment == d {
			oldRev = e.Revision
		}
	}
	if oldRev == "" || oldRev == newRev {
		t.Fatalf("revisions: old %q new %q", oldRev, newRev)
	}
	return
}

// checkRolloutInvariants replays the events from the restart on and checks, after every
// event, that non-terminating pods never exceed replicas+surge and that ready non-terminating
// pods never drop below replicas-unavailable (minReadySeconds 0).
func checkRolloutInvariants(t *testing.T, evs []cluster.Event, d string, replicas, surge, unavailable int) {
	t.Helper()
	restartIdx, _, _ := rolloutRevisions(t, evs, d)
	live := map[string]bool{}  // created, not terminating
	ready := map[string]bool{} // ready
	for i, e := range evs {
		if e.Deployment != d || e.Pod == "" {
			continue
		}
		switch e.Kind {
		case cluster.PodCreated:
			live[e.Pod] = true
		case cluster.PodTerminating:
			delete(live, e.Pod)
		case cluster.PodReady:
			ready[e.Pod] = true
		case cluster.PodNotReady:
			delete(ready, e.Pod)
		}
		if i < restartIdx {
			continue
		}
		if n := len(live); n > replicas+surge {
			t.Errorf("event %d (%s %s): %d non-terminating pods > replicas %d + maxSurge %d", i, e.Kind, e.Pod, n, replicas, surge)
		}
		avail := 0
		for p := range live {
			if ready[p] {
				avail++
			}
		}
		if avail < replicas-unavailable {
			t.Errorf("event %d (%s %s): %d available pods < replicas %d - maxUnavailable %d", i, e.Kind, e.Pod, avail, replicas, unavailable)
		}
	}
}

func TestIntegrationRollingRestartSurgesBeforeDeleting(t *testing.T) {
	integration(t)
	t.Parallel()
	a := app{name: "web", replicas: 2, readiness: healthProbe, env: map[string]string{"POD_TERM": "graceful"},
		strategy: "type: RollingUpdate\nrollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n"}
	c := startCluster(t, Options{}, a)
	restartAndSettle(t, c, "web")
	evs := c.Events()
	restartIdx, oldRev, newRev := rolloutRevisions(t, evs, "web")

	firstNewReady := indexOf(evs, restartIdx, func(e cluster.Event) bool { return e.Kind == cluster.PodReady && e.Revision == newRev })
	firstOldTerm := indexOf(evs, restartIdx, func(e cluster.Event) bool { return e.Kind == cluster.PodTerminating && e.Revision == oldRev })
	if firstNewReady < 0 || firstOldTerm < 0 || firstNewReady > firstOldTerm {
		t.Fatalf("a new pod must be ready (event %d) before the first old pod is deleted (event %d)", firstNewReady, firstOldTerm)
	}
	checkRolloutInvariants(t, evs, "web", 2, 1, 0)
	if i := indexOf(evs, restartIdx, kindIs(cluster.RolloutComplete)); i < 0 {
		t.Error("no rollout_complete after the restart")
	}
	pods := c.Pods()
	if len(pods) != 2 {
		t.Fatalf("want 2 pods after the rollout, got %+v", pods)
	}
	for _, p := range pods {
		if p.Revision != newRev || !p.Ready || p.PID == 0 {
			t.Errorf("pod after rollout: %+v (want ready, revision %s)", p, newRev)
		}
	}
}

func TestIntegrationDefaultStrategyWithTwoReplicasSurgesOneKeepsAll(t *testing.T) {
	integration(t)
	t.Parallel()
	// No strategy block: 25%/25% of 2 replicas is surge 1 (rounded up), unavailable 0 (down).
	a := app{name: "web", replicas: 2, readiness: healthProbe, env: map[string]string{"POD_TERM": "graceful"}}
	c := startCluster(t, Options{}, a)
	restartAndSettle(t, c, "web")
	evs := c.Events()
	checkRolloutInvariants(t, evs, "web", 2, 1, 0)
	restartIdx, oldRev, newRev := rolloutRevisions(t, evs, "web")
	firstNewReady := indexOf(evs, restartIdx, func(e cluster.Event) bool { return e.Kind == cluster.PodReady && e.Revision == newRev })
	firstOldTerm := indexOf(evs, restartIdx, func(e cluster.Event) bool { return e.Kind == cluster.PodTerminating && e.Revision == oldRev })
	if firstNewReady > firstOldTerm {
		t.Fatalf("new pod ready at event %d, after the first old deletion at %d", firstNewReady, firstOldTerm)
	}
}

func TestIntegrationPercentStrategyFourReplicas(t *testing.T) {
	integration(t)
	t.Parallel()
	// 4 replicas, maxSurge 50% -> 2, maxUnavailable 25% -> 1.
	a := app{name: "web", replicas: 4, readiness: healthProbe, env: map[string]string{"POD_TERM": "graceful"},
		strategy: "rollingUpdate: {maxSurge: 50%, maxUnavailable: 25%}\n"}
	c := startCluster(t, Options{}, a)
	restartAndSettle(t, c, "web")
	checkRolloutInvariants(t, c.Events(), "web", 4, 2, 1)
	if n := len(c.Pods()); n != 4 {
		t.Fatalf("want 4 pods, got %d", n)
	}
}

func TestIntegrationTerminatingPodsDoNotBlockTheNextSurge(t *testing.T) {
	integration(t)
	t.Parallel()
	// A long preStop keeps old pods terminating; the next new pod must still be created
	// before the first old pod has exited, because terminating pods are not counted.
	a := app{name: "web", replicas: 2, readiness: healthProbe, env: map[string]string{"POD_TERM": "graceful"},
		strategy: "rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n", preStop: "sleep: {seconds: 3}\n"}
	c := startCluster(t, Options{}, a)
	restartAndSettle(t, c, "web")
	evs := c.Events()
	restartIdx, oldRev, newRev := rolloutRevisions(t, evs, "web")
	firstOldExit := indexOf(evs, restartIdx, func(e cluster.Event) bool { return e.Kind == cluster.PodExited && e.Revision == oldRev })
	created := 0
	for _, e := range evs[restartIdx:firstOldExit] {
		if e.Kind == cluster.PodCreated && e.Revision == newRev {
			created++
		}
	}
	if created != 2 {
		t.Fatalf("want both new pods created before the first old pod exited, got %d", created)
	}
	checkRolloutInvariants(t, evs, "web", 2, 1, 0)
}

func TestIntegrationRecreateStopsAllOldPodsFirst(t *testing.T) {
	integration(t)
	t.Parallel()
	a := app{name: "web", replicas: 2, env: map[string]string{"POD_TERM": "graceful"}, strategy: "type: Recreate\n"}
	c := startCluster(t, Options{}, a)
	restartAndSettle(t, c, "web")
	evs := c.Events()
	restartIdx, oldRev, newRev := rolloutRevisions(t, evs, "web")
	lastOldExit, firstNew := -1, -1
	for i := restartIdx; i < len(evs); i++ {
		e := evs[i]
		if e.Kind == cluster.PodExited && e.Revision == oldRev {
			lastOldExit = i
		}
		if e.Kind == cluster.PodCreated && e.Revision == newRev && firstNew < 0 {
			firstNew = i
		}
	}
	if lastOldExit < 0 || firstNew < lastOldExit {
		t.Fatalf("Recreate: first new pod at event %d, last old exit at %d", firstNew, lastOldExit)
	}
}

func TestIntegrationMinReadySecondsDelaysScaleDown(t *testing.T) {
	integration(t)
	t.Parallel()
	a := app{name: "web", replicas: 1, minReady: 2, env: map[string]string{"POD_TERM": "graceful"},
		strategy: "rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n"}
	c := startCluster(t, Options{}, a)
	restartAndSettle(t, c, "web")
	evs := c.Events()
	restartIdx, oldRev, newRev := rolloutRevisions(t, evs, "web")
	ready := indexOf(evs, restartIdx, func(e cluster.Event) bool { return e.Kind == cluster.PodReady && e.Revision == newRev })
	term := indexOf(evs, restartIdx, func(e cluster.Event) bool { return e.Kind == cluster.PodTerminating && e.Revision == oldRev })
	if ready < 0 || term < ready {
		t.Fatalf("ready %d, terminating %d", ready, term)
	}
	if gap := evs[term].Time.Sub(evs[ready].Time); gap < 2*time.Second {
		t.Fatalf("old pod deleted %s after the new one became ready; minReadySeconds is 2s", gap)
	}
}

func TestIntegrationEventsIsACopy(t *testing.T) {
	integration(t)
	t.Parallel()
	c := startCluster(t, Options{}, app{name: "web", replicas: 1})
	evs := c.Events()
	if len(evs) == 0 {
		t.Fatal("no events after Up")
	}
	evs[0].Kind = "mutated"
	if c.Events()[0].Kind == "mutated" {
		t.Fatal("Events returned the cluster's own slice")
	}
	evs = c.Events()
	for _, k := range []cluster.EventKind{cluster.PodCreated, cluster.PodStarted, cluster.PodReady, cluster.EndpointAdded, cluster.RolloutComplete} {
		if indexOf(evs, 0, kindIs(k)) < 0 {
			t.Errorf("no %s event after Up", k)
		}
	}
	for _, e := range evs {
		if e.Source != cluster.SourceEmbedded || e.Time.IsZero() {
			t.Errorf("event without source or time: %+v", e)
		}
	}
	if !strings.HasPrefix(c.Target(), "http://") {
		t.Errorf("Target without a LoadBalancer Service: %q", c.Target())
	}
}
