package localkube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/sandbox"
	"k8s.io/utils/clock"
)

// The Service proxy, an L4 userspace kube-proxy. Every Service port listens on the Service's
// address (and, for the LoadBalancer Service, on 127.0.0.1 too). A new connection goes to a
// random endpoint of the set the proxy currently knows, which trails the API view by an
// endpoint lag (fixed, or kube-proxy's sync loop: proxysync.go); the bytes are then spliced both ways and the connection stays on that pod.
//
// How a connection to a dying pod fails, as on a real cluster:
//   - process alive: served, or cut (EOF/reset) when the process dies mid-request;
//   - process dead, network still there (NetworkLinger): the kernel refuses the dial; the
//     proxy has already accepted the caller, so it resets the caller's connection at once
//     (a real cluster's caller would see "connection refused": here it sees a reset);
//   - network torn down while the proxy still routes to the pod: the connection is held and
//     never answered (a black hole) until the caller gives up.

type service struct {
	spec  *serviceSpec
	ip    string
	ports []*portProxy

	routes atomic.Pointer[[]route] // what the proxy currently routes new connections to

	// Guarded by Cluster.mu.
	api     []apiEndpoint // the API view (EndpointSlice), updated at once
	routed  []*pod        // the pods in routes, for events
	pending int           // API snapshots not yet applied to routes

	qmu     sync.Mutex
	queue   []pendingUpdate
	lastDue time.Time // of the latest queued update
	qsig    chan struct{}

	stats proxyStats

	connMu sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	active sync.WaitGroup
}

type apiEndpoint struct {
	pod                         *pod
	ready, serving, terminating bool
}

type pendingUpdate struct {
	due  time.Time
	snap []apiEndpoint
}

type route struct {
	pod   string
	net   *podNet
	sb    *sandbox.Sandbox // the pod's sandbox, dialled through; nil: the host
	addrs []string         // per Service port index
}

type portProxy struct {
	svc         *service
	index       int
	listeners   []*net.TCPListener
	clusterAddr string
}

// proxyStats count what a Service's proxy did with new connections.
type proxyStats struct {
	accepted, refused, blackholed, noEndpoint atomic.Int64
}

// syncEndpointsLocked recomputes every Service's API view from the pods and queues each change
// for the proxy, due an endpoint lag from now.
func (c *Cluster) syncEndpointsLocked() {
	for _, s := range c.services {
		var snap []apiEndpoint
		for _, p := range c.sortedPodsLocked() {
			if p.d.spec.namespace != s.spec.namespace || p.ip == "" || !s.spec.selector.Matches(labelSet(p.labels)) {
				continue
			}
			snap = append(snap, apiEndpoint{pod: p, ready: p.ready && !p.terminating, serving: p.ready, terminating: p.terminating})
		}
		if slices.Equal(snap, s.api) {
			continue
		}
		// The API view's condition changes: ready turning false, terminating turning true.
		for _, old := range s.api {
			for _, e := range snap {
				if e.pod != old.pod {
					continue
				}
				if old.ready && !e.ready {
					why := "not ready"
					if e.terminating {
						why = "terminating"
					}
					c.record(cluster.EndpointNotReady, nil, e.pod, "service "+s.spec.name+": "+why)
				}
				if !old.terminating && e.terminating {
					c.record(cluster.EndpointTerminating, nil, e.pod, "service "+s.spec.name)
				}
			}
		}
		s.api = snap
		s.pending++
		if c.psync != nil {
			c.psync.add(s, snap)
			continue
		}
		s.enqueue(time.Now().Add(c.lags.next()), snap)
		select {
		case s.qsig <- struct{}{}:
		default:
		}
	}
}

