package report

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

// Story tells in plain words what happened in one scenario, derived only from its data: how
// many requests failed, when (seconds from the load's start), of which classes, and next to
// which cluster events. One string per paragraph.
func Story(s Scenario) []string {
	var out []string
	if s.Failure != "" {
		out = append(out, "The run failed: "+sentence(s.Failure))
	}
	res := s.Result
	if res == nil {
		return out
	}
	at := func(t time.Time) float64 { return t.Sub(res.Start).Seconds() }

	if res.Errors == 0 {
		out = append(out, fmt.Sprintf("No request failed: all %s requests were answered, the slowest in %s (p99 %s).",
			fmtInt(res.Requests), fmtMS(res.Latency.Max), fmtMS(res.Latency.P99)))
	} else {
		out = append(out, fmt.Sprintf("%s of %s requests failed (%s): %s.",
			fmtInt(res.Errors), fmtInt(res.Requests), fmtPercent(res.ErrorRate), classList(res.ErrorsByKind, res.UpstreamKinds)))
	}
	if rc := res.ReusedConn; rc.Own+rc.Upstream > 0 {
		out = append(out, fmt.Sprintf("%s failed on a reused keep-alive connection (%s on the downstream's call to the upstream, %s on the load's own): "+
			"a pooled connection to a pod already shutting down, closed by the pod as the request was sent on it (the keep-alive race, docs/keepalive.md).",
			fmtInt(rc.Own+rc.Upstream), fmtInt(rc.Upstream), fmtInt(rc.Own)))
	}
	if res.Retries > 0 {
		out = append(out, fmt.Sprintf("The downstream retried %s times in all; the table counts a request as failed only when its last attempt failed.", fmtInt(res.Retries)))
	}
	if p := rolloutParagraph(s, at); p != "" {
		out = append(out, p)
	}
	if p := protection(s); p != "" {
		out = append(out, p)
	}

	// Upstream kinds are counted over the whole run; they belong to one disruption only when
	// a single disruption holds every 5xx.
	var kindsFor *Disruption
	with5xx := 0
	for i := range res.Disruptions {
		if res.Disruptions[i].Classes[classHTTP5xx] > 0 {
			with5xx++
			kindsFor = &res.Disruptions[i]
		}
	}
	if with5xx != 1 {
		kindsFor = nil
	}
	for i := range res.Disruptions {
		d := &res.Disruptions[i]
		var kinds map[string]int64
		if d == kindsFor {
			kinds = res.UpstreamKinds
		}
		out = append(out, disruptionParagraph(s, d, kinds, at))
	}
	if with5xx > 1 && len(res.UpstreamKinds) > 0 {
		out = append(out, fmt.Sprintf("Over the whole run the downstream gave these reasons for its 5xx answers: %s.", kindList(res.UpstreamKinds)))
	}
	return out
}

func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
}

// rolloutParagraph says when the disruption started and when the rollout settled; the pod
// table and the chart show the rest.
func rolloutParagraph(s Scenario, at func(time.Time) float64) string {
	what := disruptionNoun(s.Disruption)
	if len(s.Rollouts) > 1 {
		var starts []string
		for _, ro := range s.Rollouts {
			starts = append(starts, secs(at(ro.RestartAt)))
		}
		return fmt.Sprintf("%d %ss ran, each a %s, triggered at %s.", len(s.Rollouts), wordsFor(s).unit, what, strings.Join(starts, ", "))
	}
	if s.RestartAt.IsZero() {
		return fmt.Sprintf("The %s was never triggered.", what)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "The %s was triggered at %s", what, secs(at(s.RestartAt)))
	if s.RolloutSeconds > 0 {
		settled := "no old pod left"
		if !isRestart(s.Disruption) {
			settled = "every pod ready, none terminating"
		}
		fmt.Fprintf(&b, " and settled %s later, at %s (%s)", fmtSeconds(s.RolloutSeconds), secs(at(s.RestartAt)+s.RolloutSeconds), settled)
	}
	b.WriteString(".")
	return b.String()
}

// disruptionNoun names a disruption kind in words.
func disruptionNoun(kind string) string {
	switch kind {
	case DisruptionDelete:
		return "pod deletion"
	case DisruptionEvict:
		return "eviction"
	case DisruptionDrain:
		return "node drain"
	case DisruptionKill:
		return "container kill (SIGKILL)"
	case DisruptionScale:
		return "scale-down"
	case "", DisruptionRestart:
		return "rolling restart"
	case DisruptionAll:
		return "disruption, of a kind each scenario names (the matrix of --disruption all)"
	}
	return kind + " disruption"
}

