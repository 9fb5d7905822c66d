package downstream

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/service"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// fakeless upstream: a real HTTP server on 127.0.0.1 that plays a script, one step per request
// (the last step repeats). Steps: ok, a status code ("503"), sleep (until the caller gives up),
// eof (close after reading the request), reset (RST after reading the request), cut (headers and
// half the body, then close), badjson, notobject, huge, redirect.
type upstream struct {
	*httptest.Server
	script []string
	n      atomic.Int32
	conns  atomic.Int32 // connections accepted

	mu       sync.Mutex
	arrivals []time.Time
	methods  []string
}

func newUpstream(t *testing.T, script ...string) *upstream {
	t.Helper()
	u := &upstream{script: script}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	u.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			u.conns.Add(1)
		}
	}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

// startOn serves the script on addr (a port reserved earlier), for "refused, then up".
func startOn(t *testing.T, addr string, script ...string) *upstream {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("re-listen on %s: %v", addr, err)
	}
	u := &upstream{script: script}
	u.Server = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(u.serve)}}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

// refusingAddr returns a loopback address nothing listens on.
func refusingAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func (u *upstream) requests() int { return int(u.n.Load()) }

func (u *upstream) method(i int) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.methods[i]
}

func (u *upstream) arrivalTimes() []time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]time.Time(nil), u.arrivals...)
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	i := int(u.n.Add(1)) - 1
	u.mu.Lock()
	u.arrivals = append(u.arrivals, time.Now())
	u.methods = append(u.methods, r.Method)
	u.mu.Unlock()
	step := u.script[min(i, len(u.script)-1)]
	switch step {
	case "ok":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"source":"upstream","message":"hello","latency_ms":0,"timestamp":"%s"}`, time.Now().UTC().Format(time.RFC3339Nano))
	case "sleep":
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	case "eof", "reset":
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		if step == "reset" {
			_ = conn.(*net.TCPConn).SetLinger(0)
		}
		conn.Close()
	case "cut":
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"source":"upst`)
		w.(http.Flusher).Flush()
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	case "badjson":
		_, _ = io.WriteString(w, "<html>not json</html>")
	case "notobject":
		_, _ = io.WriteString(w, `[1,2,3]`)
	case "huge":
		fmt.Fprintf(w, `{"pad":"%s"}`, strings.Repeat("x", 2*MaxUpstreamBody))
	case "redirect":
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	default:
		code, err := strconv.Atoi(step)
		if err != nil {
			panic("unknown step " + step)
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, `{"error":"scripted"}`)
	}
}

// startDownstream runs the downstream in-process on a real socket with env (UPSTREAM_URL set
// from target). Fast retry waits unless env says otherwise.
func startDownstream(t *testing.T, target string, env map[string]string) (string, *caller) {
	t.Helper()
	full := map[string]string{"UPSTREAM_URL": target, "RETRY_BACKOFF": "20ms", "RETRY_MAX_BACKOFF": "100ms"}
	for k, v := range env {
		full[k] = v
	}
	cfg, err := ParseConfig(envOf(full))
	if err != nil {
		t.Fatal(err)
	}
	s, c := newServer(cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	srv := httptest.NewServer(s.Engine)
	t.Cleanup(srv.Close)
	return srv.URL, c
}

// answer is the downstream's reply; call checks the invariants every reply must meet.
type answer struct {
	Code           int            `json:"-"`
	Source         string         `json:"source"`
	Status         string         `json:"status"`
	Upstream       map[string]any `json:"upstream"`
	Error          string         `json:"error"`
	Kind           Kind           `json:"kind"`
	UpstreamStatus int            `json:"upstream_status"`
	Reused         *bool          `json:"reused_connection"`
	ElapsedMS      *int64         `json:"elapsed_ms"`
	Retries        *int           `json:"retries"`
}

func call(t *testing.T, url, method string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, url+"/", nil)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("%s / answered %d with a body that is not JSON: %v", method, resp.StatusCode, err)
	}
	a.Code = resp.StatusCode
	if a.Source != "downstream" || a.ElapsedMS == nil || a.Retries == nil {
		t.Fatalf("every answer needs source, elapsed_ms and retries: %+v", a)
	}
	if (a.Code == http.StatusOK) != (a.Status == StatusOK) {
		t.Fatalf("status %q with HTTP %d: a failure must never be a 200", a.Status, a.Code)
	}
	if a.Code == http.StatusOK && a.Upstream["source"] != "upstream" {
		t.Fatalf("a 200 must carry the upstream's answer: %+v", a)
	}
	if a.Code != http.StatusOK && (a.Error == "" || a.Kind == "") {
		t.Fatalf("a failure must carry error and kind: %+v", a)
	}
	return a
}

