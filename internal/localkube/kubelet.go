package localkube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gracelab/gracelab/internal/cluster"
)

// The kubelet: one goroutine per pod runs its container process, its probes and, on
// deletion, the termination sequence. Timeline of a deletion (T0 = deletion requested):
//
//	T0          pod_terminating; the endpoint turns not-ready in the API view; liveness stops
//	T0+lag      the Service proxies stop sending new connections (endpoint_removed)
//	T0          preStop runs (httpGet / exec / sleep), bounded by the grace period
//	after it    SIGTERM to the process group
//	T0+grace    SIGKILL if still running (at least 2s after preStop, as the kubelet allows)
//	exit        pod_exited with the code; the pod network lingers NetworkLinger, then is removed
//	            (pod_network_removed) and the pod object is deleted (pod_deleted)

// runPod is the pod's kubelet worker. It returns once the pod is deleted.
func (c *Cluster) runPod(p *pod) {
	defer c.podWG.Done()
	// The sandbox and container creation a real kubelet spends before the process runs.
	if d := c.opts.PodStartDelay; d > 0 && p.ip != "" {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-p.deleteCh:
		case <-c.downCh:
		}
		t.Stop()
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
	var backoff time.Duration
	next := 0 // the next init container to run to completion; len(p.inits): the main one
	for p.ip != "" {
		if backoff > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-p.deleteCh:
			case <-c.downCh:
			}
			t.Stop()
		}
		if c.stopping(p) {
			break
		}
		var inst *container
		var err error
		if next < len(p.inits) {
			inst, err = c.startContainer(p, p.inits[next].name, p.inits[next].argv, p.inits[next].env)
		} else {
			inst, err = c.startContainer(p, "", p.argv, p.env)
		}
		if err != nil {
			c.mu.Lock()
			p.lastExit = "failed to start: " + err.Error()
			p.restarts++
			c.record(cluster.PodExited, nil, p, p.lastExit)
			if c.state == stateStarting && !p.terminating {
				c.upErr = fmt.Errorf("pod %s: %s", p.name, p.lastExit)
			}
			c.notifyLocked()
			c.mu.Unlock()
			backoff = nextBackoff(backoff)
			continue
		}
		var done bool
		if inst.init != "" {
			var completed bool
			if completed, done = c.awaitInit(p, inst); completed {
				next++
				continue
			}
		} else {
			done = c.supervise(p, inst)
		}
		if done {
			break
		}
		c.mu.Lock()
		p.restarts++
		c.mu.Unlock()
		// As the kubelet: the first restart is immediate, then 10s doubling to 5 min.
		if p.restarts > 1 {
			backoff = nextBackoff(backoff)
		}
	}
	if p.ip == "" {
		select {
		case <-p.deleteCh:
		case <-c.downCh:
		}
	}
	c.teardown(p)
}

func nextBackoff(b time.Duration) time.Duration {
	if b == 0 {
		return 10 * time.Second
	}
	return min(2*b, 5*time.Minute)
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
		return inst.cmd.ProcessState.Success(), false
	case <-p.deleteCh:
		c.mu.Lock()
		deadline := p.deletedAt.Add(p.grace)
		c.mu.Unlock()
		c.stopProcess(p, inst, deadline, "", "init container "+inst.init, "grace period over")
	case <-c.downCh:
		c.shutDown(p, inst)
	}
	return false, true
}

// startContainer spawns one of the pod's processes (its main container, or the init
// container named init) and records pod_started.
func (c *Cluster) startContainer(p *pod, init string, argv, env []string) (*container, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.WaitDelay = time.Second
	inst := &container{cmd: cmd, exited: make(chan struct{}), init: init}
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
		err := c.startInSandbox(p, inst, env)
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
	p.inst = inst
	p.running = true
	p.lastExit = ""
	detail := "pid " + strconv.Itoa(inst.pid())
	if init != "" {
		detail += ", init container " + init
	}
	if p.restarts > 0 {
		detail += ", restart " + strconv.Itoa(p.restarts)
	}
	c.record(cluster.PodStarted, nil, p, detail)
	c.notifyLocked()
	c.mu.Unlock()
	go c.waitContainer(p, inst)
	return inst, nil
}