// causeKinds are the events that can explain failures starting right after them, most
// telling first.
var causeKinds = []cluster.EventKind{
	cluster.SIGTERMSent, cluster.SIGKILLSent, cluster.PodExited, cluster.PodNetworkRemoved,
	cluster.PodTerminating, cluster.PreStopFinished, cluster.PodDeleted, cluster.EndpointRemoved,
	cluster.PodNotReady, cluster.EndpointNotReady, cluster.PodReady, cluster.EndpointAdded,
	cluster.PodEvicted, cluster.ContainerRestarted, cluster.Scaled, cluster.NodeCordoned,
	cluster.RestartTriggered, cluster.DeletionRequested, cluster.EvictionRequested, cluster.DrainRequested,
	cluster.KillRequested, cluster.ScaleRequested,
}

// An event from causeWindow before to causeAfter after a disruption's first failure was sent
// may explain it.
const (
	causeWindow = 3 * time.Second
	causeAfter  = 500 * time.Millisecond
)

func disruptionParagraph(s Scenario, d *Disruption, kinds map[string]int64, at func(time.Time) float64) string {
	var b strings.Builder
	n := d.RequestsFailed
	if n == 1 {
		fmt.Fprintf(&b, "1 request failed at %s: %s.", secs(d.StartOffset), classList(d.Classes, kinds))
	} else {
		fmt.Fprintf(&b, "%s requests failed between %s and %s: %s.", fmtInt(n), secs(d.StartOffset), secs(d.EndOffset), classList(d.Classes, kinds))
	}
	cause, ok := nearestCause(s.Events, d.Start)
	if ok {
		gap := d.Start.Sub(cause.Time).Seconds()
		switch {
		case gap >= 0:
			fmt.Fprintf(&b, " The first of them was sent %s after %s at %s.", fmtSeconds(gap), eventPhrase(cause), secs(at(cause.Time)))
		default:
			fmt.Fprintf(&b, " The first of them was sent %s before %s at %s.", fmtSeconds(-gap), eventPhrase(cause), secs(at(cause.Time)))
		}
	} else {
		b.WriteString(" No cluster event was recorded in the seconds before it.")
	}
	if first := strings.TrimSpace(d.FirstError); first != "" {
		fmt.Fprintf(&b, " First error: %q.", first)
	}
	return b.String()
}

// nearestCause picks the most telling event near t, the send time of a disruption's first
// failure: from causeWindow before it to causeAfter after it (a request in flight is sent
// before the event that breaks it). Among those, the most telling kind, then the closest.
func nearestCause(events []cluster.Event, t time.Time) (cluster.Event, bool) {
	rank := func(k cluster.EventKind) int {
		for i, c := range causeKinds {
			if c == k {
				return i
			}
		}
		return -1
	}
	dist := func(e cluster.Event) time.Duration { return max(e.Time.Sub(t), t.Sub(e.Time)) }
	var best cluster.Event
	found := false
	for _, e := range events {
		r := rank(e.Kind)
		if r < 0 || e.Time.Before(t.Add(-causeWindow)) || e.Time.After(t.Add(causeAfter)) {
			continue
		}
		if !found || r < rank(best.Kind) || (r == rank(best.Kind) && dist(e) < dist(best)) {
			best, found = e, true
		}
	}
	return best, found
}