func expect(t *testing.T, a answer, code int, status string, kind Kind, retries int) {
	t.Helper()
	if a.Code != code || a.Status != status || a.Kind != kind || *a.Retries != retries {
		t.Fatalf("got %d %s kind=%q retries=%d (%s); want %d %s kind=%q retries=%d",
			a.Code, a.Status, a.Kind, *a.Retries, a.Error, code, status, kind, retries)
	}
}

func TestSuccessWithoutRetry(t *testing.T) {
	up := newUpstream(t, "ok")
	url, _ := startDownstream(t, up.URL, map[string]string{"RETRY_ATTEMPTS": "3"})
	expect(t, call(t, url, http.MethodGet), 200, StatusOK, "", 0)
	if up.requests() != 1 {
		t.Fatalf("upstream saw %d requests, want 1", up.requests())
	}
}

func TestConnectErrorThenSuccess(t *testing.T) {
	addr := refusingAddr(t)
	url, c := startDownstream(t, "http://"+addr, map[string]string{"RETRY_ATTEMPTS": "3"})
	var up atomic.Pointer[upstream]
	c.afterAttempt = func(n int, f *failure) {
		if n == 1 && f != nil && f.kind == KindRefused {
			up.Store(startOn(t, addr, "ok")) // the upstream comes up during the wait
		}
	}
	expect(t, call(t, url, http.MethodGet), 200, StatusOK, "", 1)
	if up.Load() == nil || up.Load().requests() != 1 {
		t.Fatal("the first attempt should have been refused and the second served")
	}
}

func Test502ThenSuccess(t *testing.T) {
	up := newUpstream(t, "502", "ok")
	url, _ := startDownstream(t, up.URL, map[string]string{"RETRY_ATTEMPTS": "3"})
	expect(t, call(t, url, http.MethodGet), 200, StatusOK, "", 1)
}

func TestAllAttemptsRefused(t *testing.T) {
	url, _ := startDownstream(t, "http://"+refusingAddr(t), map[string]string{"RETRY_ATTEMPTS": "3"})
	expect(t, call(t, url, http.MethodGet), 502, StatusUpstreamUnreachable, KindRefused, 2)
}

func TestAllAttempts503(t *testing.T) {
	up := newUpstream(t, "503")
	url, _ := startDownstream(t, up.URL, map[string]string{"RETRY_ATTEMPTS": "3"})
	a := call(t, url, http.MethodGet)
	expect(t, a, 502, StatusUpstreamError, KindHTTP5xx, 2)
	if a.UpstreamStatus != 503 || up.requests() != 3 {
		t.Fatalf("upstream_status %d, upstream saw %d requests; want 503 and 3", a.UpstreamStatus, up.requests())
	}
}

func Test4xxNotRetried(t *testing.T) {
	for _, code := range []string{"404", "400", "429"} {
		t.Run(code, func(t *testing.T) {
			up := newUpstream(t, code, "ok")
			url, _ := startDownstream(t, up.URL, map[string]string{"RETRY_ATTEMPTS": "3"})
			a := call(t, url, http.MethodGet)
			expect(t, a, 502, StatusUpstreamError, KindHTTP4xx, 0)
			if strconv.Itoa(a.UpstreamStatus) != code || up.requests() != 1 {
				t.Fatalf("upstream_status %d, upstream saw %d requests; want %s and 1", a.UpstreamStatus, up.requests(), code)
			}
		})
	}
}

