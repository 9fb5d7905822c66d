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
