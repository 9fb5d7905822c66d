//go:build linux

package localkube

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

// webWithBudget: n replicas with a readiness probe, and a PodDisruptionBudget of minAvailable 1.
func webWithBudget(t *testing.T, nodes, replicas int) *Cluster {
	a := app{name: "web", replicas: replicas, env: map[string]string{"POD_TERM": "graceful"},
		readiness: "httpGet: {path: /health, port: http}\nperiodSeconds: 1\n"}
	pdb := "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web}\nspec:\n  minAvailable: 1\n  selector: {matchLabels: {app: web}}\n"
	return startCluster(t, Options{Nodes: nodes, Manifests: manifests(map[string]string{"web.yaml": a.yaml(), "pdb.yaml": pdb})}, a)
}

func settle(t *testing.T, c *Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitSettled(ctx, "web"); err != nil {
		t.Fatalf("WaitSettled: %v", err)
	}
}

// sayings collects what a disruption shows, safely from its goroutines.
type sayings struct {
	mu    sync.Mutex
	lines []string
}

func (s *sayings) say(l string) { s.mu.Lock(); s.lines = append(s.lines, l); s.mu.Unlock() }
func (s *sayings) all() string  { s.mu.Lock(); defer s.mu.Unlock(); return strings.Join(s.lines, "\n") }

func TestIntegrationEvictionHonoursTheBudget(t *testing.T) {
	integration(t)
	t.Parallel()
	c := webWithBudget(t, 2, 2)
	ctx := context.Background()
	pods, _ := c.DeploymentPods(ctx, "web")
	if err := c.EvictPod(ctx, pods[0].Name); err != nil {
		t.Fatalf("first eviction (2 healthy, minAvailable 1): %v", err)
	}
	err := c.EvictPod(ctx, pods[1].Name)
	var refused *cluster.EvictionRefusedError
	if !errors.As(err, &refused) || !strings.Contains(refused.Reason, "needs 1 healthy pods and has 1 currently") {
		t.Fatalf("second eviction before the replacement is ready: %v, want a 429 refusal", err)
	}
	waitEvent(t, c, time.Second, podKind(pods[1].Name, cluster.EvictionRefused))
	// Disrupt retries the refusal until the replacement is ready, and says how long it waited.
	var s sayings
	d := cluster.Disruption{Kind: cluster.DisruptEvict, RetryEvery: 200 * time.Millisecond, EvictionTimeout: 30 * time.Second}
	if _, err := cluster.Disrupt(ctx, &onePod{c, pods[1].Name}, "web", d, s.say); err != nil {
		t.Fatalf("evict with retries: %v", err)
	}
	if !strings.Contains(s.all(), "refused") || !strings.Contains(s.all(), "retrying in 200ms") {
		t.Errorf("the wait was not shown: %q", s.all())
	}
	waitEvent(t, c, time.Second, podKind(pods[1].Name, cluster.PodEvicted))
	settle(t, c)
}

// onePod narrows a cluster's DeploymentPods to one pod, so Disrupt evicts that one.
type onePod struct {
	*Cluster
	name string
}

func (o *onePod) DeploymentPods(ctx context.Context, d string) ([]cluster.Pod, error) {
	pods, err := o.Cluster.DeploymentPods(ctx, d)
	var out []cluster.Pod
	for _, p := range pods {
		if p.Name == o.name {
			out = append(out, p)
		}
	}
	return out, err
}

