//go:build linux

package localkube

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/k8s"
)

// result of one request to the downstream, as a load generator sees it.
type result struct {
	start   time.Time
	latency time.Duration
	status  int    // 0 when no HTTP answer
	kind    string // the downstream's upstream-failure kind, or the transport error
	retries int
}

// driveLoad runs n closed-loop clients (think time 100ms) against target.
func driveLoad(target string, n int) *load[result] {
	client := &http.Client{Timeout: 20 * time.Second}
	return startLoad(n, 100*time.Millisecond, func() result {
		r := result{start: time.Now()}
		resp, err := client.Get(target + "/")
		if err != nil {
			r.kind = "transport: " + err.Error()
			r.latency = time.Since(r.start)
			return r
		}
		var body struct {
			Status  string `json:"status"`
			Kind    string `json:"kind"`
			Retries int    `json:"retries"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		r.status = resp.StatusCode
		if err := json.Unmarshal(b, &body); err != nil {
			r.kind = "bad body: " + string(b)
		} else {
			r.kind, r.retries = body.Kind, body.Retries
			if resp.StatusCode == http.StatusOK && body.Status != "ok" {
				r.kind = "body not ok: " + body.Status
			}
		}
		r.latency = time.Since(r.start)
		return r
	})
}

func (r result) failed() bool {
	return r.status != http.StatusOK || strings.HasPrefix(r.kind, "body not ok")
}

// drill runs one scenario's manifests on the embedded cluster with the real gracelab binary:
// load, a rolling restart of upstream once the load has its first answers, and load until the
// rollout has settled, the proxy has dropped every old pod and every request sent by then has
// its answer.
func drill(t *testing.T, scenario string) ([]result, []cluster.Event) {
	t.Helper()
	bin := gracelabBinary(t)
	sub, err := fs.Sub(k8s.FS, scenario)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Manifests: sub, Executable: bin, LogDir: t.TempDir(), ReadyTimeout: 60 * time.Second})
	if err != nil {
		t.Fatalf("New(%s): %v", scenario, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Up(ctx); err != nil {
		t.Fatalf("Up(%s): %v", scenario, err)
	}
	t.Cleanup(func() {
		c.Down(context.Background())
		assertGone(t, c.allPIDs()...)
		if t.Failed() {
			dumpEvents(t, c.Events())
		}
	})
	var old []string
	for _, p := range c.Pods() {
		if p.Deployment == "upstream" {
			old = append(old, p.Name)
		}
	}
	l := driveLoad(c.Target(), 15)
	l.waitFor(t, "15 answers before the restart", func(rs []result) bool { return len(rs) >= 15 })
	if err := c.Restart(ctx, "upstream"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitSettled(ctx, "upstream"); err != nil {
		l.finish()
		t.Fatalf("WaitSettled: %v", err)
	}
	for _, p := range old {
		waitEvent(t, c, 30*time.Second, podKind(p, cluster.EndpointRemoved))
	}
	// Requests still in flight (say waiting out the downstream's 5s upstream timeout on a
	// torn-down pod) complete before finish returns.
	return l.finish(), c.Events()
}

func summarize(rs []result) (errs int, kinds map[string]int, maxLatency time.Duration) {
	kinds = map[string]int{}
	for _, r := range rs {
		if r.latency > maxLatency {
			maxLatency = r.latency
		}
		if r.failed() {
			errs++
			kinds[r.kind]++
		}
	}
	return
}

func TestIntegrationV1LosesRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: builds and runs the real services")
	}
	t.Parallel()
	rs, _ := drill(t, "v1-no-graceful")
	errs, kinds, maxLat := summarize(rs)
	t.Logf("v1: %d requests, %d errors %v, max latency %s", len(rs), errs, kinds, maxLat)
	if errs == 0 {
		t.Fatal("v1 under a rolling restart lost no request")
	}
	if kinds["eof"] == 0 {
		t.Errorf("no in-flight EOF among v1's failures: %v", kinds)
	}
	timeouts := 0
	for _, r := range rs {
		if r.failed() && r.kind == "timeout" && r.status == http.StatusGatewayTimeout {
			timeouts++
			if r.latency < 4500*time.Millisecond {
				t.Errorf("a timeout answered after %s, before the downstream's 5s upstream timeout", r.latency)
			}
		}
	}
	// A black hole (the pod's network gone while the proxy still routes to it) is possible but,
	// as on a real cluster, rare: TestIntegrationDyingPodFailureModes forces it.
	t.Logf("%d of the failures were 504s at the downstream's upstream timeout", timeouts)
	for k := range kinds {
		if strings.HasPrefix(k, "transport") || strings.HasPrefix(k, "bad body") || strings.HasPrefix(k, "body not ok") {
			t.Errorf("failure not reported by the downstream as a 502/504 with a kind: %q", k)
		}
	}
}

func TestIntegrationV2AndV3LoseNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: builds and runs the real services")
	}
	t.Parallel()
	for _, sc := range []string{"v2-graceful", "v3-graceful-retry"} {
		t.Run(sc, func(t *testing.T) {
			t.Parallel()
			rs, evs := drill(t, sc)
			errs, kinds, maxLat := summarize(rs)
			lat := make([]time.Duration, len(rs))
			retries := 0
			for i, r := range rs {
				lat[i] = r.latency
				retries += r.retries
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			t.Logf("%s: %d requests, %d errors %v, p50 %s p99 %s max %s, retries %d", sc, len(rs), errs, kinds,
				lat[len(lat)/2], lat[len(lat)*99/100], maxLat, retries)
			if len(rs) < 100 {
				t.Errorf("only %d requests: the load did not run", len(rs))
			}
			if errs != 0 {
				t.Errorf("%s lost %d requests: %v", sc, errs, kinds)
			}
			if maxLat > 2500*time.Millisecond {
				t.Errorf("%s: a request took %s, not well below the 5s upstream timeout", sc, maxLat)
			}
			// The graceful sequence really ran: preStop, then SIGTERM, then a clean exit.
			if countKind(evs, cluster.PreStopFinished) < 2 || countKind(evs, cluster.SIGKILLSent) != 0 {
				t.Errorf("want preStop on both old pods and no SIGKILL")
			}
			for _, e := range evs {
				if e.Kind == cluster.PodExited && e.Deployment == "upstream" && !strings.HasPrefix(e.Detail, "exit code 0") {
					t.Errorf("old upstream pod exited with %q, want 0 (graceful)", e.Detail)
				}
			}
		})
	}
}

// TestIntegrationRestartThroughControl drives the two-terminal workflow: a cluster serving
// its control endpoint, restarted through RestartViaControl as `gracelab restart` does.
func TestIntegrationRestartThroughControl(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: builds and runs the real services")
	}
	t.Setenv("GRACELAB_RUNTIME_DIR", t.TempDir())
	bin := gracelabBinary(t)
	sub, _ := fs.Sub(k8s.FS, "v1-no-graceful")
	c, err := New(Options{Manifests: sub, Executable: bin, EndpointLag: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Up(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		c.Down(context.Background())
		assertGone(t, c.allPIDs()...)
	}()
	if _, err := c.ServeControl(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := testClient.Get(c.Target() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("downstream answered %d", resp.StatusCode)
	}
	if err := RestartViaControl(ctx, "upstream"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitSettled(ctx, "upstream"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(StateFile()); err != nil {
		t.Fatalf("state file: %v", err)
	}
}
