package report

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

// The v1 fixture (embedded cluster) loses requests in the three ways an unprotected rollout
// does; each gets one sentence with its count and its cause from the pod events.
func TestMechanismsOfV1(t *testing.T) {
	ms := Mechanisms(fixture(t).Scenarios[0])
	if len(ms) != 3 {
		t.Fatalf("want 3 mechanisms, got %d:\n%s", len(ms), strings.Join(ms, "\n"))
	}
	for i, want := range []string{
		"8 requests were in flight on a process that was killed (eof): pod 57lrt's process exited at 5.0 s, 0.0 s after its SIGTERM",
		// The embedded proxy resets a connection it cannot pass on to a dead pod.
		"10 requests were sent to a dead process the Service still routed to (reset): pod 57lrt exited at 5.0 s but the Service routed to it until 6.0 s",
		"15 requests were sent to a pod address already gone and waited out the downstream's timeout (timeout): pod 57lrt's network was torn down at 5.1 s but the Service routed to it until 6.0 s",
	} {
		if !strings.HasPrefix(ms[i], want) {
			t.Errorf("mechanism %d:\n got %s\nwant %s...", i+1, ms[i], want)
		}
	}
	if !strings.Contains(ms[2], "the slowest request took 5,018 ms") {
		t.Errorf("the timeout mechanism does not say how long they waited: %s", ms[2])
	}
	if got := Mechanisms(fixture(t).Scenarios[1]); got != nil {
		t.Errorf("v2 lost nothing but has mechanisms: %v", got)
	}
}

// On a real cluster a reset comes from a process dying mid-request, not from a proxy.
func TestMechanismsOnARealClusterCountResetsAsInFlight(t *testing.T) {
	s := fixture(t).Scenarios[0]
	for i := range s.Events {
		s.Events[i].Source = cluster.SourceAPI
	}
	ms := Mechanisms(s)
	if len(ms) == 0 || !strings.HasPrefix(ms[0], "18 requests were in flight on a process that was killed (eof and reset)") {
		t.Errorf("mechanisms: %q", ms)
	}
}

// A schema 2 timeline splits 5xx per second, so the mechanism gets its own send window.
func TestMechanismWindowFromPerSecondKinds(t *testing.T) {
	r := syntheticReport()
	ms := Mechanisms(r.Scenarios[0])
	if len(ms) != 2 || !strings.Contains(ms[0], "(eof), sent between 1.0 s and 2.0 s") || !strings.Contains(ms[1], "(refused), sent between 1.0 s and 2.0 s") {
		t.Errorf("mechanisms: %q", ms)
	}
}

