package localkube

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gracelab/gracelab/internal/cluster"
)

// The kubelet's termination of a pod: preStop, SIGTERM, SIGKILL, then the teardown of its
// network and the deletion of its object.
//
// Timeline of a deletion (T0 = deletion requested):
//
//	T0          pod_terminating; the endpoint turns not-ready in the API view; liveness stops
//	T0+lag      the Service proxies stop sending new connections (endpoint_removed)
//	T0          every container's preStop runs at once (httpGet / exec / sleep), bounded by the
//	            grace period
//	after it    SIGTERM to the container's process group; a sidecar's comes only once every
//	            container and every later sidecar has exited (reverse order), within the grace
//	T0+grace    SIGKILL if still running (at least 2s after SIGTERM, as the kubelet allows)
//	exit        pod_exited with the code; once every container has exited the pod network
//	            lingers (NetworkLinger, or drawn), then is removed (pod_network_removed); the pod
//	            object is deleted (pod_deleted) a drawn delay later (the kubelet's status sync)

// kill runs preStop, waits for the container's turn (turn: channels closed when the
// containers it must outlast are gone) within the deadline, then stops the process with
// SIGKILL due at the deadline (never sooner than 2s after SIGTERM, as the kubelet grants),
// and returns once the process has exited.
func (c *Cluster) kill(p *pod, inst *container, deadline time.Time, reason string, turn []<-chan struct{}) {
	if h := inst.ct.spec.Lifecycle; h != nil && h.PreStop != nil && time.Until(deadline) > 0 {
		c.runPreStop(p, inst, *h.PreStop, deadline)
	}
	if len(turn) > 0 {
		t := time.NewTimer(time.Until(deadline))
	wait:
		for _, ch := range turn {
			select {
			case <-ch:
			case <-t.C:
				break wait
			case <-inst.exited:
				break wait
			case <-c.downCh:
				break wait
			}
		}
		t.Stop()
	}
	killAt := deadline
	if m := time.Now().Add(minimumGrace); killAt.Before(m) {
		killAt = m
	}
	detail := "SIGKILL due at " + killAt.Format("15:04:05.000")
	if reason != "" {
		detail = reason + "; " + detail
	}
	if w := inst.ct.what(p); w != "" {
		detail = w + ": " + detail
	}
	c.stopProcess(p, inst, killAt, reason, detail, "grace period over")
}

// runPreStop runs the preStop hook until it returns, the deadline passes or the container exits.
func (c *Cluster) runPreStop(p *pod, inst *container, h corev1.LifecycleHandler, deadline time.Time) {
	what := describeHandler(&h)
	if w := inst.ct.what(p); w != "" {
		what = w + ": " + what
	}
	c.mu.Lock()
	c.record(cluster.PreStopStarted, nil, p, what)
	c.mu.Unlock()
	hctx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.runHook(hctx, p, inst.ct, h) }()
	var err error
	select {
	case err = <-errc:
	case <-inst.exited:
		cancel()
		err = <-errc
		if err == nil {
			err = errors.New("the container exited")
		}
	}
	detail := "ok"
	if err != nil {
		detail = "failed: " + err.Error()
	}
	if w := inst.ct.what(p); w != "" {
		detail = w + ": " + detail
	}
	c.mu.Lock()
	c.record(cluster.PreStopFinished, nil, p, detail)
	c.mu.Unlock()
}

// shutDown stops a pod because the cluster is going away: no preStop, SIGKILL after downGrace.
func (c *Cluster) shutDown(p *pod, inst *container) {
	c.mu.Lock()
	if !p.terminating {
		p.terminating = true
		p.deletedAt = time.Now()
		c.record(cluster.PodTerminating, nil, p, "cluster shutting down")
		c.syncEndpointsLocked()
	}
	c.mu.Unlock()
	c.stopProcess(p, inst, time.Now().Add(downGrace), "", "cluster shutting down", "cluster shutting down")
}

// linger waits while the pod's network outlives its last process: NetworkLinger, or a drawn
// linger that does not end while another pod on the node is being started. On the lab every
// teardown that overlapped another pod's start on the node (5 of 20) took 1.01-1.39 s, against
// 0.53-0.77 s for the others, and ended 0.12-0.36 s before that pod's process started: the
// node sets up one pod network while it tears down another (docs/fidelity.md).
func (c *Cluster) linger(p *pod) {
	until := time.Now().Add(c.lingers.next())
	for c.sleepUnlessDown(time.Until(until)) && c.lingers.fixed == 0 {
		c.mu.Lock()
		busy := c.startingOnNodeLocked(p)
		c.mu.Unlock()
		if !busy.After(until) {
			return
		}
		until = busy
	}
}

// sleepUnlessDown sleeps d; false, and at once, when the cluster goes down first.
func (c *Cluster) sleepUnlessDown(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.downCh:
		return false
	}
}

// startingOnNodeLocked is when the last start under way on p's node ends; zero when none is.
func (c *Cluster) startingOnNodeLocked(p *pod) time.Time {
	var last time.Time
	for _, q := range c.pods {
		if q != p && q.node == p.node && q.startingUntil.After(last) {
			last = q.startingUntil
		}
	}
	return last
}

// stopProcess is the one way a container is stopped: SIGTERM to its process group, then
// SIGKILL at killAt unless it has exited; if the cluster starts going down meanwhile, SIGKILL
// comes downGrace later at the latest. It returns once the process has exited. reason, when
// set, is why the kubelet stopped it (it goes into the exit event).
func (c *Cluster) stopProcess(p *pod, inst *container, killAt time.Time, reason, termDetail, killDetail string) {
	select {
	case <-inst.exited:
		return
	default:
	}
	c.mu.Lock()
	inst.killWhy = reason
	c.record(cluster.SIGTERMSent, nil, p, termDetail)
	c.mu.Unlock()
	_ = inst.signal(sigTERM)
	t := time.NewTimer(time.Until(killAt))
	defer t.Stop()
	down := c.downCh
wait:
	for {
		select {
		case <-inst.exited:
			return
		case <-t.C:
			break wait
		case <-down:
			down = nil
			if soon := time.Now().Add(downGrace); soon.Before(killAt) {
				t.Reset(time.Until(soon))
			}
		}
	}
	c.mu.Lock()
	c.record(cluster.SIGKILLSent, nil, p, killDetail)
	c.mu.Unlock()
	_ = inst.signal(sigKILL)
	<-inst.exited
}

// teardown runs after the pod's last process has exited: its network lingers briefly, then
// goes, then the pod object is deleted, each after a delay drawn from the lab's.
func (c *Cluster) teardown(p *pod) {
	c.mu.Lock()
	p.exitedFinal = true
	c.kickLocked()
	c.mu.Unlock()
	c.linger(p)
	p.net.removed.Store(true) // the proxies black-hole from now on
	p.closeSandbox()
	if p.ip != "" {
		c.mu.Lock()
		c.record(cluster.PodNetworkRemoved, nil, p, p.ip)
		c.mu.Unlock()
	}
	// The kubelet's status sync deletes the pod object a while after the sandbox went.
	c.sleepUnlessDown(c.deletions.next())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.record(cluster.PodDeleted, nil, p, "")
	delete(c.pods, p.name)
	for i, q := range p.rs.pods {
		if q == p {
			p.rs.pods = append(p.rs.pods[:i:i], p.rs.pods[i+1:]...)
			break
		}
	}
	c.syncEndpointsLocked()
	c.kickLocked()
	c.notifyLocked()
}
