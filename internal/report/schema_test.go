package report

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/load"
)

// The report names the load's error classes itself; the two lists must agree.
func TestErrorClassesMatchTheLoadGenerator(t *testing.T) {
	var fromLoad []string
	for _, c := range load.ErrorClasses {
		fromLoad = append(fromLoad, string(c))
	}
	if !slices.Equal(ErrorClasses, fromLoad) {
		t.Errorf("report.ErrorClasses %v, load.ErrorClasses %v: a class was added or renamed; update ErrorClasses, the colours and words, and docs/report.md", ErrorClasses, fromLoad)
	}
}

var t0 = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

func sec(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// loadResult is a load.Result with every field set, as the load generator returns it.
func loadResult() *load.Result {
	return &load.Result{
		Start: t0, SendEnd: sec(30), End: sec(30.2),
		Config: load.Config{URL: "http://127.0.0.1:8000/", Method: "GET", Model: load.Closed, VUs: 15,
			Think: 100 * time.Millisecond, Duration: 30 * time.Second, Timeout: 10 * time.Second, Connections: "new"},
		Requests: 100, Sent: 100, OK: 90, Errors: 10, ErrorRate: 0.1, RPS: 3.33,
		ErrorsByKind:  map[load.Outcome]int64{load.HTTP5xx: 8, load.Refused: 2},
		UpstreamKinds: map[string]int64{"eof": 3, "refused": 5},
		Retries:       4,
		ReusedConn:    load.ReusedConnFailures{Upstream: 1},
		Latency:       load.Latency{Avg: 150, P50: 140, P90: 190, P95: 200, P99: 300, Max: 5001},
		Timeline: []load.Second{
			{Second: 0, Requests: 50, OK: 50, ErrorsByKind: map[load.Outcome]int64{load.HTTP5xx: 0}, P50: 140, P99: 200, Max: 210},
			{Second: 1, Requests: 50, OK: 40, Errors: 10, ErrorsByKind: map[load.Outcome]int64{load.HTTP5xx: 8, load.Refused: 2},
				UpstreamKinds: map[string]int64{"eof": 3, "refused": 5}, P50: 150, P99: 5000, Max: 5001},
		},
		Disruptions: []load.Disruption{{Start: sec(1.1), End: sec(1.9), StartOffset: 1.1, EndOffset: 1.9, RequestsFailed: 10,
			FirstError: "502 Bad Gateway (kind eof)", Classes: map[load.Outcome]int64{load.HTTP5xx: 8, load.Refused: 2},
			UpstreamKinds: map[string]int64{"eof": 3, "refused": 5}}},
	}
}

// syntheticReport is a schema 2 report with every field, rollouts, statistics, comparisons
// and breaches set: what the coming repeated rollouts and thresholds fill in.
func syntheticReport() *Report {
	res := FromLoad(loadResult())
	ev := func(s float64, k cluster.EventKind, pod string) cluster.Event {
		return cluster.Event{Time: sec(s), Kind: k, Deployment: "upstream", Pod: pod, Source: cluster.SourceEmbedded}
	}
	return &Report{
		Schema: SchemaVersion, Created: t0.Add(time.Minute), Cluster: "embedded",
		Host: Host{OS: "linux", Arch: "amd64", Cores: 2, GoVersion: "go1.26", Gracelab: "(devel)"},
		Settings: Settings{Scenarios: []string{"v1"}, Duration: Duration(30 * time.Second), RestartAt: Duration(time.Second),
			Deployment: "upstream", SettleTail: Duration(5 * time.Second), Model: "closed", VUs: 15, Think: Duration(100 * time.Millisecond),
			Timeout: Duration(10 * time.Second), Connections: "new", Method: "GET", Disruption: DisruptionRestart, Rollouts: 2,
			RolloutGap: Duration(5 * time.Second), Thresholds: []string{"max-errors=0"}, PerRollout: true},
		Scenarios: []Scenario{{
			Scenario: "v1", Title: "v1 no protection", Manifests: "k8s/v1-no-graceful", Disruption: DisruptionRestart,
			RestartAt: sec(1), RolloutSeconds: 0.5, Result: res,
			Rollouts: []Rollout{
				{Index: 1, RestartAt: sec(1), SettledAt: sec(1.5), WindowEnd: sec(6.5), Requests: 60, OK: 50, Errors: 10,
					ErrorsByKind: map[string]int64{"http_5xx": 8, "refused": 2}, UpstreamKinds: map[string]int64{"eof": 3, "refused": 5},
					LongestDisruption: 0.8, LatencyMax: 5001, LatencyP99: 5000, RolloutSeconds: 0.5},
				{Index: 2, RestartAt: sec(11.5), SettledAt: sec(12), WindowEnd: sec(17), Requests: 40, OK: 40,
					LatencyMax: 210, LatencyP99: 200, RolloutSeconds: 0.5},
			},
			Statistics: &Statistics{Rollouts: 2, LossyRollouts: 1, LossyInterval: Interval{Low: 0.0126, High: 0.9874, Level: 0.95},
				Losses: Spread{Min: 0, Median: 5, Max: 10}},
			Events: []cluster.Event{ev(1, cluster.RestartTriggered, ""), ev(1.1, cluster.SIGTERMSent, "upstream-7d9f8-abc12")},
		}},
		Comparisons: []Comparison{{Scenarios: [2]string{"v1", "v2"}, Test: "fisher_exact", PValue: 1, Alpha: 0.05, RolloutsA: 2, RolloutsB: 2}},
		Breaches:    []Breach{{Threshold: "max-errors", Scenario: "v1", Rollout: 1, Measured: 10, Limit: 0, Unit: "requests"}},
	}
}

// withKillScenario adds a scenario under another disruption (a kill): its trigger event and
// the pod events of a crash and a restart.
func withKillScenario(r *Report) *Report {
	s := r.Scenarios[0]
	s.Scenario, s.Title, s.Disruption, s.Rollouts, s.Statistics = "v2-kill", "v2 graceful, kill", DisruptionKill, nil, nil
	pod := "upstream-7d9f8-def34"
	s.Events = []cluster.Event{
		{Time: sec(1), Kind: cluster.KillRequested, Deployment: "upstream", Source: cluster.SourceDrill},
		{Time: sec(1), Kind: cluster.SIGKILLSent, Deployment: "upstream", Pod: pod, Detail: "killed: a crash or an OOM kill", Source: cluster.SourceEmbedded},
		{Time: sec(1.2), Kind: cluster.ContainerRestarted, Deployment: "upstream", Pod: pod, Detail: "restartCount 1", Source: cluster.SourceEmbedded},
	}
	r.Scenarios = append(r.Scenarios, s)
	r.Settings.Scenarios = append(r.Settings.Scenarios, s.Scenario)
	r.Settings.Disruption = DisruptionAll
	return r
}

// report.json's exact shape: a change to any field name, type or omission shows here. The
// second scenario was added with the trigger events of the other disruptions (kill_requested):
// the golden file was rewritten for it on purpose.
func TestReportJSONGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := withKillScenario(syntheticReport()).WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.v2.golden.json", buf.Bytes())
	back, err := Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := back.WriteJSON(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("a schema 2 report does not survive a decode and encode unchanged")
	}
}

