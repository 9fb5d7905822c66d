package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	junit "github.com/joshdk/go-junit"

	"github.com/gracelab/gracelab/internal/report"
)

// drillAPIAndBatch is two Deployments of the team's program: api, which the load targets, and
// batch, which no request reaches. Neither has a readiness probe or a drain (SHUTDOWN=die):
// restarting api loses requests in every rollout (v1's trap), restarting batch loses none.
const drillAPIAndBatch = `apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - name: app
        image: acme/api:1
        env:
        - {name: LISTEN_HOST, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: PORT, value: "8080"}
        - {name: SHUTDOWN, value: die}
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: batch}
spec:
  replicas: 1
  selector: {matchLabels: {app: batch}}
  template:
    metadata: {labels: {app: batch}}
    spec:
      containers:
      - name: app
        image: acme/api:1
        env:
        - {name: LISTEN_HOST, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: PORT, value: "8080"}
        - {name: SHUTDOWN, value: die}
`

// Thresholds and exit codes of drill end to end, on outcomes that are certain: restarting the
// Deployment no request reaches (the target always answers) stays within --max-errors 0 (exit
// 0, nothing on stderr); restarting the one behind the target breaches it in each of the two
// rollouts (exit 3, exactly one line per breach on stderr). Both write JUnit that a JUnit reader
// parses, and report.json's rollout statistics.
func TestIntegrationDrillThresholdExitCodes(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: real cluster processes")
	}
	teamapp := teamappBinary(t)
	manifests := filepath.Join(t.TempDir(), "api.yaml")
	if err := os.WriteFile(manifests, []byte(drillAPIAndBatch), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, deployment string
		code             int
	}{{"always-answers", "batch", ExitOK}, {"v1-like", "api", ExitBreached}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			junitPath, out := filepath.Join(tmp, "r.xml"), filepath.Join(tmp, "report")
			stdout, stderr, code := runGracelab(t, 4*time.Minute, "", "drill", "-f", manifests, "--run", "acme/api="+teamapp+" -role=back",
				"--target", "http://api/", "--deployment", tc.deployment, "--duration", "4s", "--restart-at", "1s",
				"--rollouts", "2", "--rollout-gap", "500ms", "--settle-tail", "2s", "--quiet", "--out", out,
				"--max-errors", "0", "--per-rollout", "--junit", junitPath)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			lines := regexp.MustCompile(`(?m)^gracelab: threshold breached: \S+ rollout ([12]): [1-9]\d* errors, limit --max-errors 0$`).FindAllStringSubmatch(stderr, -1)
			switch tc.code {
			case ExitBreached:
				if len(lines) != 2 || lines[0][1] != "1" || lines[1][1] != "2" || strings.Count(stderr, "\n") != 2 {
					t.Errorf("want one breach line per rollout and nothing else on stderr:\n%s", stderr)
				}
			case ExitOK:
				if stderr != "" {
					t.Errorf("stderr within the limits:\n%s", stderr)
				}
			}
			raw, err := os.ReadFile(junitPath)
			if err != nil {
				t.Fatal(err)
			}
			suites, err := junit.Ingest(raw)
			if err != nil || len(suites) != 1 {
				t.Fatalf("JUnit: %v\n%s", err, raw)
			}
			suites[0].Aggregate()
			if got := suites[0].Totals; got.Tests != 2 || got.Failed != map[int]int{ExitOK: 0, ExitBreached: 2}[tc.code] {
				t.Errorf("JUnit totals %+v\n%s", got, raw)
			}
			rep, err := report.ReadDir(out)
			if err != nil {
				t.Fatal(err)
			}
			st := rep.Scenarios[0].Statistics
			if st == nil || st.Rollouts != 2 || st.LossyRollouts != map[int]int{ExitOK: 0, ExitBreached: 2}[tc.code] {
				t.Errorf("report.json statistics %+v", st)
			}
		})
	}
}

// When the run fails and a threshold is breached too, the run failure wins: v1's rollout takes
// about 3 s, so a 300ms --rollout-timeout fails the scenario after its load has measured
// latencies no run can keep under 1ms (the upstream works 100-200 ms). The breach is still
// printed and in the JUnit file, beside the run's error; the exit code is 1.
func TestIntegrationDemoRunFailureWinsOverBreach(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	junitPath := filepath.Join(dir, "r.xml")
	stdout, errOut, code := runGracelab(t, 3*time.Minute, "", "demo", "--quiet", "--scenarios", "v1", "--duration", "3s", "--restart-at", "1s",
		"--rollout-timeout", "300ms", "--port", "0", "--out", filepath.Join(dir, "report"),
		"--max-latency", "p50=1ms", "--junit", junitPath)
	if code != ExitFailed {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, ExitFailed, stdout, errOut)
	}
	if !strings.Contains(errOut, "gracelab: scenario v1 failed: the rollout of upstream did not settle within 300ms") ||
		!regexp.MustCompile(`(?m)^gracelab: threshold breached: v1 \(whole run\): p50 latency \S+, limit --max-latency p50=1ms$`).MatchString(errOut) ||
		!strings.Contains(errOut, "gracelab: the run failed for v1") {
		t.Errorf("want the failure, the breach and the run's verdict on stderr:\n%s", errOut)
	}
	raw, err := os.ReadFile(junitPath)
	if err != nil {
		t.Fatal(err)
	}
	suites, err := junit.Ingest(raw)
	if err != nil || len(suites) != 1 {
		t.Fatalf("JUnit: %v\n%s", err, raw)
	}
	suites[0].Aggregate()
	if got := suites[0].Totals; got.Tests != 2 || got.Failed != 1 || got.Error != 1 {
		t.Errorf("JUnit totals %+v, want the breach failed and the run in error:\n%s", got, raw)
	}
}
