//go:build linux

package localkube

import (
	"io"
	"strings"
	"testing"

	"github.com/gracelab/gracelab/internal/image"
	"github.com/gracelab/gracelab/internal/manifest"
)

const programsManifests = `apiVersion: apps/v1
kind: Deployment
metadata: {name: stock}
spec:
  replicas: 1
  selector: {matchLabels: {app: stock}}
  template:
    metadata: {labels: {app: stock}}
    spec:
      containers:
      - name: app
        image: ghcr.io/acme/stock:2.0
        args: ["-role=$(ROLE)"]
        ports: [{containerPort: 8080}]
        env:
        - {name: ROLE, value: back}
        - {name: LISTEN_HOST, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
---
apiVersion: v1
kind: Service
metadata: {name: stock}
spec:
  selector: {app: stock}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      containers:
      - name: app
        image: ghcr.io/acme/shop:1.4
        command: ["/app/teamapp", "-role=front"]
        ports: [{containerPort: 8080}]
        env:
        - {name: LISTEN_HOST, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: BACKEND_URL, value: "http://stock.default.svc.cluster.local/"}
---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  selector: {app: shop}
  ports: [{port: 80, targetPort: 8080}]
`

// TestIntegrationProgramsRunTheTeamsCommandLine: with --run and --path, a pod runs the
// program mapped to its image with the manifest's args ($(VAR)-expanded) replacing --run's
// ARGS, and a manifest command resolved through --path.
func TestIntegrationProgramsRunTheTeamsCommandLine(t *testing.T) {
	integration(t)
	t.Parallel()
	bin := binary(t, "./testdata/teamapp")
	docs, err := manifest.Decode([]manifest.File{{Name: "team.yaml", Data: []byte(programsManifests)}}, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Without a mapping for shop: one error naming the image and the flag, before anything runs.
	partial, err := image.NewTable([]string{"ghcr.io/acme/stock=" + bin + " -role=front"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Documents: docs, Programs: partial}); err == nil || !strings.Contains(err.Error(), "ghcr.io/acme/shop") || !strings.Contains(err.Error(), "--run") {
		t.Fatalf("New without a program for shop: %v", err)
	}
	table, err := image.NewTable([]string{"ghcr.io/acme/stock=" + bin + " -role=front", "ghcr.io/acme/shop=" + bin}, []string{"/app/teamapp=" + bin})
	if err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, Options{Documents: docs, Programs: table})
	addr, _ := c.ServiceAddr("shop", 80)
	resp, err := testClient.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// shop answers as the front (its command), through stock answering as the back (its args).
	if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "shop-") || !strings.Contains(string(b), " via stock-") {
		t.Fatalf("shop answered %d %q", resp.StatusCode, b)
	}
}