func TestTimeoutThenSuccess(t *testing.T) {
	up := newUpstream(t, "sleep", "ok")
	url, _ := startDownstream(t, up.URL, map[string]string{"RETRY_ATTEMPTS": "3", "UPSTREAM_TIMEOUT": "1s"})
	expect(t, call(t, url, http.MethodGet), 200, StatusOK, "", 1)
}

func TestAllAttemptsTimeOut(t *testing.T) {
	up := newUpstream(t, "sleep")
	url, _ := startDownstream(t, up.URL, map[string]string{"RETRY_ATTEMPTS": "3", "UPSTREAM_TIMEOUT": "300ms"})
	expect(t, call(t, url, http.MethodGet), 504, StatusTimeout, KindTimeout, 2)
	if up.requests() != 3 {
		t.Fatalf("upstream saw %d requests, want 3", up.requests())
	}
}

func TestMixedFailuresThenSuccess(t *testing.T) {
	addr := refusingAddr(t)
	url, c := startDownstream(t, "http://"+addr, map[string]string{"RETRY_ATTEMPTS": "7", "UPSTREAM_TIMEOUT": "1s"})
	var mu sync.Mutex
	var kinds []Kind
	c.afterAttempt = func(n int, f *failure) {
		if f != nil {
			mu.Lock()
			kinds = append(kinds, f.kind)
			mu.Unlock()
		}
		if n == 1 && f != nil && f.kind == KindRefused {
			startOn(t, addr, "503", "sleep", "reset", "eof", "cut", "ok")
		}
	}
	expect(t, call(t, url, http.MethodGet), 200, StatusOK, "", 6)
	want := []Kind{KindRefused, KindHTTP5xx, KindTimeout, KindReset, KindEOF, KindEOF}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("failure kinds %v, want %v", kinds, want)
	}
}

func Test500And504Retried(t *testing.T) {
	for _, code := range []string{"500", "504"} {
		t.Run(code, func(t *testing.T) {
			up := newUpstream(t, code, "ok")
			url, _ := startDownstream(t, up.URL, map[string]string{"RETRY_ATTEMPTS": "3"})
			expect(t, call(t, url, http.MethodGet), 200, StatusOK, "", 1)
		})
	}
}

func TestOther5xxNotRetried(t *testing.T) {
	up := newUpstream(t, "501", "ok")
	url, _ := startDownstream(t, up.URL, map[string]string{"RETRY_ATTEMPTS": "3"})
	expect(t, call(t, url, http.MethodGet), 502, StatusUpstreamError, KindHTTP5xx, 0)
}

func TestNoRetryByDefault(t *testing.T) {
	up := newUpstream(t, "503", "ok")
	url, _ := startDownstream(t, up.URL, nil)
	expect(t, call(t, url, http.MethodGet), 502, StatusUpstreamError, KindHTTP5xx, 0)
}

func TestEveryFailureKindIsANon200(t *testing.T) {
	cases := []struct {
		step   string
		code   int
		status string
		kind   Kind
	}{
		{"reset", 502, StatusUpstreamUnreachable, KindReset},
		{"eof", 502, StatusUpstreamUnreachable, KindEOF},
		{"cut", 502, StatusUpstreamUnreachable, KindEOF},
		{"sleep", 504, StatusTimeout, KindTimeout},
		{"500", 502, StatusUpstreamError, KindHTTP5xx},
		{"404", 502, StatusUpstreamError, KindHTTP4xx},
		{"badjson", 502, StatusUpstreamError, KindBadBody},
		{"notobject", 502, StatusUpstreamError, KindBadBody},
		{"huge", 502, StatusUpstreamError, KindBadBody},
		{"redirect", 502, StatusUpstreamError, KindOther},
	}
	for _, tc := range cases {
		t.Run(tc.step, func(t *testing.T) {
			up := newUpstream(t, tc.step)
			url, _ := startDownstream(t, up.URL, map[string]string{"UPSTREAM_TIMEOUT": "1s"})
			expect(t, call(t, url, http.MethodGet), tc.code, tc.status, tc.kind, 0)
		})
	}
	t.Run("refused", func(t *testing.T) {
		url, _ := startDownstream(t, "http://"+refusingAddr(t), nil)
		expect(t, call(t, url, http.MethodGet), 502, StatusUpstreamUnreachable, KindRefused, 0)
	})
}

