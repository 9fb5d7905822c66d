package cluster

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeCluster is a Disrupter in memory: the driver's own logic (choice, retries, restore) is
// what is under test here; the back ends' real behaviour is tested in their packages.
type fakeCluster struct {
	mu        sync.Mutex
	pods      []Pod
	refusals  map[string]int // evictions of this pod refused this many times first
	cordoned  map[string]bool
	preset    map[string]bool // cordoned before gracelab came
	replicas  int32
	actions   []string
	evictErr  error
	cordonErr error
}

func (f *fakeCluster) do(a string) { f.mu.Lock(); f.actions = append(f.actions, a); f.mu.Unlock() }

func (f *fakeCluster) DeploymentPods(context.Context, string) ([]Pod, error) {
	return append([]Pod(nil), f.pods...), nil
}
func (f *fakeCluster) DeletePod(_ context.Context, p string) error { f.do("delete " + p); return nil }
func (f *fakeCluster) KillContainer(_ context.Context, p string) error {
	f.do("kill " + p)
	return nil
}
func (f *fakeCluster) EvictPod(_ context.Context, p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.evictErr != nil {
		return f.evictErr
	}
	if f.refusals[p] > 0 {
		f.refusals[p]--
		return &EvictionRefusedError{Pod: p, Reason: "budget"}
	}
	f.actions = append(f.actions, "evict "+p)
	return nil
}
func (f *fakeCluster) Cordon(_ context.Context, n string) error {
	if f.cordonErr != nil {
		return f.cordonErr
	}
	if f.preset[n] {
		return ErrCordoned
	}
	f.do("cordon " + n)
	return nil
}
func (f *fakeCluster) Uncordon(_ context.Context, n string) error { f.do("uncordon " + n); return nil }
func (f *fakeCluster) Scale(_ context.Context, _ string, r int32) (int32, error) {
	prev := f.replicas
	f.replicas = r
	f.do("scale " + string(rune('0'+r)))
	return prev, nil
}

func threePods() []Pod {
	t0 := time.Unix(1000, 0)
	return []Pod{{Name: "c", Node: "n2", Created: t0.Add(2 * time.Second)}, {Name: "a", Node: "n1", Created: t0}, {Name: "b", Node: "n1", Created: t0.Add(time.Second)}}
}

func TestDisruptChoosesTheOldestPods(t *testing.T) {
	for _, kind := range []DisruptionKind{DisruptDelete, DisruptKill, DisruptEvict} {
		f := &fakeCluster{pods: threePods()}
		if _, err := Disrupt(context.Background(), f, "web", Disruption{Kind: kind, Count: 2}, nil); err != nil {
			t.Fatal(err)
		}
		verb := map[DisruptionKind]string{DisruptDelete: "delete", DisruptKill: "kill", DisruptEvict: "evict"}[kind]
		if got := strings.Join(f.actions, ","); got != verb+" a,"+verb+" b" {
			t.Errorf("%s: %s", kind, got)
		}
	}
	f := &fakeCluster{pods: threePods()}
	if _, err := Disrupt(context.Background(), f, "web", Disruption{Kind: DisruptDelete, Count: 4}, nil); err == nil || !strings.Contains(err.Error(), "fewer than --count 4") {
		t.Errorf("count beyond the pods: %v", err)
	}
}

