package localkube

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

type pod struct {
	name      string
	d         *deployment
	rs        *replicaSet
	labels    map[string]string
	container corev1.Container
	grace     time.Duration
	ip        string
	portMap   map[int32]int32 // container port -> host port, mapped mode only
	env       []string
	created   time.Time
	deleteCh  chan struct{} // closed when deletion starts
	net       *podNet
	logPath   string
	tail      tailBuffer

	// Guarded by Cluster.mu.
	inst        *container
	running     bool
	ready       bool
	readySince  time.Time
	terminating bool
	deletedAt   time.Time
	exitedFinal bool // the last container has exited and will not restart
	restarts    int
	lastProbe   string
	lastExit    string
}

// podNet is the part of a pod the proxies look at without the cluster lock.
type podNet struct {
	removed atomic.Bool // the pod's network is torn down: connections to it go nowhere
}

// container is one run of the pod's process.
type container struct {
	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{} // closed after the exit is recorded
	logFile *os.File
	killWhy string // why the kubelet stopped it, if it did (guarded by Cluster.mu)
}

func (p *pod) available(minReady time.Duration, now time.Time) bool {
	return p.ready && !p.readySince.IsZero() && now.Sub(p.readySince) >= minReady
}

// addr is where the pod serves containerPort: its own IP and the same port, or 127.0.0.1 and
// the mapped port.
func (p *pod) addr(containerPort int32) string {
	port := containerPort
	if hp, ok := p.portMap[containerPort]; ok {
		port = hp
	}
	return net.JoinHostPort(p.ip, strconv.Itoa(int(port)))
}

func (p *pod) logHint() string {
	if p.logPath != "" {
		return " (log: " + p.logPath + ")"
	}
	if t := p.tail.lastLine(); t != "" {
		return " (stderr: " + t + ")"
	}
	return ""
}

// fieldRefs are the downward-API fields a pod's env may use.
var fieldRefs = map[string]func(p *pod) string{
	"metadata.name":      func(p *pod) string { return p.name },
	"metadata.namespace": func(p *pod) string { return p.d.spec.namespace },
	"status.podIP":       func(p *pod) string { return p.ip },
	"status.hostIP":      func(p *pod) string { return "127.0.0.1" },
	"spec.nodeName":      func(p *pod) string { return "localkube" },
}

// podEnvLocked builds the process environment: PATH (so exec probes find commands),
// HOSTNAME, the manifest's env with Service names rewritten as cluster DNS would resolve
// them, then HOST (the pod's address) and PORT (its first container port, unless the manifest
// sets PORT; mapped to the host port off Linux).
func (c *Cluster) podEnvLocked(p *pod) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOSTNAME=" + p.name}
	lookup := c.serviceResolverLocked(p.d.spec.namespace)
	portSet := ""
	for _, e := range p.container.Env {
		v := e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			v = fieldRefs[e.ValueFrom.FieldRef.FieldPath](p)
		} else {
			v = rewriteServiceRef(v, lookup)
		}
		if e.Name == "PORT" {
			portSet = v
			continue
		}
		env = append(env, e.Name+"="+v)
	}
	env = append(env, "HOST="+p.ip)
	switch {
	case portSet != "":
		if n, err := strconv.Atoi(portSet); err == nil && p.portMap != nil {
			if hp, ok := p.portMap[int32(n)]; ok {
				portSet = strconv.Itoa(int(hp))
			}
		}
		env = append(env, "PORT="+portSet)
	case len(p.container.Ports) > 0:
		cp := p.container.Ports[0].ContainerPort
		if hp, ok := p.portMap[cp]; ok {
			cp = hp
		}
		env = append(env, "PORT="+strconv.Itoa(int(cp)))
	}
	return env
}

