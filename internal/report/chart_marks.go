package report

// The cluster events the timeline chart marks across its panels, and the windows it shades.

import (
	"fmt"
	"image/color"
	"math"
	"sort"
	"time"

	"gonum.org/v1/plot/vg"

	"github.com/gracelab/gracelab/internal/cluster"
)

// markStyle is how one kind of cluster-wide event is drawn across the panels.
type markStyle struct {
	label string
	color color.RGBA
	dash  []vg.Length
}

var dashed = []vg.Length{vg.Points(4), vg.Points(2)}

// markEvents are the events drawn as vertical lines: the disruptions and what happens to
// the cluster as a whole, and the pod events a disruption is made of (an eviction, its
// refusal, a container's restart), so the combined chart, which has no pods panel, shows
// them too.
var markEvents = map[cluster.EventKind]markStyle{
	cluster.RestartTriggered:   {"restart", rgb(0, 0, 0), nil},
	cluster.DeletionRequested:  {"delete", rgb(0, 0, 0), nil},
	cluster.EvictionRequested:  {"evict", rgb(0, 0, 0), nil},
	cluster.DrainRequested:     {"drain", rgb(0, 0, 0), nil},
	cluster.KillRequested:      {"kill", rgb(0, 0, 0), nil},
	cluster.ScaleRequested:     {"scale", rgb(0, 0, 0), nil},
	cluster.Scaled:             {"scaled", rgb(0, 0, 0), dashed},
	cluster.NodeCordoned:       {"cordoned", rgb(80, 80, 80), dashed},
	cluster.NodeUncordoned:     {"uncordoned", rgb(80, 80, 80), []vg.Length{vg.Points(1), vg.Points(2)}},
	cluster.PodEvicted:         {"evicted", rgb(148, 103, 189), dashed},
	cluster.EvictionRefused:    {"eviction refused", rgb(148, 103, 189), []vg.Length{vg.Points(1), vg.Points(2)}},
	cluster.ContainerRestarted: {"container restarted", preStopColor, dashed},
}

// markOrder is the legend's order of the marks.
var markOrder = []cluster.EventKind{cluster.RestartTriggered, cluster.DeletionRequested, cluster.EvictionRequested, cluster.DrainRequested,
	cluster.KillRequested, cluster.ScaleRequested, cluster.Scaled, cluster.NodeCordoned, cluster.NodeUncordoned, cluster.PodEvicted,
	cluster.EvictionRefused, cluster.ContainerRestarted}

// chartMark is a vertical line on the time axis; a mark with no label is drawn unlabelled.
type chartMark struct {
	x     float64
	kind  cluster.EventKind
	label string
	style markStyle
}

// marksOnAxis are a scenario's cluster-wide events and its disruptions' pod events within
// [0, xmax]: triggers numbered when there are several, pod events labelled with the pod, and
// a run of refused evictions labelled once with its count (a refusal is retried every 5 s).
func marksOnAxis(s Scenario, xmax float64) []chartMark {
	if s.Result == nil {
		return nil
	}
	var out []chartMark
	events := withRolloutRestarts(s)
	dep := disruptedDeployment(events)
	triggers := 0
	for _, e := range events {
		if cluster.IsTrigger(e.Kind) {
			triggers++
		}
	}
	n := 0
	refusedRun := -1 // the index in out of the labelled first refusal of the current run
	for _, e := range events {
		st, ok := markEvents[e.Kind]
		if !ok || (e.Pod != "" && dep != "" && deploymentOf(e) != dep) {
			continue
		}
		label := st.label
		switch {
		case cluster.IsTrigger(e.Kind):
			n++
			if triggers > 1 {
				label = fmt.Sprintf("%s %d", label, n)
			}
		case e.Kind == cluster.Scaled && e.Detail != "":
			label += " " + e.Detail
		case e.Pod != "":
			label += " " + shortPod(e.Pod)
		}
		if e.Node != "" && e.Pod == "" {
			label += " " + e.Node
		}
		x := e.Time.Sub(s.Start).Seconds()
		if x < 0 || x > xmax {
			continue
		}
		if e.Kind == cluster.EvictionRefused {
			if refusedRun >= 0 {
				first := &out[refusedRun]
				first.label = fmt.Sprintf("%s x%d", st.label, refusedCount(out[refusedRun:])+1)
				out = append(out, chartMark{x: x, kind: e.Kind, style: st})
				continue
			}
			refusedRun = len(out)
		} else if e.Kind != cluster.PodEvicted {
			refusedRun = -1 // an eviction between refusals continues the drain's run
		}
		out = append(out, chartMark{x: x, kind: e.Kind, label: label, style: st})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].x < out[j].x })
	return out
}

// refusedCount counts the refusals among marks.
func refusedCount(marks []chartMark) int {
	n := 0
	for _, m := range marks {
		if m.kind == cluster.EvictionRefused {
			n++
		}
	}
	return n
}

// withRolloutRestarts is s's events plus a trigger for each rollout whose trigger no event
// records (within half a second), so the chart marks every disruption whoever recorded it.
// The trigger is the scenario's disruption's (restart_triggered for a restart).
func withRolloutRestarts(s Scenario) []cluster.Event {
	events := s.Events
	for _, ro := range s.Rollouts {
		found := false
		for _, e := range s.Events {
			d := e.Time.Sub(ro.RestartAt)
			found = found || (cluster.IsTrigger(e.Kind) && d > -500*time.Millisecond && d < 500*time.Millisecond)
		}
		if !found && !ro.RestartAt.IsZero() {
			events = append(events[:len(events):len(events)], cluster.Event{Time: ro.RestartAt, Kind: triggerOf(s), Source: cluster.SourceDrill})
		}
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].Time.Before(events[j].Time) })
	return events
}

// triggerOf is the event that marks the trigger of s's disruption.
func triggerOf(s Scenario) cluster.EventKind {
	return cluster.DisruptionKind(s.Disruption).TriggerEvent()
}

// rolloutWindows are the rollouts' windows (restart to window end) on the axis.
func rolloutWindows(s Scenario) []span {
	if s.Result == nil {
		return nil
	}
	var out []span
	for _, ro := range s.Rollouts {
		end := ro.WindowEnd
		if end.IsZero() {
			end = s.End
		}
		out = append(out, span{From: ro.RestartAt.Sub(s.Start).Seconds(), To: end.Sub(s.Start).Seconds()})
	}
	return out
}

// shortPod keeps the distinguishing tail of a pod name: upstream-7d9f8-abc12 -> abc12.
func shortPod(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '-' && i < len(name)-1 {
			return name[i+1:]
		}
	}
	return name
}

// axisEnd is where a scenario's time axis ends: the last recorded outcome.
func axisEnd(s Scenario) float64 {
	if s.Result == nil {
		return 0
	}
	end := s.End.Sub(s.Start).Seconds()
	if n := len(s.Timeline); n > 0 {
		end = math.Max(end, float64(s.Timeline[n-1].Second+1))
	}
	return math.Max(1, math.Ceil(end))
}
