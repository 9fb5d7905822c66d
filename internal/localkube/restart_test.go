package localkube

import (
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

// The kubelet's back-off as "Pod Lifecycle: Container restarts" documents it: 10s doubling,
// capped at 5 minutes, reset once a container has run for 10 minutes; the first restart is
// immediate. The clock is simulated, each crash follows a run of ran.
func TestRestartBackoff(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Unix(1_000_000, 0))
	r := newRestartBackoff(clk)
	crash := func(ran time.Duration) time.Duration {
		clk.Step(ran)
		wait := r.exited(clk.Now())
		clk.Step(wait)
		r.restarting()
		return wait
	}
	var got []time.Duration
	for range 8 {
		got = append(got, crash(time.Second))
	}
	want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 300 * time.Second, 300 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}
	if w := crash(9 * time.Minute); w != 300*time.Second {
		t.Fatalf("after 9 minutes running the wait is %s, want still 5m", w)
	}
	if w := crash(10*time.Minute + time.Second); w != 0 {
		t.Fatalf("after 10 minutes running the wait is %s, want a fresh start (0)", w)
	}
	if w := crash(time.Second); w != 10*time.Second {
		t.Fatalf("the next crash waits %s, want 10s", w)
	}
}

// The loop every container runs in (init, sidecar, main), on a simulated clock: each run
// lasts ran[i]; a run of 0 is a failed start (a StartError), which backs off like a crash.
// The waits before each start are the kubelet's: at once, at once, 10s, 20s, ... and after a
// run of more than 10 minutes at once again.
func TestRestartLoop(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Unix(1_000_000, 0))
	ran := []time.Duration{time.Second, time.Second, 0, time.Second, 10*time.Minute + time.Second, time.Second, 0}
	var waits []time.Duration
	runs := 0
	restartLoop(clk, func(d time.Duration) bool {
		waits = append(waits, d)
		clk.Step(d)
		return true
	}, func() bool {
		clk.Step(ran[runs])
		runs++
		return runs < len(ran) // the last run ends the loop (the init container succeeded)
	})
	want := []time.Duration{0, 0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 0, 10 * time.Second}
	if runs != len(ran) || len(waits) != len(want) {
		t.Fatalf("%d runs, waits %v; want %d runs, waits %v", runs, waits, len(ran), want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}

	// A pod going away during the back-off ends the loop without another start.
	runs = 0
	restartLoop(clk, func(d time.Duration) bool { return d == 0 }, func() bool {
		clk.Step(time.Second)
		runs++
		return true
	})
	if runs != 2 {
		t.Fatalf("%d runs: want the first start, the immediate restart, and no start after the refused 10s wait", runs)
	}
}