// The pod table has one row per pod of the disrupted Deployment, its events in seconds.
func TestPodRows(t *testing.T) {
	header, rows := podRows(fixture(t).Scenarios[1])
	if strings.Join(header, "|") != "pod|revision|created|ready|terminating|preStop|SIGTERM|exited|left the Service" {
		t.Errorf("header %v", header)
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 4 upstream pods (the downstream's are not disrupted): %v", len(rows), rows)
	}
	if got := strings.Join(rows[0], "|"); got != "bjq2j|old|-2.9 s|-1.7 s|7.0 s|7.0–12.0 s|12.0 s|12.0 s (code 0)|8.0 s" {
		t.Errorf("first old pod: %s", got)
	}
	if got := strings.Join(rows[3], "|"); !strings.HasPrefix(got, "qf29c|new|") || !strings.HasSuffix(got, "|-|-|-|-|-") {
		t.Errorf("last new pod: %s", got)
	}
}

// A failed scenario's error comes first, and a report with no results has no empty table.
func TestTableErrorFirst(t *testing.T) {
	r := fixture(t)
	r.Scenarios[1].Result = nil
	r.Scenarios[1].Failure = "the cluster did not come up"
	var buf bytes.Buffer
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(buf.String(), "\n"); first != "v2 failed: the cluster did not come up" {
		t.Errorf("first line %q, want the failure", first)
	}
	all := &Report{Schema: SchemaVersion, Scenarios: []Scenario{{Scenario: "v1", Failure: "port 8000 is taken"}}}
	buf.Reset()
	if err := WriteTable(&buf, all); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "v1 failed: port 8000 is taken\n" {
		t.Errorf("with no results the table should be left out, got:\n%s", buf.String())
	}
}

// Rollouts, statistics, comparisons and breaches reach the terminal table.
func TestTableRolloutsStatisticsBreaches(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTable(&buf, syntheticReport()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"  rollout 1                  10 of 60 (0.8 s)",
		"  rollout 2                  0 of 40",
		"lossy rollouts               1 of 2 (1.3–98.7 %)",
		"losses min/median/max        0 / 5 / 10",
		"v1 vs v2: not significant with 2 and 2 rollouts (Fisher's exact test on lossy rollouts, p = 1; alpha 0.05)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// The breaches are the judging command's lines on stderr, not the table's.
	want := "threshold breached: v1 rollout 1: max-errors measured 10 requests, limit 0 requests"
	if strings.Contains(out, "breached") {
		t.Errorf("the table repeats the breaches:\n%s", out)
	}
	if got := syntheticReport().BreachLines(); len(got) != 1 || got[0] != want {
		t.Errorf("breach lines %q, want [%q]", got, want)
	}
}

func TestPerRequestBound(t *testing.T) {
	r := syntheticReport()
	r.Scenarios[0].Statistics.RequestErrorUpper = 0.00034
	var buf bytes.Buffer
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "error rate, if independent   ≤ 0.034 %") {
		t.Errorf("no per-request bound:\n%s", buf.String())
	}
}

// REPORT.md of a schema 2 report with rollouts: fixed by a golden file.
func TestMarkdownRolloutsGolden(t *testing.T) {
	r := syntheticReport()
	cf := chartNames(r)
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, r, &cf); err != nil {
		t.Fatal(err)
	}
	golden(t, "REPORT.rollouts.md.golden", buf.Bytes())
	for _, want := range []string{"(rollouts.png)", "| rollout | restart | settled |", "| 1 | 1.0 s | 1.5 s | 6.5 s | 60 | 50 | 10 |", "## Thresholds breached", "## Comparisons"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("REPORT.md lacks %q", want)
		}
	}
}

// The rollouts chart draws a bar group per rollout; the timeline marks every restart.
func TestRolloutChartsRender(t *testing.T) {
	r := syntheticReport()
	v2 := r.Scenarios[0]
	v2.Scenario, v2.Title = "v2", "v2 graceful"
	v2.Rollouts = []Rollout{{Index: 1, Requests: 50, OK: 50}, {Index: 2, Requests: 50, OK: 49, Errors: 1}, {Index: 3, Requests: 50, OK: 50}}
	r.Scenarios = append(r.Scenarios, v2)
	var buf bytes.Buffer
	if err := WriteRolloutChart(&buf, r, PNG); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != ChartWidth || b.Dy() != RolloutsHeight {
		t.Errorf("rollouts PNG is %dx%d", b.Dx(), b.Dy())
	}
	buf.Reset()
	if err := WriteRolloutChart(&buf, r, SVG); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"v1 no protection", "v2 graceful", "Errors per rollout"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("rollouts SVG lacks %q", want)
		}
	}
	if err := WriteRolloutChart(&buf, fixture(t), PNG); err == nil {
		t.Error("a report without rollouts should have no rollouts chart")
	}

	// The second restart has no event: the rollout's own restart time marks it.
	s := r.Scenarios[0]
	buf.Reset()
	if err := WriteChart(&buf, s, SVG); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"restart 1", "restart 2"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("timeline SVG lacks the mark %q", want)
		}
	}
}