// serviceResolverLocked maps a Service DNS name and port, as seen from namespace podNS, to the
// Service proxy's address.
func (c *Cluster) serviceResolverLocked(podNS string) resolver {
	table := map[string]map[int]string{}
	for _, s := range c.services {
		ports := map[int]string{}
		for _, pp := range s.ports {
			ports[int(s.spec.ports[pp.index].Port)] = pp.clusterAddr
		}
		for _, n := range dnsNames(s.spec.name, s.spec.namespace, podNS) {
			table[n] = ports
		}
	}
	return func(host string, port int) (string, bool) {
		ports, ok := table[host]
		if !ok {
			return "", false
		}
		if a, ok := ports[port]; ok {
			return a, true
		}
		// Not a port of the Service: keep it, on the Service's address, as a real cluster
		// would (and fail the same way).
		for _, a := range ports {
			h, _, _ := net.SplitHostPort(a)
			return net.JoinHostPort(h, strconv.Itoa(port)), true
		}
		return "", false
	}
}

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
	var backoff time.Duration
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
		inst, err := c.startContainer(p)
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
		if c.supervise(p, inst) {
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

// startContainer spawns the pod's process and records pod_started.
func (c *Cluster) startContainer(p *pod) (*container, error) {
	cmd := exec.Command(c.opts.Executable, p.d.spec.args...)
	cmd.Env = p.env
	cmd.WaitDelay = time.Second
	inst := &container{cmd: cmd, exited: make(chan struct{})}
	if p.logPath != "" {
		f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("opening the pod log: %w", err)
		}
		inst.logFile = f
		cmd.Stdout = f
		cmd.Stderr = io.MultiWriter(f, &p.tail)
	} else {
		cmd.Stderr = &p.tail
	}
	if err := c.spawn.start(cmd); err != nil {
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
	detail := "pid " + strconv.Itoa(cmd.Process.Pid)
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
	_ = inst.cmd.Wait()
	if inst.logFile != nil {
		inst.logFile.Close()
	}
	_, detail := exitDetail(inst.cmd)
	c.mu.Lock()
	p.running = false
	p.lastExit = detail
	if inst.killWhy != "" {
		detail += " after " + inst.killWhy
	} else if t := p.tail.lastLine(); t != "" && !p.terminating {
		detail += ": " + t
	}
	c.record(cluster.PodExited, nil, p, detail)
	c.setReadyLocked(p, false, "container exited")
	if c.state == stateStarting && !p.terminating {
		c.upErr = fmt.Errorf("pod %s exited during start-up with %s%s", p.name, detail, logOnly(p))
	}
	c.kickLocked()
	c.notifyLocked()
	c.mu.Unlock()
	close(inst.exited)
}

func logOnly(p *pod) string {
	if p.logPath != "" {
		return " (log: " + p.logPath + ")"
	}
	return ""
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

// supervise runs probes while the container runs and returns true when the pod is done
// (deleted or the cluster is going down), false when the container should restart.
func (c *Cluster) supervise(p *pod, inst *container) (done bool) {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	if rp := p.container.ReadinessProbe; rp != nil {
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
	} else {
		c.mu.Lock()
		if p.running && p.inst == inst {
			c.setReadyLocked(p, true, "no readiness probe: ready once started")
		}
		c.mu.Unlock()
	}
	livenessFailed := make(chan string, 1)
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	if lp := p.container.LivenessProbe; lp != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.probeLoop(lctx, p, inst, lp, func(ok bool, msg string) {
				if !ok {
					select {
					case livenessFailed <- msg:
					default:
					}
					lcancel()
				}
			})
		}()
	}

	select {
	case <-inst.exited:
		c.mu.Lock()
		done = p.terminating
		c.mu.Unlock()
		return done
	case <-p.deleteCh:
		lcancel() // liveness stops once a pod is being deleted
		c.mu.Lock()
		deadline := p.deletedAt.Add(p.grace)
		c.mu.Unlock()
		c.kill(p, inst, deadline, "")
		return true
	case msg := <-livenessFailed:
		c.kill(p, inst, time.Now().Add(p.grace), "liveness probe failed: "+msg)
		c.mu.Lock()
		done = p.terminating
		c.mu.Unlock()
		return done
	case <-c.downCh:
		c.killForDown(p, inst)
		return true
	}
}

