package load

import (
	"encoding/json"
	"io"
	"time"
)

// Result is everything a run measured. Times are absolute so cluster events can be placed on
// the same axis; timeline seconds and disruption offsets count from Start.
type Result struct {
	Start time.Time `json:"start"`
	// SendEnd is when requests stopped being started (the duration elapsed, or Stop).
	SendEnd time.Time `json:"send_end"`
	// End is when the last outcome was recorded.
	End    time.Time `json:"end"`
	Config Config    `json:"config"`

	Requests     int64             `json:"requests"` // every outcome recorded: OK + Errors
	Sent         int64             `json:"sent"`     // requests actually sent (Requests - dropped)
	OK           int64             `json:"ok"`
	Errors       int64             `json:"errors"`
	ErrorRate    float64           `json:"error_rate"` // Errors / Requests, 0 when nothing was sent
	RPS          float64           `json:"rps"`        // Requests per second of sending
	ErrorsByKind map[Outcome]int64 `json:"errors_by_kind"`
	// UpstreamKinds counts, over 5xx answers, the `kind` their JSON body gave.
	UpstreamKinds map[string]int64 `json:"upstream_kinds"`
	Retries       int64            `json:"retries"` // sum of the bodies' `retries`
	// ReusedConn counts failures on keep-alive connections used before (docs/keepalive.md).
	ReusedConn ReusedConnFailures `json:"failed_on_reused_connection,omitzero"`

	Latency Latency `json:"latency_ms"` // every sent request, failed ones included
	// SendLag is how late requests were sent against their schedule (open model only).
	SendLag *SendLag `json:"send_lag_ms,omitempty"`

	Timeline    []Second     `json:"timeline"`
	Disruptions []Disruption `json:"disruptions"`
}

// Latency summarises a latency histogram, in milliseconds.
type Latency struct {
	Avg float64 `json:"avg"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// LateAfter is the send lag beyond which an open-model request counts as late.
const LateAfter = time.Millisecond

// SendLag is the open model's lag between scheduled and actual send, in milliseconds.
type SendLag struct {
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Late int64   `json:"late"` // sends more than LateAfter behind schedule
}

// Second is one second of the timeline: the requests sent (scheduled) in it and how they ended.
type Second struct {
	Second       int               `json:"second"` // offset from Start
	Requests     int64             `json:"requests"`
	OK           int64             `json:"ok"`
	Errors       int64             `json:"errors"`
	ErrorsByKind map[Outcome]int64 `json:"errors_by_kind"`
	// UpstreamKinds counts this second's 5xx answers by their body's `kind`; nil when none.
	UpstreamKinds map[string]int64 `json:"upstream_kinds,omitempty"`
	P50           float64          `json:"p50_ms"`
	P99           float64          `json:"p99_ms"`
	Max           float64          `json:"max_ms"`
}

// Disruption is a run of failures: failing requests sent less than DisruptionGap apart.
// Start is when its first failing request was sent, End when its last failure was seen.
type Disruption struct {
	Start          time.Time         `json:"start"`
	End            time.Time         `json:"end"`
	StartOffset    float64           `json:"start_offset_s"`
	EndOffset      float64           `json:"end_offset_s"`
	RequestsFailed int64             `json:"requests_failed"`
	FirstError     string            `json:"first_error"`
	Classes        map[Outcome]int64 `json:"classes"`
	// UpstreamKinds counts its 5xx answers by their body's `kind`; nil when none.
	UpstreamKinds map[string]int64 `json:"upstream_kinds,omitempty"`
}

// WriteJSON writes r as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReusedConnFailures counts failed requests whose failing attempt went out on a pooled
// keep-alive connection that had carried requests before: the race with a server closing it.
type ReusedConnFailures struct {
	Own      int64 `json:"own,omitempty"`      // the load generator's connection (a transport error)
	Upstream int64 `json:"upstream,omitempty"` // the downstream's, per its 5xx body's reused_connection
}
