package upstream

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/service"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseConfig(t *testing.T) {
	valid := []struct {
		name     string
		env      map[string]string
		min, max time.Duration
	}{
		{"defaults", nil, 100 * time.Millisecond, 200 * time.Millisecond},
		{"range", map[string]string{"WORK_MIN": "1s", "WORK_MAX": "2s"}, time.Second, 2 * time.Second},
		{"zero work", map[string]string{"WORK_MIN": "0", "WORK_MAX": "0s"}, 0, 0},
		{"fixed work", map[string]string{"WORK_MIN": "150ms", "WORK_MAX": "150ms"}, 150 * time.Millisecond, 150 * time.Millisecond},
		{"only max", map[string]string{"WORK_MAX": "1s"}, 100 * time.Millisecond, time.Second},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig(envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if c.WorkMin != tc.min || c.WorkMax != tc.max {
				t.Fatalf("work [%v, %v], want [%v, %v]", c.WorkMin, c.WorkMax, tc.min, tc.max)
			}
			if c.Serve.Port != DefaultPort {
				t.Fatalf("port %d, want %d", c.Serve.Port, DefaultPort)
			}
		})
	}
	invalid := []struct {
		name  string
		env   map[string]string
		blame string
	}{
		{"min text", map[string]string{"WORK_MIN": "abc"}, "WORK_MIN"},
		{"max text", map[string]string{"WORK_MAX": "lots"}, "WORK_MAX"},
		{"min negative", map[string]string{"WORK_MIN": "-1ms"}, "WORK_MIN"},
		{"min above max", map[string]string{"WORK_MIN": "300ms", "WORK_MAX": "200ms"}, "WORK_MIN"},
		{"max below default min", map[string]string{"WORK_MAX": "50ms"}, "WORK_MAX"},
		{"lifecycle variable", map[string]string{"SHUTDOWN": "maybe"}, "SHUTDOWN"},
		{"port", map[string]string{"PORT": "seven"}, "PORT"},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig(envOf(tc.env))
			var envErr *service.EnvError
			if !errors.As(err, &envErr) || envErr.Name != tc.blame {
				t.Fatalf("want an error naming %s, got %v", tc.blame, err)
			}
		})
	}
}

func TestMainRefusesBadConfigWithOneLine(t *testing.T) {
	var stderr strings.Builder
	code := Main(envOf(map[string]string{"WORK_MIN": "abc"}), &stderr)
	if code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	out := stderr.String()
	if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "upstream: WORK_MIN=") {
		t.Fatalf("want one line naming WORK_MIN, got %q", out)
	}
}

func TestDataAnswersAfterWork(t *testing.T) {
	cfg, err := ParseConfig(envOf(map[string]string{"WORK_MIN": "20ms", "WORK_MAX": "40ms", "HOSTNAME": "upstream-abc"}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(cfg, slog.New(slog.NewJSONHandler(io.Discard, nil))).Engine)
	defer srv.Close()
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		req, _ := http.NewRequest(method, srv.URL+"/api/data", strings.NewReader(`{"ignored":true}`))
		start := time.Now()
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		var body struct {
			Source    string `json:"source"`
			Message   string `json:"message"`
			LatencyMS *int64 `json:"latency_ms"`
			Timestamp string `json:"timestamp"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || body.Source != "upstream" || body.LatencyMS == nil || !strings.Contains(body.Message, "upstream-abc") {
			t.Fatalf("%s /api/data = %d %+v", method, resp.StatusCode, body)
		}
		if *body.LatencyMS < 20 {
			t.Fatalf("latency_ms %d below WORK_MIN", *body.LatencyMS)
		}
		if elapsed < 20*time.Millisecond {
			t.Fatalf("answered after %v, before WORK_MIN", elapsed)
		}
		if _, err := time.Parse(time.RFC3339Nano, body.Timestamp); err != nil {
			t.Fatalf("timestamp %q: %v", body.Timestamp, err)
		}
	}
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/api/data", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("PUT /api/data = %d, want 405", resp.StatusCode)
	}
}
