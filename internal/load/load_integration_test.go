package load

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runFor starts cfg and waits for its result, failing the test if it does not end in time.
func runFor(t *testing.T, cfg Config) *Result {
	t.Helper()
	run, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	limit := cfg.Duration + cfg.Timeout + 10*time.Second
	select {
	case <-run.Done():
	case <-time.After(limit):
		run.Stop()
		t.Fatalf("run did not end within %s", limit)
	}
	res := run.Result()
	if res == nil {
		t.Fatal("Result is nil after Done")
	}
	if p := run.Progress(); p.Requests != res.Requests || p.Errors != res.Errors || p.InFlight != 0 {
		t.Errorf("final progress %+v disagrees with result: requests %d errors %d", p, res.Requests, res.Errors)
	}
	return res
}

// checkTotals asserts that every request has exactly one outcome and the counts agree.
func checkTotals(t *testing.T, res *Result) {
	t.Helper()
	var sum int64
	for _, c := range ErrorClasses {
		n, ok := res.ErrorsByKind[c]
		if !ok {
			t.Errorf("errors_by_kind lacks %q", c)
		}
		sum += n
	}
	if sum != res.Errors || res.OK+res.Errors != res.Requests {
		t.Errorf("counts do not add up: ok %d + errors %d (by class %d) != requests %d", res.OK, res.Errors, sum, res.Requests)
	}
	var line, lineErr int64
	for i, s := range res.Timeline {
		if s.Second != i {
			t.Errorf("timeline[%d] is second %d", i, s.Second)
		}
		line += s.Requests
		lineErr += s.Errors
	}
	if line != res.Requests || lineErr != res.Errors {
		t.Errorf("timeline holds %d requests, %d errors; result %d, %d", line, lineErr, res.Requests, res.Errors)
	}
	var failed int64
	for _, d := range res.Disruptions {
		failed += d.RequestsFailed
	}
	if failed != res.Errors {
		t.Errorf("disruptions hold %d failures, result has %d errors", failed, res.Errors)
	}
}

func TestIntegrationOutcomeClasses(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: real servers")
	}
	cases := []struct {
		name    string
		url     func(t *testing.T) string
		want    Outcome
		kind    string // expected upstream kind, for 5xx
		retries int64  // expected retries per request
		errText string // expected in the first error
	}{
		{"refused", refusingURL, Refused, "", 0, "connection refused"},
		{"reset mid-response", func(t *testing.T) string { u, _ := serve(t, resetting(t)); return u }, Reset, "", 0, "reset"},
		{"closes after headers", func(t *testing.T) string { u, _ := serve(t, closesAfterHeaders(t)); return u }, EOF, "", 0, "EOF"},
		{"closes without answer", func(t *testing.T) string { u, _ := serve(t, closesWithoutAnswer(t)); return u }, EOF, "", 0, "EOF"},
		{"never answers", silentURL, Timeout, "", 0, "deadline exceeded"},
		{"500 with kind", func(t *testing.T) string {
			u, _ := serve(t, jsonReply(502, `{"status":"error","kind":"reset","retries":2,"error":"upstream connection reset"}`))
			return u
		}, HTTP5xx, "reset", 2, "502 Bad Gateway (kind reset): upstream connection reset"},
		{"500 plain", func(t *testing.T) string { u, _ := serve(t, jsonReply(500, "oops")); return u }, HTTP5xx, "", 0, "500"},
		{"404", func(t *testing.T) string { u, _ := serve(t, jsonReply(404, `{"detail":"not found"}`)); return u }, HTTP4xx, "", 0, "404 Not Found: not found"},
		{"200 status error", func(t *testing.T) string {
			u, _ := serve(t, jsonReply(200, `{"status":"timeout","retries":1}`))
			return u
		}, BodyNotOK, "", 1, `200 OK with status "timeout"`},
		{"302", func(t *testing.T) string {
			u, _ := serve(t, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) })
			return u
		}, Other, "", 0, "302"},
		{"200 ok", func(t *testing.T) string { u, _ := serve(t, jsonReply(200, `{"status":"ok","retries":1}`)); return u }, OK, "", 1, ""},
		{"200 not JSON", func(t *testing.T) string { u, _ := serve(t, jsonReply(200, "<html>fine</html>")); return u }, OK, "", 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := runFor(t, Config{URL: tc.url(t), VUs: 2, Think: 20 * time.Millisecond,
				Duration: 300 * time.Millisecond, Timeout: 500 * time.Millisecond})
			checkTotals(t, res)
			if res.Requests < 2 {
				t.Fatalf("only %d requests in 300ms with 2 VUs", res.Requests)
			}
			var got int64
			if tc.want == OK {
				got = res.OK
			} else {
				got = res.ErrorsByKind[tc.want]
			}
			if got != res.Requests {
				t.Errorf("%d of %d requests classed %s; result: ok %d, by class %v; disruptions %+v",
					got, res.Requests, tc.want, res.OK, res.ErrorsByKind, res.Disruptions)
			}
			if tc.kind != "" && res.UpstreamKinds[tc.kind] != res.Requests {
				t.Errorf("upstream kinds %v, want %q for all %d", res.UpstreamKinds, tc.kind, res.Requests)
			}
			if tc.kind == "" && len(res.UpstreamKinds) != 0 {
				t.Errorf("upstream kinds %v, want none", res.UpstreamKinds)
			}
			if res.Retries != tc.retries*res.Requests {
				t.Errorf("retries %d, want %d", res.Retries, tc.retries*res.Requests)
			}
			if tc.want == OK {
				if len(res.Disruptions) != 0 {
					t.Errorf("disruptions on a healthy server: %+v", res.Disruptions)
				}
				return
			}
			// Failures all through the run: one disruption from the first request on.
			if len(res.Disruptions) != 1 {
				t.Fatalf("want 1 disruption, got %+v", res.Disruptions)
			}
			d := res.Disruptions[0]
			if !strings.Contains(d.FirstError, tc.errText) {
				t.Errorf("first error %q does not mention %q", d.FirstError, tc.errText)
			}
			if d.StartOffset < 0 || d.StartOffset > 0.1 || d.EndOffset < d.StartOffset || d.Classes[tc.want] != res.Requests {
				t.Errorf("disruption %+v", d)
			}
		})
	}
}

