package localkube

import (
	"context"
	"slices"
	"testing"
	"time"
)

// The start-report delays follow the lab's measured distribution, repeat with their seed, and
// come from their own stream (not the network lingers' of the same seed).
func TestStartReportDrawnFromMeasured(t *testing.T) {
	if !slices.IsSorted(measuredStartReport) {
		t.Fatalf("the table is not sorted: %v", measuredStartReport)
	}
	const n = 20000
	src := newStartReportSource(42)
	draws := make([]time.Duration, n)
	for i := range draws {
		draws[i] = src.next()
	}
	slices.Sort(draws)
	lo, hi := measuredStartReport[0], measuredStartReport[len(measuredStartReport)-1]
	if draws[0] < lo || draws[n-1] > hi {
		t.Errorf("draws span %s-%s, outside the measured %s-%s", draws[0], draws[n-1], lo, hi)
	}
	for _, i := range []int{4, 10, 16} { // the 20th, 50th and 80th percentiles
		got, want := draws[i*n/20], measuredStartReport[i]
		if (got - want).Abs() > 20*time.Millisecond {
			t.Errorf("percentile %d of the draws is %s, the measured one %s", i*5, got, want)
		}
	}
	a, b, linger := newStartReportSource(7), newStartReportSource(7), newLingerSource(0, 7)
	same, own := true, false
	for range 50 {
		x, y := a.next(), b.next()
		same = same && x == y
		own = own || linger.next() != x
	}
	if !same || !own {
		t.Errorf("same seed repeated: %v; a stream of its own: %v", same, own)
	}
}

// awaitStartReport returns once the drawn delay after the process's start has passed, and
// false at once when the container goes away first.
func TestAwaitStartReport(t *testing.T) {
	const d = 150 * time.Millisecond
	c := &Cluster{reports: newDrawn(lagQuantiles{d, d}, 1, 1)}
	inst := &container{started: time.Now()}
	if !c.awaitStartReport(context.Background(), inst) {
		t.Fatal("awaitStartReport = false without a cancel")
	}
	if waited := time.Since(inst.started); waited < d {
		t.Errorf("reported %s after the start, before the %s delay", waited, d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c.awaitStartReport(ctx, &container{started: time.Now()}) {
		t.Error("awaitStartReport = true after the container went away")
	}
}
