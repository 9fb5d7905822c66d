//go:build linux

package localkube

import (
	"context"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

// What a pod sandbox costs, against the shared loopback (docs/performance.md):
//
//	go test -run '^$' -bench 'PodStart|ServiceHop' ./internal/localkube

func benchCluster(b *testing.B, mode SandboxMode) *Cluster {
	b.Helper()
	a := app{name: "api", replicas: 1, env: map[string]string{"POD_LISTEN": ":8080"}}
	if mode == SandboxNone {
		a.env = nil
	}
	c, err := New(Options{Manifests: manifests(map[string]string{"api.yaml": a.yaml()}), Executable: os.Args[0],
		Images: testImages, Sandbox: mode, PodStartDelay: -1, EndpointLag: 10 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Up(ctx); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkPodStart: a cluster of one pod brought up and down (ns/op includes auto's probe
// sandbox); start-ms is from the pod's creation to its process running (the sandbox's
// creation, in ns mode), up-ms to Up's return, once the program accepts connections.
func BenchmarkPodStart(b *testing.B) {
	for _, mode := range []SandboxMode{SandboxNone, SandboxNS} {
		b.Run(string(mode), func(b *testing.B) {
			var start, up time.Duration
			n := 0
			for b.Loop() {
				c := benchCluster(b, mode)
				upAt := time.Now()
				var created time.Time
				for _, e := range c.Events() {
					switch e.Kind {
					case cluster.PodCreated:
						created = e.Time
						up += upAt.Sub(e.Time)
						n++
					case cluster.PodStarted:
						start += e.Time.Sub(created)
					}
				}
				c.Down(context.Background())
			}
			b.ReportMetric(float64(start.Microseconds())/1000/float64(n), "start-ms")
			b.ReportMetric(float64(up.Microseconds())/1000/float64(n), "up-ms")
		})
	}
}

// BenchmarkServiceHop: an HTTP request through the Service proxy to the pod, on a new
// connection each time (in a sandbox every new connection is dialled by the shim and handed
// back) and on a kept-alive one (spliced, no shim on the way).
func BenchmarkServiceHop(b *testing.B) {
	for _, mode := range []SandboxMode{SandboxNone, SandboxNS} {
		c := benchCluster(b, mode)
		addr, _ := c.ServiceAddr("api", 8080)
		for _, keepAlive := range []bool{false, true} {
			name := string(mode) + "/new-connection"
			if keepAlive {
				name = string(mode) + "/keep-alive"
			}
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: !keepAlive}}
			b.Run(name, func(b *testing.B) {
				for b.Loop() {
					resp, err := client.Get("http://" + addr + "/")
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		}
		c.Down(context.Background())
	}
}