// Requests in flight when the run ends are awaited, then counted as timeouts.
func TestIntegrationInFlightAtEndCountAsTimeouts(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: real servers")
	}
	url := silentURL(t)
	run, err := Start(Config{URL: url, VUs: 3, Timeout: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for run.Progress().InFlight < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	run.Stop()
	if run.Result() != nil {
		t.Error("Result is set before Done")
	}
	select {
	case <-run.Done():
		t.Fatal("Done before the in-flight requests timed out")
	case <-time.After(100 * time.Millisecond):
	}
	<-run.Done()
	res := run.Result()
	checkTotals(t, res)
	if res.Requests != 3 || res.ErrorsByKind[Timeout] != 3 {
		t.Errorf("want 3 timeouts, got requests %d by class %v", res.Requests, res.ErrorsByKind)
	}
	if res.Latency.Max < 400 {
		t.Errorf("timeouts measured %vms, want >= the 400ms timeout", res.Latency.Max)
	}
	if !res.End.After(res.SendEnd) {
		t.Errorf("end %v not after send end %v", res.End, res.SendEnd)
	}
}

// The open model sends one request per slot: rate × duration of them, all counted.
func TestIntegrationOpenModelKeepsSchedule(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: real servers")
	}
	url, served := serve(t, jsonReply(200, `{"status":"ok"}`))
	res := runFor(t, Config{URL: url, Model: Open, Rate: 200, Duration: time.Second, Timeout: 2 * time.Second, Connections: ConnectionsReuse})
	checkTotals(t, res)
	if res.Requests != 200 {
		t.Errorf("requests %d, want exactly 200 slots (200/s for 1s)", res.Requests)
	}
	if res.Sent+res.ErrorsByKind[Dropped] != res.Requests || served.Load() != res.Sent {
		t.Errorf("server saw %d, result sent %d dropped %d of %d", served.Load(), res.Sent, res.ErrorsByKind[Dropped], res.Requests)
	}
	if res.OK != res.Requests {
		t.Errorf("ok %d of %d against a fast server; by class %v", res.OK, res.Requests, res.ErrorsByKind)
	}
	if len(res.Timeline) != 1 || res.Timeline[0].Requests != 200 {
		t.Errorf("timeline %+v, want one second of 200", res.Timeline)
	}
	if res.SendLag == nil || res.SendLag.Max <= 0 {
		t.Errorf("send lag not measured: %+v", res.SendLag)
	}
	if got := res.SendEnd.Sub(res.Start); got != time.Second {
		t.Errorf("send end %s after start, want the nominal 1s", got)
	}
}

// A server slower than the schedule yields dropped requests and latencies from the scheduled
// time, never a lower rate passed off as the target.
func TestIntegrationOpenModelSlowServerDrops(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: real servers")
	}
	var concurrent, peak atomic.Int64
	url, served := serve(t, func(w http.ResponseWriter, r *http.Request) {
		n := concurrent.Add(1)
		defer concurrent.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(200 * time.Millisecond)
		jsonReply(200, `{"status":"ok"}`)(w, r)
	})
	res := runFor(t, Config{URL: url, Model: Open, Rate: 100, MaxInFlight: 4, Duration: time.Second, Timeout: 2 * time.Second})
	checkTotals(t, res)
	dropped := res.ErrorsByKind[Dropped]
	if res.Requests != 100 {
		t.Errorf("requests %d, want all 100 slots recorded", res.Requests)
	}
	// 4 in flight × 200 ms each serve at most ~4 × (1s/200ms + 1) = 24 in the second.
	if dropped < 60 || res.OK+dropped != res.Requests {
		t.Errorf("ok %d, dropped %d of %d; want most dropped and the rest ok", res.OK, dropped, res.Requests)
	}
	if peak.Load() > 4 || served.Load() != res.Sent {
		t.Errorf("server peak concurrency %d (cap 4), served %d, sent %d", peak.Load(), served.Load(), res.Sent)
	}
	if res.Latency.P50 < 200 {
		t.Errorf("p50 %vms, below the server's 200ms", res.Latency.P50)
	}
	if len(res.Disruptions) == 0 || res.Disruptions[0].Classes[Dropped] != dropped {
		t.Errorf("dropped requests are not in the disruptions: %+v", res.Disruptions)
	}
}

