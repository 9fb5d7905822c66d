package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// drillTeamApp is a team's shop calling stock by its Service DNS name, two replicas each, both
// running internal/localkube/testdata/teamapp (not one of gracelab's services), plus an object
// the drill skips.
const drillTeamApp = `apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      containers:
      - name: app
        image: ghcr.io/acme/shop:1.4
        ports: [{containerPort: 8080}]
        env:
        - {name: LISTEN_HOST, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: BACKEND_URL, value: "http://stock/"}
        - {name: SHUTDOWN, value: die}
---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  selector: {app: shop}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: stock}
spec:
  replicas: 2
  selector: {matchLabels: {app: stock}}
  template:
    metadata: {labels: {app: stock}}
    spec:
      containers:
      - name: app
        image: ghcr.io/acme/stock:2.0
        ports: [{containerPort: 8080}]
        env:
        - {name: LISTEN_HOST, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: SHUTDOWN, value: die}
---
apiVersion: v1
kind: Service
metadata: {name: stock}
spec:
  selector: {app: stock}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: shop}
`

// TestIntegrationDrill drills the team's program through the real binary, from a file and
// from stdin: the run completes, the report counts the requests and carries the skipped
// object, and gracelab check's findings follow the table.
func TestIntegrationDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: real cluster processes")
	}
	exe := gracelabBinary(t)
	dir := t.TempDir()
	teamapp := filepath.Join(dir, "teamapp")
	if out, err := exec.Command("go", "build", "-o", teamapp, "github.com/gracelab/gracelab/internal/localkube/testdata/teamapp").CombinedOutput(); err != nil {
		t.Fatalf("go build teamapp: %v\n%s", err, out)
	}
	manifests := filepath.Join(dir, "team.yaml")
	if err := os.WriteFile(manifests, []byte(drillTeamApp), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{"file", "stdin"} {
		t.Run(from, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report")
			f := manifests
			if from == "stdin" {
				f = "-"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe, "drill", "-f", f,
				"--run", "ghcr.io/acme/shop="+teamapp+" -role=front", "--run", "ghcr.io/acme/stock="+teamapp+" -role=back",
				"--target", "http://shop/", "--deployment", "stock", "--duration", "6s", "--restart-at", "2s",
				"--endpoint-lag", "300ms", "--quiet", "--out", out)
			if from == "stdin" {
				cmd.Stdin = strings.NewReader(drillTeamApp)
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			if code := exitCode(t, err); code != ExitOK {
				t.Fatalf("exit %d, want 0", code)
			}
			assertNoneLeft(t, exe)
			if n := strings.Count(stdout.String()+stderr.String(), "skipped 1 object"); n != 1 {
				t.Errorf("the skipped ServiceAccount should be printed once, got %d times", n)
			}
			table := strings.Index(stdout.String(), "requests")
			findings := strings.Index(stdout.String(), "gracelab check on these manifests:")
			if table < 0 || findings < table || !strings.Contains(stdout.String(), "no-prestop") {
				t.Errorf("want the table, then gracelab check's findings (no-prestop), got:\n%s", stdout.String())
			}

			raw, err := os.ReadFile(filepath.Join(out, "report.json"))
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Scenarios []struct {
					Scenario string   `json:"scenario"`
					Requests int      `json:"requests"`
					Warnings []string `json:"warnings"`
				} `json:"scenarios"`
			}
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			if len(doc.Scenarios) != 1 || doc.Scenarios[0].Requests == 0 {
				t.Fatalf("report.json: want one scenario with requests > 0, got %+v", doc.Scenarios)
			}
			if w := strings.Join(doc.Scenarios[0].Warnings, "\n"); !strings.Contains(w, "ServiceAccount shop") {
				t.Errorf("report warnings should name the skipped ServiceAccount shop, got %q", w)
			}
		})
	}
}