// startEndpointPropagation starts what carries endpoint changes to the proxies: kube-proxy's
// sync loop, or with a fixed EndpointLag a queue per Service.
func (c *Cluster) startEndpointPropagation() {
	if c.opts.EndpointLag == 0 {
		c.mu.Lock()
		c.psync = newProxySync(clock.RealClock{}, kubeProxyMinSyncPeriod, newSyncDurationSource(c.opts.Seed), c.applySync)
		c.mu.Unlock()
		c.bgWG.Add(1)
		go func() {
			defer c.bgWG.Done()
			c.psync.run(c.ctx)
		}()
		return
	}
	for _, s := range c.services {
		c.bgWG.Add(1)
		go c.propagate(s)
	}
}

// applySync applies one sync's changes.
func (c *Cluster) applySync(batch []syncChange) {
	for _, ch := range batch {
		c.applyEndpoints(ch.svc, ch.snap, ch.n)
	}
}

// enqueue queues an API view for the proxy, due at due or, if an earlier change is due later,
// with it: changes reach the proxy in order, as kube-proxy applies them.
func (s *service) enqueue(due time.Time, snap []apiEndpoint) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if due.Before(s.lastDue) {
		due = s.lastDue
	}
	s.lastDue = due
	s.queue = append(s.queue, pendingUpdate{due: due, snap: snap})
}

func (c *Cluster) sortedPodsLocked() []*pod {
	ps := make([]*pod, 0, len(c.pods))
	for _, p := range c.pods {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *pod) int { return a.created.Compare(b.created) })
	return ps
}

// propagate applies a Service's queued API views to its proxy, each its endpoint lag after
// it happened, in order.
func (c *Cluster) propagate(s *service) {
	defer c.bgWG.Done()
	for {
		s.qmu.Lock()
		if len(s.queue) == 0 {
			s.qmu.Unlock()
			select {
			case <-s.qsig:
				continue
			case <-c.ctx.Done():
				return
			}
		}
		u := s.queue[0]
		s.queue = s.queue[1:]
		s.qmu.Unlock()
		t := time.NewTimer(time.Until(u.due))
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return
		}
		c.applyEndpoints(s, u.snap, 1)
	}
}

// applyEndpoints sets what the proxy routes to: ready endpoints, or if there are none the
// serving terminating ones (kube-proxy's fallback); it stands for n queued API views.
func (c *Cluster) applyEndpoints(s *service, snap []apiEndpoint, n int) {
	var use []apiEndpoint
	for _, e := range snap {
		if e.ready {
			use = append(use, e)
		}
	}
	if len(use) == 0 {
		for _, e := range snap {
			if e.serving && e.terminating {
				use = append(use, e)
			}
		}
	}
	routes := make([]route, 0, len(use))
	pods := make([]*pod, 0, len(use))
	for _, e := range use {
		r := route{pod: e.pod.name, net: e.pod.net, sb: e.pod.sb}
		for _, sp := range s.spec.ports {
			port, err := e.pod.targetPort(sp.TargetPort)
			if err != nil {
				r.addrs = append(r.addrs, "") // validated at New; unreachable
				continue
			}
			r.addrs = append(r.addrs, e.pod.addr(port))
		}
		routes = append(routes, r)
		pods = append(pods, e.pod)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s.pending -= n
	for _, old := range s.routed {
		if !slices.Contains(pods, old) {
			c.record(cluster.EndpointRemoved, nil, old, "service "+s.spec.name)
		}
	}
	for _, p := range pods {
		if !slices.Contains(s.routed, p) {
			c.record(cluster.EndpointAdded, nil, p, "service "+s.spec.name+" -> "+p.ip)
		}
	}
	s.routes.Store(&routes)
	s.routed = pods
	c.notifyLocked()
}

func (pp *portProxy) serve(ln *net.TCPListener, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		conn, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // e.g. EMFILE: back off, don't spin
			continue
		}
		if !pp.svc.track(conn) {
			conn.Close()
			return
		}
		go func() {
			defer pp.svc.untrack(conn)
			pp.handle(conn)
		}()
	}
}

