package localkube

import (
	"context"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// kube-proxy's rules sync, emulated. A real kube-proxy (iptables mode) does not apply an
// endpoint change on its own: changes queue, and its BoundedFrequencyRunner runs one sync of
// every Service's rules when changes are pending and at least minSyncPeriod has passed since
// the previous sync completed; the sync applies what was pending at its start and takes a
// while. So a rollout's "new pod ready" and "old pod terminating" usually land in different
// syncs a minSyncPeriod apart, and the dying pod shares the window with every live pod. With
// no fixed Options.EndpointLag the embedded proxies follow this loop (one for the cluster).

// kubeProxyMinSyncPeriod is kube-proxy's default --iptables-min-sync-period (1s since
// Kubernetes 1.24; the lab's kube-proxy runs with it; docs/fidelity.md).
const kubeProxyMinSyncPeriod = time.Second

// measuredSyncDuration: the lab's kube-proxy (v1.34.4, iptables),
// kubeproxy_sync_proxy_rules_duration_seconds over its 226 syncs on a quiet machine (load
// 0.6-3.4, 2 December, runs k21-k30 of docs/fidelity.md), 0th to 100th percentile in steps of
// 5, interpolated within the histogram's buckets; the top is the 99.5th percentile (one sync
// took 0.5-1 s). At load 4-55 the median was 237 ms against 49 ms here.
var measuredSyncDuration = lagQuantiles{
	16 * time.Millisecond, 20 * time.Millisecond, 23 * time.Millisecond, 27 * time.Millisecond,
	31 * time.Millisecond, 34 * time.Millisecond, 38 * time.Millisecond, 42 * time.Millisecond,
	46 * time.Millisecond, 49 * time.Millisecond, 53 * time.Millisecond, 57 * time.Millisecond,
	61 * time.Millisecond, 65 * time.Millisecond, 77 * time.Millisecond, 89 * time.Millisecond,
	102 * time.Millisecond, 114 * time.Millisecond, 126 * time.Millisecond, 190 * time.Millisecond,
	255 * time.Millisecond,
}

// newSyncDurationSource draws sync durations, from its own stream of the seed.
func newSyncDurationSource(seed uint64) *lagSource {
	return newDrawn(measuredSyncDuration, seed, 0x2545f4914f6cdd1d)
}

// syncChange is one Service's newest API view, and how many views it stands for.
type syncChange struct {
	svc  *service
	snap []apiEndpoint
	n    int
}

// proxySync queues endpoint changes and applies them in syncs.
type proxySync struct {
	clock       clock.Clock
	minInterval time.Duration
	duration    *lagSource
	apply       func([]syncChange) // one call per sync, in the order the Services first changed

	mu      sync.Mutex
	pending []syncChange
	sig     chan struct{}
}

func newProxySync(clk clock.Clock, minInterval time.Duration, duration *lagSource, apply func([]syncChange)) *proxySync {
	return &proxySync{clock: clk, minInterval: minInterval, duration: duration, apply: apply, sig: make(chan struct{}, 1)}
}

// add queues a Service's API view; a sync applies only the newest view of each Service, as
// kube-proxy syncs to the current state.
func (ps *proxySync) add(s *service, snap []apiEndpoint) {
	ps.mu.Lock()
	found := false
	for i := range ps.pending {
		if ps.pending[i].svc == s {
			ps.pending[i].snap = snap
			ps.pending[i].n++
			found = true
		}
	}
	if !found {
		ps.pending = append(ps.pending, syncChange{svc: s, snap: snap, n: 1})
	}
	ps.mu.Unlock()
	select {
	case ps.sig <- struct{}{}:
	default:
	}
}

func (ps *proxySync) take() []syncChange {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	b := ps.pending
	ps.pending = nil
	return b
}

func (ps *proxySync) hasPending() bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return len(ps.pending) > 0
}

// run syncs until ctx ends.
func (ps *proxySync) run(ctx context.Context) {
	var lastEnd time.Time
	for {
		for !ps.hasPending() {
			select {
			case <-ps.sig:
			case <-ctx.Done():
				return
			}
		}
		if !lastEnd.IsZero() {
			if d := ps.minInterval - ps.clock.Since(lastEnd); d > 0 && !ps.wait(ctx, d) {
				return
			}
		}
		batch := ps.take()
		if !ps.wait(ctx, ps.duration.next()) {
			return
		}
		ps.apply(batch)
		lastEnd = ps.clock.Now()
	}
}

func (ps *proxySync) wait(ctx context.Context, d time.Duration) bool {
	t := ps.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-ctx.Done():
		return false
	}
}
