package lifecycle

import (
	"bytes"
	"encoding/json"
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

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// syncBuffer is a log sink safe for the server's goroutines and the test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness runs a Server on 127.0.0.1:0 with a /slow route that answers when released (or when
// its client goes away) and an injected signal channel.
type harness struct {
	t       *testing.T
	srv     *Server
	url     string
	addr    string
	sigs    chan os.Signal
	release chan struct{}
	code    chan int
	logs    *syncBuffer
	once    sync.Once
}

func (h *harness) releaseAll() { h.once.Do(func() { close(h.release) }) }

func startHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	cfg.Host = "127.0.0.1"
	logs := &syncBuffer{}
	h := &harness{
		t:       t,
		srv:     NewServer(cfg, slog.New(slog.NewJSONHandler(logs, nil))),
		sigs:    make(chan os.Signal, 2),
		release: make(chan struct{}),
		code:    make(chan int, 1),
		logs:    logs,
	}
	h.srv.Engine.GET("/slow", func(c *gin.Context) {
		select {
		case <-h.release:
			c.JSON(http.StatusOK, gin.H{"status": "ok"})
		case <-c.Request.Context().Done():
		}
	})
	h.srv.Engine.GET("/items/:id", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"id": c.Param("id")}) })
	ln, err := h.srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	h.url = "http://" + h.addr
	go func() { h.code <- h.srv.Run(ln, h.sigs) }()
	t.Cleanup(func() {
		h.releaseAll()
		select {
		case <-h.srv.Done(Exited):
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
	return h
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
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

func waitPhase(t *testing.T, s *Server, p Phase) {
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
	at     time.Time
}

// startSlow puts n /slow requests in flight, each on its own connection.
func (h *harness) startSlow(n int) <-chan result {
	out := make(chan result, n)
	for range n {
		go func() {
			resp, err := freshClient().Get(h.url + "/slow")
			r := result{err: err, at: time.Now()}
			if err == nil {
				_, r.err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				r.status = resp.StatusCode
			}
			out <- r
		}()
	}
	waitFor(h.t, "requests in flight", func() bool { return h.srv.conns.active() == n })
	return out
}

func TestGracefulShutdownFiresPhasesInOrder(t *testing.T) {
	// The delay is long enough for the health check below to land in it on a loaded machine.
	h := startHarness(t, Config{Mode: Graceful, ShutdownDelay: 2 * time.Second, DrainTimeout: 10 * time.Second})
	waitPhase(t, h.srv, Running)
	results := h.startSlow(5)
	if got := gaugeValue(t, h.srv.inFlight); got != 5 {
		t.Fatalf("in-flight gauge = %v, want 5", got)
	}

	h.sigs <- syscall.SIGTERM
	waitPhase(t, h.srv, ShutdownInitiated)
	// During the delay the listener still accepts, and readiness says no.
	// A keep-alive client: the server must ask it to close (Go moves the header to resp.Close).
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(h.url + "/health")
	if err != nil {
		t.Fatalf("health during the shutdown delay: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "shutting_down") {
		t.Fatalf("health during shutdown = %d %s, want 503", resp.StatusCode, body)
	}
	if !resp.Close {
		t.Errorf("responses during shutdown should carry Connection: close")
	}

	waitPhase(t, h.srv, NotAcceptingNewRequests)
	if _, err := net.DialTimeout("tcp", h.addr, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after the listener closed: %v, want connection refused", err)
	}
	select {
	case <-h.srv.Done(InFlightDrained):
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
	if got := phasesOf(h.srv.History()); !reflect.DeepEqual(got, Phases) {
		t.Fatalf("phases fired %v, want %v", got, Phases)
	}
	for _, p := range Phases {
		if !strings.Contains(h.logs.String(), `"msg":"[graceful-termination] `+string(p)+`"`) {
			t.Errorf("no log line for phase %s", p)
		}
	}
	if got := gaugeValue(t, h.srv.phase.WithLabelValues(string(Exited))); got != 1 {
		t.Errorf("phase gauge for Exited = %v, want 1", got)
	}
	if got := gaugeValue(t, h.srv.phase.WithLabelValues(string(Running))); got != 0 {
		t.Errorf("phase gauge for Running = %v, want 0", got)
	}
}

func TestSecondSignalDuringDelayForcesExit(t *testing.T) {
	h := startHarness(t, Config{Mode: Graceful, ShutdownDelay: time.Minute, DrainTimeout: time.Minute})
	waitPhase(t, h.srv, Running)
	h.sigs <- syscall.SIGTERM
	waitPhase(t, h.srv, ShutdownInitiated)
	h.sigs <- syscall.SIGTERM
	if code := h.waitCode(); code != ExitForced {
		t.Fatalf("exit code %d, want %d", code, ExitForced)
	}
	want := []Phase{Running, ShutdownInitiated, Exited}
	if got := phasesOf(h.srv.History()); !reflect.DeepEqual(got, want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
	if !strings.Contains(h.logs.String(), "forced exit: second signal") {
		t.Fatalf("no log line says the exit was forced:\n%s", h.logs)
	}
}

func TestSecondSignalWhileDrainingForcesExit(t *testing.T) {
	h := startHarness(t, Config{Mode: Graceful, DrainTimeout: time.Minute})
	waitPhase(t, h.srv, Running)
	results := h.startSlow(2)
	h.sigs <- syscall.SIGTERM
	waitPhase(t, h.srv, NotAcceptingNewRequests)
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
	if got := phasesOf(h.srv.History()); !reflect.DeepEqual(got, want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
	if !strings.Contains(h.logs.String(), "forced exit: second signal while draining") {
		t.Fatalf("no log line says the exit was forced:\n%s", h.logs)
	}
}

func TestDrainTimeoutForcesExit(t *testing.T) {
	h := startHarness(t, Config{Mode: Graceful, DrainTimeout: 200 * time.Millisecond})
	waitPhase(t, h.srv, Running)
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
	if slices := phasesOf(h.srv.History()); slices[len(slices)-2] != NotAcceptingNewRequests {
		t.Fatalf("phases %v: InFlightDrained must not fire on a timeout", slices)
	}
}

func TestKeepAliveIdleConnectionDoesNotHoldTheDrain(t *testing.T) {
	h := startHarness(t, Config{Mode: Graceful, DrainTimeout: time.Minute})
	waitPhase(t, h.srv, Running)
	// One keep-alive connection left idle in a pooled client.
	pooled := &http.Client{Timeout: 5 * time.Second}
	resp, err := pooled.Get(h.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	h.sigs <- syscall.SIGTERM
	if code := h.waitCode(); code != ExitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
}

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := freshClient().Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: body is not JSON: %v", url, err)
	}
	return resp.StatusCode, body
}

func TestRoutesAndMetrics(t *testing.T) {
	h := startHarness(t, Config{Mode: Graceful, DrainTimeout: time.Second, PrestopDelay: time.Millisecond})
	if code, body := getJSON(t, h.url+"/health"); code != 200 || body["status"] != "healthy" {
		t.Fatalf("health = %d %v", code, body)
	}
	if code, body := getJSON(t, h.url+"/nope"); code != 404 || body["error"] != "not found" {
		t.Fatalf("unknown path = %d %v, want 404 JSON", code, body)
	}
	req, _ := http.NewRequest(http.MethodDelete, h.url+"/health", nil)
	resp, err := freshClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("DELETE /health = %d %s, want 405 JSON", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, id := range []string{"1", "2", "3"} {
		getJSON(t, h.url+"/items/"+id)
	}
	resp, err = freshClient().Get(h.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`gracelab_http_requests_total{code="200",method="GET",route="/items/:id"} 3`,
		`gracelab_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`gracelab_http_requests_total{code="405",method="DELETE",route="unmatched"} 1`,
		`gracelab_http_requests_in_flight 1`,
		`gracelab_lifecycle_phase{phase="Running"} 1`,
		`gracelab_lifecycle_phase{phase="ShutdownInitiated"} 0`,
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(string(text), `route="/items/1"`) {
		t.Error("metrics must label by route template, not raw path")
	}
}

func TestPrestopSleepsChangesNothingAndIsBounded(t *testing.T) {
	h := startHarness(t, Config{Mode: Graceful, DrainTimeout: time.Second, PrestopDelay: 300 * time.Millisecond})
	start := time.Now()
	code, body := getJSON(t, h.url+"/prestop")
	if code != 200 || body["status"] != "ok" {
		t.Fatalf("prestop = %d %v", code, body)
	}
	if elapsed := time.Since(start); elapsed < 300*time.Millisecond {
		t.Fatalf("prestop answered after %v, before its delay", elapsed)
	}
	if code, _ := getJSON(t, h.url+"/health"); code != 200 {
		t.Fatalf("health after prestop = %d: prestop must not change the pod's state", code)
	}
	if h.srv.Phase() != Running {
		t.Fatalf("phase after prestop = %s, want Running", h.srv.Phase())
	}
}

func TestPrestopConcurrencyIsBounded(t *testing.T) {
	h := startHarness(t, Config{Mode: Graceful, DrainTimeout: time.Second, PrestopDelay: time.Minute})
	done := make(chan int, PrestopSlots)
	for range PrestopSlots {
		go func() {
			resp, err := freshClient().Get(h.url + "/prestop")
			if err != nil {
				done <- -1
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	waitFor(t, "all prestop slots taken", func() bool { return len(h.srv.prestop) == PrestopSlots })
	if code, body := getJSON(t, h.url+"/prestop"); code != http.StatusTooManyRequests {
		t.Fatalf("prestop beyond %d concurrent calls = %d %v, want 429", PrestopSlots, code, body)
	}
	// The shutdown releases the held hooks at once: there is nothing left to wait for.
	h.sigs <- syscall.SIGTERM
	for range PrestopSlots {
		if code := <-done; code != 200 {
			t.Fatalf("held prestop answered %d after shutdown began, want 200", code)
		}
	}
	if code := h.waitCode(); code != ExitOK {
		t.Fatalf("exit code %d", code)
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

func TestListenFailureIsReported(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	logs := &syncBuffer{}
	s := NewServer(Config{Host: "127.0.0.1", Port: port, Mode: Graceful, DrainTimeout: time.Second}, slog.New(slog.NewJSONHandler(logs, nil)))
	if code := s.ListenAndRun(); code != ExitForced {
		t.Fatalf("exit code %d, want %d", code, ExitForced)
	}
	if !strings.Contains(logs.String(), "cannot listen") {
		t.Fatalf("no log line for the listen failure: %s", logs)
	}
}

func TestOversizedHeadersAreRefused(t *testing.T) {
	h := startHarness(t, Config{Mode: Graceful, DrainTimeout: time.Second})
	req, _ := http.NewRequest(http.MethodGet, h.url+"/health", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 2*MaxHeaderBytes))
	resp, err := freshClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a %d-byte header got %d, want 431", 2*MaxHeaderBytes, resp.StatusCode)
	}
}
