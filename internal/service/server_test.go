package service

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gracelab/gracelab/internal/lifecycle"

	"github.com/gracelab/gracelab/internal/lifecycle/lifecycletest"
)

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
	logs    *lifecycletest.SyncBuffer
	once    sync.Once
}

func (h *harness) releaseAll() { h.once.Do(func() { close(h.release) }) }

func startHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	cfg.Host = "127.0.0.1"
	cfg.Mode = lifecycle.Graceful
	logs := &lifecycletest.SyncBuffer{}
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
		case <-h.srv.Shutdown.Done(lifecycle.Exited):
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

// startSlow puts n /slow requests in flight, each on its own connection.
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
	h := startHarness(t, Config{PrestopDelay: time.Millisecond, Config: lifecycle.Config{DrainTimeout: time.Second}})
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

func TestPrestopSleepsStaysReadyAndRetiresConnections(t *testing.T) {
	h := startHarness(t, Config{PrestopDelay: 300 * time.Millisecond, Config: lifecycle.Config{DrainTimeout: time.Second, RetireKeepAlive: true}})
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
	if h.srv.Shutdown.Phase() != lifecycle.Running {
		t.Fatalf("phase after prestop = %s, want Running", h.srv.Shutdown.Phase())
	}
	// The call is the first sign of termination: from now on answers retire their connection.
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(h.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !resp.Close {
		t.Error("after /prestop, answers should carry Connection: close")
	}
}

func TestPrestopConcurrencyIsBounded(t *testing.T) {
	h := startHarness(t, Config{PrestopDelay: time.Minute, Config: lifecycle.Config{DrainTimeout: time.Second}})
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
	if code := h.waitCode(); code != lifecycle.ExitOK {
		t.Fatalf("exit code %d", code)
	}
}

func TestListenFailureIsReported(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	logs := &lifecycletest.SyncBuffer{}
	s := NewServer(Config{Host: "127.0.0.1", Port: port, Config: lifecycle.Config{Mode: lifecycle.Graceful, DrainTimeout: time.Second}}, slog.New(slog.NewJSONHandler(logs, nil)))
	if code := s.ListenAndRun(); code != lifecycle.ExitForced {
		t.Fatalf("exit code %d, want %d", code, lifecycle.ExitForced)
	}
	if !strings.Contains(logs.String(), "cannot listen") {
		t.Fatalf("no log line for the listen failure: %s", logs)
	}
}

func TestOversizedHeadersAreRefused(t *testing.T) {
	h := startHarness(t, Config{Config: lifecycle.Config{DrainTimeout: time.Second}})
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

// With h2c the chassis speaks HTTP/2 without TLS, and retiring a connection is a GOAWAY: after
// /prestop the next request is answered, and the one after goes out on a new connection.
func TestH2CConnectionIsRetiredByGOAWAY(t *testing.T) {
	h := startHarness(t, Config{PrestopDelay: 0, Config: lifecycle.Config{DrainTimeout: time.Second, RetireKeepAlive: true}})
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	get := func(path string) (proto int, reused bool) {
		t.Helper()
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", h.url+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("h2c GET %s: %v", path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("h2c GET %s: %d", path, resp.StatusCode)
		}
		return resp.ProtoMajor, reused
	}
	if proto, _ := get("/health"); proto != 2 {
		t.Fatalf("protocol HTTP/%d, want HTTP/2", proto)
	}
	if _, reused := get("/health"); !reused {
		t.Fatal("the second h2c request should reuse the connection")
	}
	get("/prestop") // the first sign: from now on each answer retires its connection
	get("/health")  // answered, with a GOAWAY
	if _, reused := get("/health"); reused {
		t.Fatal("after the GOAWAY the next request must go out on a new connection")
	}
}
