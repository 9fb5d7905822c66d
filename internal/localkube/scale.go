package localkube

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

// PodDeletionCostAnnotation ranks a ReplicaSet's pods for scale-down: lower cost goes first.
const PodDeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// Scale sets a Deployment's replicas, as `kubectl scale`, and returns the previous count.
// The controller acts on it before Scale returns, so a WaitSettled after it waits for the
// new count.
func (c *Cluster) Scale(ctx context.Context, name string, replicas int32) (int32, error) {
	if replicas < 0 {
		return 0, fmt.Errorf("replicas must not be negative (got %d)", replicas)
	}
	if err := c.lockRunning(ctx); err != nil {
		return 0, err
	}
	defer c.mu.Unlock()
	d, err := c.findLocked(name)
	if err != nil {
		return 0, err
	}
	prev := d.spec.replicas
	if !d.spec.recreate {
		surge, unavail, err := resolveRollingUpdate(replicas, d.spec.surge, d.spec.unavail)
		if err != nil {
			return 0, err
		}
		d.spec.maxSurge, d.spec.maxUnavailable = surge, unavail
	}
	d.spec.replicas = replicas
	c.record(cluster.Scaled, d, nil, strconv.Itoa(int(prev))+" -> "+strconv.Itoa(int(replicas)))
	c.reconcileLocked(d)
	c.kickLocked()
	c.notifyLocked()
	return prev, nil
}

// AnnotatePod sets one of a pod's own annotations (as `kubectl annotate pod`), for
// pod-deletion-cost.
func (c *Cluster) AnnotatePod(name, key, value string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := c.findPodLocked(name)
	if err != nil {
		return err
	}
	if p.annotations == nil {
		p.annotations = map[string]string{}
	}
	p.annotations[key] = value
	return nil
}

// rankForDeletionLocked sorts pods so that the ReplicaSet controller's first victims of a
// scale-down come first (controller_utils.go, ActivePodsWithRanks):
//
//  1. not yet on a node before on one
//  2. Pending (not started) before running
//  3. not ready before ready
//  4. lower controller.kubernetes.io/pod-deletion-cost before higher (default 0)
//  5. more of the Deployment's pods on the same node before fewer (doubled up)
//  6. ready for less time before longer (log2 buckets: LogarithmicScaleDown)
//  7. more restarts before fewer
//  8. newer before older (log2 buckets), then the newer exactly
func (c *Cluster) rankForDeletionLocked(d *deployment, pods []*pod) {
	onNode := map[string]int{}
	for _, rs := range d.sets {
		for _, p := range rs.active() {
			if p.node != "" {
				onNode[p.node]++
			}
		}
	}
	now := time.Now()
	sort.SliceStable(pods, func(i, j int) bool {
		return deleteBefore(pods[i], pods[j], onNode[pods[i].node], onNode[pods[j].node], now)
	})
}

func deleteBefore(a, b *pod, aRank, bRank int, now time.Time) bool {
	if (a.node == "") != (b.node == "") {
		return a.node == ""
	}
	if (a.inst == nil) != (b.inst == nil) {
		return a.inst == nil
	}
	if a.ready != b.ready {
		return !a.ready
	}
	if ca, cb := deletionCost(a), deletionCost(b); ca != cb {
		return ca < cb
	}
	if aRank != bRank {
		return aRank > bRank
	}
	if a.ready && b.ready {
		if r := log2Age(a.readySince, now) - log2Age(b.readySince, now); r != 0 {
			return r < 0
		}
	}
	if a.restarts != b.restarts {
		return a.restarts > b.restarts
	}
	if r := log2Age(a.created, now) - log2Age(b.created, now); r != 0 {
		return r < 0
	}
	return a.created.After(b.created)
}

// deletionCost is the pod's pod-deletion-cost; absent or invalid counts as 0, as there.
func deletionCost(p *pod) int64 {
	v, ok := p.annotations[PodDeletionCostAnnotation]
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0
	}
	return n
}

// log2Age is the logarithmic bucket of how long ago t was (in ns), -1 for a future t.
func log2Age(t, now time.Time) int64 {
	d := now.Sub(t)
	if d <= 0 {
		return -1
	}
	return int64(math.Log2(float64(d)))
}
