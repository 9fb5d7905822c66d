package localkube

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/gracelab/gracelab/internal/cluster"
)

// The kubelet: one goroutine per pod starts its containers in the kubelet's order, and one per
// container runs it, restarts it, runs its probes and, on deletion, its termination sequence.
//
// Start: init containers one at a time, each to completion; a native sidecar (an init
// container with restartPolicy Always) is started and the next one waits only until its
// startup probe has succeeded (at once without one). Then the containers, in order, each once
// the previous one's postStart hook has returned. The kubelet learns that a container runs a
// drawn delay after its start (its relist, startreport.go): only then do its probes run, is a
// container without a readiness probe ready, and does a sidecar count as started. The pod is
// ready when every container and sidecar is. The termination of a pod is in termination.go.

// runPod is the pod's kubelet worker. It returns once the pod is deleted.
func (c *Cluster) runPod(p *pod) {
	defer c.podWG.Done()
	c.awaitScheduled(p)
	// The sandbox and container creation a real kubelet spends before the process runs.
	if d := c.podStartDelay(); d > 0 && p.ip != "" {
		c.mu.Lock()
		p.startingUntil = time.Now().Add(d)
		c.mu.Unlock()
		c.pause(p, d)
		c.mu.Lock()
		p.startingUntil = time.Time{}
		c.mu.Unlock()
	}
	if c.sandboxMode == SandboxNS && p.ip != "" && !c.stopping(p) {
		if err := c.startSandbox(c.ctx, p); err != nil {
			c.mu.Lock()
			p.lastExit = "failed to create the pod sandbox: " + err.Error()
			c.record(cluster.PodExited, nil, p, p.lastExit)
			if c.state == stateStarting && !p.terminating {
				c.upErr = fmt.Errorf("pod %s: %s", p.name, p.lastExit)
			}
			c.notifyLocked()
			c.mu.Unlock()
			select {
			case <-p.deleteCh:
			case <-c.downCh:
			}
			c.teardown(p)
			return
		}
	}
	var workers sync.WaitGroup
	if p.ip != "" {
		c.startContainers(p, &workers)
	} else {
		select {
		case <-p.deleteCh:
		case <-c.downCh:
		}
	}
	workers.Wait()
	c.teardown(p)
}

// startContainers starts the pod's containers in the kubelet's order, each container's worker
// in workers, and returns once the last has started or the pod is going away.
func (c *Cluster) startContainers(p *pod, workers *sync.WaitGroup) {
	launched := map[*ctr]bool{}
	defer func() { // what never ran is gone already: no sidecar waits for it
		for _, ct := range p.ctrs {
			if !launched[ct] {
				close(ct.gone)
			}
		}
	}()
	for _, ct := range p.ctrs {
		if ct.role == roleInit {
			if !c.runInit(p, ct) {
				return
			}
			continue
		}
		launched[ct] = true
		workers.Add(1)
		go func() {
			defer workers.Done()
			defer close(ct.gone)
			c.runContainer(p, ct)
		}()
		next := ct.postStarted
		if ct.role == roleSidecar {
			next = ct.startedUp
		}
		select {
		case <-next:
		case <-p.deleteCh:
			return
		case <-c.downCh:
			return
		}
	}
}

// runInit runs an init container until it completes (true), restarting it with the kubelet's
// back-off when it fails (restart.go), or until the pod goes away (false).
func (c *Cluster) runInit(p *pod, ct *ctr) bool {
	completed := false
	restartLoop(clock.RealClock{}, func(d time.Duration) bool { return c.pause(p, d) }, func() bool {
		inst, err := c.startContainer(p, ct)
		if err != nil {
			c.startFailed(p, err)
			return true
		}
		ok, done := c.awaitInit(p, inst)
		if ok || done {
			completed = ok
			return false
		}
		c.countRestart(p, ct)
		return true
	})
	return completed
}

// runContainer runs a container or a sidecar, restarting it with the kubelet's back-off
// (restart.go) whenever it stops, until the pod is deleted or the cluster goes down.
func (c *Cluster) runContainer(p *pod, ct *ctr) {
	restartLoop(clock.RealClock{}, func(d time.Duration) bool { return c.pause(p, d) }, func() bool {
		inst, err := c.startContainer(p, ct)
		if err != nil {
			c.startFailed(p, err)
			return true
		}
		if c.supervise(p, ct, inst) {
			return false
		}
		c.countRestart(p, ct)
		return true
	})
}

// pause waits d unless the pod is going away, and reports whether it may go on.
func (c *Cluster) pause(p *pod, d time.Duration) bool {
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-p.deleteCh:
		case <-c.downCh:
		}
		t.Stop()
	}
	return !c.stopping(p)
}

func (c *Cluster) startFailed(p *pod, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p.lastExit = "failed to start: " + err.Error()
	p.restarts++
	c.record(cluster.PodExited, nil, p, p.lastExit)
	if c.state == stateStarting && !p.terminating {
		c.upErr = fmt.Errorf("pod %s: %s", p.name, p.lastExit)
	}
	c.notifyLocked()
}

