package report

import (
	"math"
	"sort"
	"strings"

	"github.com/gracelab/gracelab/internal/cluster"
)

// span is an interval in seconds from the load's start; To is +Inf while it lasts.
type span struct{ From, To float64 }

// openSpan starts a span at x unless the last one is still open.
func openSpan(spans []span, x float64) []span {
	if n := len(spans); n == 0 || !math.IsInf(spans[n-1].To, 1) {
		spans = append(spans, span{From: x, To: math.Inf(1)})
	}
	return spans
}

// closeSpan ends the last span at x if it is still open.
func closeSpan(spans []span, x float64) {
	if n := len(spans); n > 0 && math.IsInf(spans[n-1].To, 1) {
		spans[n-1].To = x
	}
}

// podLife is one pod's life as its events tell it, in seconds from the load's start; NaN
// where an event was not recorded.
type podLife struct {
	Name, Revision string
	Rev            int // the revision's order of appearance, from 1
	Created, Started, Ready, Terminating, PreStopStart, PreStopEnd,
	SIGTERM, SIGKILL, Exited, NetRemoved, Deleted, Evicted float64
	ExitDetail string
	Restarts   []float64 // container restarts
	Kills      []float64 // every SIGKILL (a crash, or the grace period's end)
	Exits      []float64 // every exit of its process
	Refused    []float64 // evictions refused (a PodDisruptionBudget)
	Runs       []span    // when its process ran: from each start to the exit that ended it
	Routed     []span    // when the Service sent it new connections
}

// deadSpans are when the pod's process was not running after it first ran: from each exit to
// the container's restart, and from the last exit on. Without recorded starts (a real
// cluster's API does not report them) it is from the first stop on.
func (p podLife) deadSpans() []span {
	if len(p.Runs) == 0 {
		if stop := p.stopped(); !math.IsNaN(stop) {
			return []span{{From: stop, To: math.Inf(1)}}
		}
		return nil
	}
	var out []span
	for i, r := range p.Runs {
		if math.IsInf(r.To, 1) {
			continue
		}
		next := math.Inf(1)
		if i+1 < len(p.Runs) {
			next = p.Runs[i+1].From
		}
		out = append(out, span{From: r.To, To: next})
	}
	return out
}

// routedDead are the spans when the Service routed to the pod while its process was dead.
func (p podLife) routedDead() []span {
	var out []span
	for _, r := range p.Routed {
		for _, d := range p.deadSpans() {
			if from, to := math.Max(r.From, d.From), math.Min(r.To, d.To); to > from {
				out = append(out, span{From: from, To: to})
			}
		}
	}
	return out
}

// routedAt reports whether the Service routed to the pod at x.
func (p podLife) routedAt(x float64) bool {
	for _, r := range p.Routed {
		if x >= r.From && x < r.To {
			return true
		}
	}
	return false
}

// routingEnd is when the Service stopped routing to the pod after x; NaN if it never did.
func (p podLife) routingEnd(x float64) float64 {
	for _, r := range p.Routed {
		if x >= r.From && x < r.To && !math.IsInf(r.To, 1) {
			return r.To
		}
	}
	return math.NaN()
}

// stopped is when the pod's process stopped serving: its exit, else the signal that ended it.
func (p podLife) stopped() float64 {
	for _, t := range []float64{p.Exited, p.SIGKILL} {
		if !math.IsNaN(t) {
			return t
		}
	}
	return math.NaN()
}

// disruptedDeployment is the Deployment a scenario disrupted: named by its restart (or
// scale) event, else the Deployment of the first pod that was terminated.
func disruptedDeployment(events []cluster.Event) string {
	for _, e := range events {
		if (cluster.IsTrigger(e.Kind) || e.Kind == cluster.Scaled) && e.Deployment != "" {
			return e.Deployment
		}
	}
	for _, e := range events {
		if e.Kind == cluster.PodTerminating || e.Kind == cluster.PodEvicted || e.Kind == cluster.SIGKILLSent {
			return deploymentOf(e)
		}
	}
	return ""
}

