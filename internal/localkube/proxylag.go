package localkube

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Measured delays of a real cluster, drawn with a seed. How long an endpoint change takes to
// reach the Service proxies follows kube-proxy's sync loop (proxysync.go) unless
// Options.EndpointLag fixes it; measuredEndpointLag is what that loop is checked against.

// lagQuantiles is a measured distribution as its quantiles: d[i] is the (i/(len-1))-quantile.
type lagQuantiles []time.Duration

// measuredEndpointLag: on the lab cluster (Kubernetes v1.34.4, kube-proxy iptables,
// minSyncPeriod 1s), from a terminating upstream pod's deletion to the last new connection
// kube-proxy sent to it (conntrack), 0th to 100th percentile in steps of 10, of 30 pods (v1,
// v2 and v3, 5 runs); docs/fidelity.md.
var measuredEndpointLag = lagQuantiles{
	540 * time.Millisecond, 690 * time.Millisecond, 730 * time.Millisecond, 900 * time.Millisecond,
	1010 * time.Millisecond, 1140 * time.Millisecond, 1200 * time.Millisecond, 1320 * time.Millisecond,
	1460 * time.Millisecond, 1610 * time.Millisecond, 1950 * time.Millisecond,
}

// at is the inverse of the distribution at u in [0,1), linear between the quantiles.
func (q lagQuantiles) at(u float64) time.Duration {
	x := u * float64(len(q)-1)
	i := int(x)
	if i >= len(q)-1 {
		return q[len(q)-1]
	}
	return q[i] + time.Duration((x-float64(i))*float64(q[i+1]-q[i]))
}

// measuredNetworkLinger: on the lab cluster on a quiet machine (load average 1.7-3.4, runs
// k21-k25 of docs/fidelity.md), from the kubelet's kill of an upstream pod (containerd's
// StopContainer: at once for v1, after the 5 s preStop for v2) to containerd's teardown of its
// network, 0th to 100th percentile in steps of 10, of the 15 pods (v1, v2) whose teardown no
// other pod's start overlapped; the other 5 took 1.01-1.39 s, which the kubelet's wait for the
// node's starts makes (termination.go, linger). The teardown slows with the machine's load
// (0.51-4.17 s at load 4-11, 1.7-14 s at load 25-46); a timer does not.
var measuredNetworkLinger = lagQuantiles{
	532 * time.Millisecond, 557 * time.Millisecond, 564 * time.Millisecond, 571 * time.Millisecond,
	574 * time.Millisecond, 587 * time.Millisecond, 622 * time.Millisecond, 635 * time.Millisecond,
	677 * time.Millisecond, 737 * time.Millisecond, 765 * time.Millisecond,
}

// measuredPodDeletion: all 20 pods of those runs, from containerd's teardown of the network to the pod
// object's deletion (the watch): the kubelet's PLEG notices the stopped sandbox and its status
// manager then deletes the pod; 0th to 100th percentile in steps of 10.
var measuredPodDeletion = lagQuantiles{
	139 * time.Millisecond, 239 * time.Millisecond, 301 * time.Millisecond, 339 * time.Millisecond,
	357 * time.Millisecond, 373 * time.Millisecond, 393 * time.Millisecond, 412 * time.Millisecond,
	565 * time.Millisecond, 787 * time.Millisecond, 952 * time.Millisecond,
}

// measuredPodStart: the same runs, from a new upstream pod's creation (the watch) to
// containerd's StartContainer returning (its process runs): scheduling, the sandbox, its
// network and the container; 0th to 100th percentile in steps of 10, of 20 pods. The
// kubelet's report of the start comes after it (startreport.go).
var measuredPodStart = lagQuantiles{
	726 * time.Millisecond, 808 * time.Millisecond, 814 * time.Millisecond, 829 * time.Millisecond,
	836 * time.Millisecond, 849 * time.Millisecond, 978 * time.Millisecond, 1098 * time.Millisecond,
	1218 * time.Millisecond, 1273 * time.Millisecond, 1442 * time.Millisecond,
}

// measuredControllerReaction: on the lab cluster at load 4-11 (runs k11-k13 of
// docs/fidelity.md), how long the Deployment and ReplicaSet controllers took to act on a
// change: from a new upstream pod's readiness to an old pod's deletion (18 steps), and from
// that deletion to the next new pod's creation (9 steps); 0th to 100th percentile in steps of
// 10 of the 27, as the API server's timestamps in the watch show them.
var measuredControllerReaction = lagQuantiles{
	30 * time.Millisecond, 46 * time.Millisecond, 60 * time.Millisecond, 60 * time.Millisecond,
	80 * time.Millisecond, 90 * time.Millisecond, 110 * time.Millisecond, 122 * time.Millisecond,
	146 * time.Millisecond, 178 * time.Millisecond, 320 * time.Millisecond,
}

// lagSource draws delays: fixed, or from a measured distribution with a seeded generator so
// that a run can be repeated.
type lagSource struct {
	fixed time.Duration
	dist  lagQuantiles
	mu    sync.Mutex
	rng   *rand.Rand
}

func newLagSource(fixed time.Duration, seed uint64) *lagSource {
	l := newDrawn(measuredEndpointLag, seed, 0x9e3779b97f4a7c15)
	l.fixed = fixed
	return l
}

// newLingerSource draws network lingers, from its own stream of the same seed.
func newLingerSource(fixed time.Duration, seed uint64) *lagSource {
	l := newDrawn(measuredNetworkLinger, seed, 0x51afd7ed558ccd1f)
	l.fixed = fixed
	return l
}

// newDrawn draws from dist with the stream of seed that stream picks.
func newDrawn(dist lagQuantiles, seed, stream uint64) *lagSource {
	return &lagSource{dist: dist, rng: rand.New(rand.NewPCG(seed, seed^stream))}
}

func (l *lagSource) next() time.Duration {
	if l.fixed > 0 {
		return l.fixed
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dist.at(l.rng.Float64())
}

// newPodStartSource draws how long a new pod takes from its creation to its process's start,
// unless fixed; from its own stream of the seed.
func newPodStartSource(fixed time.Duration, seed uint64) *lagSource {
	l := newDrawn(measuredPodStart, seed, 0xd6e8feb86659fd93)
	l.fixed = fixed
	return l
}

// podStartDelay is the sandbox, network and container creation a real kubelet spends before
// a new pod's process runs: Options.PodStartDelay, none when that is negative, else drawn.
func (c *Cluster) podStartDelay() time.Duration {
	if c.opts.PodStartDelay < 0 {
		return 0
	}
	return c.starts.next()
}

// newDeletionSource draws the delays from a pod's network teardown to its object's deletion,
// from its own stream of the seed.
func newDeletionSource(seed uint64) *lagSource {
	return newDrawn(measuredPodDeletion, seed, 0xbf58476d1ce4e5b9)
}

// newReactionSource draws the controllers' reaction times, from its own stream of the seed.
func newReactionSource(seed uint64) *lagSource {
	return newDrawn(measuredControllerReaction, seed, 0x94d049bb133111eb)
}

func randomSeed() uint64 { return rand.Uint64() | 1 }

// Seed is the seed of the cluster's drawn delays: Options.Seed, or the one picked at random.
func (c *Cluster) Seed() uint64 { return c.opts.Seed }