func TestPOSTRetriedOnlyWhenItNeverReachedTheUpstream(t *testing.T) {
	t.Run("refused is retried", func(t *testing.T) {
		addr := refusingAddr(t)
		url, c := startDownstream(t, "http://"+addr, map[string]string{"RETRY_ATTEMPTS": "3"})
		var up atomic.Pointer[upstream]
		c.afterAttempt = func(n int, f *failure) {
			if n == 1 && f != nil && f.kind == KindRefused {
				up.Store(startOn(t, addr, "ok"))
			}
		}
		expect(t, call(t, url, http.MethodPost), 200, StatusOK, "", 1)
		if m := up.Load().method(0); m != http.MethodPost {
			t.Fatalf("upstream got %s, want POST", m)
		}
	})
	for _, tc := range []struct {
		step string
		code int
		kind Kind
	}{
		{"503", 502, KindHTTP5xx},
		{"reset", 502, KindReset},
		{"eof", 502, KindEOF},
		{"sleep", 504, KindTimeout},
	} {
		t.Run(tc.step+" is not retried", func(t *testing.T) {
			up := newUpstream(t, tc.step, "ok")
			url, _ := startDownstream(t, up.URL, map[string]string{"RETRY_ATTEMPTS": "3", "UPSTREAM_TIMEOUT": "1s"})
			a := call(t, url, http.MethodPost)
			if a.Code != tc.code || a.Kind != tc.kind || *a.Retries != 0 || up.requests() != 1 {
				t.Fatalf("POST after %s: %d kind=%s retries=%d, upstream saw %d; want %d %s, no retry",
					tc.step, a.Code, a.Kind, *a.Retries, up.requests(), tc.code, tc.kind)
			}
		})
		t.Run(tc.step+" is retried for GET", func(t *testing.T) {
			up := newUpstream(t, tc.step, "ok")
			url, _ := startDownstream(t, up.URL, map[string]string{"RETRY_ATTEMPTS": "3", "UPSTREAM_TIMEOUT": "1s"})
			expect(t, call(t, url, http.MethodGet), 200, StatusOK, "", 1)
		})
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	cfg := Config{RetryBackoff: 100 * time.Millisecond, RetryMaxBackoff: 500 * time.Millisecond}
	for run := range 200 {
		p := newPolicy(cfg, time.Now().Add(time.Hour))
		p.Reset()
		for k := range 8 {
			nominal := min(cfg.RetryBackoff<<k, cfg.RetryMaxBackoff)
			lo := time.Duration(float64(nominal) * (1 - Jitter))
			hi := min(time.Duration(float64(nominal)*(1+Jitter))+time.Nanosecond, cfg.RetryMaxBackoff)
			d := p.NextBackOff()
			if d < lo || d > hi {
				t.Fatalf("run %d wait %d = %v, want in [%v, %v]", run, k, d, lo, hi)
			}
		}
	}
}

func TestBackoffStopsBeforeTheDeadline(t *testing.T) {
	cfg := Config{RetryBackoff: 200 * time.Millisecond, RetryMaxBackoff: time.Second}
	p := newPolicy(cfg, time.Now().Add(100*time.Millisecond))
	p.Reset()
	if d := p.NextBackOff(); d != -1 {
		t.Fatalf("a wait ending after the deadline must stop the retries, got %v", d)
	}
}

func TestRetryWaitsGrowBetweenAttempts(t *testing.T) {
	up := newUpstream(t, "503")
	url, _ := startDownstream(t, up.URL, map[string]string{"RETRY_ATTEMPTS": "5", "RETRY_BACKOFF": "50ms", "RETRY_MAX_BACKOFF": "120ms"})
	expect(t, call(t, url, http.MethodGet), 502, StatusUpstreamError, KindHTTP5xx, 4)
	at := up.arrivalTimes()
	// Lower bounds only: a loaded machine makes waits longer, never shorter.
	minGap := []time.Duration{40, 80, 96, 96} // 50, 100, then the 120 cap, each minus 20% jitter
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < minGap[i-1]*time.Millisecond {
			t.Fatalf("wait before attempt %d was %v, want >= %vms", i+1, gap, minGap[i-1])
		}
	}
}