func TestIntegrationDrainMovesPodsAndUncordons(t *testing.T) {
	integration(t)
	t.Parallel()
	c := webWithBudget(t, 2, 2)
	ctx := context.Background()
	pods, _ := c.DeploymentPods(ctx, "web")
	if pods[0].Node == pods[1].Node || pods[0].Node == "" {
		t.Fatalf("two replicas on two nodes are not spread: %+v", pods)
	}
	restore, err := cluster.Disrupt(ctx, c, "web", cluster.Disruption{Kind: cluster.DisruptDrain}, nil)
	if err != nil || restore == nil {
		t.Fatalf("drain: %v (restore %v)", err, restore != nil)
	}
	drained := waitEvent(t, c, time.Second, kindIs(cluster.NodeCordoned)).Node
	if n := c.Nodes(); n[0].Name != drained || !n[0].Unschedulable || n[0].Annotations[cluster.CordonedByAnnotation] == "" {
		t.Fatalf("the oldest pod's node %s is not cordoned and annotated: %+v", drained, n)
	}
	settle(t, c)
	for _, p := range c.Pods() {
		if p.Node == drained {
			t.Errorf("pod %s is still on the drained node %s", p.Name, drained)
		}
	}
	if err := restore(ctx); err != nil {
		t.Fatalf("uncordon: %v", err)
	}
	if n := c.Nodes(); n[0].Unschedulable || n[0].Annotations[cluster.CordonedByAnnotation] != "" {
		t.Fatalf("after the restore the node is still cordoned: %+v", n[0])
	}
	waitEvent(t, c, time.Second, kindIs(cluster.NodeUncordoned))
	// A node gracelab did not cordon is not its to uncordon.
	if err := c.Uncordon(ctx, drained); err == nil {
		t.Error("uncordoning a node gracelab had not cordoned succeeded")
	}
}

// One node, as the lab: the first eviction's replacement has nowhere to go, so the budget
// refuses the last eviction until the timeout; the restore uncordons, and the pending pod runs.
func TestIntegrationDrainOfTheOnlyNodeIsBlockedByTheBudget(t *testing.T) {
	integration(t)
	t.Parallel()
	c := webWithBudget(t, 1, 2)
	ctx := context.Background()
	var s sayings
	d := cluster.Disruption{Kind: cluster.DisruptDrain, RetryEvery: 200 * time.Millisecond, EvictionTimeout: 2 * time.Second}
	restore, err := cluster.Disrupt(ctx, c, "web", d, s.say)
	var refused *cluster.EvictionRefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "still refused after") {
		t.Fatalf("drain of the only node: %v, want the budget's refusal after the timeout", err)
	}
	if restore == nil {
		t.Fatal("no restore after a failed drain: the node would stay cordoned")
	}
	pending := 0
	for _, p := range c.Pods() {
		if p.Node == "" {
			pending++
		}
	}
	if pending != 1 {
		t.Fatalf("%d pending pods, want the evicted pod's replacement: %+v", pending, c.Pods())
	}
	if err := restore(ctx); err != nil {
		t.Fatal(err)
	}
	settle(t, c)
	if n := c.Nodes(); n[0].Unschedulable {
		t.Fatal("still cordoned")
	}
}

func TestIntegrationKillRestartsTheContainerWithBackoff(t *testing.T) {
	integration(t)
	t.Parallel()
	c := startCluster(t, Options{}, app{name: "web", replicas: 1})
	ctx := context.Background()
	p := firstPod(t, c)
	if err := c.KillContainer(ctx, p.Name); err != nil {
		t.Fatal(err)
	}
	first := waitEvent(t, c, 10*time.Second, podKind(p.Name, cluster.ContainerRestarted))
	if first.Detail != "restartCount 1" {
		t.Errorf("first restart detail %q", first.Detail)
	}
	waitListening(t, net.JoinHostPort(p.IP, "8080"))
	if err := c.KillContainer(ctx, p.Name); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// During the back-off the pod keeps its address: a connection is refused, not lost.
	_, err := net.DialTimeout("tcp", net.JoinHostPort(p.IP, "8080"), time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dialling the crashed pod: %v, want connection refused", err)
	}
	second := waitEvent(t, c, 20*time.Second, func(e cluster.Event) bool {
		return e.Kind == cluster.ContainerRestarted && e.Detail == "restartCount 2"
	})
	if d := second.Time.Sub(killed); d < 9*time.Second {
		t.Errorf("the second restart came %s after the crash, want the 10s back-off", d)
	}
	now := c.Pods()
	if len(now) != 1 || now[0].Name != p.Name || now[0].IP != p.IP || now[0].Restarts != 2 {
		t.Fatalf("after two crashes: %+v, want the same pod and address with 2 restarts", now)
	}
}

