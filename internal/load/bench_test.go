package load

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// benchRun is how long each benchmark run sends: long enough for stable rates, short enough
// for a shared 2-core machine. b.N counts runs.
const benchRun = 2 * time.Second

// zeroWork serves the downstream's happy answer with no work, on a loopback port.
func zeroWork(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok","retries":0}`)
	})}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

func benchResult(b *testing.B, cfg Config) *Result {
	b.Helper()
	run, err := Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	<-run.Done()
	res := run.Result()
	// Errors against a zero-work server mean the machine could not keep up: reported, and
	// the rates are then not the generator's alone.
	b.ReportMetric(float64(res.Errors), "errors")
	return res
}

// BenchmarkClosed: 15 VUs without think time, the concurrency hey and wrk are compared at.
func BenchmarkClosed(b *testing.B) {
	for _, conns := range []string{ConnectionsReuse, ConnectionsNew} {
		b.Run(conns, func(b *testing.B) {
			url := zeroWork(b)
			var rps, p99 float64
			for range b.N {
				res := benchResult(b, Config{URL: url, VUs: 15, Duration: benchRun, Timeout: 5 * time.Second, Connections: conns})
				rps += res.RPS
				p99 = max(p99, res.Latency.P99)
			}
			b.ReportMetric(rps/float64(b.N), "req/s")
			b.ReportMetric(p99, "p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkOpenLag: how late the open model sends against its schedule, at a modest and a
// high rate.
func BenchmarkOpenLag(b *testing.B) {
	for _, tc := range []struct {
		name string
		rate float64
	}{{"100rps", 100}, {"1000rps", 1000}} {
		b.Run(tc.name, func(b *testing.B) {
			url := zeroWork(b)
			var lag, lagMax, rps float64
			var late int64
			for range b.N {
				res := benchResult(b, Config{URL: url, Model: Open, Rate: tc.rate, Duration: benchRun,
					Timeout: 5 * time.Second, Connections: ConnectionsReuse})
				lag = max(lag, res.SendLag.P99)
				lagMax = max(lagMax, res.SendLag.Max)
				late += res.SendLag.Late
				rps += res.RPS
			}
			b.ReportMetric(lag, "p99-lag-ms")
			b.ReportMetric(lagMax, "max-lag-ms")
			b.ReportMetric(float64(late)/float64(b.N), "late/run")
			b.ReportMetric(rps/float64(b.N), "req/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
