package report

import (
	"maps"

	"github.com/gracelab/gracelab/internal/load"
)

// ErrorClasses are the error classes a report knows, in the order it shows them. They are the
// load generator's (a test keeps the two lists equal) written out here, because they are
// part of report.json.
var ErrorClasses = []string{"body_not_ok", "http_5xx", "http_4xx", "refused", "reset", "eof", "timeout", "dropped", "unexpected", "lost", "other"}

// The classes and upstream kinds the report's words and colours single out.
const (
	classHTTP5xx = "http_5xx"
	kindRefused  = "refused"
	kindReset    = "reset"
	kindEOF      = "eof"
	kindTimeout  = "timeout"
)

// FromLoad converts what the load generator measured into the report's own types; nil stays nil.
func FromLoad(res *load.Result) *Result {
	if res == nil {
		return nil
	}
	out := &Result{
		Start: res.Start, SendEnd: res.SendEnd, End: res.End,
		Config: LoadConfig{
			URL: res.Config.URL, Method: res.Config.Method, Model: string(res.Config.Model), VUs: res.Config.VUs,
			Rate: res.Config.Rate, MaxInFlight: res.Config.MaxInFlight, Duration: res.Config.Duration.String(),
			Timeout: res.Config.Timeout.String(), Connections: res.Config.Connections,
		},
		Requests: res.Requests, Sent: res.Sent, OK: res.OK, Errors: res.Errors,
		ErrorRate: res.ErrorRate, RPS: res.RPS,
		ErrorsByKind: outcomeCounts(res.ErrorsByKind), UpstreamKinds: copyCounts(res.UpstreamKinds),
		Retries:    res.Retries,
		ReusedConn: ReusedConnFailures{Own: res.ReusedConn.Own, Upstream: res.ReusedConn.Upstream},
		Latency: Latency{Avg: res.Latency.Avg, P50: res.Latency.P50, P90: res.Latency.P90, P95: res.Latency.P95,
			P99: res.Latency.P99, Max: res.Latency.Max},
		Timeline:    make([]Second, len(res.Timeline)),
		Disruptions: make([]Disruption, len(res.Disruptions)),
	}
	if res.Config.Model != load.Open {
		out.Config.Think = res.Config.Think.String()
	}
	if l := res.SendLag; l != nil {
		out.SendLag = &SendLag{P50: l.P50, P99: l.P99, Max: l.Max, Late: l.Late}
	}
	for i, s := range res.Timeline {
		out.Timeline[i] = Second{Second: s.Second, Requests: s.Requests, OK: s.OK, Errors: s.Errors,
			ErrorsByKind: outcomeCounts(s.ErrorsByKind), UpstreamKinds: nonEmpty(s.UpstreamKinds),
			P50: s.P50, P99: s.P99, Max: s.Max}
	}
	for i, d := range res.Disruptions {
		out.Disruptions[i] = Disruption{Start: d.Start, End: d.End, StartOffset: d.StartOffset, EndOffset: d.EndOffset,
			RequestsFailed: d.RequestsFailed, FirstError: d.FirstError, Classes: outcomeCounts(d.Classes),
			UpstreamKinds: nonEmpty(d.UpstreamKinds)}
	}
	return out
}

func outcomeCounts(m map[load.Outcome]int64) map[string]int64 {
	if m == nil {
		return nil
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[string(k)] = v
	}
	return out
}

func copyCounts(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return maps.Clone(m)
}

// nonEmpty copies m, or gives nil when it counts nothing, so the field is left out.
func nonEmpty(m map[string]int64) map[string]int64 {
	for _, v := range m {
		if v != 0 {
			return maps.Clone(m)
		}
	}
	return nil
}