// countRestart counts one more restart of the container and returns its count.
func (c *Cluster) countRestart(p *pod, ct *ctr) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	ct.restarts++
	p.restarts++
	return ct.restarts
}

func (c *Cluster) stopping(p *pod) bool {
	select {
	case <-p.deleteCh:
		return true
	case <-c.downCh:
		return true
	default:
		return false
	}
}

// awaitInit waits for an init container to exit: completed when it exits with 0, done when
// the pod is deleted or the cluster goes down meanwhile (the process is stopped first).
func (c *Cluster) awaitInit(p *pod, inst *container) (completed, done bool) {
	select {
	case <-inst.exited:
		return inst.code == 0, false
	case <-p.deleteCh:
		c.mu.Lock()
		deadline := p.deletedAt.Add(p.grace)
		c.mu.Unlock()
		c.stopProcess(p, inst, deadline, "", inst.ct.what(p), "grace period over")
	case <-c.downCh:
		c.shutDown(p, inst)
	}
	return false, true
}

// startContainer spawns a run of one of the pod's containers and records pod_started.
func (c *Cluster) startContainer(p *pod, ct *ctr) (*container, error) {
	cmd := exec.Command(ct.argv[0], ct.argv[1:]...)
	cmd.Env = ct.env
	cmd.WaitDelay = time.Second
	inst := &container{ct: ct, cmd: cmd, exited: make(chan struct{})}
	if p.logPath != "" {
		f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("opening the pod log: %w", err)
		}
		inst.logFile = f
		cmd.Stdout, cmd.Stderr = c.redactOutput(f, io.MultiWriter(f, &p.tail), &inst.flush)
	} else {
		cmd.Stdout, cmd.Stderr = c.redactOutput(nil, &p.tail, &inst.flush)
	}
	if p.sb != nil {
		err := c.startInSandbox(p, inst, ct.env)
		if err != nil {
			if inst.logFile != nil {
				inst.logFile.Close()
			}
			return nil, err
		}
	} else if err := c.spawn.start(cmd); err != nil {
		if inst.logFile != nil {
			inst.logFile.Close()
		}
		return nil, err
	}
	inst.started = time.Now()
	c.mu.Lock()
	ct.inst, ct.running = inst, true
	if ct.role == roleMain && (p.inst == nil || p.inst.ct == ct) {
		p.inst = inst
	}
	p.running = true
	p.lastExit = ""
	detail := "pid " + strconv.Itoa(inst.pid())
	if w := ct.what(p); w != "" {
		detail += ", " + w
	}
	if ct.restarts > 0 {
		detail += ", restart " + strconv.Itoa(ct.restarts)
	}
	c.record(cluster.PodStarted, nil, p, detail)
	if ct.restarts > 0 && ct.role != roleInit {
		detail := "restartCount " + strconv.Itoa(ct.restarts)
		if len(p.ctrs) > 1 {
			detail += ", container " + ct.spec.Name
		}
		c.record(cluster.ContainerRestarted, nil, p, detail)
	}
	c.notifyLocked()
	c.mu.Unlock()
	go c.waitContainer(p, inst)
	return inst, nil
}

// waitContainer reaps the process and records its exit at once.
func (c *Cluster) waitContainer(p *pod, inst *container) {
	code, detail := inst.wait()
	if inst.stdioDone != nil {
		<-inst.stdioDone
	}
	inst.flush()
	if inst.logFile != nil {
		inst.logFile.Close()
	}
	ct := inst.ct
	c.mu.Lock()
	inst.code = code
	ct.running = false
	p.running = false
	for _, o := range p.ctrs {
		p.running = p.running || o.running
	}
	p.lastExit = detail
	if inst.killWhy != "" {
		detail += " after " + inst.killWhy
	} else if t := p.tail.lastLine(); t != "" && !p.terminating {
		detail += ": " + t
	}
	if w := ct.what(p); w != "" {
		detail = w + ": " + detail
	}
	c.record(cluster.PodExited, nil, p, detail)
	if ct.role != roleInit {
		c.setContainerReadyLocked(p, ct, false, "container exited")
	}
	completed := ct.role == roleInit && code == 0
	if c.state == stateStarting && !p.terminating && !completed {
		c.upErr = startupExitError(p, detail)
	}
	c.kickLocked()
	c.notifyLocked()
	c.mu.Unlock()
	close(inst.exited)
}

// setContainerReadyLocked records a container's readiness; the pod is ready when every
// container and sidecar is.
func (c *Cluster) setContainerReadyLocked(p *pod, ct *ctr, ready bool, why string) {
	ct.ready = ready
	all := true
	for _, o := range p.serving() {
		all = all && o.ready
	}
	if w := ct.what(p); w != "" {
		why = w + ": " + why
	}
	c.setReadyLocked(p, all, why)
}

