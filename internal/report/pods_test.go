package report

import (
	"slices"
	"testing"

	"github.com/gracelab/gracelab/internal/cluster"
)

// A start or an endpoint event seen twice does not open a second span: the one open ends at
// the exit, or at the first view that stops the routing.
func TestPodLifeSpansIgnoreRepeats(t *testing.T) {
	const pod = "upstream-7d9f8-abc12"
	base := syntheticReport().Scenarios[0]
	ev := func(secs float64, kind cluster.EventKind) cluster.Event {
		return eventAt(base, secs, kind, pod, "", "")
	}
	s := disruptedScenario(DisruptionKill,
		ev(0, cluster.PodStarted), ev(0.1, cluster.PodStarted),
		ev(0.5, cluster.EndpointAdded), ev(0.75, cluster.EndpointAdded),
		ev(5, cluster.PodExited), ev(6, cluster.EndpointRemoved), ev(6.5, cluster.EndpointRemoved))
	p := podLives(s)[0]
	if want := []span{{0, 5}}; !slices.Equal(p.Runs, want) {
		t.Errorf("runs %v, want %v", p.Runs, want)
	}
	if want := []span{{0.5, 6}}; !slices.Equal(p.Routed, want) {
		t.Errorf("routed %v, want %v", p.Routed, want)
	}
}
