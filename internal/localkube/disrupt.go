package localkube

import (
	"context"
	"errors"
	"fmt"

	"github.com/gracelab/gracelab/internal/cluster"
)

var _ cluster.Disrupter = (*Cluster)(nil)

// DeploymentPods lists the Deployment's pods that are not being deleted.
func (c *Cluster) DeploymentPods(ctx context.Context, deployment string) ([]cluster.Pod, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d, err := c.findLocked(deployment)
	if err != nil {
		return nil, err
	}
	var out []cluster.Pod
	for _, rs := range d.sets {
		for _, p := range rs.active() {
			out = append(out, cluster.Pod{Name: p.name, Node: p.node, Ready: p.ready, Created: p.created})
		}
	}
	return out, nil
}

// DeletePod deletes a pod gracefully, as `kubectl delete pod`: the grace period counts from now.
func (c *Cluster) DeletePod(ctx context.Context, name string) error {
	if err := c.lockRunning(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	p, err := c.findPodLocked(name)
	if err != nil {
		return err
	}
	c.deletePodLocked(p, "deleted")
	c.kickLocked()
	c.notifyLocked()
	return nil
}

// KillContainer SIGKILLs the pod's container process, as a crash or an OOM kill: no preStop,
// no SIGTERM. It returns once the kubelet has seen the exit; the kubelet then restarts the
// container in the same pod (restartPolicy Always, restart.go's back-off).
func (c *Cluster) KillContainer(ctx context.Context, name string) error {
	if err := c.lockRunning(ctx); err != nil {
		return err
	}
	p, err := c.findPodLocked(name)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	inst := p.inst
	if !p.running || inst == nil || inst.ct.role == roleInit {
		c.mu.Unlock()
		return fmt.Errorf("pod %s has no running container to kill", name)
	}
	inst.killWhy = "SIGKILL (a crash: no preStop, no grace)"
	c.record(cluster.SIGKILLSent, nil, p, "killed: a crash or an OOM kill")
	c.mu.Unlock()
	if err := inst.signal(sigKILL); err != nil {
		return fmt.Errorf("killing pod %s: %w", name, err)
	}
	select {
	case <-inst.exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lockRunning takes the cluster's lock for an API call, as the API server would serve it:
// not after ctx ended, not while the cluster is down. The caller unlocks.
func (c *Cluster) lockRunning(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if c.state != stateUp {
		c.mu.Unlock()
		return errors.New("the embedded cluster is not running")
	}
	return nil
}
