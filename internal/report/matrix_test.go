package report

import (
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

// matrixReport is a --disruption all report of v1 and v2 under a delete and a kill, each
// cell with the events of its run: v2's delete runs a 5 s preStop and drains, v1's dies on
// SIGTERM, the kills SIGKILL.
func matrixReport(cells map[string]*Result) *Report {
	r := syntheticReport()
	base := r.Scenarios[0]
	r.Settings.Disruption = DisruptionAll
	r.Scenarios = nil
	for _, c := range []struct{ name, title, kind string }{
		{"v1-delete", "v1 no protection, delete", DisruptionDelete}, {"v2-delete", "v2 graceful, delete", DisruptionDelete},
		{"v1-kill", "v1 no protection, kill", DisruptionKill}, {"v2-kill", "v2 graceful, kill", DisruptionKill},
	} {
		s := base
		s.Scenario, s.Title, s.Disruption, s.Rollouts, s.Statistics = c.name, c.title, c.kind, nil, nil
		s.Result = cells[c.name]
		pod := "upstream-7d9f8-abc12"
		ev := func(secs float64, k cluster.EventKind, detail string) cluster.Event {
			return cluster.Event{Time: s.Result.Start.Add(time.Duration(secs * float64(time.Second))), Kind: k, Deployment: "upstream", Pod: pod, Detail: detail, Source: cluster.SourceEmbedded}
		}
		switch c.name {
		case "v2-delete":
			s.Events = []cluster.Event{ev(1, cluster.PodTerminating, ""), ev(1, cluster.PreStopStarted, ""), ev(6, cluster.PreStopFinished, "ok"),
				ev(6, cluster.SIGTERMSent, ""), ev(6.2, cluster.PodExited, "exit code 0")}
		case "v1-delete":
			s.Events = []cluster.Event{ev(1, cluster.PodTerminating, ""), ev(1, cluster.SIGTERMSent, ""), ev(1.01, cluster.PodExited, "exit code 143 (killed by SIGTERM)")}
		default:
			s.Events = []cluster.Event{ev(1, cluster.SIGKILLSent, "killed"), ev(1.01, cluster.PodExited, "exit code 137 (killed by SIGKILL)"),
				ev(1.02, cluster.ContainerRestarted, "restartCount 1")}
		}
		r.Scenarios = append(r.Scenarios, s)
	}
	return r
}

func lossResult(errors int64, retries int64, byClass, upstream map[string]int64) *Result {
	res := *FromLoad(loadResult())
	res.Requests, res.Errors, res.OK, res.Retries = 1000, errors, 1000-errors, retries
	res.ErrorRate = float64(errors) / 1000
	res.ErrorsByKind, res.UpstreamKinds = byClass, upstream
	return &res
}

func cellLine(t *testing.T, md, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "- **"+prefix) {
			return l
		}
	}
	t.Fatalf("no cell line for %q in:\n%s", prefix, md)
	return ""
}