func TestEvictRetriesARefusalUntilTheTimeout(t *testing.T) {
	f := &fakeCluster{pods: threePods(), refusals: map[string]int{"a": 2}}
	var said []string
	d := Disruption{Kind: DisruptEvict, RetryEvery: time.Millisecond, EvictionTimeout: time.Minute}
	if _, err := Disrupt(context.Background(), f, "web", d, func(s string) { said = append(said, s) }); err != nil {
		t.Fatal(err)
	}
	if len(said) != 2 || !strings.Contains(said[0], "waited") || !strings.Contains(said[0], "retrying in 1ms") {
		t.Errorf("the waits shown: %q", said)
	}
	f = &fakeCluster{pods: threePods(), refusals: map[string]int{"a": 1 << 30}}
	d.EvictionTimeout = 20 * time.Millisecond
	_, err := Disrupt(context.Background(), f, "web", d, nil)
	var refused *EvictionRefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "still refused after") {
		t.Fatalf("a refusal past the timeout: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d.EvictionTimeout = time.Hour
	if _, err := Disrupt(ctx, f, "web", d, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled wait: %v", err)
	}
}

func TestDrainEvictsOnlyTheNodesPodsAndUncordonsEvenAfterFailure(t *testing.T) {
	f := &fakeCluster{pods: threePods()}
	restore, err := Disrupt(context.Background(), f, "web", Disruption{Kind: DisruptDrain}, nil)
	if err != nil || restore == nil {
		t.Fatal(err)
	}
	got := strings.Join(f.actions, ",")
	if got != "cordon n1,evict a,evict b" && got != "cordon n1,evict b,evict a" {
		t.Fatalf("drain of the oldest pod's node: %s", got)
	}
	_ = restore(context.Background())
	_ = restore(context.Background())
	if !strings.HasSuffix(strings.Join(f.actions, ","), ",uncordon n1") || strings.Count(strings.Join(f.actions, ","), "uncordon") != 1 {
		t.Fatalf("restore uncordons once: %v", f.actions)
	}
	// An eviction fails: the restore still comes back, to uncordon.
	f = &fakeCluster{pods: threePods(), evictErr: errors.New("boom")}
	restore, err = Disrupt(context.Background(), f, "web", Disruption{Kind: DisruptDrain, Node: "n1"}, nil)
	if err == nil || restore == nil {
		t.Fatalf("failed drain: err %v, restore %v", err, restore != nil)
	}
	// A node someone else cordoned is drained but never uncordoned.
	f = &fakeCluster{pods: threePods(), preset: map[string]bool{"n2": true}}
	var said []string
	restore, err = Disrupt(context.Background(), f, "web", Disruption{Kind: DisruptDrain, Node: "n2"}, func(s string) { said = append(said, s) })
	if err != nil || restore != nil || strings.Join(f.actions, ",") != "evict c" || !strings.Contains(strings.Join(said, "\n"), "already cordoned: draining it, leaving it cordoned") {
		t.Fatalf("pre-cordoned node: err %v restore %v actions %v said %v", err, restore != nil, f.actions, said)
	}
}

func TestScaleDefaultsToOneLessAndScalesBack(t *testing.T) {
	f := &fakeCluster{pods: threePods(), replicas: 3}
	restore, err := Disrupt(context.Background(), f, "web", Disruption{Kind: DisruptScale, To: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.replicas != 2 {
		t.Fatalf("scaled to %d, want one less: 2", f.replicas)
	}
	_ = restore(context.Background())
	if f.replicas != 3 {
		t.Fatalf("scaled back to %d, want 3", f.replicas)
	}
}

func TestParseDisruptionKind(t *testing.T) {
	if k, err := ParseDisruptionKind(" Drain "); err != nil || k != DisruptDrain {
		t.Fatal(k, err)
	}
	if _, err := ParseDisruptionKind("nuke"); err == nil || !strings.Contains(err.Error(), "restart, delete, evict, drain, kill, scale") {
		t.Fatal(err)
	}
}

// Each kind has a trigger event of its own, distinct from every other event, so a timeline
// says what was done; the restart keeps restart_triggered (older reports have it).
func TestTriggerEventPerKind(t *testing.T) {
	seen := map[EventKind]DisruptionKind{}
	for _, k := range DisruptionKinds {
		e := k.TriggerEvent()
		if other, dup := seen[e]; dup {
			t.Fatalf("%s and %s share the trigger event %s", k, other, e)
		}
		seen[e] = k
		if !IsTrigger(e) {
			t.Errorf("IsTrigger(%s) is false", e)
		}
	}
	if DisruptRestart.TriggerEvent() != RestartTriggered || DisruptionKind("").TriggerEvent() != RestartTriggered {
		t.Error("the restart's trigger is not restart_triggered")
	}
	for _, e := range []EventKind{PodEvicted, Scaled, PodDeleted, SIGKILLSent, RolloutComplete} {
		if IsTrigger(e) {
			t.Errorf("IsTrigger(%s): what the cluster did is not the drill's trigger", e)
		}
	}
}
