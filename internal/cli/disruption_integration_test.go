package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// clusterLogKinds lists the event kinds a scenario's cluster.log recorded, in order: the log is
// written as things happen, so it holds what came after the report's events were collected
// (the restore in Down) and survives a second Ctrl-C.
func clusterLogKinds(t *testing.T, out, scenario string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(out, "logs", scenario, "cluster.log"))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, l := range strings.Split(string(raw), "\n") {
		if m := regexp.MustCompile(`msg=(\w+) .*detail="?([^"]*)"?$`).FindStringSubmatch(l); m != nil {
			switch m[1] {
			case "node_cordoned", "node_uncordoned", "pod_evicted", "eviction_refused":
				kinds = append(kinds, m[1])
			case "scaled":
				kinds = append(kinds, "scaled "+m[2])
			}
		}
	}
	return strings.Join(kinds, ",")
}

// A drain of the only node: the budget refuses the second eviction until --eviction-timeout,
// the scenario fails saying so, and the node is uncordoned all the same.
func TestIntegrationDrainBlockedByTheBudgetStillUncordons(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "report")
	stdout, stderr, code := runGracelab(t, 3*time.Minute, "", "demo", "--scenarios", "v2", "--disruption", "drain", "--nodes", "1", "--eviction-timeout", "11s",
		"--duration", "8s", "--disrupt-at", "2s", "--endpoint-lag", "300ms", "--port", "0", "--quiet", "--out", out)
	if code != ExitFailed {
		t.Fatalf("exit %d, want 1 (the drain failed)\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"draining node localkube-1", "refused: Cannot evict pod as it would violate the pod's disruption budget", "waited 5s, retrying in 5s",
		"drain: draining node localkube-1: eviction of pod", "still refused after"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if got := clusterLogKinds(t, out, "v2"); !regexp.MustCompile(`^node_cordoned,(pod_evicted,eviction_refused|eviction_refused,pod_evicted)(,eviction_refused)+,node_uncordoned$`).MatchString(got) {
		t.Errorf("cluster events %s: want cordon, one eviction, refusals, uncordon", got)
	}
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Scenarios []struct {
			Disruption string `json:"disruption"`
			Events     []struct {
				Kind string `json:"kind"`
			} `json:"events"`
		} `json:"scenarios"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, e := range doc.Scenarios[0].Events {
		kinds[e.Kind]++
	}
	if doc.Scenarios[0].Disruption != "drain" || kinds["node_cordoned"] != 1 || kinds["pod_evicted"] != 1 || kinds["eviction_refused"] < 1 {
		t.Errorf("report: disruption %q, events %v", doc.Scenarios[0].Disruption, kinds)
	}
}

// Interrupted twice right after the scale-down (v2's preStop keeps the rollout unsettled for
// seconds): gracelab exits at once and still scales back.
func TestIntegrationScaleInterruptedScalesBack(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "report")
	g := startGracelab(t, 3*time.Minute, "demo", "--scenarios", "v2", "--disruption", "scale", "--duration", "30s", "--disrupt-at", "1s",
		"--endpoint-lag", "300ms", "--port", "0", "--quiet", "--out", out)
	g.stderr.wait(t, regexp.MustCompile(`scaled upstream from 2 to 1 replicas`), time.Minute)
	if got := clusterLogKinds(t, out, "v2"); got != "scaled 2 -> 1" {
		t.Fatalf("before the interrupt the cluster log has %q: the test would not show the restore", got)
	}
	g.interruptTwice(t, regexp.MustCompile(`^interrupted: stopping the load`))
	if code := g.wait(t); code != ExitFailed {
		t.Errorf("interrupted demo exited %d, want 1", code)
	}
	if got := clusterLogKinds(t, out, "v2"); got != "scaled 2 -> 1,scaled 1 -> 2" {
		t.Errorf("cluster events %q: want the scale-down and the scale back", got)
	}
}
