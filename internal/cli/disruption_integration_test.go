package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
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
	if testing.Short() {
		t.Skip("integration test: real cluster processes")
	}
	exe := ownGracelab(t)
	out := filepath.Join(t.TempDir(), "report")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "demo", "--scenarios", "v2", "--disruption", "scale", "--duration", "30s", "--disrupt-at", "1s",
		"--endpoint-lag", "300ms", "--port", "0", "--quiet", "--out", out)
	pr, pw := io.Pipe()
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	lines := newLineWaiter(pr)
	lines.wait(t, regexp.MustCompile(`scaled upstream from 2 to 1 replicas`), time.Minute)
	if got := clusterLogKinds(t, out, "v2"); got != "scaled 2 -> 1" {
		t.Fatalf("before the interrupt the cluster log has %q: the test would not show the restore", got)
	}
	for range 2 {
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	err := cmd.Wait()
	pw.Close()
	if code := exitCode(t, err); code != 1 {
		t.Errorf("interrupted demo exited %d, want 1", code)
	}
	assertNoneLeft(t, exe)
	if got := clusterLogKinds(t, out, "v2"); got != "scaled 2 -> 1,scaled 1 -> 2" {
		t.Errorf("cluster events %q: want the scale-down and the scale back", got)
	}
}
