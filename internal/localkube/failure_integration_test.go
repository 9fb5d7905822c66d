//go:build linux

package localkube

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

// TestDyingPodFailureModes reproduces the three ways v1 loses requests, through the proxy of a
// real cluster: a pod with no preStop dies on SIGTERM; until its network is torn down new
// connections sent to it are reset at once, after that they hang unanswered until the caller's
// timeout, and only EndpointLag after the deletion does the proxy stop sending them there.
func TestIntegrationDyingPodFailureModes(t *testing.T) {
	integration(t)
	t.Parallel()
	lag, linger := 2500*time.Millisecond, 800*time.Millisecond
	// One replica, maxSurge 0: the only pod is deleted first, so every new connection in the
	// window goes to the dying pod.
	a := app{name: "v1", replicas: 1, strategy: "rollingUpdate: {maxSurge: 0, maxUnavailable: 1}\n"}
	c := startCluster(t, Options{EndpointLag: lag, NetworkLinger: linger}, a)
	old := firstPod(t, c).Name
	addr, _ := c.ServiceAddr("v1", 8080)

	l := hammer(addr, 4, 400*time.Millisecond)
	l.waitFor(t, "an answer from the old pod", func(os []outcome) bool { return slices.ContainsFunc(os, func(o outcome) bool { return o.pod == old }) })
	restartAndSettle(t, c, "v1")
	// The rollout is complete before the proxy has caught up: keep going until it has, and
	// until requests sent after that have been answered.
	removedAt := waitEvent(t, c, 10*time.Second, podKind(old, cluster.EndpointRemoved)).Time
	l.waitFor(t, "requests sent after the endpoint was removed", func(os []outcome) bool {
		n := 0
		for _, o := range os {
			if o.start.After(removedAt) {
				n++
			}
		}
		return n >= 4
	})
	outs := l.finish()

	evs := c.Events()
	term := eventOf(t, evs, old, cluster.PodTerminating)
	sigterm := eventOf(t, evs, old, cluster.SIGTERMSent)
	netGone := eventOf(t, evs, old, cluster.PodNetworkRemoved)
	removed := eventOf(t, evs, old, cluster.EndpointRemoved)
	if removed.Time.Sub(term.Time) < lag {
		t.Errorf("endpoint removed %s after deletion, before the %s lag", removed.Time.Sub(term.Time), lag)
	}
	if !netGone.Time.Before(removed.Time) {
		t.Fatalf("network removed at %s, after the proxy dropped the endpoint at %s: no black-hole window", netGone.Time, removed.Time)
	}
	const slack = 50 * time.Millisecond
	counts := map[string]int{}
	for _, o := range outs {
		k := o.kind()
		counts[k]++
		switch k {
		case "reset":
			// Refused by the kernel: the process was dead and its network still there; or, once
			// the proxy has dropped the old pod, reset by the proxy until the new one reaches it.
			if o.end.Before(sigterm.Time) || (o.start.After(netGone.Time.Add(slack)) && o.start.Before(removed.Time)) {
				t.Errorf("reset outside [SIGTERM, network removed]: %s..%s", o.start.Format("05.000"), o.end.Format("05.000"))
			}
		case "timeout":
			// Black hole: the network was gone and the proxy still routed to the pod.
			if o.end.Before(netGone.Time) || o.start.After(removed.Time.Add(slack)) {
				t.Errorf("timeout outside [network removed, endpoint removed]: %s..%s", o.start.Format("05.000"), o.end.Format("05.000"))
			}
		case "ok":
			if o.pod == old && o.start.After(removed.Time.Add(slack)) {
				t.Errorf("the old pod answered a connection made after its endpoint was removed")
			}
		}
	}
	t.Logf("outcomes: %v", counts)
	if counts["reset"] == 0 || counts["timeout"] == 0 || counts["ok"] == 0 {
		t.Fatalf("want resets, timeouts and successes, got %v", counts)
	}
}

// TestEndpointLag: a terminating pod that keeps serving (preStop) still receives new
// connections until the lag has passed, and none after.
func TestIntegrationEndpointLag(t *testing.T) {
	integration(t)
	t.Parallel()
	lag := 1500 * time.Millisecond
	a := app{name: "v2", replicas: 1, readiness: healthProbe, env: map[string]string{"POD_TERM": "graceful"},
		strategy: "rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n", preStop: "sleep: {seconds: 3}\n"}
	c := startCluster(t, Options{EndpointLag: lag}, a)
	old := firstPod(t, c).Name
	addr, _ := c.ServiceAddr("v2", 8080)
	l := hammer(addr, 3, 2*time.Second)
	restartAndSettle(t, c, "v2")
	outs := l.finish()
	evs := c.Events()
	term := eventOf(t, evs, old, cluster.PodTerminating)
	removed := eventOf(t, evs, old, cluster.EndpointRemoved)
	if d := removed.Time.Sub(term.Time); d < lag {
		t.Errorf("endpoint removed %s after deletion; lag is %s", d, lag)
	}
	afterDeletion := 0
	for _, o := range outs {
		if o.err != nil {
			t.Errorf("request failed during a graceful rollout: %v", o.err)
			continue
		}
		if o.pod == old && o.start.After(term.Time) {
			afterDeletion++
		}
		if o.pod == old && o.start.After(removed.Time.Add(50*time.Millisecond)) {
			t.Errorf("old pod got a connection made %s after its endpoint was removed", o.start.Sub(removed.Time))
		}
	}
	if afterDeletion == 0 {
		t.Errorf("no connection reached the terminating pod during the lag (%d requests)", len(outs))
	}
}

