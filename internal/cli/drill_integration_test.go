package cli

import (
	"encoding/json"
	"os"
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
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: real cluster processes")
	}
	teamapp := teamappBinary(t)
	manifests := filepath.Join(t.TempDir(), "team.yaml")
	if err := os.WriteFile(manifests, []byte(drillTeamApp), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{"file", "stdin"} {
		t.Run(from, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "report")
			f, stdin := manifests, ""
			if from == "stdin" {
				f, stdin = "-", drillTeamApp
			}
			stdout, stderr, code := runGracelab(t, 3*time.Minute, stdin, "drill", "-f", f,
				"--run", "ghcr.io/acme/shop="+teamapp+" -role=front", "--run", "ghcr.io/acme/stock="+teamapp+" -role=back",
				"--target", "http://shop/", "--deployment", "stock", "--duration", "6s", "--restart-at", "2s",
				"--endpoint-lag", "300ms", "--quiet", "--out", out)
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
			if code != ExitOK {
				t.Fatalf("exit %d, want 0", code)
			}
			if n := strings.Count(stdout+stderr, "skipped 1 object"); n != 1 {
				t.Errorf("the skipped ServiceAccount should be printed once, got %d times", n)
			}
			table := strings.Index(stdout, "requests")
			findings := strings.Index(stdout, "gracelab check on these manifests:")
			if table < 0 || findings < table || !strings.Contains(stdout, "no-prestop") {
				t.Errorf("want the table, then gracelab check's findings (no-prestop), got:\n%s", stdout)
			}
			// drill's default --sandbox auto says once how the pods ran, and in sandboxes what
			// they cannot reach.
			if n := strings.Count(stdout, "Pods: "); n != 1 {
				t.Errorf("the pods' mode should be said once on stdout, got %d times", n)
			} else if os.Geteuid() == 0 && !strings.Contains(stdout, "Pods: each in a sandbox of its own (network, mount, PID and UTS namespaces: --sandbox ns): a pod reaches Services, not the host's own localhost services") {
				t.Errorf("as root the pods run in sandboxes and the output says what they cannot reach:\n%s", stdout)
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

// drillLeaky is a program that prints its Secret values, one as given (envFrom) and one with a
// Service name in it (rewritten to the Service's address on the shared loopback), on stdout
// and stderr, and dies during start-up.
const drillLeaky = `apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {TOKEN: tok-4f9a1c77e2}
---
apiVersion: v1
kind: Secret
metadata: {name: db}
data: {DB_URL: aHR0cDovL2FkbWluOmh1bnRlcjItOWQ4N0BkYjo1NDMyLw==} # http://admin:hunter2-9d87@db:5432/
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: leaky}
spec:
  replicas: 1
  selector: {matchLabels: {app: leaky}}
  template:
    metadata: {labels: {app: leaky}}
    spec:
      containers:
      - name: app
        image: acme/leaky:1
        ports: [{containerPort: 8080}]
        envFrom: [{secretRef: {name: creds}}]
        env:
        - {name: DB_URL, valueFrom: {secretKeyRef: {name: db, key: DB_URL}}}
---
apiVersion: v1
kind: Service
metadata: {name: leaky}
spec:
  selector: {app: leaky}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  selector: {app: leaky}
  ports: [{port: 5432, targetPort: 8080}]
`

// TestIntegrationDrillRedactsSecrets: a program that prints its Secret values and dies fails
// the drill with its last stderr line quoted, and neither that error, the output, the report
// nor any log shows a value, on the shared loopback and in sandboxes.
func TestIntegrationDrillRedactsSecrets(t *testing.T) {
	t.Parallel()
	manifests := filepath.Join(t.TempDir(), "leaky.yaml")
	if err := os.WriteFile(manifests, []byte(drillLeaky), 0o644); err != nil {
		t.Fatal(err)
	}
	secrets := []string{"tok-4f9a1c77e2", "hunter2-9d87"}
	for _, sandbox := range []string{"none", "ns"} {
		t.Run(sandbox, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "report")
			stdout, stderr, code := runGracelab(t, 2*time.Minute, "", "drill", "-f", manifests, "--sandbox", sandbox,
				"--run", `acme/leaky=/bin/sh -c 'echo "starting with $TOKEN and $DB_URL"; echo "fatal: cannot log in with $TOKEN to $DB_URL" >&2; exit 1'`,
				"--target", "http://leaky/", "--duration", "4s", "--restart-at", "1s", "--quiet", "--out", out)
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
			if code != ExitFailed {
				t.Fatalf("exit %d, want %d (the pod died during start-up)", code, ExitFailed)
			}
			// The error quotes the last stderr line, redacted.
			if !strings.Contains(stderr, "fatal: cannot log in with <redacted> to <redacted>") {
				t.Errorf("the error should quote the pod's last stderr line with its secrets redacted:\n%s", stderr)
			}
			shown := map[string]string{"stdout": stdout, "stderr": stderr}
			if err := filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, err := os.ReadFile(path)
				shown[path] = string(b)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{filepath.Join(out, "report.json"), filepath.Join(out, "logs", "leaky", "cluster.log")} {
				if _, ok := shown[name]; !ok {
					t.Errorf("%s was not written", name)
				}
			}
			podLog := false
			for name, text := range shown {
				for _, s := range secrets {
					if strings.Contains(text, s) {
						t.Errorf("%s shows the secret %q:\n%s", name, s, text)
					}
				}
				podLog = podLog || strings.Contains(text, "starting with <redacted> and <redacted>")
			}
			if !podLog {
				t.Error("no pod log holds the program's stdout line, redacted")
			}
		})
	}
}
