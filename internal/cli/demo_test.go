package cli

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
		{[]string{"--scenarios", "v1,v4"}, `--scenarios: unknown scenario "v4": choose from v1, v2, v3`},
		{[]string{"--scenarios", "v1,v1"}, "--scenarios: scenario v1 is listed twice"},
		{[]string{"--scenarios", ""}, "--scenarios: no scenario given"},
		{[]string{"--manifests", "k8s", "--scenarios", "v1"}, "--manifests and --scenarios exclude each other"},
		{[]string{"--manifests", "/nonexistent/dir"}, "--manifests: manifests /nonexistent/dir: no such file or directory"},
		{[]string{"--rate", "10", "--vus", "3"}, "--vus and --think are for the closed model"},
		{[]string{"--rate", "-1"}, "rate must be a number of requests per second"},
		{[]string{"--vus", "0"}, "vus must be at least 1"},
		{[]string{"--connections", "maybe"}, `connections "maybe" is not supported`},
		{[]string{"--method", "PUT"}, `method "PUT" is not supported`},
		{[]string{"--endpoint-lag", "0s"}, "--endpoint-lag must be positive"},
		{[]string{"--port", "70000"}, "--port 70000 is out of range"},
		{[]string{"--timeout", "0s"}, "--timeout 0 would wait forever"},
		{[]string{"--max-in-flight", "5"}, "--max-in-flight is for the open model"},
		{[]string{"--timeout", "2m"}, "timeout 2m0s is longer than 1m0s"},
		{[]string{"--settle-tail", "-1s"}, "--settle-tail must not be negative"},
		{[]string{"--out", withReport}, "already holds a report"},
		{[]string{"--duration", "five"}, `invalid argument "five" for "--duration"`},
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
		{[]string{"cluster", "up", "-f", "nowhere/v9"}, "no such directory, and not one of the built-in scenarios v1, v2, v3"},
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