// Without a binding cap, latency counts from the scheduled time, so queueing shows.
func TestIntegrationOpenModelLatencyFromSchedule(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: real servers")
	}
	// One request at a time: a server that serialises makes later slots wait for earlier ones.
	sem := make(chan struct{}, 1)
	url, served := serve(t, func(w http.ResponseWriter, r *http.Request) {
		sem <- struct{}{}
		defer func() { <-sem }()
		time.Sleep(50 * time.Millisecond)
		jsonReply(200, `{"status":"ok"}`)(w, r)
	})
	res := runFor(t, Config{URL: url, Model: Open, Rate: 40, Duration: 500 * time.Millisecond, Timeout: 5 * time.Second})
	checkTotals(t, res)
	if res.Requests != 20 || served.Load() != 20 || res.OK != 20 {
		t.Fatalf("requests %d, served %d, ok %d: want 20 each", res.Requests, served.Load(), res.OK)
	}
	// 20 requests of 50ms each served one by one, arriving every 25ms: the last waits ~500ms.
	if res.Latency.Max < 400 {
		t.Errorf("max latency %vms: queueing behind the slow server is not counted", res.Latency.Max)
	}
}

func TestIntegrationConnectionPolicies(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: real servers")
	}
	for _, tc := range []struct {
		connections string
		method      string
		reuse       bool
	}{{ConnectionsNew, "GET", false}, {ConnectionsReuse, "GET", true}, {ConnectionsReuse, "POST", true}} {
		t.Run(tc.connections+" "+tc.method, func(t *testing.T) {
			var conns addrSet
			var badMethod atomic.Int64
			url, served := serve(t, func(w http.ResponseWriter, r *http.Request) {
				conns.add(r.RemoteAddr)
				if r.Method != tc.method || (tc.method == "POST" && r.Header.Get("Content-Type") != "application/json") {
					badMethod.Add(1)
				}
				jsonReply(200, `{"status":"ok"}`)(w, r)
			})
			res := runFor(t, Config{URL: url, Method: tc.method, VUs: 2, Think: 10 * time.Millisecond,
				Duration: 300 * time.Millisecond, Timeout: time.Second, Connections: tc.connections})
			checkTotals(t, res)
			if res.OK != res.Requests || served.Load() != res.Requests || badMethod.Load() != 0 {
				t.Fatalf("ok %d of %d, served %d, wrong method %d", res.OK, res.Requests, served.Load(), badMethod.Load())
			}
			n := conns.count()
			if tc.reuse && n > 2 {
				t.Errorf("%d connections for 2 VUs with keep-alive", n)
			}
			if !tc.reuse && int64(n) != res.Requests {
				t.Errorf("%d connections for %d requests, want one each", n, res.Requests)
			}
		})
	}
}

// addrSet counts distinct client addresses: one per TCP connection.
type addrSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func (s *addrSet) add(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]bool{}
	}
	s.m[addr] = true
}

func (s *addrSet) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func TestIntegrationJSONSchema(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: real servers")
	}
	var n atomic.Int64
	url, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%3 == 0 {
			jsonReply(502, `{"status":"error","kind":"refused","retries":3}`)(w, r)
			return
		}
		jsonReply(200, `{"status":"ok","retries":0}`)(w, r)
	})
	res := runFor(t, Config{URL: url, Model: Open, Rate: 50, Duration: 1500 * time.Millisecond, Timeout: time.Second})
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	checkSchema(t, buf.Bytes())
	var back Result
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not decode into Result: %v", err)
	}
	var again bytes.Buffer
	if err := back.WriteJSON(&again); err != nil {
		t.Fatal(err)
	}
	if again.String() != buf.String() {
		t.Errorf("JSON does not round-trip:\n%s\nvs\n%s", buf.String(), again.String())
	}
	if back.ErrorsByKind[HTTP5xx] != 25 || back.UpstreamKinds["refused"] != 25 || back.Retries != 75 {
		t.Errorf("75 requests, every third a 502 kind refused with 3 retries: got by class %v kinds %v retries %d",
			back.ErrorsByKind, back.UpstreamKinds, back.Retries)
	}
}
