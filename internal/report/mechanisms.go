package report

import (
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/gracelab/gracelab/internal/cluster"
)

// A failure mechanism is one way a disruption loses requests, recognised by what went wrong
// behind the downstream (the upstream kind, or the load's own class when the downstream
// itself was hit) and explained by the pod events around it.
type mechanism struct {
	kinds []string // upstream kinds and error classes it counts
	what  string   // "were in flight on a process that was killed"
}

var (
	inFlight  = mechanism{what: "were in flight on a process that was killed"}
	deadStill = mechanism{what: "were sent to a dead process the Service still routed to"}
	goneStill = mechanism{what: "were sent to a pod address already gone and waited out the downstream's timeout"}
)

// mechanismKinds maps kinds to mechanisms. The embedded cluster's proxy answers a refused
// dial with a reset, so there a reset means a dead process; on a real cluster a reset comes
// from a process dying with the request unread.
func mechanismKinds(embedded bool) []mechanism {
	in, dead, gone := inFlight, deadStill, goneStill
	in.kinds = []string{kindEOF}
	dead.kinds = []string{kindRefused}
	gone.kinds = []string{kindTimeout}
	if embedded {
		dead.kinds = append(dead.kinds, kindReset)
	} else {
		in.kinds = append(in.kinds, kindReset)
	}
	return []mechanism{in, dead, gone}
}

