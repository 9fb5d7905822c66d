package load

import (
	"io"
	"testing"
	"time"
)

// BenchmarkStreamPod: one load pod's throughput, the stream on (written to io.Discard as a
// pod writes its log): closed model, 15 VUs, no think time, against a zero-work loopback
// server. Compare with BenchmarkClosed for the stream's cost; docs/cluster-drill.md turns it
// into pods per rate.
func BenchmarkStreamPod(b *testing.B) {
	for _, conns := range []string{ConnectionsReuse, ConnectionsNew} {
		b.Run(conns, func(b *testing.B) {
			url := zeroWork(b)
			var rps float64
			for range b.N {
				run, errc, err := StartStream(Config{URL: url, VUs: 15, Duration: benchRun, Timeout: 5 * time.Second, Connections: conns},
					time.Time{}, io.Discard, time.Second)
				if err != nil {
					b.Fatal(err)
				}
				<-run.Done()
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
				res := run.Result()
				b.ReportMetric(float64(res.Errors), "errors")
				rps += res.RPS
			}
			b.ReportMetric(rps/float64(b.N), "req/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