func TestIntegrationScaleDownFollowsDeletionCostAndScalesBack(t *testing.T) {
	integration(t)
	t.Parallel()
	c := startCluster(t, Options{}, app{name: "web", replicas: 3, env: map[string]string{"POD_TERM": "graceful"}})
	ctx := context.Background()
	pods, _ := c.DeploymentPods(ctx, "web")
	// The oldest pod is cheapest to delete: it goes before the newer ones.
	oldest := pods[0]
	for _, p := range pods {
		if p.Created.Before(oldest.Created) {
			oldest = p
		}
	}
	if err := c.AnnotatePod(oldest.Name, PodDeletionCostAnnotation, "-100"); err != nil {
		t.Fatal(err)
	}
	restore, err := cluster.Disrupt(ctx, c, "web", cluster.Disruption{Kind: cluster.DisruptScale, To: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, c, time.Second, kindIs(cluster.Scaled)); e.Detail != "3 -> 2" {
		t.Errorf("scaled detail %q", e.Detail)
	}
	waitEvent(t, c, time.Second, podKind(oldest.Name, cluster.PodTerminating))
	settle(t, c)
	if n := len(c.Pods()); n != 2 {
		t.Fatalf("%d pods after scaling to 2", n)
	}
	if err := restore(ctx); err != nil {
		t.Fatal(err)
	}
	settle(t, c)
	if n := len(c.Pods()); n != 3 {
		t.Fatalf("%d pods after scaling back", n)
	}
}

func TestIntegrationDeleteReplacesThePodGracefully(t *testing.T) {
	integration(t)
	t.Parallel()
	c := startCluster(t, Options{}, app{name: "web", replicas: 2, env: map[string]string{"POD_TERM": "graceful"}})
	ctx := context.Background()
	victim := firstPod(t, c).Name
	if _, err := cluster.Disrupt(ctx, &onePod{c, victim}, "web", cluster.Disruption{Kind: cluster.DisruptDelete}, nil); err != nil {
		t.Fatal(err)
	}
	term := waitEvent(t, c, time.Second, podKind(victim, cluster.PodTerminating))
	if !strings.Contains(term.Detail, "deleted") {
		t.Errorf("terminating detail %q", term.Detail)
	}
	settle(t, c)
	evs := c.Events()
	if i := indexOf(evs, 0, podKind(victim, cluster.SIGTERMSent)); i < 0 {
		t.Error("a deleted pod got no SIGTERM: not graceful")
	}
	if n := len(c.Pods()); n != 2 {
		t.Fatalf("%d pods after the replacement", n)
	}
}

// An evicted pod is terminating: the ReplicaSet no longer counts it and creates its
// replacement at once, as after a deletion, not once the evicted process has exited.
func TestIntegrationEvictedPodIsReplacedWhileItTerminates(t *testing.T) {
	integration(t)
	t.Parallel()
	// The pod ignores SIGTERM, so it terminates for its whole 10 s grace period.
	a := app{name: "web", replicas: 1, grace: 10, env: map[string]string{"POD_TERM": "ignore"}}
	c := startCluster(t, Options{}, a)
	victim := firstPod(t, c).Name
	if err := c.EvictPod(context.Background(), victim); err != nil {
		t.Fatal(err)
	}
	created := waitEvent(t, c, 8*time.Second, func(e cluster.Event) bool { return e.Kind == cluster.PodCreated && e.Pod != victim })
	evs := c.Events()
	exited := indexOf(evs, 0, podKind(victim, cluster.PodExited))
	if exited >= 0 && evs[exited].Time.Before(created.Time) {
		t.Errorf("replacement %s created at %s, after the evicted pod exited at %s", created.Pod, created.Time.Format(time.StampMilli), evs[exited].Time.Format(time.StampMilli))
	}
}