// Mechanisms says, one sentence per failure mechanism, how many requests it cost, when, and
// what the pods were doing: the cause.
func Mechanisms(s Scenario) []string {
	res := s.Result
	if res == nil || res.Errors == 0 {
		return nil
	}
	embedded := false
	for _, e := range s.Events {
		embedded = embedded || e.Source == cluster.SourceEmbedded
	}
	pods := podLives(s)
	var out []string
	for _, m := range mechanismKinds(embedded) {
		var n int64
		var counted []string
		for _, k := range m.kinds {
			c := res.UpstreamKinds[k]
			if k != classHTTP5xx {
				c += res.ErrorsByKind[k] // the downstream itself refused, reset, ...
			}
			if c > 0 {
				n += c
				counted = append(counted, k)
			}
		}
		if n == 0 {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s %s (%s)", fmtInt(n), plural(n, "request", "requests"), m.what, strings.Join(counted, " and "))
		if from, to, ok := kindWindow(res, m.kinds); ok {
			fmt.Fprintf(&b, ", sent between %s and %s", secs(from), secs(to))
		}
		b.WriteString(": ")
		b.WriteString(mechanismCause(m, pods, res))
		b.WriteString(".")
		out = append(out, b.String())
	}
	return out
}

// kindWindow is the span of the timeline seconds that hold the kinds: schema 2 timelines
// split 5xx by upstream kind; older ones cannot say.
func kindWindow(res *Result, kinds []string) (from, to float64, ok bool) {
	from, to = math.Inf(1), math.Inf(-1)
	for _, sec := range res.Timeline {
		for _, k := range kinds {
			if sec.UpstreamKinds[k] > 0 || sec.ErrorsByKind[k] > 0 {
				from, to = math.Min(from, float64(sec.Second)), math.Max(to, float64(sec.Second+1))
			}
		}
	}
	return from, to, !math.IsInf(from, 1)
}

func mechanismCause(m mechanism, pods []podLife, res *Result) string {
	var parts []string
	switch m.what {
	case inFlight.what:
		for _, p := range pods {
			stop := p.stopped()
			if math.IsNaN(stop) {
				continue
			}
			signal := p.SIGKILL
			name := "SIGKILL"
			if !math.IsNaN(p.SIGTERM) {
				signal, name = p.SIGTERM, "SIGTERM"
			}
			switch {
			case math.IsNaN(signal) || signal > stop:
				parts = append(parts, fmt.Sprintf("pod %s's process exited at %s", shortPod(p.Name), secs(stop)))
			default:
				parts = append(parts, fmt.Sprintf("pod %s's process exited at %s, %s after its %s", shortPod(p.Name), secs(stop), fmtSeconds(stop-signal), name))
			}
		}
		if len(parts) == 0 {
			return "no process exit was recorded"
		}
		return strings.Join(parts, "; ") + ", with requests still unanswered"
	case deadStill.what:
		for _, p := range pods {
			stop := p.stopped()
			if end := p.routingEnd(stop); !math.IsNaN(end) && end > stop {
				parts = append(parts, fmt.Sprintf("pod %s exited at %s but the Service routed to it until %s", shortPod(p.Name), secs(stop), secs(end)))
			}
		}
		if len(parts) == 0 {
			return "no pod was recorded as dead while routed (the cluster's events may lag behind what kube-proxy did)"
		}
		return strings.Join(parts, "; ")
	default:
		for _, p := range pods {
			if end := p.routingEnd(p.NetRemoved); !math.IsNaN(end) && end > p.NetRemoved {
				parts = append(parts, fmt.Sprintf("pod %s's network was torn down at %s but the Service routed to it until %s", shortPod(p.Name), secs(p.NetRemoved), secs(end)))
			}
		}
		slowest := fmt.Sprintf("the slowest request took %s", fmtMS(res.Latency.Max))
		if len(parts) == 0 {
			return "the pod's address was gone while still routed (the cluster does not report when a pod's network goes); " + slowest
		}
		return strings.Join(parts, "; ") + "; " + slowest
	}
}

// Protections says, for a scenario that lost nothing, why: each stopped pod had left the
// Service before its process stopped.
func protection(s Scenario) string {
	if s.Result == nil || s.Errors > 0 {
		return ""
	}
	var parts []string
	for _, p := range podLives(s) {
		stop := p.stopped()
		if math.IsNaN(stop) {
			continue
		}
		left := math.NaN()
		for _, r := range p.Routed {
			if r.To <= stop {
				left = r.To
			}
		}
		if math.IsNaN(left) {
			return ""
		}
		parts = append(parts, fmt.Sprintf("%s %s before", shortPod(p.Name), fmtSeconds(stop-left)))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("Every stopped pod had left the Service before its process stopped (%s), so no request reached a dying process.", strings.Join(parts, ", "))
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

var exitCode = regexp.MustCompile(`exit code (\d+)`)

// podRows are the disrupted Deployment's pods as table rows: pod, revision, then created,
// ready, terminating, preStop, SIGTERM, exited and left the Service (seconds from the load's
// start), and notes when any pod was evicted or restarted.
func podRows(s Scenario) (header []string, rows [][]string) {
	pods := podLives(s)
	if len(pods) == 0 {
		return nil, nil
	}
	revs := 0
	notes := false
	for _, p := range pods {
		revs = max(revs, p.Rev)
		notes = notes || !math.IsNaN(p.Evicted) || len(p.Restarts) > 0
	}
	header = []string{"pod", "revision", "created", "ready", "terminating", "preStop", "SIGTERM", "exited", "left the Service"}
	if notes {
		header = append(header, "notes")
	}
	for _, p := range pods {
		rev := "-"
		switch {
		case revs == 2 && p.Rev == 1:
			rev = "old"
		case revs == 2 && p.Rev == 2:
			rev = "new"
		case p.Rev > 0:
			rev = fmt.Sprint(p.Rev)
		}
		prestop := at(p.PreStopStart)
		if !math.IsNaN(p.PreStopStart) && !math.IsNaN(p.PreStopEnd) {
			prestop = fmt.Sprintf("%.1f–%.1f s", p.PreStopStart, p.PreStopEnd)
		}
		sigterm := at(p.SIGTERM)
		if !math.IsNaN(p.SIGKILL) {
			sigterm += ", SIGKILL " + at(p.SIGKILL)
		}
		exited := at(p.Exited)
		if m := exitCode.FindStringSubmatch(p.ExitDetail); m != nil {
			exited += " (code " + m[1] + ")"
		}
		left := "-"
		if n := len(p.Routed); n > 0 && !math.IsInf(p.Routed[n-1].To, 1) {
			left = at(p.Routed[n-1].To)
		}
		row := []string{shortPod(p.Name), rev, at(p.Created), at(p.Ready), at(p.Terminating), prestop, sigterm, exited, left}
		if notes {
			var ns []string
			if !math.IsNaN(p.Evicted) {
				ns = append(ns, "evicted "+at(p.Evicted))
			}
			for _, r := range p.Restarts {
				ns = append(ns, "restarted "+at(r))
			}
			row = append(row, strings.Join(ns, ", "))
		}
		rows = append(rows, row)
	}
	return header, rows
}

// at writes a time on the load's axis, "-" when unknown.
func at(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmtSeconds(x)
}