// Each cell's sentence follows its numbers: its losses and dominant cause, the disruption's
// mechanism, and the protections its events show (or, for a kill, the scenario's other cells).
func TestMatrixCellsFollowTheNumbers(t *testing.T) {
	r := matrixReport(map[string]*Result{
		"v1-delete": lossResult(41, 0, map[string]int64{"http_5xx": 41}, map[string]int64{"reset": 36, "timeout": 3, "eof": 2}),
		"v2-delete": lossResult(0, 0, map[string]int64{}, nil),
		"v1-kill":   lossResult(20, 0, map[string]int64{"http_5xx": 20}, map[string]int64{"reset": 16, "eof": 4}),
		"v2-kill":   lossResult(31, 0, map[string]int64{"http_5xx": 31}, map[string]int64{"eof": 28, "reset": 3}),
	})
	md := matrixMarkdown(r)
	for _, want := range []string{
		"| disruption | v1 no protection | v2 graceful |",
		"| delete | 41 (4.10 %): reset 36, timeout 3, eof 2 | 0 |",
		"| kill | 20 (2.00 %): reset 16, eof 4 | 31 (3.10 %): eof 28, reset 3 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("matrix lacks %q:\n%s", want, md)
		}
	}
	v1del := cellLine(t, md, "delete, v1")
	for _, want := range []string{"41 of 1,000 requests lost (4.10 %), most of them reset (36 of 41)", "new connections that reached a process already gone",
		"died on SIGTERM at once", "Nothing was retried"} {
		if !strings.Contains(v1del, want) {
			t.Errorf("v1's delete cell lacks %q: %s", want, v1del)
		}
	}
	v2del := cellLine(t, md, "delete, v2")
	if !strings.Contains(v2del, "no request of 1,000 was lost") || !strings.Contains(v2del, "The preStop hook (5.0 s) kept the pod serving") ||
		!strings.Contains(v2del, "drained its requests on SIGTERM (exit code 0)") {
		t.Errorf("v2's delete cell: %s", v2del)
	}
	// A kill of v2: the dominant cause is eof (in flight), and the preStop seen in its delete
	// cell is named as what a crash skips.
	v2kill := cellLine(t, md, "kill, v2")
	for _, want := range []string{"most of them eof (28 of 31)", "requests in flight on a process when it stopped", "no preStop hook, no SIGTERM, no grace",
		"The preStop hook (5.0 s) and the drain that protect v2 graceful's graceful paths never ran"} {
		if !strings.Contains(v2kill, want) {
			t.Errorf("v2's kill cell lacks %q: %s", want, v2kill)
		}
	}
	if v1kill := cellLine(t, md, "kill, v1"); !strings.Contains(v1kill, "most of them reset (16 of 20)") || !strings.Contains(v1kill, "No protection of the graceful path applies") {
		t.Errorf("v1's kill cell: %s", v1kill)
	}

	// The same kill with retries that hid every failure: v3's case.
	r = matrixReport(map[string]*Result{
		"v1-delete": lossResult(0, 0, map[string]int64{}, nil), "v2-delete": lossResult(0, 0, map[string]int64{}, nil),
		"v1-kill": lossResult(0, 0, map[string]int64{}, nil), "v2-kill": lossResult(0, 14, map[string]int64{}, nil),
	})
	md = matrixMarkdown(r)
	if c := cellLine(t, md, "kill, v2"); !strings.Contains(c, "no request of 1,000 was lost") || !strings.Contains(c, "retried 14 times: its retries hid every failed call") {
		t.Errorf("a kill hidden by retries: %s", c)
	}
	if c := cellLine(t, md, "kill, v1"); !strings.Contains(c, "Nothing was retried: no call failed") {
		t.Errorf("a kill that cost nothing, without retries: %s", c)
	}
	if c := cellLine(t, md, "delete, v1"); strings.Contains(c, "preStop hook (") || !strings.Contains(c, "No preStop hook ran and no failure was recorded") {
		t.Errorf("v1's delete without losses: %s", c)
	}

	// A different dominant cause changes the sentence: timeouts at a torn-down address.
	r = matrixReport(map[string]*Result{
		"v1-delete": lossResult(9, 0, map[string]int64{"http_5xx": 9}, map[string]int64{"timeout": 7, "reset": 2}),
		"v2-delete": lossResult(0, 0, map[string]int64{}, nil), "v1-kill": lossResult(0, 0, map[string]int64{}, nil), "v2-kill": lossResult(0, 0, map[string]int64{}, nil),
	})
	if c := cellLine(t, matrixMarkdown(r), "delete, v1"); !strings.Contains(c, "most of them timeout (7 of 9)") || !strings.Contains(c, "address of a pod already torn down") {
		t.Errorf("a timeout-dominated cell: %s", c)
	}

	// Not a matrix: nothing.
	if md := matrixMarkdown(syntheticReport()); md != "" {
		t.Errorf("a single-disruption report got a matrix:\n%s", md)
	}
}

// REPORT.md carries the matrix, and the terminal cell keeps its form.
func TestMatrixInReport(t *testing.T) {
	r := matrixReport(map[string]*Result{
		"v1-delete": lossResult(41, 0, map[string]int64{"http_5xx": 41}, map[string]int64{"reset": 36, "eof": 5}),
		"v2-delete": lossResult(0, 0, map[string]int64{}, nil), "v1-kill": lossResult(0, 0, map[string]int64{}, nil), "v2-kill": lossResult(0, 0, map[string]int64{}, nil),
	})
	var b strings.Builder
	if err := WriteMarkdown(&b, r, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "## The matrix") || !strings.Contains(b.String(), "What each cell shows:") {
		t.Errorf("REPORT.md has no matrix:\n%s", b.String())
	}
	if got := MatrixCell(r.Scenarios[0]); got != "41 (4.10 %) 5xx/reset" {
		t.Errorf("terminal cell %q", got)
	}
}