// deploymentOf names an event's Deployment, from the pod name when the event does not say:
// upstream-7d9f8-abc12 -> upstream.
func deploymentOf(e cluster.Event) string {
	if e.Deployment != "" {
		return e.Deployment
	}
	parts := strings.Split(e.Pod, "-")
	if len(parts) >= 3 {
		return strings.Join(parts[:len(parts)-2], "-")
	}
	return e.Pod
}

// podLives gathers the lives of the disrupted Deployment's pods, in order of creation.
func podLives(s Scenario) []podLife {
	if s.Result == nil {
		return nil
	}
	dep := disruptedDeployment(s.Events)
	nan := math.NaN()
	byName := map[string]*podLife{}
	var order []string
	revs := map[string]int{}
	at := func(e cluster.Event) float64 { return e.Time.Sub(s.Start).Seconds() }
	first := func(v *float64, x float64) {
		if math.IsNaN(*v) {
			*v = x
		}
	}
	for _, e := range s.Events {
		if e.Pod == "" || (dep != "" && deploymentOf(e) != dep) {
			continue
		}
		p := byName[e.Pod]
		if p == nil {
			p = &podLife{Name: e.Pod, Created: nan, Started: nan, Ready: nan, Terminating: nan, PreStopStart: nan, PreStopEnd: nan,
				SIGTERM: nan, SIGKILL: nan, Exited: nan, NetRemoved: nan, Deleted: nan, Evicted: nan}
			byName[e.Pod] = p
			order = append(order, e.Pod)
		}
		if p.Revision == "" && e.Revision != "" {
			p.Revision = e.Revision
			if revs[e.Revision] == 0 {
				revs[e.Revision] = len(revs) + 1
			}
			p.Rev = revs[e.Revision]
		}
		x := at(e)
		switch e.Kind {
		case cluster.PodCreated:
			first(&p.Created, x)
		case cluster.PodStarted:
			first(&p.Started, x)
			p.Runs = openSpan(p.Runs, x)
		case cluster.PodReady:
			first(&p.Ready, x)
		case cluster.PodTerminating:
			first(&p.Terminating, x)
		case cluster.PreStopStarted:
			first(&p.PreStopStart, x)
		case cluster.PreStopFinished:
			first(&p.PreStopEnd, x)
		case cluster.SIGTERMSent:
			first(&p.SIGTERM, x)
		case cluster.SIGKILLSent:
			first(&p.SIGKILL, x)
			p.Kills = append(p.Kills, x)
		case cluster.PodExited:
			if math.IsNaN(p.Exited) {
				p.Exited, p.ExitDetail = x, e.Detail
			}
			p.Exits = append(p.Exits, x)
			closeSpan(p.Runs, x)
		case cluster.EvictionRefused:
			p.Refused = append(p.Refused, x)
		case cluster.PodNetworkRemoved:
			first(&p.NetRemoved, x)
		case cluster.PodDeleted:
			first(&p.Deleted, x)
		case cluster.PodEvicted:
			first(&p.Evicted, x)
		case cluster.ContainerRestarted:
			p.Restarts = append(p.Restarts, x)
		case cluster.EndpointAdded:
			p.Routed = openSpan(p.Routed, x)
		case cluster.EndpointRemoved, cluster.EndpointNotReady, cluster.EndpointTerminating:
			// The embedded proxy says itself when it stops routing (endpoint_removed); on a
			// real cluster kube-proxy stops sending new connections to an endpoint that is
			// no longer ready, so the first of the API's three views ends the routing.
			if e.Source == cluster.SourceEmbedded && e.Kind != cluster.EndpointRemoved {
				continue
			}
			closeSpan(p.Routed, x)
		}
	}
	out := make([]podLife, 0, len(order))
	for _, name := range order {
		out = append(out, *byName[name])
	}
	sort.SliceStable(out, func(i, j int) bool { return less(out[i].Created, out[j].Created) })
	return out
}

// less orders times with unknown (NaN) ones last.
func less(a, b float64) bool {
	switch {
	case math.IsNaN(a):
		return false
	case math.IsNaN(b):
		return true
	}
	return a < b
}
