package downstream

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	upsvc "github.com/gracelab/gracelab/internal/upstream"
)

// BenchmarkDownstreamHop measures the downstream at zero upstream work: 15 concurrent
// keep-alive clients -> downstream -> the real upstream handler, both in this process on
// loopback sockets. Reports req/s; the README's figure comes from here.
func BenchmarkDownstreamHop(b *testing.B) {
	for _, mode := range []string{"pooled", "per-request"} {
		b.Run(mode, func(b *testing.B) {
			quiet := slog.New(slog.NewJSONHandler(io.Discard, nil))
			ucfg, err := upsvc.ParseConfig(envOf(map[string]string{"WORK_MIN": "0", "WORK_MAX": "0"}))
			if err != nil {
				b.Fatal(err)
			}
			up := httptest.NewServer(upsvc.New(ucfg, quiet).Engine)
			defer up.Close()
			cfg, err := ParseConfig(envOf(map[string]string{"UPSTREAM_URL": up.URL, "CLIENT": mode}))
			if err != nil {
				b.Fatal(err)
			}
			down := httptest.NewServer(New(cfg, quiet).Engine)
			defer down.Close()
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.SetParallelism(15) // 15 x GOMAXPROCS goroutines; load is bounded by b.N anyway
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(down.URL + "/")
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}