// classList describes failure classes in words, the 5xx ones by the upstream failure the
// downstream reported when kinds is given.
func classList(classes map[string]int64, kinds map[string]int64) string {
	var parts []string
	for _, c := range ErrorClasses {
		n := classes[c]
		if n == 0 {
			continue
		}
		if c == classHTTP5xx && len(kinds) > 0 {
			parts = append(parts, fmt.Sprintf("%s answered 5xx by the downstream (%s)", fmtInt(n), kindList(kinds)))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s", fmtInt(n), classWords[c]))
	}
	if len(parts) == 0 {
		return "no error class recorded"
	}
	return strings.Join(parts, ", ")
}

// kindList: "9 because the upstream connection hit EOF (502), 5 because ...".
func kindList(kinds map[string]int64) string {
	keys := make([]string, 0, len(kinds))
	for k, v := range kinds {
		if v > 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if kinds[keys[i]] != kinds[keys[j]] {
			return kinds[keys[i]] > kinds[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		words, ok := kindWords[k]
		if !ok {
			words = fmt.Sprintf("of an upstream failure of kind %q", k)
		}
		parts[i] = fmt.Sprintf("%s %s", fmtInt(kinds[k]), words)
	}
	return strings.Join(parts, ", ")
}

var classWords = map[string]string{
	"body_not_ok": "answered 2xx with a body whose status was not ok",
	classHTTP5xx:  "answered 5xx by the downstream",
	"http_4xx":    "answered 4xx by the downstream",
	"refused":     "refused (nothing listened at the downstream's address)",
	"reset":       "reset (the connection to the downstream was reset)",
	"eof":         "cut off (the connection to the downstream closed before the answer)",
	"timeout":     "timed out (no answer within the load's timeout)",
	"dropped":     "dropped (not sent: the open model's in-flight cap was reached)",
	"unexpected":  "answered outside the expectation (--expect-status, --expect-body)",
	"lost":        "lost (sent by a load pod that died before reporting)",
	"other":       "failed otherwise",
}

// kindWords explain the downstream's `kind` of an upstream failure.
var kindWords = map[string]string{
	"eof":       "because the upstream connection hit EOF mid-request (502)",
	"reset":     "because the upstream connection was reset (502)",
	"refused":   "because the upstream refused the connection (502)",
	"timeout":   "because the upstream did not answer within the downstream's timeout (504)",
	"http_5xx":  "because the upstream answered 5xx (502)",
	"http_4xx":  "because the upstream answered 4xx (502)",
	"bad_body":  "because the upstream's body was not valid JSON (502)",
	"other":     "because of another upstream failure (502)",
	"cancelled": "because the request was cancelled",
}

func secs(s float64) string { return fmtSeconds(s) }

// podName names an event's pod by the tail of its name, as the pod table and chart do.
func podName(e cluster.Event) string {
	switch {
	case e.Pod != "":
		return "pod " + shortPod(e.Pod)
	case e.Deployment != "":
		return e.Deployment
	}
	return "the cluster"
}

// eventPhrase says what an event means in a few words.
func eventPhrase(e cluster.Event) string {
	p := podName(e)
	detail := ""
	if e.Detail != "" {
		detail = " (" + e.Detail + ")"
	}
	switch e.Kind {
	case cluster.RestartTriggered:
		return "the restart of " + orDefault(e.Deployment, "the deployment") + " was triggered"
	case cluster.DeletionRequested:
		return "the deletion of " + orDefault(e.Deployment, "the deployment") + "'s pods was requested"
	case cluster.EvictionRequested:
		return "the eviction of " + orDefault(e.Deployment, "the deployment") + "'s pods was requested"
	case cluster.DrainRequested:
		return "the drain of a node of " + orDefault(e.Deployment, "the deployment") + " was requested"
	case cluster.KillRequested:
		return orDefault(e.Deployment, "the deployment") + "'s container was killed (SIGKILL)"
	case cluster.ScaleRequested:
		return "the scale-down of " + orDefault(e.Deployment, "the deployment") + " was requested"
	case cluster.RolloutComplete:
		return "the rollout of " + orDefault(e.Deployment, "the deployment") + " completed"
	case cluster.PodCreated:
		return p + " was created"
	case cluster.PodStarted:
		return p + " started"
	case cluster.PodReady:
		return p + " became ready"
	case cluster.PodNotReady:
		return p + " turned not ready"
	case cluster.PodTerminating:
		return p + " was marked for deletion"
	case cluster.PreStopStarted:
		return p + "'s preStop hook started"
	case cluster.PreStopFinished:
		return p + "'s preStop hook finished"
	case cluster.SIGTERMSent:
		return p + " received SIGTERM"
	case cluster.SIGKILLSent:
		return p + " was SIGKILLed"
	case cluster.PodExited:
		if e.Detail != "" {
			return p + " exited, " + e.Detail
		}
		return p + " exited"
	case cluster.PodDeleted:
		return p + " was deleted"
	case cluster.EndpointAdded:
		return p + " was added to the Service's endpoints"
	case cluster.EndpointRemoved:
		return p + " was removed from the Service's endpoints"
	case cluster.EndpointNotReady:
		return p + "'s endpoint turned not ready"
	case cluster.PodNetworkRemoved:
		return p + "'s network was torn down"
	case cluster.PodEvicted:
		return p + " was evicted"
	case cluster.EvictionRefused:
		return "the eviction of " + p + " was refused" + detail
	case cluster.NodeCordoned:
		return "node " + orDefault(e.Node, "?") + " was cordoned"
	case cluster.NodeUncordoned:
		return "node " + orDefault(e.Node, "?") + " was uncordoned"
	case cluster.ContainerRestarted:
		return p + "'s container was restarted" + detail
	case cluster.Scaled:
		return orDefault(e.Deployment, "the deployment") + " was scaled" + detail
	}
	return p + " " + string(e.Kind) + detail
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