func (pp *portProxy) handle(client *net.TCPConn) {
	pp.svc.stats.accepted.Add(1)
	rp := pp.svc.routes.Load()
	if rp == nil || len(*rp) == 0 {
		// No endpoint: kube-proxy rejects; through a userspace proxy that is a reset.
		pp.svc.stats.noEndpoint.Add(1)
		reset(client)
		return
	}
	routes := *rp
	r := routes[rand.IntN(len(routes))]
	if r.net.removed.Load() {
		pp.svc.stats.blackholed.Add(1)
		blackhole(client)
		return
	}
	backend, err := r.dial(r.addrs[pp.index])
	if err != nil {
		pp.svc.stats.refused.Add(1)
		reset(client)
		return
	}
	if !pp.svc.track(backend) {
		backend.Close()
		client.Close()
		return
	}
	defer pp.svc.untrack(backend)
	splice(client, backend)
}

func (r route) dial(addr string) (*net.TCPConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var c net.Conn
	var err error
	if r.sb != nil {
		c, err = r.sb.Dial(ctx, addr)
	} else {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("not a TCP connection: %T", c)
	}
	return tc, nil
}

// blackhole holds the connection and never answers, until the caller closes it (or Down).
func blackhole(c *net.TCPConn) {
	_, _ = io.Copy(io.Discard, c)
	c.Close()
}

// reset closes with RST rather than FIN, so the caller sees "connection reset by peer".
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

// splice copies both ways. A clean end (FIN) on one side becomes a half-close on the other; an
// error (reset) on either side resets both, so a backend that dies mid-response is seen by the
// caller as the same EOF or reset, never as a clean, complete answer.
func splice(client, backend *net.TCPConn) {
	var once sync.Once
	abort := func() {
		once.Do(func() {
			reset(client)
			reset(backend)
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := copyConn(backend, client); err != nil {
			abort()
			return
		}
		_ = backend.CloseWrite()
	}()
	if err := copyConn(client, backend); err != nil {
		abort()
	} else {
		_ = client.CloseWrite()
	}
	<-done
	client.Close()
	backend.Close()
}

// copyConn copies with a pooled buffer and plain read/write. Requests and responses here are
// small: splice(2), which io.Copy picks between TCP connections, costs more in pipe set-up
// per connection than it saves in copying.
func copyConn(dst, src *net.TCPConn) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	_, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
	return err
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (s *service) track(c net.Conn) bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.active.Add(1)
	return true
}

func (s *service) untrack(c net.Conn) {
	s.connMu.Lock()
	delete(s.conns, c)
	s.connMu.Unlock()
	s.active.Done()
}

// closeAll closes the listeners and every connection, and waits for the handlers.
func (s *service) closeAll() {
	for _, pp := range s.ports {
		for _, ln := range pp.listeners {
			ln.Close()
		}
	}
	s.connMu.Lock()
	s.closed = true
	for c := range s.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			reset(tc)
		} else {
			c.Close()
		}
	}
	s.connMu.Unlock()
	s.active.Wait()
}

func isAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }

// Binding the Services: where each listens, chosen before any pod starts.

// avoidWildcardListeners switches to mapped ports when another program listens on all
// interfaces at a port the manifests use (say `go run ./cmd/downstream` on *:8000): such a
// listener blocks that port on every 127.x.y.z, so per-pod addresses cannot keep it.
func (c *Cluster) avoidWildcardListeners() {
	if c.addrs.mapped {
		return
	}
	probe := c.addrs.prefix(podBase) + "254"
	var taken []string
	for _, port := range c.set.ports() {
		if !portsFree(probe, []int32{port}) && !portsFree(c.addrs.prefix(svcBase)+"254", []int32{port}) {
			taken = append(taken, strconv.Itoa(int(port)))
		}
	}
	if len(taken) == 0 {
		return
	}
	c.addrs.mapped = true
	msg := fmt.Sprintf("another program listens on all interfaces at port %s, so the embedded cluster maps every pod and Service port to a free one on 127.0.0.1 instead of giving pods their own addresses", strings.Join(taken, ", "))
	c.log.Warn(msg)
	c.warnings = append(c.warnings, msg)
}