// setReadyLocked records a readiness change and propagates it to endpoints and controller.
func (c *Cluster) setReadyLocked(p *pod, ready bool, why string) {
	if p.ready == ready {
		return
	}
	p.ready = ready
	if ready {
		p.readySince = time.Now()
		c.record(cluster.PodReady, nil, p, why)
		if m := p.d.spec.minReady; m > 0 {
			time.AfterFunc(m, func() {
				c.mu.Lock()
				c.kickLocked()
				c.notifyLocked()
				c.mu.Unlock()
			})
		}
	} else {
		p.readySince = time.Time{}
		c.record(cluster.PodNotReady, nil, p, why)
	}
	c.syncEndpointsLocked()
	c.kickLocked()
	c.notifyLocked()
}

// supervise runs the container's hooks and probes while it runs, in the kubelet's order:
// postStart, then the startup probe, and once it has succeeded the readiness and liveness
// probes. It returns true when the pod is done (deleted or the cluster is going down), false
// when the container should restart (it exited, or postStart, startup or liveness failed).
func (c *Cluster) supervise(p *pod, ct *ctr, inst *container) (done bool) {
	ctx, cancel := context.WithCancel(c.ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// failed carries why the kubelet restarts the container; the first reason wins.
	failed := make(chan string, 1)
	fail := func(why string) {
		select {
		case failed <- why:
		default:
		}
	}
	// Liveness stops once a pod is being deleted; readiness goes on.
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if h := ct.spec.Lifecycle; h != nil && h.PostStart != nil {
			if err := c.runHook(ctx, p, ct, *h.PostStart); err != nil {
				if ctx.Err() == nil {
					fail("postStart hook failed: " + err.Error())
				}
				return
			}
		}
		ct.markPostStarted()
		if !c.awaitStartReport(ctx, inst) { // startreport.go
			return
		}
		if sp := ct.spec.StartupProbe; sp != nil && !c.awaitStartup(ctx, p, inst, sp, fail) {
			return
		}
		ct.markStartedUp()
		c.watchReadiness(ctx, p, inst, &wg)
		if lp := ct.spec.LivenessProbe; lp != nil {
			c.probeLoop(lctx, p, inst, lp, func(ok bool, msg string) {
				if !ok {
					fail("liveness probe failed: " + msg)
					lcancel()
				}
			})
		}
	}()

	select {
	case <-inst.exited:
		c.mu.Lock()
		done = p.terminating
		c.mu.Unlock()
		return done
	case <-p.deleteCh:
		lcancel()
		c.mu.Lock()
		deadline := p.deletedAt.Add(p.grace)
		c.mu.Unlock()
		c.kill(p, inst, deadline, "", c.turn(p, ct))
		return true
	case why := <-failed:
		lcancel()
		c.kill(p, inst, time.Now().Add(p.grace), why, nil)
		c.mu.Lock()
		done = p.terminating
		c.mu.Unlock()
		return done
	case <-c.downCh:
		c.shutDown(p, inst)
		return true
	}
}

// turn is what a container waits for, after its preStop, before its SIGTERM when the pod is
// deleted: nothing for a container; for a sidecar, every container and every sidecar declared
// after it to have exited, as the kubelet orders them.
func (c *Cluster) turn(p *pod, ct *ctr) []<-chan struct{} {
	if ct.role != roleSidecar {
		return nil
	}
	var after []<-chan struct{}
	later := false
	for _, o := range p.ctrs {
		switch {
		case o == ct:
			later = true
		case o.role == roleMain, o.role == roleSidecar && later:
			after = append(after, o.gone)
		}
	}
	return after
}

// awaitStartup runs the startup probe until its first success (true) or until it has failed
// failureThreshold times in a row (false, after fail) or ctx ends (false).
func (c *Cluster) awaitStartup(ctx context.Context, p *pod, inst *container, sp *corev1.Probe, fail func(string)) bool {
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	started := false
	c.probeLoop(sctx, p, inst, sp, func(ok bool, msg string) {
		if ok {
			started = true
		} else {
			fail("startup probe failed: " + msg)
		}
		stop()
	})
	return started
}

// watchReadiness marks the container ready once started when it has no readiness probe, else
// runs the readiness probe in its own goroutine.
func (c *Cluster) watchReadiness(ctx context.Context, p *pod, inst *container, wg *sync.WaitGroup) {
	ct := inst.ct
	rp := ct.spec.ReadinessProbe
	if rp == nil {
		c.mu.Lock()
		if ct.running && ct.inst == inst {
			why := "no readiness probe: ready once the kubelet reported it started, " + time.Since(inst.started).Round(time.Millisecond).String() + " after the process"
			if ct.spec.StartupProbe != nil {
				why = "no readiness probe: ready once the startup probe succeeded"
			}
			c.setContainerReadyLocked(p, ct, true, why)
		}
		c.mu.Unlock()
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.probeLoop(ctx, p, inst, rp, func(ok bool, msg string) {
			c.mu.Lock()
			defer c.mu.Unlock()
			if ct.inst != inst || !ct.running {
				return
			}
			if !ok {
				p.lastProbe = msg
			}
			c.setContainerReadyLocked(p, ct, ok, "readiness probe: "+msg)
		})
	}()
}
