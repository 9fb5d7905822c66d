package cli

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/localkube"
)

func TestDemoBadFlags(t *testing.T) {
	withReport := t.TempDir()
	if err := os.WriteFile(filepath.Join(withReport, "report.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--duration", "10s", "--restart-at", "10s"}, "--restart-at (10s) must be < --duration (10s)"},
		{[]string{"--duration", "0s"}, "--duration must be positive"},
		{[]string{"--restart-at", "-1s"}, "--restart-at must not be negative"},
		{[]string{"--scenarios", "v1,v4"}, `--scenarios: unknown scenario "v4": choose from v1, v2, v2pooled, v2race, v3`},
		{[]string{"--scenarios", "v1,v1"}, "--scenarios: scenario v1 is listed twice"},
		{[]string{"--scenarios", ""}, "--scenarios: no scenario given"},
		{[]string{"--manifests", "k8s", "--scenarios", "v1"}, "--manifests and --scenarios exclude each other"},
		{[]string{"--manifests", "/nonexistent/dir"}, "--manifests: manifests /nonexistent/dir: no such file or directory"},
		{[]string{"--rate", "10", "--vus", "3"}, "--vus and --think are for the closed model"},
		{[]string{"--rate", "-1"}, "rate must be a number of requests per second"},
		{[]string{"--vus", "0"}, "vus must be at least 1"},
		{[]string{"--connections", "maybe"}, `connections "maybe" is not supported`},
		{[]string{"--method", "GE T"}, `method "GE T" is not a valid HTTP method`},
		{[]string{"--endpoint-lag", "0s"}, "--endpoint-lag must be positive"},
		{[]string{"--port", "70000"}, "--port 70000 is out of range"},
		{[]string{"--timeout", "0s"}, "--timeout 0 would wait forever"},
		{[]string{"--max-in-flight", "5"}, "--max-in-flight is for the open model"},
		{[]string{"--timeout", "2m"}, "timeout 2m0s is longer than 1m0s"},
		{[]string{"--settle-tail", "-1s"}, "--settle-tail must not be negative"},
		{[]string{"--out", withReport}, "already holds a report"},
		{[]string{"--duration", "five"}, `invalid argument "five" for "--duration"`},
		{[]string{"--sandbox", "vm"}, `--sandbox must be auto, ns or none, not "vm"`},
		{[]string{"--cluster", "--sandbox", "ns"}, "--sandbox is for the embedded cluster"},
		{[]string{"extra"}, `unknown command "extra"`},
	}
	for _, tc := range cases {
		code, stdout, stderr := runMain(append([]string{"demo", "--quiet"}, tc.args...)...)
		if code != ExitBadArgs || stdout != "" || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and one line containing %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

func TestDemoSaysWhenThePortIsTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	out := filepath.Join(t.TempDir(), "r")
	code, stdout, stderr := runMain("demo", "--quiet", "--port", port, "--out", out)
	want := "port " + port + " on 127.0.0.1 is taken"
	if code != ExitFailed || !strings.Contains(stderr, want) || !strings.Contains(stderr, "--port") || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 naming the port and --port", code, stdout, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("the report directory was created although nothing ran")
	}
}

func TestClusterUpBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cluster", "up"}, "-f is required"},
		{[]string{"cluster", "up", "-f", "nowhere/v9"}, "no such directory, and not one of the built-in scenarios v1, v2, v2pooled, v2race, v3"},
		{[]string{"cluster", "up", "-f", "v2", "--port", "-1"}, "--port -1 is out of range"},
		{[]string{"cluster", "up", "-f", "v2", "--endpoint-lag", "0s"}, "--endpoint-lag must be positive"},
		{[]string{"cluster"}, "missing subcommand"},
	} {
		code, stdout, stderr := runMain(tc.args...)
		if code != ExitBadArgs || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 with %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

func TestRestartArgs(t *testing.T) {
	t.Setenv("GRACELAB_RUNTIME_DIR", t.TempDir())
	for _, args := range [][]string{{"restart"}, {"restart", "upstream"}, {"restart", "pod", "upstream"}, {"restart", "deployment", "a", "b"}} {
		code, _, stderr := runMain(args...)
		if code != ExitBadArgs || !strings.Contains(stderr, "usage: gracelab restart deployment NAME") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
	code, stdout, stderr := runMain("restart", "deployment", "upstream")
	if code != ExitFailed || stdout != "" || !strings.Contains(stderr, "no embedded cluster is running; start one with `gracelab cluster up -f DIR`") {
		t.Errorf("no cluster: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestReportCommand(t *testing.T) {
	src, err := os.ReadFile("../report/testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "report.json"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runMain("report", dir)
	if code != ExitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"v1 no protection", "Report in " + dir, filepath.Join(dir, "REPORT.md"), filepath.Join(dir, "report.html"), filepath.Join(dir, "comparison.png")} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	for _, name := range []string{"REPORT.md", "report.html", "timeline-v1.png", "timeline-v1.svg", "comparison.svg"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", name, err)
		}
	}
	after, _ := os.ReadFile(filepath.Join(dir, "report.json"))
	if string(after) != string(src) {
		t.Error("gracelab report changed report.json")
	}

	// A report cut short says so, and renders nothing.
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "report.json"), src[:len(src)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runMain("report", bad)
	if code != ExitFailed || stdout != "" || !strings.Contains(stderr, "truncated JSON") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("truncated: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(bad, "REPORT.md")); err == nil {
		t.Error("a truncated report was rendered")
	}

	code, _, stderr = runMain("report", filepath.Join(bad, "nope"))
	if code != ExitBadArgs || !strings.Contains(stderr, "is not a directory") {
		t.Errorf("missing dir: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runMain("report", t.TempDir())
	if code != ExitFailed || !strings.Contains(stderr, "report.json not found") {
		t.Errorf("empty dir: exit %d, stderr %q", code, stderr)
	}
}

func TestVersionFlag(t *testing.T) {
	code, stdout, stderr := runMain("--version")
	if code != ExitOK || !strings.HasPrefix(stdout, "gracelab version ") || stderr != "" {
		t.Fatalf("--version: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// A scenario that fails before measuring anything prints its failure, not an empty table.
func TestDemoFailedScenarioErrorFirst(t *testing.T) {
	manifests := filepath.Join(t.TempDir(), "empty")
	if err := os.Mkdir(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "r")
	code, stdout, stderr := runMain("demo", "--quiet", "--manifests", manifests, "--port", "0", "--out", out)
	if code != ExitFailed || !strings.HasPrefix(stderr, "gracelab: scenario empty failed: setting up the cluster: ") {
		t.Fatalf("exit %d, stderr %q; want exit 1 starting with the scenario's failure", code, stderr)
	}
	if strings.Contains(stdout, "requests") {
		t.Errorf("printed a table for a scenario that measured nothing:\n%s", stdout)
	}
	if _, err := os.Stat(filepath.Join(out, "report.json")); err != nil {
		t.Errorf("the report of the failed run was not written: %v", err)
	}
}

func TestDemoRolloutFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rollouts", "0"}, "--rollouts 0 is out of range: give 1 to 1000"},
		{[]string{"--rollouts", "1001"}, "--rollouts 1001 is out of range"},
		{[]string{"--rollouts", "3", "--rollout-gap", "-1s"}, "--rollout-gap must not be negative"},
		{[]string{"--rollout-gap", "2s"}, "--rollout-gap needs --rollouts 2 or more"},
	} {
		code, stdout, stderr := runMain(append([]string{"demo", "--quiet"}, tc.args...)...)
		if code != ExitBadArgs || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 with %q", tc.args, code, stderr, tc.want)
		}
	}
	// The gap defaults to the settle tail.
	o := &drillOptions{}
	cmd := newDemoCommandFor(o, Streams{})
	if err := cmd.ParseFlags([]string{"--rollouts", "3", "--settle-tail", "4s", "--out", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	plan, err := o.plan(cmd, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if plan.exp.Rollouts != 3 || plan.exp.RolloutGap != 4*time.Second {
		t.Errorf("rollouts %d gap %s; want 3 and the settle tail 4s", plan.exp.Rollouts, plan.exp.RolloutGap)
	}
}

// TestDemoIsDrillPreset: the demo plans through the drill's one planning function with its
// preset: the built-in scenarios, manifests (read from their directories) and images, the
// cluster's own target (the downstream LoadBalancer on --port), the upstream restarted, the
// JSON status check on, pods on the shared loopback unless --sandbox says otherwise.
func TestDemoIsDrillPreset(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		sandbox string
	}{
		{nil, "none"},
		{[]string{"--sandbox", "ns"}, "ns"},
		{[]string{"--sandbox", "auto"}, "auto"},
	} {
		o := &drillOptions{}
		cmd := newDemoCommandFor(o, Streams{})
		if err := cmd.ParseFlags(append([]string{"--out", t.TempDir(), "--port", "18000"}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		plan, err := o.plan(cmd, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		l := plan.local
		if l == nil || string(l.sandbox) != tc.sandbox {
			t.Fatalf("%v: local plan %+v, want sandbox %s", tc.args, l, tc.sandbox)
		}
		var names []string
		for _, sc := range plan.exp.Scenarios {
			names = append(names, sc.Name)
			if l.docs[sc.Name] != nil {
				t.Errorf("scenario %s: documents decoded at plan time; the demo's are read from its directory", sc.Name)
			}
		}
		if strings.Join(names, ",") != "v1,v2,v3" || plan.exp.Deployment != "upstream" || plan.port != 18000 {
			t.Errorf("scenarios %v, deployment %s, port %d: want v1,v2,v3, upstream, 18000", names, plan.exp.Deployment, plan.port)
		}
		if l.target.url != nil || l.findings != nil || l.skipped != "" {
			t.Errorf("target %+v, findings %v, skipped %q: the demo loads its LoadBalancer and prints no findings", l.target, l.findings, l.skipped)
		}
		if plan.exp.Load.Expect.IgnoreJSONStatus || plan.exp.Load.Header.Get("Host") != "" {
			t.Errorf("the demo keeps its JSON status check and sends no Host header: %+v", plan.exp.Load)
		}
		for _, img := range []string{"gracelab/upstream:v1", "docker.io/gracelab/downstream"} {
			if p, ok := l.programs.Lookup(img); !ok || len(p.Args) != 2 || p.Args[0] != "serve" {
				t.Errorf("image %s: program %+v, %v; want the built-in serve", img, p, ok)
			}
		}
		// The cluster each scenario gets is made from the same plan (nothing starts in New).
		c, err := l.cluster(plan.exp.Scenarios[0], localkube.Options{})
		if err != nil {
			t.Fatalf("cluster of %s: %v", plan.exp.Scenarios[0].Name, err)
		}
		if _, ok := c.(*drillCluster); !ok {
			t.Errorf("cluster %T, want the drill's", c)
		}
	}
}
