package localkube

// What Up waits for before it returns: every program listening where it should, every pod
// ready; and the errors that say why not.

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"
)

func (c *Cluster) waitListening(ctx context.Context) error {
	type port struct {
		p    *pod
		ct   *ctr
		addr string
	}
	var ports []port
	c.mu.Lock()
	for _, p := range c.pods {
		for _, ct := range p.serving() {
			for _, cp := range ct.spec.Ports {
				ports = append(ports, port{p, ct, p.addr(cp.ContainerPort)})
			}
		}
	}
	c.mu.Unlock()
	for _, w := range ports {
		p, a := w.p, w.addr
		for {
			conn, err := p.dial(ctx, a)
			if err == nil {
				conn.Close()
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("the embedded cluster was not ready after %s: pod %s does not accept connections on %s", c.opts.ReadyTimeout, p.name, a)
			}
			c.mu.Lock()
			upErr := c.upErr
			pid := 0 // a host process: a sandboxed one may bind any address in its pod
			if inst := w.ct.inst; w.ct.running && inst != nil && inst.proc == nil {
				pid = inst.cmd.Process.Pid
			}
			c.mu.Unlock()
			if upErr != nil {
				return upErr
			}
			if elsewhere := listeningAddrs(pid); len(elsewhere) > 0 && !covers(elsewhere, a) {
				return fmt.Errorf("pod %s listens on %s, not at its address %s: %s", p.name, strings.Join(elsewhere, ", "), a, listenRemedy)
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// covers reports whether one of the listening addresses accepts connections for addr: addr
// itself or the wildcard on its port (it started listening after the dial failed).
func covers(listening []string, addr string) bool {
	_, port, _ := net.SplitHostPort(addr)
	for _, l := range listening {
		h, p, _ := net.SplitHostPort(l)
		if l == addr || (p == port && net.ParseIP(h).IsUnspecified()) {
			return true
		}
	}
	return false
}

// listenRemedy is what a team whose program does not listen at its pod's address must do.
const listenRemedy = "make the program listen at the address it is given (env HOST and PORT, or $(POD_IP) from fieldRef status.podIP) instead of a fixed port on all interfaces or on 127.0.0.1, or run pods in sandboxes"

// portTaken matches the error a program prints when its port is taken, with the port.
var portTaken = regexp.MustCompile(`:(\d+): bind: address already in use`)

// startupExitError says why a pod's container exited during Up; a port already taken (by
// another replica, or a Service listening on the same port) gets the remedy.
func startupExitError(p *pod, detail string) error {
	if m := portTaken.FindStringSubmatch(p.tail.lastLine()); m != nil {
		return fmt.Errorf("pod %s could not listen on port %s: it is taken (another replica, or a Service listening on the same port): %s", p.name, m[1], listenRemedy)
	}
	return fmt.Errorf("pod %s exited during start-up with %s%s", p.name, detail, logOnly(p))
}

// allReadyLocked: every Deployment settled with all pods ready, every proxy in sync.
func (c *Cluster) allReadyLocked() bool {
	for _, d := range c.deploys {
		if !d.settled() {
			return false
		}
		for _, p := range d.current.pods {
			if !p.ready {
				return false
			}
		}
	}
	for _, s := range c.services {
		if s.pending > 0 {
			return false
		}
	}
	return true
}

// notReadyReasonLocked names the first pod that is not ready and why.
func (c *Cluster) notReadyReasonLocked() string {
	for _, d := range c.deploys {
		for _, p := range d.current.pods {
			if p.ready {
				continue
			}
			why := "not ready"
			switch {
			case p.lastExit != "":
				why = "its container exited: " + p.lastExit
			case p.lastProbe != "":
				why = "last readiness probe: " + p.lastProbe
			case !p.running:
				why = "its process has not started"
			}
			return fmt.Sprintf("Deployment %q: pod %s %s%s", d.spec.name, p.name, why, p.logHint())
		}
		if !d.settled() {
			r, u, _, a := d.status()
			return fmt.Sprintf("Deployment %q: rollout not complete (replicas %d, updated %d, available %d, want %d)", d.spec.name, r, u, a, d.spec.replicas)
		}
	}
	for _, s := range c.services {
		if s.pending > 0 {
			return fmt.Sprintf("Service %q: endpoint changes still propagating", s.spec.name)
		}
	}
	return "unknown reason"
}