func TestRequestDeadlineBoundsTheWholeCall(t *testing.T) {
	up := newUpstream(t, "sleep")
	url, _ := startDownstream(t, up.URL, map[string]string{
		"RETRY_ATTEMPTS": "10", "UPSTREAM_TIMEOUT": "600ms", "REQUEST_DEADLINE": "1600ms",
		"RETRY_BACKOFF": "200ms", "RETRY_MAX_BACKOFF": "200ms",
	})
	start := time.Now()
	a := call(t, url, http.MethodGet)
	expect(t, a, 504, StatusTimeout, KindTimeout, *a.Retries)
	// 600 + ~200 + 600 + ~200 leaves no room for a third full attempt: 2 or 3 start, all before
	// the deadline; never the 10 allowed.
	if n := up.requests(); n < 2 || n > 3 {
		t.Fatalf("upstream saw %d attempts, want 2 or 3 within a 1600ms deadline", n)
	}
	// The slack covers the trip from the downstream to the upstream on a loaded machine.
	for i, at := range up.arrivalTimes() {
		if at.Sub(start) >= 1900*time.Millisecond {
			t.Fatalf("attempt %d started %v after the call, past the deadline", i+1, at.Sub(start))
		}
	}
	if *a.ElapsedMS < 1300 {
		t.Fatalf("elapsed_ms %d: the call gave up before its deadline", *a.ElapsedMS)
	}
}

func TestClientModes(t *testing.T) {
	for _, tc := range []struct {
		mode      string
		wantConns int32
	}{{"per-request", 5}, {"pooled", 1}} {
		t.Run(tc.mode, func(t *testing.T) {
			up := newUpstream(t, "ok")
			url, _ := startDownstream(t, up.URL, map[string]string{"CLIENT": tc.mode})
			for range 5 {
				expect(t, call(t, url, http.MethodGet), 200, StatusOK, "", 0)
			}
			if got := up.conns.Load(); got != tc.wantConns {
				t.Fatalf("CLIENT=%s opened %d connections for 5 sequential calls, want %d", tc.mode, got, tc.wantConns)
			}
		})
	}
}

