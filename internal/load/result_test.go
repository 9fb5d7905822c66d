package load

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// checkSchema asserts the documented JSON schema: every key present, with the right shape.
func checkSchema(t *testing.T, data []byte) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	need := func(where string, m map[string]any, keys ...string) {
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s lacks %q", where, k)
			}
		}
	}
	object := func(where string, v any) map[string]any {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s is %T, want an object", where, v)
		}
		return m
	}
	need("result", doc, "start", "send_end", "end", "config", "requests", "sent", "ok", "errors", "error_rate", "rps",
		"errors_by_kind", "upstream_kinds", "retries", "latency_ms", "timeline", "disruptions")
	for _, k := range []string{"start", "send_end", "end"} {
		if s, _ := doc[k].(string); s == "" {
			t.Errorf("%s = %v, want an RFC 3339 time", k, doc[k])
		} else if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	need("config", object("config", doc["config"]), "url", "method", "model", "duration", "timeout", "connections")
	classes := make([]string, len(ErrorClasses))
	for i, c := range ErrorClasses {
		classes[i] = string(c)
	}
	byKind := object("errors_by_kind", doc["errors_by_kind"])
	need("errors_by_kind", byKind, classes...)
	if len(byKind) != len(classes) {
		t.Errorf("errors_by_kind has %d keys, want the %d error classes", len(byKind), len(classes))
	}
	object("upstream_kinds", doc["upstream_kinds"])
	need("latency_ms", object("latency_ms", doc["latency_ms"]), "avg", "p50", "p90", "p95", "p99", "max")
	timeline, ok := doc["timeline"].([]any)
	if !ok || len(timeline) == 0 {
		t.Fatalf("timeline is %v, want a non-empty list", doc["timeline"])
	}
	for _, s := range timeline {
		sec := object("timeline entry", s)
		need("timeline entry", sec, "second", "requests", "ok", "errors", "errors_by_kind", "p50_ms", "p99_ms", "max_ms")
		need("timeline errors_by_kind", object("timeline errors_by_kind", sec["errors_by_kind"]), classes...)
	}
	disruptions, ok := doc["disruptions"].([]any)
	if !ok {
		t.Fatalf("disruptions is %v, want a list", doc["disruptions"])
	}
	for _, d := range disruptions {
		need("disruption", object("disruption", d), "start", "end", "start_offset_s", "end_offset_s",
			"requests_failed", "first_error", "classes")
	}
}

// syntheticResult feeds the recorder a fixed story: a healthy second, a disruption of
// refusals and 502s in second 1, a timeout ending in second 3, then health again.
func syntheticResult(model Model) *Result {
	start := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	rec := newRecorder(start, model == Open)
	add := func(sentMs, latMs int, a answer) {
		sent := at(sentMs)
		idx := rec.begin(sent)
		lat := time.Duration(latMs) * time.Millisecond
		lag := time.Duration(-1)
		if model == Open {
			lag = time.Duration(sentMs%7) * 100 * time.Microsecond
		}
		if a.outcome == Dropped {
			lat, lag = -1, -1
		}
		rec.finish(idx, sent, sent.Add(max(lat, 0)), lat, lag, a)
	}
	ok := answer{outcome: OK}
	for ms := 0; ms < 1000; ms += 100 {
		add(ms, 150+ms/20, ok)
	}
	add(1000, 2, answer{outcome: Refused, err: `Get "http://127.0.0.1:8000/": dial tcp 127.0.0.1:8000: connect: connection refused`})
	add(1100, 160, ok)
	add(1200, 170, answer{outcome: HTTP5xx, kind: "reset", retries: 2, err: "502 Bad Gateway (kind reset): upstream connection reset"})
	add(1300, 5000, answer{outcome: Timeout, err: "context deadline exceeded"})
	add(1400, 180, answer{outcome: HTTP5xx, kind: "refused", retries: 2, err: "502 Bad Gateway (kind refused)"})
	if model == Open {
		add(1500, 0, answer{outcome: Dropped, err: "dropped: 4 requests already in flight at its slot"})
	}
	for ms := 1600; ms < 3000; ms += 100 {
		add(ms, 140, answer{outcome: OK, retries: 1})
	}
	cfg := Config{URL: "http://127.0.0.1:8000/", Method: "GET", Model: Closed, VUs: 15, Think: 100 * time.Millisecond,
		Duration: 3 * time.Second, Timeout: 10 * time.Second, Connections: ConnectionsNew}
	if model == Open {
		cfg.Model, cfg.VUs, cfg.Think, cfg.Rate, cfg.MaxInFlight, cfg.Connections = Open, 0, 0, 10, 4, ConnectionsReuse
	}
	return rec.result(cfg, at(3000), at(6300))
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestSummaryGolden(t *testing.T) {
	for _, model := range []Model{Closed, Open} {
		t.Run(string(model), func(t *testing.T) {
			var buf bytes.Buffer
			if err := syntheticResult(model).WriteSummary(&buf); err != nil {
				t.Fatal(err)
			}
			golden(t, "summary_"+string(model)+".golden", buf.Bytes())
		})
	}
}

func TestSummaryNoErrors(t *testing.T) {
	start := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	rec := newRecorder(start, false)
	idx := rec.begin(start)
	rec.finish(idx, start, start.Add(time.Millisecond), time.Millisecond, -1, answer{outcome: OK})
	var buf bytes.Buffer
	if err := rec.result(Config{URL: "http://x/", Method: "GET", VUs: 1}, start.Add(time.Second), start.Add(time.Second)).WriteSummary(&buf); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary_no_errors.golden", buf.Bytes())
}

func TestJSONGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := syntheticResult(Open).WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	checkSchema(t, buf.Bytes())
	golden(t, "result_open.golden.json", buf.Bytes())
}
