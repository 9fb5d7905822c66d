package lifecycle

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/lifecycle/lifecycletest"
)

// harness runs a plain http.Server under a Shutdown on 127.0.0.1:0, with /slow that answers
// when released (or when its client goes away), /hello, and an injected signal channel.
type harness struct {
	t       *testing.T
	sd      *Shutdown
	url     string
	addr    string
	sigs    chan os.Signal
	release chan struct{}
	code    chan int
	logs    *lifecycletest.SyncBuffer
	once    sync.Once
}

func (h *harness) releaseAll() { h.once.Do(func() { close(h.release) }) }

func startHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	logs := &lifecycletest.SyncBuffer{}
	h := &harness{t: t, sigs: make(chan os.Signal, 2), release: make(chan struct{}), code: make(chan int, 1), logs: logs}
	h.sd = New(cfg, slog.New(slog.NewJSONHandler(logs, nil)), nil)
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-h.release:
			io.WriteString(w, "ok")
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		if h.sd.RetireConnection() {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, "hello")
	})
	srv := &http.Server{Handler: mux, ConnState: h.sd.ConnState}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	h.url = "http://" + h.addr
	go func() { h.code <- h.sd.Run(srv, ln, h.sigs) }()
	t.Cleanup(func() {
		h.releaseAll()
		select {
		case <-h.sd.Done(Exited):
		default:
			h.sigs <- syscall.SIGTERM
			h.sigs <- syscall.SIGTERM
		}
		select {
		case <-h.code:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	waitPhase(t, h.sd, Running)
	return h
}

// waitFor polls cond every 5ms for at most 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitPhase(t *testing.T, s *Shutdown, p Phase) {
	t.Helper()
	select {
	case <-s.Done(p):
	case <-time.After(10 * time.Second):
		t.Fatalf("phase %s never fired; history %v", p, phasesOf(s.History()))
	}
}

func phasesOf(h []Transition) []Phase {
	var out []Phase
	for _, t := range h {
		out = append(out, t.Phase)
	}
	return out
}

func (h *harness) waitCode() int {
	h.t.Helper()
	select {
	case c := <-h.code:
		h.code <- c // keep it for Cleanup
		return c
	case <-time.After(10 * time.Second):
		h.t.Fatal("Run did not return")
		return -1
	}
}

// freshClient never reuses a connection, so each call tests the listener.
func freshClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

type result struct {
	status int
	err    error
}

// startSlow puts n /slow requests in flight, each on its own connection.
func (h *harness) startSlow(n int) <-chan result {
	out := make(chan result, n)
	for range n {
		go func() {
			resp, err := freshClient().Get(h.url + "/slow")
			r := result{err: err}
			if err == nil {
				_, r.err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				r.status = resp.StatusCode
			}
			out <- r
		}()
	}
	waitFor(h.t, "requests in flight", func() bool { return h.sd.Active() == n })
	return out
}

// idleConn is a raw keep-alive connection that has had one answered request and now sits idle,
// as in a client's pool.
type idleConn struct {
	net.Conn
	r *bufio.Reader
}

func openIdle(t *testing.T, h *harness) *idleConn {
	t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ic := &idleConn{Conn: c, r: bufio.NewReader(c)}
	resp, err := ic.get()
	if err != nil || resp.Close {
		t.Fatalf("first request on the keep-alive connection: %v (close %v)", err, resp != nil && resp.Close)
	}
	waitFor(t, "the connection to go idle", func() bool { return h.sd.Conns(http.StateIdle) == 1 })
	return ic
}

func (c *idleConn) get() (*http.Response, error) {
	if _, err := io.WriteString(c, "GET /hello HTTP/1.1\r\nHost: lab\r\n\r\n"); err != nil {
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, err
}

func TestGracefulShutdownFiresPhasesInOrder(t *testing.T) {
	// The delay is long enough for the request below to land in it on a loaded machine.
	h := startHarness(t, Config{Mode: Graceful, ShutdownDelay: 2 * time.Second, DrainTimeout: 10 * time.Second, RetireKeepAlive: true})
	results := h.startSlow(5)

	h.sigs <- syscall.SIGTERM
	waitPhase(t, h.sd, ShutdownInitiated)
	// During the delay the listener still accepts; keep-alive clients are asked to close.
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(h.url + "/hello")
	if err != nil {
		t.Fatalf("request during the shutdown delay: %v", err)
	}
	resp.Body.Close()
	if !resp.Close {
		t.Errorf("responses during shutdown should carry Connection: close")
	}

	waitPhase(t, h.sd, NotAcceptingNewRequests)
	if _, err := net.DialTimeout("tcp", h.addr, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after the listener closed: %v, want connection refused", err)
	}
	select {
	case <-h.sd.Done(InFlightDrained):
		t.Fatal("drained with 5 requests still in flight")
	default:
	}

	h.releaseAll()
	for range 5 {
		r := <-results
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("in-flight request: status %d, err %v; want 200", r.status, r.err)
		}
	}
	if code := h.waitCode(); code != ExitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	if got := phasesOf(h.sd.History()); !reflect.DeepEqual(got, Phases) {
		t.Fatalf("phases fired %v, want %v", got, Phases)
	}
	for _, p := range Phases {
		if !strings.Contains(h.logs.String(), `"msg":"[graceful-termination] `+string(p)+`"`) {
			t.Errorf("no log line for phase %s", p)
		}
	}
}

func TestSecondSignalDuringDelayForcesExit(t *testing.T) {
	h := startHarness(t, Config{Mode: Graceful, ShutdownDelay: time.Minute, DrainTimeout: time.Minute})
	h.sigs <- syscall.SIGTERM
	waitPhase(t, h.sd, ShutdownInitiated)
	h.sigs <- syscall.SIGTERM
	if code := h.waitCode(); code != ExitForced {
		t.Fatalf("exit code %d, want %d", code, ExitForced)
	}
	want := []Phase{Running, ShutdownInitiated, Exited}
	if got := phasesOf(h.sd.History()); !reflect.DeepEqual(got, want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
	if !strings.Contains(h.logs.String(), "forced exit: second signal") {
		t.Fatalf("no log line says the exit was forced:\n%s", h.logs)
	}
}

func TestSecondSignalWhileDrainingForcesExit(t *testing.T) {
	h := startHarness(t, Config{Mode: Graceful, DrainTimeout: time.Minute, RetireKeepAlive: true})
	results := h.startSlow(2)
	h.sigs <- syscall.SIGTERM
	waitPhase(t, h.sd, NotAcceptingNewRequests)
	h.sigs <- syscall.SIGINT
	if code := h.waitCode(); code != ExitForced {
		t.Fatalf("exit code %d, want %d", code, ExitForced)
	}
	for range 2 {
		if r := <-results; r.err == nil {
			t.Fatalf("a request cut by a forced exit must fail, got status %d", r.status)
		}
	}
	want := []Phase{Running, ShutdownInitiated, NotAcceptingNewRequests, Exited}
	if got := phasesOf(h.sd.History()); !reflect.DeepEqual(got, want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
	if !strings.Contains(h.logs.String(), "forced exit: second signal while draining") {
		t.Fatalf("no log line says the exit was forced:\n%s", h.logs)
	}
}

func TestDrainTimeoutForcesExit(t *testing.T) {
	h := startHarness(t, Config{Mode: Graceful, DrainTimeout: 200 * time.Millisecond, RetireKeepAlive: true})
	results := h.startSlow(1)
	h.sigs <- syscall.SIGTERM
	if code := h.waitCode(); code != ExitForced {
		t.Fatalf("exit code %d, want %d", code, ExitForced)
	}
	if r := <-results; r.err == nil {
		t.Fatalf("request cut by the drain timeout must fail, got status %d", r.status)
	}
	if !strings.Contains(h.logs.String(), "forced exit: drain timeout") {
		t.Fatalf("no log line names the drain timeout:\n%s", h.logs)
	}
	if got := phasesOf(h.sd.History()); got[len(got)-2] != NotAcceptingNewRequests {
		t.Fatalf("phases %v: InFlightDrained must not fire on a timeout", got)
	}
}

func TestIdleKeepAliveConnectionDoesNotHoldTheDrain(t *testing.T) {
	for _, retire := range []bool{true, false} {
		h := startHarness(t, Config{Mode: Graceful, DrainTimeout: time.Minute, RetireKeepAlive: retire})
		openIdle(t, h)
		h.sigs <- syscall.SIGTERM
		if code := h.waitCode(); code != ExitOK {
			t.Fatalf("retire %v: exit code %d, want 0", retire, code)
		}
		// Fixed, the idle connection stays open until the exit, which says it cut it.
		if retire && !strings.Contains(h.logs.String(), `"idle_closed":1`) {
			t.Errorf("Exited should log idle_closed 1:\n%s", h.logs)
		}
	}
}

// A connection accepted before SIGTERM whose request arrives after the listener closed is
// served, not cut; one that stays silent holds the drain only NewConnGrace.
func TestFreshConnectionIsServedDuringTheDrain(t *testing.T) {
	h := startHarness(t, Config{Mode: Graceful, DrainTimeout: time.Minute, RetireKeepAlive: true})
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "the connection to be accepted", func() bool { return h.sd.Conns(http.StateNew) == 1 })
	h.sigs <- syscall.SIGTERM
	waitPhase(t, h.sd, NotAcceptingNewRequests)
	ic := &idleConn{Conn: c, r: bufio.NewReader(c)}
	resp, err := ic.get()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("request on a connection accepted before SIGTERM, sent after: %v", err)
	}
	if !resp.Close {
		t.Error("the answer should retire the connection (Connection: close)")
	}
	if code := h.waitCode(); code != ExitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
}

func TestSilentFreshConnectionHoldsTheDrainOnlyBriefly(t *testing.T) {
	h := startHarness(t, Config{Mode: Graceful, DrainTimeout: time.Minute, RetireKeepAlive: true})
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "the connection to be accepted", func() bool { return h.sd.Conns(http.StateNew) == 1 })
	h.sigs <- syscall.SIGTERM
	waitPhase(t, h.sd, NotAcceptingNewRequests)
	if code := h.waitCode(); code != ExitOK {
		t.Fatalf("exit code %d, want 0 (a silent client must not force the exit)", code)
	}
	h0 := h.sd.History()
	var notAccepting, drained time.Time
	for _, tr := range h0 {
		switch tr.Phase {
		case NotAcceptingNewRequests:
			notAccepting = tr.At
		case InFlightDrained:
			drained = tr.At
		}
	}
	if d := drained.Sub(notAccepting); d < NewConnGrace {
		t.Fatalf("drained %v after the listener closed: the fresh connection got less than NewConnGrace", d)
	}
}