// TestInFlightRequestSeesEOF: a request in flight on a pod that dies on SIGTERM is cut: the
// caller gets the partial response and an unexpected EOF, never a clean success.
func TestIntegrationInFlightRequestSeesEOF(t *testing.T) {
	integration(t)
	t.Parallel()
	a := app{name: "v1", replicas: 1, strategy: "rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n"}
	c := startCluster(t, Options{}, a)
	addr, _ := c.ServiceAddr("v1", 8080)
	errc := make(chan error, 1)
	inFlight := make(chan struct{}) // the pod has sent the first half of its answer
	go func() {
		client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Get("http://" + addr + "/slow?ms=10000")
		if err == nil {
			defer resp.Body.Close()
			if _, err = io.ReadFull(resp.Body, make([]byte, 5)); err == nil {
				close(inFlight)
				_, err = io.ReadAll(resp.Body)
			}
		}
		errc <- err
	}()
	select {
	case <-inFlight:
	case err := <-errc:
		t.Fatalf("the slow request ended before the restart: %v", err)
	}
	restartAndSettle(t, c, "v1")
	select {
	case err := <-errc:
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("in-flight request on a killed pod: %v, want unexpected EOF", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the in-flight request was not cut when its pod died")
	}
}

// TestEventOrder checks the order Kubernetes produces for a deletion, v1-style (no preStop,
// dies on SIGTERM) and v2-style (preStop longer than the lag, graceful exit).
func TestIntegrationEventOrder(t *testing.T) {
	integration(t)
	t.Parallel()
	v1 := app{name: "v1", replicas: 1, strategy: "rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n"}
	v2 := app{name: "v2", replicas: 1, readiness: healthProbe, env: map[string]string{"POD_TERM": "graceful"},
		strategy: "rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n", preStop: "sleep: {seconds: 1}\n"}
	c := startCluster(t, Options{EndpointLag: 500 * time.Millisecond, NetworkLinger: 200 * time.Millisecond}, v1, v2)
	olds := map[string]string{}
	for _, p := range c.Pods() {
		olds[p.Deployment] = p.Name
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, d := range []string{"v1", "v2"} {
		if err := c.Restart(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"v1", "v2"} {
		if err := c.WaitSettled(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	evs := c.Events()
	check := func(name, pod string, order ...cluster.EventKind) {
		prev := -1
		for _, k := range order {
			i := indexOf(evs, prev+1, podKind(pod, k))
			if i < 0 {
				dumpEvents(t, evs)
				t.Fatalf("%s: no %s after %v", name, k, evs[max(prev, 0)].Kind)
			}
			prev = i
		}
	}
	// v1: the process is gone and its network too before the proxy stops routing to it.
	check("v1", olds["v1"], cluster.PodTerminating, cluster.EndpointNotReady, cluster.SIGTERMSent, cluster.PodExited,
		cluster.PodNotReady, cluster.PodNetworkRemoved, cluster.PodDeleted)
	check("v1 lag", olds["v1"], cluster.PodNetworkRemoved, cluster.EndpointRemoved)
	// v2: the proxy stops routing during preStop, before SIGTERM.
	check("v2", olds["v2"], cluster.PodTerminating, cluster.EndpointNotReady, cluster.PreStopStarted, cluster.EndpointRemoved,
		cluster.PreStopFinished, cluster.SIGTERMSent, cluster.PodExited, cluster.PodNetworkRemoved, cluster.PodDeleted)
	// The rollout as a whole: restart, new pod created, started, ready, old pod deleted,
	// rollout complete, and the new endpoint reaches the proxy.
	for _, d := range []string{"v1", "v2"} {
		restart := indexOf(evs, 0, func(e cluster.Event) bool { return e.Kind == cluster.RestartTriggered && e.Deployment == d })
		created := indexOf(evs, restart, func(e cluster.Event) bool { return e.Kind == cluster.PodCreated && e.Deployment == d })
		newPod := evs[created].Pod
		check(d+" new pod", newPod, cluster.PodCreated, cluster.PodStarted, cluster.PodReady, cluster.EndpointAdded)
		term := indexOf(evs, 0, podKind(olds[d], cluster.PodTerminating))
		ready := indexOf(evs, 0, podKind(newPod, cluster.PodReady))
		complete := indexOf(evs, restart, func(e cluster.Event) bool { return e.Kind == cluster.RolloutComplete && e.Deployment == d })
		if !(restart < created && ready < term && term <= complete) {
			t.Errorf("%s: restart %d < created %d, ready %d < old terminating %d <= rollout complete %d", d, restart, created, ready, term, complete)
		}
	}
	// Events are in time order.
	for i := 1; i < len(evs); i++ {
		if evs[i].Time.Before(evs[i-1].Time) {
			t.Fatalf("event %d is earlier than event %d", i, i-1)
		}
	}
}
