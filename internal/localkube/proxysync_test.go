package localkube

import (
	"context"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// syncRecord is one sync as the loop applied it: when, and which Services' views.
type syncRecord struct {
	at    time.Time
	batch []syncChange
}

func startTestSync(t *testing.T, syncTook time.Duration) (*proxySync, *clocktesting.FakeClock, <-chan syncRecord) {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	got := make(chan syncRecord, 16)
	ps := newProxySync(clk, time.Second, newLagSource(syncTook, 1), func(b []syncChange) {
		got <- syncRecord{at: clk.Now(), batch: b}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ps.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return ps, clk, got
}

// waitTimer polls, with a deadline, until the loop waits on its clock.
func waitTimer(t *testing.T, clk *clocktesting.FakeClock) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !clk.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatal("the sync loop never waited on its clock")
		}
		time.Sleep(time.Millisecond)
	}
}

func nextSync(t *testing.T, got <-chan syncRecord) syncRecord {
	t.Helper()
	select {
	case r := <-got:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no sync applied")
		return syncRecord{}
	}
}

func TestProxySyncBatchesChangesAndKeepsMinInterval(t *testing.T) {
	ps, clk, got := startTestSync(t, 200*time.Millisecond)
	t0 := clk.Now()
	a, b := &service{}, &service{}
	ready := []apiEndpoint{{ready: true}}
	terminating := []apiEndpoint{{terminating: true}}

	// A first change after a quiet spell syncs at once; the sync takes its duration.
	ps.add(a, ready)
	waitTimer(t, clk)
	clk.Step(200 * time.Millisecond)
	first := nextSync(t, got)
	if !first.at.Equal(t0.Add(200*time.Millisecond)) || len(first.batch) != 1 || first.batch[0].svc != a {
		t.Fatalf("first sync: %v after start, %d changes; want service a alone at 200ms", first.at.Sub(t0), len(first.batch))
	}

	// Two changes 0.3 s apart, right after a sync: both wait out the minimum interval from
	// the sync's completion and land in one sync, each Service with its newest view.
	ps.add(a, terminating)
	waitTimer(t, clk) // the minimum interval
	clk.Step(300 * time.Millisecond)
	ps.add(b, ready)
	ps.add(a, ready)
	clk.Step(699 * time.Millisecond) // 1 ms short of the interval: no sync yet
	if !clk.HasWaiters() {
		t.Fatal("the loop stopped waiting before the minimum interval passed")
	}
	clk.Step(time.Millisecond)
	waitTimer(t, clk) // the sync's duration
	clk.Step(200 * time.Millisecond)
	second := nextSync(t, got)
	if want := t0.Add(1400 * time.Millisecond); !second.at.Equal(want) {
		t.Fatalf("second sync at %v, want %v (1s after the first completed, plus 200ms)", second.at.Sub(t0), want.Sub(t0))
	}
	if len(second.batch) != 2 || second.batch[0].svc != a || second.batch[1].svc != b {
		t.Fatalf("second sync applied %d changes, want a then b in one sync", len(second.batch))
	}
	if second.batch[0].n != 2 || !second.batch[0].snap[0].ready {
		t.Fatalf("service a: %d views, newest ready=%v; want 2 views, the newest (ready) applied", second.batch[0].n, second.batch[0].snap[0].ready)
	}
	select {
	case r := <-got:
		t.Fatalf("an extra sync at %v", r.at.Sub(t0))
	default:
	}
}

// A change that comes while a sync runs is not in it: it waits for the next one.
func TestProxySyncChangeDuringSyncWaitsForNext(t *testing.T) {
	ps, clk, got := startTestSync(t, 200*time.Millisecond)
	t0 := clk.Now()
	a := &service{}
	ps.add(a, []apiEndpoint{{ready: true}})
	waitTimer(t, clk)
	clk.Step(100 * time.Millisecond)
	ps.add(a, []apiEndpoint{{terminating: true}})
	clk.Step(100 * time.Millisecond)
	if r := nextSync(t, got); r.batch[0].snap[0].terminating {
		t.Fatal("a change made during a sync was applied by it")
	}
	waitTimer(t, clk)
	clk.Step(time.Second)
	waitTimer(t, clk)
	clk.Step(200 * time.Millisecond)
	r := nextSync(t, got)
	if !r.batch[0].snap[0].terminating || !r.at.Equal(t0.Add(1400*time.Millisecond)) {
		t.Fatalf("the later change applied at %v (terminating=%v), want at 1.4s", r.at.Sub(t0), r.batch[0].snap[0].terminating)
	}
}

// The drawn sync durations stay within what the lab measured and repeat with the seed.
func TestSyncDurationDrawnFromMeasured(t *testing.T) {
	a, b := newSyncDurationSource(7), newSyncDurationSource(7)
	lo, hi := measuredSyncDuration[0], measuredSyncDuration[len(measuredSyncDuration)-1]
	for range 1000 {
		d := a.next()
		if d != b.next() {
			t.Fatal("the same seed drew different sync durations")
		}
		if d < lo || d > hi {
			t.Fatalf("drawn %v outside the measured %v-%v", d, lo, hi)
		}
	}
}
