package report

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

// disruptedScenario is a scenario of the given disruption with the events its run records.
func disruptedScenario(kind string, events ...cluster.Event) Scenario {
	s := syntheticReport().Scenarios[0]
	s.Disruption, s.Rollouts, s.Statistics = kind, nil, nil
	s.Events = events
	return s
}

func eventAt(s Scenario, secs float64, kind cluster.EventKind, pod, node, detail string) cluster.Event {
	return cluster.Event{Time: s.Start.Add(time.Duration(secs * float64(time.Second))), Kind: kind, Deployment: "upstream",
		Pod: pod, Node: node, Detail: detail, Source: cluster.SourceEmbedded}
}

// Every event of the other disruptions reaches the timeline chart as a mark (and the legend),
// and the pod events reach the pod's lane: evicted, refused, killed, restarted.
func TestDisruptionEventsReachTheChart(t *testing.T) {
	const pod, other = "upstream-7d9f8-abc12", "upstream-7d9f8-def34"
	base := syntheticReport().Scenarios[0]
	ev := func(secs float64, kind cluster.EventKind, pod, node, detail string) cluster.Event {
		return eventAt(base, secs, kind, pod, node, detail)
	}
	started := func(secs float64, p string) cluster.Event { return ev(secs, cluster.PodStarted, p, "", "") }
	exited := func(secs float64, p string) cluster.Event { return ev(secs, cluster.PodExited, p, "", "exit code 137") }
	routed := func(secs float64, p string, kind cluster.EventKind) cluster.Event { return ev(secs, kind, p, "", "") }

	drain := disruptedScenario(DisruptionDrain,
		started(0, pod), started(0, other),
		ev(1, cluster.DrainRequested, "", "", ""), ev(1, cluster.NodeCordoned, "", "localkube-1", ""),
		ev(1.1, cluster.PodEvicted, pod, "", ""), ev(1.1, cluster.EvictionRefused, other, "", "needs 1 healthy pods"),
		ev(6.1, cluster.EvictionRefused, other, "", "needs 1 healthy pods"), ev(11.1, cluster.EvictionRefused, other, "", "needs 1 healthy pods"),
		ev(12, cluster.PodEvicted, other, "", ""), ev(20, cluster.NodeUncordoned, "", "localkube-1", ""))
	marks := marksOnAxis(drain, 30)
	var labels []string
	for _, m := range marks {
		labels = append(labels, m.label)
	}
	want := []string{"drain", "cordoned localkube-1", "evicted abc12", "eviction refused x3", "", "", "evicted def34", "uncordoned localkube-1"}
	if !slices.Equal(labels, want) {
		t.Errorf("drain marks %q, want %q", labels, want)
	}
	lives := podLives(drain)
	if len(lives) != 2 || math.IsNaN(lives[0].Evicted) || len(lives[1].Refused) != 3 {
		t.Fatalf("drain lanes: %+v", lives)
	}
	legend := legendText(drain)
	for _, w := range []string{"drain", "cordoned", "uncordoned", "evicted", "eviction refused"} {
		if !slices.Contains(legend, w) {
			t.Errorf("legend %q lacks %q", legend, w)
		}
	}

	// A kill: the trigger, the SIGKILL and the container's restart in the pod's lane, the
	// process bar broken between the exit and the restart, and red routing only there.
	kill := disruptedScenario(DisruptionKill,
		started(0, pod), routed(0.5, pod, cluster.EndpointAdded),
		ev(2, cluster.KillRequested, "", "", ""), ev(2, cluster.SIGKILLSent, pod, "", "killed"), exited(2.25, pod),
		routed(3, pod, cluster.EndpointRemoved), ev(2.5, cluster.ContainerRestarted, pod, "", "restartCount 1"), started(2.5, pod),
		routed(4, pod, cluster.EndpointAdded),
		ev(14, cluster.KillRequested, "", "", ""), ev(14, cluster.SIGKILLSent, pod, "", "killed"), exited(14.25, pod))
	labels = nil
	for _, m := range marksOnAxis(kill, 30) {
		labels = append(labels, m.label)
	}
	if want := []string{"kill 1", "container restarted abc12", "kill 2"}; !slices.Equal(labels, want) {
		t.Errorf("kill marks %q, want %q", labels, want)
	}
	p := podLives(kill)[0]
	if len(p.Kills) != 2 || len(p.Exits) != 2 || len(p.Restarts) != 1 {
		t.Fatalf("kill lane: kills %v, exits %v, restarts %v", p.Kills, p.Exits, p.Restarts)
	}
	if len(p.Runs) != 2 || p.Runs[0] != (span{0, 2.25}) || p.Runs[1] != (span{2.5, 14.25}) {
		t.Errorf("process runs %v, want [0 2.25] and [2.5 14.25]", p.Runs)
	}
	if d := p.routedDead(); len(d) != 2 || d[0] != (span{2.25, 2.5}) || d[1].From != 14.25 || !math.IsInf(d[1].To, 1) {
		t.Errorf("routed while dead %v: want from the exit to the restart, and after the last exit", d)
	}
	legend = legendText(kill)
	for _, w := range []string{"kill", "container restarted", "SIGKILL", "routed, process dead"} {
		if !slices.Contains(legend, w) {
			t.Errorf("legend %q lacks %q", legend, w)
		}
	}

	scale := disruptedScenario(DisruptionScale, ev(1, cluster.ScaleRequested, "", "", ""), ev(1, cluster.Scaled, "", "", "2 -> 1"),
		ev(9, cluster.Scaled, "", "", "1 -> 2"))
	labels = nil
	for _, m := range marksOnAxis(scale, 30) {
		labels = append(labels, m.label)
	}
	if want := []string{"scale", "scaled 2 -> 1", "scaled 1 -> 2"}; !slices.Equal(labels, want) {
		t.Errorf("scale marks %q, want %q", labels, want)
	}

	// A rollout whose trigger no event records gets the scenario's own trigger.
	del := disruptedScenario(DisruptionDelete)
	del.Rollouts = []Rollout{{Index: 1, RestartAt: del.Start.Add(time.Second)}}
	if m := marksOnAxis(del, 30); len(m) != 1 || m[0].kind != cluster.DeletionRequested || m[0].label != "delete" {
		t.Errorf("delete marks %+v, want one delete", m)
	}
}

func legendText(s Scenario) []string {
	var out []string
	for _, e := range legendFor([]Scenario{s}, true) {
		out = append(out, e.text)
	}
	return out
}

// Each trigger reads as what was done.
func TestTriggerPhrases(t *testing.T) {
	for kind, want := range map[cluster.EventKind]string{
		cluster.DeletionRequested: "deletion", cluster.EvictionRequested: "eviction", cluster.DrainRequested: "drain",
		cluster.KillRequested: "killed", cluster.ScaleRequested: "scale-down",
	} {
		if got := eventPhrase(cluster.Event{Kind: kind, Deployment: "upstream"}); !strings.Contains(got, want) || !strings.Contains(got, "upstream") {
			t.Errorf("%s: %q", kind, got)
		}
	}
}
