//go:build linux

package localkube

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/manifest"
)

// teamManifests are a team's two Deployments, shop calling stock by its Service DNS name,
// both running testdata/teamapp (not one of gracelab's services), which takes its settings
// from a ConfigMap through envFrom and its address and name from the downward API. graceful adds what a team
// adds to stop losing requests: a readiness probe, a preStop delay longer than the endpoint
// lag, and a program that drains on SIGTERM.
func teamManifests(graceful bool) map[string]string {
	extra, shutdown := "", "die"
	if graceful {
		shutdown = "drain"
		extra = `
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
        lifecycle: {preStop: {sleep: {seconds: 2}}}`
	}
	deployment := func(name, image string) string {
		return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: 2
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      containers:
      - name: app
        image: %[2]s
        ports: [{containerPort: 8080}]
        envFrom: [{configMapRef: {name: team-settings}}]
        env:
        - {name: LISTEN_HOST, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}%[4]s
---
apiVersion: v1
kind: Service
metadata: {name: %[1]s}
spec:
  selector: {app: %[1]s}
  ports: [{port: 80, targetPort: 8080}]
`, name, image, shutdown, extra)
	}
	settings := fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata: {name: team-settings}
data: {BACKEND_URL: "http://stock/", SHUTDOWN: %s}
`, shutdown)
	return map[string]string{"shop.yaml": deployment("shop", "ghcr.io/acme/shop:1.4"),
		"stock.yaml": deployment("stock", "ghcr.io/acme/stock:2.0"), "settings.yaml": settings}
}

// drillTeamApp restarts stock under load sent to shop and returns every answer's status.
func drillTeamApp(t *testing.T, graceful bool) []int {
	t.Helper()
	bin := binary(t, "./testdata/teamapp")
	files, err := manifest.FilesOf(manifests(teamManifests(graceful)))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := manifest.Decode(files, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, Options{Documents: docs, Executable: bin,
		Images: map[string][]string{"ghcr.io/acme/shop": {"-role=front"}, "ghcr.io/acme/stock": {"-role=back"}}})
	addr, ok := c.ServiceAddr("shop", 80)
	if !ok {
		t.Fatal("no Service shop")
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	l := startLoad(8, 20*time.Millisecond, func() int {
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			return 0
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && !strings.Contains(string(b), " via stock-") {
			return -1 // an answer that did not come through stock
		}
		return resp.StatusCode
	})
	l.waitFor(t, "20 answers before the restart", func(s []int) bool { return len(s) >= 20 })
	var old []string
	for _, p := range c.Pods() {
		if p.Deployment == "stock" {
			old = append(old, p.Name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Restart(ctx, "stock"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitSettled(ctx, "stock"); err != nil {
		l.finish()
		t.Fatal(err)
	}
	for _, p := range old {
		waitEvent(t, c, 30*time.Second, podKind(p, cluster.EndpointRemoved))
	}
	return l.finish()
}

func lost(statuses []int) (n int, byStatus map[int]int) {
	byStatus = map[int]int{}
	for _, s := range statuses {
		byStatus[s]++
		if s != http.StatusOK {
			n++
		}
	}
	return n, byStatus
}

// TestIntegrationTeamAppWithoutGracefulShutdownLosesRequests and its twin below drill a
// program that is not gracelab's: two replicas of a backend restarted under load.
func TestIntegrationTeamAppWithoutGracefulShutdownLosesRequests(t *testing.T) {
	integration(t)
	t.Parallel()
	st := drillTeamApp(t, false)
	n, by := lost(st)
	t.Logf("%d requests, %d lost: %v", len(st), n, by)
	if n == 0 {
		t.Fatalf("a backend dying on SIGTERM while the Service still routes to it lost nothing (%d requests)", len(st))
	}
}

func TestIntegrationTeamAppWithPreStopAndDrainLosesNothing(t *testing.T) {
	integration(t)
	t.Parallel()
	st := drillTeamApp(t, true)
	n, by := lost(st)
	t.Logf("%d requests, %d lost: %v", len(st), n, by)
	if len(st) < 100 {
		t.Fatalf("only %d requests: the load did not run", len(st))
	}
	if n != 0 {
		t.Fatalf("the graceful backend lost %d of %d requests: %v", n, len(st), by)
	}
}