// The keep-alive race of docs/keepalive.md, timing controlled: a request sent on an idle pooled
// connection once the listener has closed, while another request holds the drain open.
func TestRequestOnIdleConnectionDuringTheDrain(t *testing.T) {
	for _, retire := range []bool{true, false} {
		h := startHarness(t, Config{Mode: Graceful, DrainTimeout: time.Minute, RetireKeepAlive: retire})
		ic := openIdle(t, h)
		results := h.startSlow(1)
		h.sigs <- syscall.SIGTERM
		waitPhase(t, h.sd, NotAcceptingNewRequests)
		resp, err := ic.get()
		switch {
		case retire && (err != nil || resp.StatusCode != http.StatusOK || !resp.Close):
			t.Errorf("fixed: request on the idle connection during the drain: %v; want 200 with Connection: close", err)
		case !retire && err == nil:
			t.Errorf("unfixed: request on the idle connection during the drain answered %d; want it cut", resp.StatusCode)
		}
		h.releaseAll()
		if r := <-results; r.err != nil || r.status != http.StatusOK {
			t.Fatalf("in-flight request: %d %v", r.status, r.err)
		}
		if code := h.waitCode(); code != ExitOK {
			t.Fatalf("exit code %d", code)
		}
	}
}

func TestPreStopRetiresConnectionsWhenFixed(t *testing.T) {
	for _, retire := range []bool{true, false} {
		h := startHarness(t, Config{Mode: Graceful, DrainTimeout: time.Minute, RetireKeepAlive: retire})
		ic := openIdle(t, h)
		h.sd.PreStop()
		resp, err := ic.get()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("request after preStop: %v", err)
		}
		if resp.Close != retire {
			t.Errorf("retire %v: after preStop the answer's Connection: close = %v", retire, resp.Close)
		}
		if h.sd.Phase() != Running {
			t.Errorf("preStop must not start the shutdown: phase %s", h.sd.Phase())
		}
	}
}

func TestNotifyImmediateInstallsNothing(t *testing.T) {
	sigs, stop := Notify(Immediate)
	defer stop()
	if sigs != nil {
		t.Fatal("immediate mode must not install a signal handler")
	}
	sigs, stop = Notify(Graceful)
	defer stop()
	if sigs == nil {
		t.Fatal("graceful mode needs a signal channel")
	}
}