// Errors are coloured by what went wrong behind the downstream, per second when the report
// has it, and the legend names those causes.
func TestErrorColoursByUpstreamKind(t *testing.T) {
	r := syntheticReport()
	got := causeCounts(r.Scenarios[0].Timeline[1], r.Scenarios[0].UpstreamKinds)
	if got["upstream:eof"] != 3 || got["upstream:refused"] != 5 || got["class:refused"] != 2 || len(got) != 3 {
		t.Errorf("causes of second 1: %v", got)
	}
	// An older report: no split per second, several kinds over the run.
	old := Second{ErrorsByKind: map[string]int64{"http_5xx": 4}}
	if got := causeCounts(old, map[string]int64{"eof": 1, "reset": 3}); got["upstream:unknown"] != 4 || len(got) != 1 {
		t.Errorf("older second: %v", got)
	}
	// One kind over the whole run: every 5xx second is that kind.
	if got := causeCounts(old, map[string]int64{"timeout": 9}); got["upstream:timeout"] != 4 || len(got) != 1 {
		t.Errorf("single-kind run: %v", got)
	}
	var texts []string
	for _, e := range legendFor(r.Scenarios, true) {
		texts = append(texts, e.text)
	}
	legend := strings.Join(texts, "|")
	for _, want := range []string{"5xx: upstream refused", "5xx: upstream EOF", "refused at the downstream", "routed by the Service"} {
		if !strings.Contains(legend, want) {
			t.Errorf("legend lacks %q: %s", want, legend)
		}
	}
}

// The new event kinds read as words, and a cordon is drawn as a mark.
func TestNewEventKinds(t *testing.T) {
	for _, tc := range []struct {
		e    cluster.Event
		want string
	}{
		{cluster.Event{Kind: cluster.PodEvicted, Pod: "upstream-1-abc"}, "pod abc was evicted"},
		{cluster.Event{Kind: cluster.EvictionRefused, Pod: "upstream-1-abc", Detail: "PodDisruptionBudget"}, "the eviction of pod abc was refused (PodDisruptionBudget)"},
		{cluster.Event{Kind: cluster.NodeCordoned, Node: "n1"}, "node n1 was cordoned"},
		{cluster.Event{Kind: cluster.NodeUncordoned, Node: "n1"}, "node n1 was uncordoned"},
		{cluster.Event{Kind: cluster.ContainerRestarted, Pod: "upstream-1-abc", Detail: "restartCount 1"}, "pod abc's container was restarted (restartCount 1)"},
		{cluster.Event{Kind: cluster.Scaled, Deployment: "upstream", Detail: "2 -> 1"}, "upstream was scaled (2 -> 1)"},
	} {
		if got := eventPhrase(tc.e); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.e.Kind, got, tc.want)
		}
	}
	s := syntheticReport().Scenarios[0]
	s.Events = append(s.Events, cluster.Event{Time: s.Start.Add(3 * time.Second), Kind: cluster.NodeCordoned, Node: "node-a"})
	if marks := marksOnAxis(s, 30); len(marks) != 3 || marks[1].label != "cordoned node-a" || marks[2].label != "restart 2" {
		t.Errorf("marks %+v", marks)
	}
}

// report.html carries the same pod table, mechanisms, rollouts, comparisons and breaches,
// and WriteAll writes the rollouts chart when there are rollouts.
func TestWriteAllWithRollouts(t *testing.T) {
	dir := t.TempDir()
	files, err := WriteAll(dir, syntheticReport())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range files.List() {
		names = append(names, p[len(dir)+1:])
	}
	if got := strings.Join(names, " "); !strings.Contains(got, "rollouts.png rollouts.svg") {
		t.Errorf("files %s lack the rollouts chart", got)
	}
	html, err := os.ReadFile(filepath.Join(dir, HTMLName))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<td>abc12</td>", "How the requests were lost:", "<th>longest disruption</th>",
		"v1 rollout 1: max-errors measured 10 requests, limit 0 requests", "not significant with 2 and 2 rollouts", `alt="Errors per rollout, per scenario"`} {
		if !strings.Contains(string(html), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
}
