//go:build linux

package localkube

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// testProxy is one Service port's proxy on 127.0.0.1:0 whose routes the test sets directly.
type testProxy struct {
	svc  *service
	addr string
	wg   sync.WaitGroup
}

func newTestProxy(t *testing.T) *testProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &service{spec: &serviceSpec{name: "test", ports: []corev1.ServicePort{{Port: 1}}}, conns: map[net.Conn]struct{}{}}
	pp := &portProxy{svc: s, listeners: []*net.TCPListener{ln.(*net.TCPListener)}, clusterAddr: ln.Addr().String()}
	s.ports = []*portProxy{pp}
	tp := &testProxy{svc: s, addr: ln.Addr().String()}
	tp.wg.Add(1)
	go pp.serve(ln.(*net.TCPListener), &tp.wg)
	t.Cleanup(func() {
		s.closeAll()
		tp.wg.Wait()
	})
	return tp
}

func (tp *testProxy) route(routes ...route) { tp.svc.routes.Store(&routes) }

// backend is a TCP server that runs handle for each connection.
func backend(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); handle(c) }()
		}
	}()
	return ln.Addr().String()
}

// nameServer answers every line with its name, until the client closes.
func nameServer(name string) func(net.Conn) {
	return func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
			if _, err := io.WriteString(c, name+"\n"); err != nil {
				return
			}
		}
	}
}

func ask(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "who\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading through the proxy: %v", err)
	}
	return strings.TrimSpace(line)
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestProxyKeepsEstablishedConnectionsOnTheirPod(t *testing.T) {
	tp := newTestProxy(t)
	a := backend(t, nameServer("a"))
	b := backend(t, nameServer("b"))
	tp.route(route{pod: "a", net: &podNet{}, addrs: []string{a}})
	c1 := dial(t, tp.addr)
	if got := ask(t, c1); got != "a" {
		t.Fatalf("first connection reached %q", got)
	}
	tp.route(route{pod: "b", net: &podNet{}, addrs: []string{b}})
	for range 3 {
		if got := ask(t, c1); got != "a" {
			t.Fatalf("the established connection moved to %q", got)
		}
	}
	if got := ask(t, dial(t, tp.addr)); got != "b" {
		t.Fatalf("a new connection reached %q, want the new endpoint b", got)
	}
}

func TestProxyPicksRandomEndpoints(t *testing.T) {
	tp := newTestProxy(t)
	tp.route(route{pod: "a", net: &podNet{}, addrs: []string{backend(t, nameServer("a"))}},
		route{pod: "b", net: &podNet{}, addrs: []string{backend(t, nameServer("b"))}})
	seen := map[string]int{}
	for range 40 {
		c := dial(t, tp.addr)
		seen[ask(t, c)]++
		c.Close()
	}
	if seen["a"] == 0 || seen["b"] == 0 {
		t.Fatalf("40 connections all went to one endpoint: %v", seen)
	}
}

func TestProxyResetsWhenThePodProcessIsGone(t *testing.T) {
	tp := newTestProxy(t)
	// A port nobody listens on: the pod's network is up, its process is dead.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	tp.route(route{pod: "dead", net: &podNet{}, addrs: []string{dead}})
	start := time.Now()
	err := readReset(t, tp.addr)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after a refused dial: %v, want connection reset", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("reset took %s; it must be immediate", d)
	}
	if n := tp.svc.stats.refused.Load(); n != 1 {
		t.Errorf("refused count %d", n)
	}
}

func TestProxyResetsWithoutEndpoints(t *testing.T) {
	tp := newTestProxy(t)
	if err := readReset(t, tp.addr); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("no endpoints: %v, want reset", err)
	}
}

// readReset connects and reads one byte. The proxy accepts, then resets: depending on how
// fast the RST comes, the caller sees it at connect or at its first read, never a refusal.
func readReset(t *testing.T, addr string) error {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	return err
}