// kill runs preStop, then SIGTERM, then SIGKILL at the deadline (never sooner than 2s after
// SIGTERM, as the kubelet grants), and returns once the process has exited.
func (c *Cluster) kill(p *pod, inst *container, deadline time.Time, reason string) {
	if h := p.container.Lifecycle; h != nil && h.PreStop != nil && time.Until(deadline) > 0 {
		c.mu.Lock()
		c.record(cluster.PreStopStarted, nil, p, describeHandler(h.PreStop))
		c.mu.Unlock()
		hctx, cancel := context.WithDeadline(c.ctx, deadline)
		errc := make(chan error, 1)
		go func() { errc <- c.runHook(hctx, p, *h.PreStop) }()
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
		cancel()
		detail := "ok"
		if err != nil {
			detail = "failed: " + err.Error()
		}
		c.mu.Lock()
		c.record(cluster.PreStopFinished, nil, p, detail)
		c.mu.Unlock()
	}
	killAt := deadline
	if m := time.Now().Add(minimumGrace); killAt.Before(m) {
		killAt = m
	}
	select {
	case <-inst.exited:
		return
	default:
	}
	detail := "SIGKILL due at " + killAt.Format("15:04:05.000")
	if reason != "" {
		detail = reason + "; " + detail
	}
	c.mu.Lock()
	inst.killWhy = reason
	c.record(cluster.SIGTERMSent, nil, p, detail)
	c.mu.Unlock()
	_ = signalGroup(inst.cmd.Process.Pid, sigTERM)
	t := time.NewTimer(time.Until(killAt))
	defer t.Stop()
	select {
	case <-inst.exited:
		return
	case <-t.C:
	case <-c.downCh:
		t2 := time.NewTimer(downGrace)
		defer t2.Stop()
		select {
		case <-inst.exited:
			return
		case <-t.C:
		case <-t2.C:
		}
	}
	c.mu.Lock()
	c.record(cluster.SIGKILLSent, nil, p, "grace period over")
	c.mu.Unlock()
	_ = signalGroup(inst.cmd.Process.Pid, sigKILL)
	<-inst.exited
}

