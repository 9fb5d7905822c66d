package localkube

import (
	"slices"
	"testing"
	"time"
)

func TestLagQuantilesAt(t *testing.T) {
	q := lagQuantiles{100 * time.Millisecond, 300 * time.Millisecond, 1100 * time.Millisecond}
	for _, tc := range []struct {
		u    float64
		want time.Duration
	}{
		{0, 100 * time.Millisecond},
		{0.25, 200 * time.Millisecond},
		{0.5, 300 * time.Millisecond},
		{0.75, 700 * time.Millisecond},
		{0.999999, 1100 * time.Millisecond},
		{1, 1100 * time.Millisecond},
	} {
		if got := q.at(tc.u); (got - tc.want).Abs() > time.Millisecond {
			t.Errorf("at(%v) = %s, want %s", tc.u, got, tc.want)
		}
	}
}

// The drawn delays follow their measured distributions: every decile of many draws lands near
// the table's, and none falls outside its range.
func TestLagSourceFollowsTheMeasuredDistribution(t *testing.T) {
	for name, tc := range map[string]struct {
		src  *lagSource
		dist lagQuantiles
	}{
		"endpoint lag":        {newLagSource(0, 42), measuredEndpointLag},
		"network linger":      {newLingerSource(0, 42), measuredNetworkLinger},
		"controller reaction": {newReactionSource(42), measuredControllerReaction},
		"pod deletion":        {newDeletionSource(42), measuredPodDeletion},
		"pod start":           {newPodStartSource(0, 42), measuredPodStart},
	} {
		t.Run(name, func(t *testing.T) {
			if !slices.IsSorted(tc.dist) {
				t.Fatalf("the table is not sorted: %v", tc.dist)
			}
			const n = 20000
			draws := make([]time.Duration, n)
			for i := range draws {
				draws[i] = tc.src.next()
			}
			slices.Sort(draws)
			lo, hi := tc.dist[0], tc.dist[len(tc.dist)-1]
			if draws[0] < lo || draws[n-1] > hi {
				t.Errorf("draws span %s-%s, outside the measured %s-%s", draws[0], draws[n-1], lo, hi)
			}
			for i := 1; i < len(tc.dist)-1; i++ {
				got, want := draws[i*n/(len(tc.dist)-1)], tc.dist[i]
				if tol := (tc.dist[i+1] - tc.dist[i-1]) / 10; (got - want).Abs() > tol {
					t.Errorf("decile %d of the draws is %s, the measured one %s", i, got, want)
				}
			}
		})
	}
}

// The same seed repeats the same lags; another seed does not; a fixed lag is never drawn.
func TestLagSourceSeedAndFixed(t *testing.T) {
	a, b, c := newLagSource(0, 7), newLagSource(0, 7), newLagSource(0, 8)
	same, differ := true, false
	for range 50 {
		x, y, z := a.next(), b.next(), c.next()
		same = same && x == y
		differ = differ || x != z
	}
	if !same || !differ {
		t.Errorf("same seed repeated: %v; another seed differed: %v", same, differ)
	}
	f := newLagSource(1234*time.Millisecond, 7)
	for range 10 {
		if got := f.next(); got != 1234*time.Millisecond {
			t.Fatalf("fixed lag drew %s", got)
		}
	}
}

// A change drawn a shorter lag than the one before it is applied after it, not before.
func TestEnqueueKeepsChangesInOrder(t *testing.T) {
	s := &service{}
	t0 := time.Now()
	s.enqueue(t0.Add(2*time.Second), nil)
	s.enqueue(t0.Add(time.Second), nil)
	s.enqueue(t0.Add(3*time.Second), nil)
	var got []time.Duration
	for _, u := range s.queue {
		got = append(got, u.due.Sub(t0))
	}
	if want := []time.Duration{2 * time.Second, 2 * time.Second, 3 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("due after %v, want %v", got, want)
	}
}