func TestHealthAndUnknownPath(t *testing.T) {
	url, _ := startDownstream(t, "http://"+refusingAddr(t), nil)
	resp, err := http.Get(url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"healthy"`) {
		t.Fatalf("health = %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get(url + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown path = %d, want 404", resp.StatusCode)
	}
}

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.UpstreamURL.String() != DefaultUpstreamURL || c.Client != Pooled || c.RetryAttempts != 1 ||
		c.RetryBackoff != 500*time.Millisecond || c.RetryMaxBackoff != 2*time.Second ||
		c.UpstreamTimeout != 5*time.Second || c.RequestDeadline != 9*time.Second || c.Serve.Port != DefaultPort {
		t.Fatalf("defaults: %+v", c)
	}
	valid := []map[string]string{
		{"UPSTREAM_URL": "http://upstream:7000"},
		{"UPSTREAM_URL": "http://upstream:7000/"},
		{"UPSTREAM_URL": "https://upstream.default.svc.cluster.local"},
		{"UPSTREAM_URL": "http://127.64.0.9:7000/prefix"},
		{"UPSTREAM_URL": "http://[::1]:7000"},
		{"CLIENT": "per-request"},
		{"CLIENT": "pooled"},
		{"RETRY_ATTEMPTS": "3"},
		{"RETRY_ATTEMPTS": "10"},
		{"RETRY_BACKOFF": "1s", "RETRY_MAX_BACKOFF": "1s"},
		{"UPSTREAM_TIMEOUT": "100ms"},
		{"REQUEST_DEADLINE": "14s"},
		{"REQUEST_DEADLINE": "30s", "DRAIN_TIMEOUT": "31s"},
		{"REQUEST_DEADLINE": "30s", "SHUTDOWN": "immediate"},
	}
	for _, env := range valid {
		if _, err := ParseConfig(envOf(env)); err != nil {
			t.Errorf("%v: %v", env, err)
		}
	}
	if c, _ := ParseConfig(envOf(map[string]string{"UPSTREAM_URL": "http://upstream:7000/"})); c.UpstreamURL.String()+"/api/data" != "http://upstream:7000/api/data" {
		t.Errorf("trailing slash kept: %s", c.UpstreamURL)
	}
	invalid := []struct {
		env   map[string]string
		blame string
	}{
		{map[string]string{"UPSTREAM_URL": "upstream:7000"}, "UPSTREAM_URL"},
		{map[string]string{"UPSTREAM_URL": "ftp://upstream"}, "UPSTREAM_URL"},
		{map[string]string{"UPSTREAM_URL": "http://"}, "UPSTREAM_URL"},
		{map[string]string{"UPSTREAM_URL": "http://upstream:notaport"}, "UPSTREAM_URL"},
		{map[string]string{"UPSTREAM_URL": "http://upstream:99999"}, "UPSTREAM_URL"},
		{map[string]string{"UPSTREAM_URL": "http://upstream:7000?x=1"}, "UPSTREAM_URL"},
		{map[string]string{"UPSTREAM_URL": "http://user:pw@upstream:7000"}, "UPSTREAM_URL"},
		{map[string]string{"UPSTREAM_URL": "http://up stream"}, "UPSTREAM_URL"},
		{map[string]string{"UPSTREAM_URL": "%zz"}, "UPSTREAM_URL"},
		{map[string]string{"CLIENT": "shared"}, "CLIENT"},
		{map[string]string{"UPSTREAM_METHOD": "PUT"}, "UPSTREAM_METHOD"},
		{map[string]string{"UPSTREAM_METHOD": "post"}, "UPSTREAM_METHOD"},
		{map[string]string{"PROTOCOL": "h2"}, "PROTOCOL"},
		{map[string]string{"UPSTREAM_IDLE_TIMEOUT": "60s"}, "UPSTREAM_IDLE_TIMEOUT"},
		{map[string]string{"UPSTREAM_IDLE_TIMEOUT": "0s"}, "UPSTREAM_IDLE_TIMEOUT"},
		{map[string]string{"RETIRE_KEEPALIVE": "off"}, "RETIRE_KEEPALIVE"},
		{map[string]string{"RETRY_ATTEMPTS": "0"}, "RETRY_ATTEMPTS"},
		{map[string]string{"RETRY_ATTEMPTS": "11"}, "RETRY_ATTEMPTS"},
		{map[string]string{"RETRY_ATTEMPTS": "three"}, "RETRY_ATTEMPTS"},
		{map[string]string{"RETRY_BACKOFF": "0s"}, "RETRY_BACKOFF"},
		{map[string]string{"RETRY_BACKOFF": "fast"}, "RETRY_BACKOFF"},
		{map[string]string{"RETRY_BACKOFF": "3s"}, "RETRY_BACKOFF"},
		{map[string]string{"RETRY_MAX_BACKOFF": "100ms"}, "RETRY_MAX_BACKOFF"},
		{map[string]string{"RETRY_MAX_BACKOFF": "-2s"}, "RETRY_MAX_BACKOFF"},
		{map[string]string{"UPSTREAM_TIMEOUT": "0"}, "UPSTREAM_TIMEOUT"},
		{map[string]string{"UPSTREAM_TIMEOUT": "5"}, "UPSTREAM_TIMEOUT"},
		{map[string]string{"REQUEST_DEADLINE": "never"}, "REQUEST_DEADLINE"},
		{map[string]string{"REQUEST_DEADLINE": "15s"}, "REQUEST_DEADLINE"},
		{map[string]string{"DRAIN_TIMEOUT": "5s"}, "DRAIN_TIMEOUT"},
		{map[string]string{"SHUTDOWN": "maybe"}, "SHUTDOWN"},
		{map[string]string{"HOST": "my-host"}, "HOST"},
	}
	for _, tc := range invalid {
		_, err := ParseConfig(envOf(tc.env))
		var envErr *service.EnvError
		if !errors.As(err, &envErr) || envErr.Name != tc.blame {
			t.Errorf("%v: want an error naming %s, got %v", tc.env, tc.blame, err)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, tc.blame+"=") {
			t.Errorf("%v: error %q is not one line naming %s", tc.env, msg, tc.blame)
		}
	}
}

func TestMainRefusesBadConfigWithOneLine(t *testing.T) {
	var stderr strings.Builder
	if code := Main(envOf(map[string]string{"UPSTREAM_URL": "not a url"}), &stderr); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	if out := stderr.String(); strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "downstream: UPSTREAM_URL=") {
		t.Fatalf("want one line naming UPSTREAM_URL, got %q", out)
	}
}

// The 5xx body says whether the failed attempt used a reused pooled connection; UPSTREAM_METHOD
// makes every call a POST, which Go's transport never resends on its own.
func TestFailureBodySaysWhetherTheConnectionWasReused(t *testing.T) {
	for client, wantReused := range map[ClientMode]bool{Pooled: true, PerRequest: false} {
		t.Run(string(client), func(t *testing.T) {
			up := newUpstream(t, "ok", "eof")
			url, _ := startDownstream(t, up.URL, map[string]string{"CLIENT": string(client), "UPSTREAM_METHOD": "POST"})
			expect(t, call(t, url, http.MethodGet), 200, StatusOK, "", 0)
			a := call(t, url, http.MethodGet)
			expect(t, a, 502, StatusUpstreamUnreachable, KindEOF, 0)
			if a.Reused == nil || *a.Reused != wantReused {
				t.Fatalf("reused_connection = %v, want %v", a.Reused, wantReused)
			}
			if up.method(0) != http.MethodPost || up.method(1) != http.MethodPost {
				t.Fatalf("upstream saw %s, %s; want POST both times", up.method(0), up.method(1))
			}
		})
	}
}

func TestH2CSpeaksHTTP2ToTheUpstream(t *testing.T) {
	var proto atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(int32(r.ProtoMajor))
		_, _ = io.WriteString(w, `{"source":"upstream"}`)
	}))
	up.Config.Protocols = new(http.Protocols)
	up.Config.Protocols.SetHTTP1(true)
	up.Config.Protocols.SetUnencryptedHTTP2(true)
	up.Start()
	defer up.Close()
	for p, want := range map[Protocol]int32{HTTP1: 1, H2C: 2} {
		url, _ := startDownstream(t, up.URL, map[string]string{"PROTOCOL": string(p)})
		expect(t, call(t, url, http.MethodPost), 200, StatusOK, "", 0)
		if got := proto.Load(); got != want {
			t.Errorf("PROTOCOL=%s: the upstream saw HTTP/%d, want HTTP/%d", p, got, want)
		}
	}
	if _, err := ParseConfig(envOf(map[string]string{"PROTOCOL": "h2c", "UPSTREAM_URL": "https://up:7000"})); err == nil {
		t.Error("PROTOCOL=h2c with an https:// UPSTREAM_URL must be refused")
	}
}