// killForDown: the cluster is going away: SIGTERM, SIGKILL after downGrace, no preStop.
func (c *Cluster) killForDown(p *pod, inst *container) {
	c.mu.Lock()
	if !p.terminating {
		p.terminating = true
		p.deletedAt = time.Now()
		c.record(cluster.PodTerminating, nil, p, "cluster shutting down")
		c.syncEndpointsLocked()
	}
	c.record(cluster.SIGTERMSent, nil, p, "cluster shutting down")
	c.mu.Unlock()
	_ = signalGroup(inst.cmd.Process.Pid, sigTERM)
	t := time.NewTimer(downGrace)
	defer t.Stop()
	select {
	case <-inst.exited:
		return
	case <-t.C:
	}
	c.mu.Lock()
	c.record(cluster.SIGKILLSent, nil, p, "cluster shutting down")
	c.mu.Unlock()
	_ = signalGroup(inst.cmd.Process.Pid, sigKILL)
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
	c.mu.Lock()
	defer c.mu.Unlock()
	p.net.removed.Store(true)
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

// probeLoop runs a probe as the kubelet's prober worker does: first at initialDelaySeconds
// after the container started, then every periodSeconds, each bounded by timeoutSeconds;
// report gets a change after successThreshold successes or failureThreshold failures in a row.
// Readiness starts as failed, liveness as succeeded.
func (c *Cluster) probeLoop(ctx context.Context, p *pod, inst *container, pr *corev1.Probe, report func(ok bool, msg string)) {
	period := seconds(pr.PeriodSeconds, 10)
	timeout := seconds(pr.TimeoutSeconds, 1)
	success := orInt(pr.SuccessThreshold, 1)
	failure := orInt(pr.FailureThreshold, 3)
	start := inst.started.Add(time.Duration(pr.InitialDelaySeconds) * time.Second)
	t := time.NewTimer(time.Until(start))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	var okRun, failRun int32
	for {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := c.probeOnce(pctx, p, pr.ProbeHandler)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			okRun, failRun = okRun+1, 0
			if okRun >= success {
				report(true, "ok")
			}
		} else {
			okRun, failRun = 0, failRun+1
			if failRun >= failure {
				report(false, err.Error())
			} else {
				c.mu.Lock()
				p.lastProbe = err.Error()
				c.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func seconds(v int32, def int32) time.Duration {
	if v <= 0 {
		v = def
	}
	return time.Duration(v) * time.Second
}

func orInt(v, def int32) int32 {
	if v <= 0 {
		return def
	}
	return v
}

func (c *Cluster) probeOnce(ctx context.Context, p *pod, h corev1.ProbeHandler) error {
	switch {
	case h.HTTPGet != nil:
		return c.httpGet(ctx, p, h.HTTPGet)
	case h.TCPSocket != nil:
		port, _ := resolvePort(h.TCPSocket.Port, p.container)
		addr := p.addr(port)
		if h.TCPSocket.Host != "" {
			addr = net.JoinHostPort(h.TCPSocket.Host, strconv.Itoa(int(port)))
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	case h.Exec != nil:
		return c.execIn(ctx, p, h.Exec.Command)
	}
	return errors.New("no probe handler")
}

// runHook runs a lifecycle handler (preStop).
func (c *Cluster) runHook(ctx context.Context, p *pod, h corev1.LifecycleHandler) error {
	switch {
	case h.HTTPGet != nil:
		return c.httpGet(ctx, p, h.HTTPGet)
	case h.Exec != nil:
		return c.execIn(ctx, p, h.Exec.Command)
	case h.Sleep != nil:
		t := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("sleep cut short: %w", context.Cause(ctx))
		}
	}
	return errors.New("no handler")
}

func describeHandler(h *corev1.LifecycleHandler) string {
	switch {
	case h.HTTPGet != nil:
		return "httpGet " + h.HTTPGet.Path
	case h.Exec != nil:
		return "exec " + strings.Join(h.Exec.Command, " ")
	case h.Sleep != nil:
		return "sleep " + strconv.FormatInt(h.Sleep.Seconds, 10) + "s"
	}
	return ""
}

// probeClient is the kubelet's HTTP prober: no keep-alive (a probe must not hold a connection
// open on the pod), redirects not followed (a 3xx is a success), TLS not verified.
var probeClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

func (c *Cluster) httpGet(ctx context.Context, p *pod, g *corev1.HTTPGetAction) error {
	port, _ := resolvePort(g.Port, p.container)
	host := p.addr(port)
	if g.Host != "" {
		host = net.JoinHostPort(g.Host, strconv.Itoa(int(port)))
	}
	scheme := "http"
	if g.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/localkube")
	for _, h := range g.HTTPHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return nil
}

// execIn runs a command "in the container": with the pod's environment, in its own process
// group, killed with its group when ctx ends.
func (c *Cluster) execIn(ctx context.Context, p *pod, argv []string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = p.env
	cmd.Stdout = &limitedWriter{w: &out, n: 1024}
	cmd.Stderr = cmd.Stdout
	cmd.WaitDelay = time.Second
	cmd.Cancel = func() error { return signalGroup(cmd.Process.Pid, sigKILL) }
	if err := c.spawn.start(cmd); err != nil {
		return err
	}
	err := cmd.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("command timed out: %w", context.Cause(ctx))
	}
	if err != nil {
		if s := strings.TrimSpace(out.String()); s != "" {
			return fmt.Errorf("%w: %s", err, lastLine(s))
		}
		return err
	}
	return nil
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(b []byte) (int, error) {
	if l.n > 0 {
		k := min(len(b), l.n)
		l.w.Write(b[:k])
		l.n -= k
	}
	return len(b), nil
}

// tailBuffer keeps the last few KB of a pod's stderr so errors can say why it died.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 4 << 10

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > tailSize {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-tailSize:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) lastLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return lastLine(string(t.buf))
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\r\n ")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