// waitContainer reaps the process and records its exit at once.
func (c *Cluster) waitContainer(p *pod, inst *container) {
	_, detail := inst.wait()
	if inst.stdioDone != nil {
		<-inst.stdioDone
	}
	inst.flush()
	if inst.logFile != nil {
		inst.logFile.Close()
	}
	c.mu.Lock()
	p.running = false
	p.lastExit = detail
	if inst.killWhy != "" {
		detail += " after " + inst.killWhy
	} else if t := p.tail.lastLine(); t != "" && !p.terminating {
		detail += ": " + t
	}
	completed := false
	if inst.init != "" {
		completed = inst.cmd.ProcessState.Success()
		detail = "init container " + inst.init + ": " + detail
	}
	c.record(cluster.PodExited, nil, p, detail)
	c.setReadyLocked(p, false, "container exited")
	if c.state == stateStarting && !p.terminating && !completed {
		c.upErr = startupExitError(p, detail)
	}
	c.kickLocked()
	c.notifyLocked()
	c.mu.Unlock()
	close(inst.exited)
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
func (c *Cluster) supervise(p *pod, inst *container) (done bool) {
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
		if h := p.container.Lifecycle; h != nil && h.PostStart != nil {
			if err := c.runHook(ctx, p, *h.PostStart); err != nil {
				if ctx.Err() == nil {
					fail("postStart hook failed: " + err.Error())
				}
				return
			}
		}
		if sp := p.container.StartupProbe; sp != nil && !c.awaitStartup(ctx, p, inst, sp, fail) {
			return
		}
		c.watchReadiness(ctx, p, inst, &wg)
		if lp := p.container.LivenessProbe; lp != nil {
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
		c.kill(p, inst, deadline, "")
		return true
	case why := <-failed:
		lcancel()
		c.kill(p, inst, time.Now().Add(p.grace), why)
		c.mu.Lock()
		done = p.terminating
		c.mu.Unlock()
		return done
	case <-c.downCh:
		c.shutDown(p, inst)
		return true
	}
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

// watchReadiness marks the pod ready once started when it has no readiness probe, else runs
// the readiness probe in its own goroutine.
func (c *Cluster) watchReadiness(ctx context.Context, p *pod, inst *container, wg *sync.WaitGroup) {
	rp := p.container.ReadinessProbe
	if rp == nil {
		c.mu.Lock()
		if p.running && p.inst == inst {
			why := "no readiness probe: ready once started"
			if p.container.StartupProbe != nil {
				why = "no readiness probe: ready once the startup probe succeeded"
			}
			c.setReadyLocked(p, true, why)
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
			if p.inst != inst || !p.running {
				return
			}
			if !ok {
				p.lastProbe = msg
			}
			c.setReadyLocked(p, ok, "readiness probe: "+msg)
		})
	}()
}

// kill runs preStop, then stops the process with SIGKILL due at the deadline (never sooner
// than 2s after SIGTERM, as the kubelet grants), and returns once the process has exited.
func (c *Cluster) kill(p *pod, inst *container, deadline time.Time, reason string) {
	if h := p.container.Lifecycle; h != nil && h.PreStop != nil && time.Until(deadline) > 0 {
		c.runPreStop(p, inst, *h.PreStop, deadline)
	}
	killAt := deadline
	if m := time.Now().Add(minimumGrace); killAt.Before(m) {
		killAt = m
	}
	detail := "SIGKILL due at " + killAt.Format("15:04:05.000")
	if reason != "" {
		detail = reason + "; " + detail
	}
	c.stopProcess(p, inst, killAt, reason, detail, "grace period over")
}

// runPreStop runs the preStop hook until it returns, the deadline passes or the container exits.
func (c *Cluster) runPreStop(p *pod, inst *container, h corev1.LifecycleHandler, deadline time.Time) {
	c.mu.Lock()
	c.record(cluster.PreStopStarted, nil, p, describeHandler(&h))
	c.mu.Unlock()
	hctx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.runHook(hctx, p, h) }()
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
// goes, then the pod object is deleted.
func (c *Cluster) teardown(p *pod) {
	c.mu.Lock()
	p.exitedFinal = true
	c.kickLocked()
	c.mu.Unlock()
	select {
	case <-c.downCh:
	default:
		t := time.NewTimer(c.opts.NetworkLinger)
		select {
		case <-t.C:
		case <-c.downCh:
		}
		t.Stop()
	}
	p.net.removed.Store(true) // the proxies black-hole from now on
	p.closeSandbox()
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.ip != "" {
		c.record(cluster.PodNetworkRemoved, nil, p, p.ip)
	}
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
