package localkube

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/gracelab/gracelab/internal/cluster"
)

// Nodes of the embedded cluster: names, cordon, and where a new pod goes. Every node is this
// machine; a node matters only to the scheduler and to a drain. The scheduler does what the
// default kube-scheduler's scoring does for pods without requests or affinity: it spreads the
// pods of one Deployment over the schedulable nodes (PodTopologySpread's default constraint),
// then evens the total pod count (NodeResourcesFit's LeastAllocated over the default
// requests), then takes the first by name. No schedulable node: the pod stays Pending (no
// process, no address use) until a node is uncordoned.

// DefaultNodes is how many nodes an embedded cluster has unless Options.Nodes says otherwise.
const DefaultNodes = 2

type node struct {
	name          string
	unschedulable bool
	annotations   map[string]string
}

func newNodes(n int) []*node {
	out := make([]*node, n)
	for i := range out {
		out[i] = &node{name: "localkube-" + strconv.Itoa(i+1), annotations: map[string]string{}}
	}
	return out
}

// NodeInfo describes one node, for tests and displays.
type NodeInfo struct {
	Name          string
	Unschedulable bool
	Annotations   map[string]string
}

// Nodes lists the nodes in name order.
func (c *Cluster) Nodes() []NodeInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []NodeInfo
	for _, n := range c.nodes {
		a := map[string]string{}
		for k, v := range n.annotations {
			a[k] = v
		}
		out = append(out, NodeInfo{Name: n.name, Unschedulable: n.unschedulable, Annotations: a})
	}
	return out
}

func (c *Cluster) findNodeLocked(name string) (*node, error) {
	for _, n := range c.nodes {
		if n.name == name {
			return n, nil
		}
	}
	var names []string
	for _, n := range c.nodes {
		names = append(names, n.name)
	}
	return nil, fmt.Errorf("no node %q in the embedded cluster (have: %v)", name, names)
}

// scheduleLocked picks the node for p, or "" when no node is schedulable.
func (c *Cluster) scheduleLocked(p *pod) string {
	type score struct {
		n         *node
		same, all int
	}
	var cands []score
	for _, n := range c.nodes {
		if n.unschedulable {
			continue
		}
		s := score{n: n}
		for _, q := range c.pods {
			if q.node != n.name || q.terminating {
				continue
			}
			s.all++
			if q.d == p.d {
				s.same++
			}
		}
		cands = append(cands, s)
	}
	if len(cands) == 0 {
		return ""
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].same != cands[j].same {
			return cands[i].same < cands[j].same
		}
		return cands[i].all < cands[j].all
	})
	return cands[0].n.name
}

// bindLocked schedules p if it can; it reports whether p is bound.
func (c *Cluster) bindLocked(p *pod) bool {
	if p.node != "" {
		return true
	}
	n := c.scheduleLocked(p)
	if n == "" {
		return false
	}
	p.node = n
	close(p.scheduled)
	return true
}

// bindPendingLocked schedules pending pods, oldest first, after a node became schedulable.
func (c *Cluster) bindPendingLocked() {
	var pending []*pod
	for _, p := range c.pods {
		if p.node == "" && !p.terminating {
			pending = append(pending, p)
		}
	}
	sort.Slice(pending, func(i, j int) bool { return pending[i].created.Before(pending[j].created) })
	for _, p := range pending {
		if c.bindLocked(p) {
			c.log.Info("pod scheduled", "pod", p.name, "node", p.node)
		}
	}
}

// awaitScheduled blocks a pending pod's kubelet worker until the pod is bound, deleted or
// the cluster goes down; it reports whether it is bound.
func (c *Cluster) awaitScheduled(p *pod) bool {
	select {
	case <-p.scheduled:
		return true
	case <-p.deleteCh:
	case <-c.downCh:
	}
	return false
}

// Cordon marks the node unschedulable, as `kubectl cordon`, and annotates it as gracelab's.
// A node that is already unschedulable is left alone: cluster.ErrCordoned.
func (c *Cluster) Cordon(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.findNodeLocked(name)
	if err != nil {
		return err
	}
	if n.unschedulable {
		return fmt.Errorf("node %s: %w", name, cluster.ErrCordoned)
	}
	n.unschedulable = true
	n.annotations[cluster.CordonedByAnnotation] = "gracelab"
	c.recordNodeLocked(cluster.NodeCordoned, name, "")
	return nil
}

// Uncordon makes a node gracelab cordoned schedulable again, and schedules pending pods.
func (c *Cluster) Uncordon(_ context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.findNodeLocked(name)
	if err != nil {
		return err
	}
	if _, ours := n.annotations[cluster.CordonedByAnnotation]; !ours {
		return errors.New("node " + name + " was not cordoned by gracelab: left as it is")
	}
	n.unschedulable = false
	delete(n.annotations, cluster.CordonedByAnnotation)
	c.recordNodeLocked(cluster.NodeUncordoned, name, "")
	c.bindPendingLocked()
	c.kickLocked()
	c.notifyLocked()
	return nil
}

// recordNodeLocked records an event about a node.
func (c *Cluster) recordNodeLocked(kind cluster.EventKind, name, detail string) {
	c.recordEvent(cluster.Event{Kind: kind, Node: name, Detail: detail, Source: cluster.SourceEmbedded})
}

// pendingNote says, in a pod_created event, that no node could take the pod.
func pendingNote(p *pod) string {
	if p.node == "" {
		return ", pending: no schedulable node"
	}
	return ""
}
