package localkube

import (
	"context"
	"errors"
	"fmt"

	"github.com/gracelab/gracelab/internal/cluster"
)

// The Eviction subresource (pkg/registry/core/pod/storage/eviction.go): a pod that is being
// deleted or has not started (Pending) is deleted without consulting any budget; a pod
// covered by more than one PodDisruptionBudget cannot be evicted; a pod covered by none is
// deleted; otherwise the budget decides (pdb.go), and a refusal is HTTP 429. An accepted
// eviction is a graceful deletion with the pod's own grace period.

// errMultiplePDBs is the API's 500 for a pod more than one budget covers.
var errMultiplePDBs = errors.New("this pod has more than one PodDisruptionBudget, which the eviction subresource does not support")

// EvictPod evicts a pod through the Eviction API's rules; a budget's refusal is
// *cluster.EvictionRefusedError (and an eviction_refused event).
func (c *Cluster) EvictPod(ctx context.Context, name string) error {
	if err := c.lockRunning(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	p, err := c.findPodLocked(name)
	if err != nil {
		return err
	}
	if p.terminating || p.inst == nil {
		c.record(cluster.PodEvicted, nil, p, "no budget consulted: pod already terminating or pending")
		c.deletePodLocked(p, "evicted")
		c.kickLocked() // the ReplicaSet replaces a terminating pod at once
		c.notifyLocked()
		return nil
	}
	var covering []*pdbSpec
	for _, b := range c.set.pdbs {
		if b.namespace == p.d.spec.namespace && b.selector.Matches(labelSet(p.labels)) {
			covering = append(covering, b)
		}
	}
	switch len(covering) {
	case 0:
		c.record(cluster.PodEvicted, nil, p, "no PodDisruptionBudget covers it")
	case 1:
		b := covering[0]
		st := b.status(c.budgetPodsLocked(b))
		if why := b.evictionVerdict(st, p.ready); why != "" {
			c.record(cluster.EvictionRefused, nil, p, why)
			return &cluster.EvictionRefusedError{Pod: name, Reason: why}
		}
		c.record(cluster.PodEvicted, nil, p, fmt.Sprintf("PodDisruptionBudget %s allowed %d disruption(s)", b.name, st.disruptionsAllowed))
	default:
		return fmt.Errorf("evicting pod %s: %w", name, errMultiplePDBs)
	}
	c.deletePodLocked(p, "evicted")
	c.kickLocked() // the ReplicaSet replaces a terminating pod at once
	c.notifyLocked()
	return nil
}

// budgetPodsLocked lists the pods b selects, as its arithmetic needs them.
func (c *Cluster) budgetPodsLocked(b *pdbSpec) []budgetPod {
	var out []budgetPod
	for _, p := range c.pods {
		if p.d.spec.namespace != b.namespace || !b.selector.Matches(labelSet(p.labels)) {
			continue
		}
		out = append(out, budgetPod{ready: p.ready, terminating: p.terminating,
			controller: p.d.spec.namespace + "/" + p.d.spec.name, scale: p.d.spec.replicas})
	}
	return out
}

func (c *Cluster) findPodLocked(name string) (*pod, error) {
	p, ok := c.pods[name]
	if !ok {
		return nil, fmt.Errorf("no pod %q in the embedded cluster", name)
	}
	return p, nil
}
