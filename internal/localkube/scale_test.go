package localkube

import (
	"log/slog"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

// The ReplicaSet documentation's scale-down order ("Scaling a ReplicaSet"): pending pods
// first, then lower pod-deletion-cost, then pods on nodes with more replicas, then newer pods.
func TestScaleDownRanking(t *testing.T) {
	now := time.Now()
	started := &container{}
	mk := func(name, node string, created time.Duration, cost string) *pod {
		p := &pod{name: name, node: node, created: now.Add(-created), inst: started, running: true, ready: true, readySince: now.Add(-created)}
		if cost != "" {
			p.annotations = map[string]string{PodDeletionCostAnnotation: cost}
		}
		return p
	}
	d := &deployment{}
	for _, tc := range []struct {
		name  string
		pods  []*pod
		first string
	}{
		{"pending before running", []*pod{mk("running", "n1", time.Hour, ""), func() *pod {
			p := mk("pending", "n2", 2*time.Hour, "")
			p.inst, p.running, p.ready = nil, false, false
			return p
		}()}, "pending"},
		{"unscheduled before scheduled", []*pod{mk("bound", "n1", time.Hour, ""), func() *pod {
			p := mk("unbound", "", time.Hour, "")
			p.inst, p.running, p.ready = nil, false, false
			return p
		}()}, "unbound"},
		{"not ready before ready", []*pod{mk("ready", "n1", time.Minute, ""), func() *pod { p := mk("unready", "n2", 2*time.Hour, ""); p.ready = false; return p }()}, "unready"},
		{"lower deletion cost first, though older", []*pod{mk("new", "n1", time.Minute, ""), mk("cheap", "n2", 8*time.Hour, "-10")}, "cheap"},
		{"higher deletion cost last", []*pod{mk("dear", "n1", time.Minute, "100"), mk("old", "n2", 8*time.Hour, "")}, "old"},
		{"doubled up on a node first", []*pod{mk("alone", "n1", time.Minute, ""), mk("pair-a", "n2", 8*time.Hour, ""), mk("pair-b", "n2", 9*time.Hour, "")}, "pair-a"},
		{"newer first", []*pod{mk("old", "n1", 8*time.Hour, ""), mk("new", "n2", time.Minute, "")}, "new"},
		{"more restarts first, same age bucket", []*pod{mk("steady", "n1", time.Hour, ""), func() *pod { p := mk("crashy", "n2", time.Hour, ""); p.restarts = 3; return p }()}, "crashy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := &replicaSet{pods: tc.pods}
			d.sets = []*replicaSet{rs}
			pods := append([]*pod(nil), tc.pods...)
			(&Cluster{}).rankForDeletionLocked(d, pods)
			if pods[0].name != tc.first {
				t.Fatalf("deleted first: %s, want %s", pods[0].name, tc.first)
			}
		})
	}
}

// The scheduler spreads a Deployment's pods over the schedulable nodes and skips cordoned ones.
func TestSchedulerSpreadsAndSkipsCordoned(t *testing.T) {
	c := &Cluster{nodes: newNodes(3), pods: map[string]*pod{}}
	web, api := &deployment{}, &deployment{}
	place := func(d *deployment, name string) string {
		p := &pod{name: name, d: d, scheduled: make(chan struct{})}
		c.bindLocked(p)
		c.pods[name] = p
		return p.node
	}
	got := []string{place(web, "w1"), place(web, "w2"), place(web, "w3"), place(web, "w4")}
	want := []string{"localkube-1", "localkube-2", "localkube-3", "localkube-1"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("web's pods went to %v, want %v", got, want)
		}
	}
	// Fewest of its own Deployment first, then fewest pods in all.
	if n := place(api, "a1"); n != "localkube-2" {
		t.Fatalf("api's first pod went to %s, want the least loaded localkube-2", n)
	}
	c.nodes[1].unschedulable, c.nodes[2].unschedulable = true, true
	if n := place(api, "a2"); n != "localkube-1" {
		t.Fatalf("with two nodes cordoned the pod went to %s", n)
	}
	c.nodes[0].unschedulable = true
	if n := place(api, "a3"); n != "" {
		t.Fatalf("with every node cordoned the pod was bound to %s, want pending", n)
	}
	select {
	case <-c.pods["a3"].scheduled:
		t.Fatal("a pending pod's scheduled channel is closed")
	default:
	}
	c.nodes[2].unschedulable = false
	c.nodes[2].annotations[cluster.CordonedByAnnotation] = "gracelab"
	c.log = slog.New(slog.DiscardHandler)
	c.bindPendingLocked()
	if c.pods["a3"].node != "localkube-3" {
		t.Fatalf("after the uncordon the pending pod is on %q", c.pods["a3"].node)
	}
	<-c.pods["a3"].scheduled
}
