package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/report"
)

func TestDisruptionBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--disruption", "nuke"}, `--disruption: unknown disruption "nuke" (one of restart, delete, evict, drain, kill, scale), or all`},
		{[]string{"--disruption", "evict", "--count", "0"}, "--count must be at least 1"},
		{[]string{"--count", "2"}, "--count is for --disruption delete, evict or kill"},
		{[]string{"--disruption", "evict", "--eviction-timeout", "0s"}, "--eviction-timeout must be positive"},
		{[]string{"--disruption", "delete", "--to", "1"}, "--to is for --disruption scale"},
		{[]string{"--disruption", "scale", "--to", "-2"}, "--to must not be negative"},
		{[]string{"--nodes", "0"}, "--nodes must be at least 1"},
		{[]string{"--disruption", "drain", "--node", "n1"}, "--node and --yes are for a drain with --cluster"},
		{[]string{"--disrupt-at", "2s", "--restart-at", "2s"}, "--disrupt-at and --restart-at are the same setting"},
		{[]string{"--duration", "10s", "--disrupt-at", "10s"}, "--disrupt-at (10s) must be >= 0 and < --duration (10s)"},
	} {
		code, stdout, stderr := runMain(append([]string{"demo", "--quiet"}, tc.args...)...)
		if code != ExitBadArgs || stdout != "" || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and one line containing %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

func TestDisruptionPlan(t *testing.T) {
	o := &drillOptions{}
	cmd := newDemoCommandFor(o, Streams{})
	if err := cmd.ParseFlags([]string{"--disruption", "all", "--scenarios", "v1,v3", "--disrupt-at", "3s", "--out", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	plan, err := o.plan(cmd, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sc := range plan.exp.Scenarios {
		names = append(names, sc.Name)
	}
	want := "v1-restart v3-restart v1-delete v3-delete v1-evict v3-evict v1-drain v3-drain v1-kill v3-kill v1-scale v3-scale"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("matrix scenarios %s, want %s", got, want)
	}
	if plan.exp.RestartAt != 3*time.Second || plan.settings.Disruption != "all" || plan.disrupt.kinds["v3-drain"] != cluster.DisruptDrain {
		t.Fatalf("restart at %s, settings %q, v3-drain %q", plan.exp.RestartAt, plan.settings.Disruption, plan.disrupt.kinds["v3-drain"])
	}
}

func TestMatrixTable(t *testing.T) {
	o := &drillOptions{}
	cmd := newDemoCommandFor(o, Streams{})
	_ = cmd.ParseFlags([]string{"--disruption", "all", "--scenarios", "v1,v2", "--out", t.TempDir()})
	plan, err := o.plan(cmd, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p := plan.disrupt
	res := func(errs int64, byKind, upstream map[string]int64) *report.Result {
		return &report.Result{Requests: 1000, Errors: errs, ErrorRate: float64(errs) / 1000, ErrorsByKind: byKind, UpstreamKinds: upstream}
	}
	rep := &report.Report{Scenarios: []report.Scenario{
		{Scenario: "v1-kill", Result: res(12, map[string]int64{"http_5xx": 12}, map[string]int64{"eof": 3, "reset": 9})},
		{Scenario: "v2-kill", Result: res(0, map[string]int64{}, nil)},
		{Scenario: "v1-drain", Failure: "boom"},
		{Scenario: "v2-drain", Result: res(2, map[string]int64{"timeout": 2}, nil), Failure: "eviction refused"},
	}}
	var b strings.Builder
	if err := p.writeTable(&b, rep); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"v1 no protection", "v2 graceful", "12 (1.20 %) 5xx/reset", "timeout [failed]", "failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("matrix lacks %q:\n%s", want, out)
		}
	}
	var kill string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "kill") {
			kill = l
		}
	}
	if f := strings.Fields(kill); len(f) != 6 || f[1] != "12" || f[5] != "0" {
		t.Errorf("kill row %q: want v1's cell then v2's 0", kill)
	}
}
