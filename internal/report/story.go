package report

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/load"
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
	if res.Retries > 0 {
		out = append(out, fmt.Sprintf("The downstream retried %s times in all; the table counts a request as failed only when its last attempt failed.", fmtInt(res.Retries)))
	}
	if p := rolloutParagraph(s, at); p != "" {
		out = append(out, p)
	}

	// Upstream kinds are counted over the whole run; they belong to one disruption only when
	// a single disruption holds every 5xx.
	var kindsFor *load.Disruption
	with5xx := 0
	for i := range res.Disruptions {
		if res.Disruptions[i].Classes[load.HTTP5xx] > 0 {
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

// rolloutParagraph summarises the rolling restart from the events.
func rolloutParagraph(s Scenario, at func(time.Time) float64) string {
	if s.RestartAt.IsZero() {
		return "The rolling restart was never triggered."
	}
	var b strings.Builder
	fmt.Fprintf(&b, "The rolling restart was triggered at %s", secs(at(s.RestartAt)))
	if s.RolloutSeconds > 0 {
		fmt.Fprintf(&b, " and settled %s later, at %s (no old pod left)", fmtSeconds(s.RolloutSeconds), secs(at(s.RestartAt)+s.RolloutSeconds))
	}
	b.WriteString(".")
	after := eventsAfter(s.Events, s.RestartAt)
	for _, k := range []struct {
		kind cluster.EventKind
		what string
	}{
		{cluster.PodReady, "New pods became ready"},
		{cluster.PodTerminating, "Old pods were marked for deletion"},
		{cluster.SIGTERMSent, "SIGTERM was sent"},
		{cluster.SIGKILLSent, "SIGKILL was sent"},
	} {
		var parts []string
		for _, e := range after {
			if e.Kind == k.kind {
				parts = append(parts, fmt.Sprintf("%s (%s)", secs(at(e.Time)), podName(e)))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(&b, " %s at %s.", k.what, strings.Join(parts, ", "))
		}
	}
	return b.String()
}

func eventsAfter(events []cluster.Event, t time.Time) []cluster.Event {
	var out []cluster.Event
	for _, e := range events {
		if !e.Time.Before(t) {
			out = append(out, e)
		}
	}
	return out
}

// meanwhileKinds are the events worth naming while failures go on: the ones that break or
// stop routing to a pod.
var meanwhileKinds = map[cluster.EventKind]bool{
	cluster.SIGTERMSent: true, cluster.SIGKILLSent: true, cluster.PodExited: true,
	cluster.PodNetworkRemoved: true, cluster.EndpointRemoved: true,
}

// causeKinds are the events that can explain failures starting right after them, most
// telling first.
var causeKinds = []cluster.EventKind{
	cluster.SIGTERMSent, cluster.SIGKILLSent, cluster.PodExited, cluster.PodNetworkRemoved,
	cluster.PodTerminating, cluster.PreStopFinished, cluster.PodDeleted, cluster.EndpointRemoved,
	cluster.PodNotReady, cluster.EndpointNotReady, cluster.PodReady, cluster.EndpointAdded,
	cluster.RestartTriggered,
}

// An event from causeWindow before to causeAfter after a disruption's first failure was sent
// may explain it.
const (
	causeWindow = 3 * time.Second
	causeAfter  = 500 * time.Millisecond
)

func disruptionParagraph(s Scenario, d *load.Disruption, kinds map[string]int64, at func(time.Time) float64) string {
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
	var during []string
	for _, e := range s.Events {
		if e.Time.After(d.Start) && !e.Time.After(d.End) && meanwhileKinds[e.Kind] && e != cause {
			during = append(during, fmt.Sprintf("%s at %s", eventPhrase(e), secs(at(e.Time))))
		}
	}
	if len(during) > 0 {
		const most = 6
		more := ""
		if len(during) > most {
			more = fmt.Sprintf(", and %d more", len(during)-most)
			during = during[:most]
		}
		fmt.Fprintf(&b, " Meanwhile %s%s.", strings.Join(during, "; "), more)
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
func classList(classes map[load.Outcome]int64, kinds map[string]int64) string {
	var parts []string
	for _, c := range load.ErrorClasses {
		n := classes[c]
		if n == 0 {
			continue
		}
		if c == load.HTTP5xx && len(kinds) > 0 {
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

var classWords = map[load.Outcome]string{
	load.BodyNotOK:  "answered 2xx with a body whose status was not ok",
	load.HTTP5xx:    "answered 5xx by the downstream",
	load.HTTP4xx:    "answered 4xx by the downstream",
	load.Refused:    "refused (nothing listened at the downstream's address)",
	load.Reset:      "reset (the connection to the downstream was reset)",
	load.EOF:        "cut off (the connection to the downstream closed before the answer)",
	load.Timeout:    "timed out (no answer within the load's timeout)",
	load.Dropped:    "dropped (not sent: the open model's in-flight cap was reached)",
	load.Unexpected: "answered outside the expectation (--expect-status, --expect-body)",
	load.Other:      "failed otherwise",
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

// podName shortens nothing: pod names are what a reader greps the events for.
func podName(e cluster.Event) string {
	switch {
	case e.Pod != "":
		return e.Pod
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
	}
	return p + " " + string(e.Kind) + detail
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