// bindServices gives every Service its "ClusterIP" listeners, and the LoadBalancer one its
// 127.0.0.1 listener. A taken address moves the whole cluster to another address block.
func (c *Cluster) bindServices() error {
	var lastErr error
	for range 8 {
		err := c.tryBindServices()
		if err == nil {
			return nil
		}
		c.closeListeners()
		if !errors.Is(err, errAddrInUse) {
			return err
		}
		lastErr = err
		c.addrs.reblock()
	}
	return lastErr
}

func (c *Cluster) tryBindServices() error {
	for i, s := range c.services {
		s.ip = c.addrs.serviceIP(i)
		s.ports = nil
		for j, sp := range s.spec.ports {
			port := int(sp.Port)
			if c.addrs.mapped {
				port = 0
			}
			ln, err := listenTCP(net.JoinHostPort(s.ip, strconv.Itoa(port)))
			if err != nil {
				return err
			}
			pp := &portProxy{svc: s, index: j, listeners: []*net.TCPListener{ln}, clusterAddr: ln.Addr().String()}
			if s.spec.loadBalancer {
				lbPort := sp.Port
				if j == 0 {
					lbPort = int32(c.opts.LoadBalancerPort)
				}
				if c.opts.LoadBalancerPort == 0 {
					lbPort = 0
				}
				lb, err := listenTCP(net.JoinHostPort("127.0.0.1", strconv.Itoa(int(lbPort))))
				if err != nil {
					ln.Close()
					// The LoadBalancer port is fixed: another block will not help.
					return fmt.Errorf("LoadBalancer Service %q: %w (is another embedded cluster running?)", s.spec.name, errors.Unwrap(err))
				}
				pp.listeners = append(pp.listeners, lb)
				if j == 0 {
					c.lbAddr = lb.Addr().String()
				}
			}
			s.ports = append(s.ports, pp)
		}
	}
	for _, s := range c.services {
		for _, pp := range s.ports {
			for _, ln := range pp.listeners {
				c.bgWG.Add(1)
				go pp.serve(ln, &c.bgWG)
			}
		}
	}
	return nil
}

func listenTCP(addr string) (*net.TCPListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if isAddrInUse(err) {
			return nil, fmt.Errorf("%w: %s", errAddrInUse, addr)
		}
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	return ln.(*net.TCPListener), nil
}

func (c *Cluster) closeListeners() {
	for _, s := range c.services {
		for _, pp := range s.ports {
			for _, ln := range pp.listeners {
				ln.Close()
			}
		}
		s.ports = nil
	}
	c.lbAddr = ""
}

// Target is the URL of the LoadBalancer Service (else of a Service named "downstream", else
// of the first Service), for load to be sent to. It is empty before Up.
func (c *Cluster) Target() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lbAddr != "" {
		return "http://" + c.lbAddr
	}
	for _, s := range c.services {
		if s.spec.name == "downstream" && len(s.ports) > 0 {
			return "http://" + s.ports[0].clusterAddr
		}
	}
	if len(c.services) > 0 && len(c.services[0].ports) > 0 {
		return "http://" + c.services[0].ports[0].clusterAddr
	}
	return ""
}

// ServiceAddr returns the host:port a Service port listens on inside the cluster (its
// "ClusterIP"), for callers that want to reach a Service other than the Target.
func (c *Cluster) ServiceAddr(name string, port int32) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.services {
		if s.spec.name != name {
			continue
		}
		for _, pp := range s.ports {
			if s.spec.ports[pp.index].Port == port {
				return pp.clusterAddr, true
			}
		}
	}
	return "", false
}