func TestProxyBlackHolesATornDownPod(t *testing.T) {
	tp := newTestProxy(t)
	// The address even has a live server: a torn-down pod network must not reach it.
	gone := &podNet{}
	gone.removed.Store(true)
	tp.route(route{pod: "gone", net: gone, addrs: []string{backend(t, nameServer("ghost"))}})
	c := dial(t, tp.addr)
	io.WriteString(c, "who\n")
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read from a black hole: %v, want the caller's own timeout", err)
	}
	// Still open: the caller decides when to give up. Down releases it.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	go tp.svc.closeAll()
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("closing the proxy must release black-holed connections, got %v", err)
	}
}

func TestProxyPassesABackendEOFMidResponse(t *testing.T) {
	tp := newTestProxy(t)
	tp.route(route{pod: "a", net: &podNet{}, addrs: []string{backend(t, func(c net.Conn) {
		io.WriteString(c, "partial")
		// returning closes: FIN, as a process killed mid-response
	})}})
	c := dial(t, tp.addr)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "partial" {
		t.Fatalf("got %q, %v; want the partial bytes then EOF", b, err)
	}
}

func TestProxyPassesABackendResetMidResponse(t *testing.T) {
	tp := newTestProxy(t)
	partialRead := make(chan struct{}) // the client has the partial answer: now reset
	tp.route(route{pod: "a", net: &podNet{}, addrs: []string{backend(t, func(c net.Conn) {
		io.WriteString(c, "partial")
		select {
		case <-partialRead:
		case <-time.After(5 * time.Second):
		}
		c.(*net.TCPConn).SetLinger(0) // close with RST
	})}})
	c := dial(t, tp.addr)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, len("partial"))); err != nil {
		t.Fatalf("reading the partial answer: %v", err)
	}
	close(partialRead)
	_, err := io.ReadAll(c)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("backend reset surfaced as %v, want a reset (never a clean end)", err)
	}
}

func TestProxyHalfClose(t *testing.T) {
	tp := newTestProxy(t)
	// The backend reads the whole request (until the client's FIN), then answers.
	tp.route(route{pod: "a", net: &podNet{}, addrs: []string{backend(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		io.WriteString(c, strings.ToUpper(string(b)))
	})}})
	c := dial(t, tp.addr).(*net.TCPConn)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "hello")
	c.CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "HELLO" {
		t.Fatalf("got %q, %v", b, err)
	}
}

// BenchmarkProxyHop measures one request/response round trip through the proxy on an
// established connection (ns/op), next to the same round trip direct (sub-benchmark
// "direct"). The proxy's cost per hop is the difference. "connect" adds a new connection
// per request, as a client without keep-alive does.
func BenchmarkProxyHop(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &service{spec: &serviceSpec{name: "bench", ports: []corev1.ServicePort{{Port: 1}}}, conns: map[net.Conn]struct{}{}}
	pp := &portProxy{svc: s, listeners: []*net.TCPListener{pln.(*net.TCPListener)}}
	s.ports = []*portProxy{pp}
	s.routes.Store(&[]route{{pod: "echo", net: &podNet{}, addrs: []string{ln.Addr().String()}}})
	var wg sync.WaitGroup
	wg.Add(1)
	go pp.serve(pln.(*net.TCPListener), &wg)
	defer func() { s.closeAll(); wg.Wait() }()

	roundTrips := func(b *testing.B, addr string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		msg, buf := []byte("ping"), make([]byte, 4)
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			t0 := time.Now()
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		reportP50(b, lat)
	}
	connects := func(b *testing.B, addr string) {
		msg, buf := []byte("ping"), make([]byte, 4)
		lat := make([]time.Duration, 0, b.N)
		for range b.N {
			t0 := time.Now()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
			c.Close()
		}
		reportP50(b, lat)
	}
	b.Run("direct", func(b *testing.B) { roundTrips(b, ln.Addr().String()) })
	b.Run("proxy", func(b *testing.B) { roundTrips(b, pln.Addr().String()) })
	b.Run("direct-connect", func(b *testing.B) { connects(b, ln.Addr().String()) })
	b.Run("proxy-connect", func(b *testing.B) { connects(b, pln.Addr().String()) })
}

// reportP50 adds the median round trip as a metric: the target is a median, and means on a
// shared machine are dragged by scheduling outliers.
func reportP50(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
}