// FromLoad carries every number across: the converted result is the load's JSON, field for
// field, plus nothing (schema 1 was the load's own JSON).
func TestFromLoadKeepsEveryField(t *testing.T) {
	lr := loadResult()
	var fromLoad, fromReport map[string]any
	raw, _ := json.Marshal(lr)
	if err := json.Unmarshal(raw, &fromLoad); err != nil {
		t.Fatal(err)
	}
	raw, _ = json.Marshal(FromLoad(lr))
	if err := json.Unmarshal(raw, &fromReport); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(fromLoad)
	b, _ := json.Marshal(fromReport)
	if !bytes.Equal(a, b) {
		t.Errorf("FromLoad changed the data:\nload   %s\nreport %s", a, b)
	}
	if FromLoad(nil) != nil {
		t.Error("FromLoad(nil) is not nil")
	}
}

// Every report kept in docs/fidelity (schema 1) still decodes and renders.
func TestSchema1ReportsStayReadable(t *testing.T) {
	// The reports of 25 November 2026 (k1-k4, e1-e4, x1-x4) are schema 1; later ones are not.
	paths, err := filepath.Glob("../../docs/fidelity/[ekx][0-9].json.gz")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no schema 1 reports found: %v", err)
	}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(zr)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		r, err := Decode(data)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if r.Schema != 1 || r.Scenarios[0].Result == nil || r.Scenarios[0].Requests == 0 || len(r.Scenarios[0].Timeline) == 0 {
			t.Fatalf("%s: decoded without its results: schema %d", p, r.Schema)
		}
		var md bytes.Buffer
		if err := WriteMarkdown(&md, r, nil); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if !strings.Contains(md.String(), "| requests |") {
			t.Errorf("%s: REPORT.md has no results table", p)
		}
	}
}

// A report written before each disruption had its own trigger event marked an eviction with
// restart_triggered from the drill: read back, it is the eviction's event; a restarted
// scenario and a cluster's own restart event are left alone.
func TestOlderTriggerEventsAreRenamed(t *testing.T) {
	r := syntheticReport()
	evict := r.Scenarios[0]
	evict.Scenario, evict.Disruption = "v1-evict", DisruptionEvict
	evict.Events = []cluster.Event{
		{Time: sec(1), Kind: cluster.RestartTriggered, Deployment: "upstream", Source: cluster.SourceDrill},
		{Time: sec(1.1), Kind: cluster.PodEvicted, Deployment: "upstream", Pod: "upstream-7d9f8-abc12", Source: cluster.SourceEmbedded},
	}
	r.Scenarios = append(r.Scenarios, evict)
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if k := back.Scenarios[1].Events[0].Kind; k != cluster.EvictionRequested {
		t.Errorf("the evict scenario's drill trigger reads as %s, want eviction_requested", k)
	}
	if k := back.Scenarios[0].Events[0].Kind; k != cluster.RestartTriggered {
		t.Errorf("the restarted scenario's trigger reads as %s, want restart_triggered", k)
	}
}
