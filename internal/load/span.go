package load

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Span is what the pods' requests sent in a stretch of the run met, for a drill's rollouts:
// the streams carry seconds, not each request, so a span is made of whole seconds (those whose
// middle falls in it); its failures are each one's own, with their send and end times.
type Span struct {
	Requests int64
	Counts   map[Outcome]int64 // by class, ok included; a dead pod's open requests as Lost
	Kinds    map[string]int64  // 5xx answers by the downstream's kind
	Latency  *hdrhistogram.Histogram
	Failures []StreamFailure
}

// LatencyAt is the latency quantile q (0-100) of the span's requests; 0 when none.
func (s Span) LatencyAt(q float64) time.Duration {
	if s.Latency == nil || s.Latency.TotalCount() == 0 {
		return 0
	}
	return time.Duration(s.Latency.ValueAtQuantile(q)) * time.Microsecond
}

// LatencyMax is the span's longest latency; 0 when none.
func (s Span) LatencyMax() time.Duration {
	if s.Latency == nil || s.Latency.TotalCount() == 0 {
		return 0
	}
	return time.Duration(s.Latency.Max()) * time.Microsecond
}

// Span gathers the seconds read so far whose middle falls in [from, to), by the common start.
func (m *Merger) Span(from, to time.Time) Span {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := Span{Counts: map[Outcome]int64{}, Kinds: map[string]int64{}, Latency: newHistogram()}
	in := func(idx int) bool {
		mid := m.start.Add(time.Duration(idx)*time.Second + time.Second/2)
		return !mid.Before(from) && mid.Before(to)
	}
	for _, p := range m.pods {
		for idx, ss := range p.seconds {
			if !in(idx) {
				continue
			}
			out.Requests += ss.Requests
			for class, n := range ss.Counts {
				out.Counts[class] += n
			}
			for k, n := range ss.Kinds {
				out.Kinds[k] += n
			}
			h, _ := ss.Latency.histogram() // checked when applied
			out.Latency.Merge(h)
			out.Failures = append(out.Failures, ss.Failures...)
		}
		if p.summary == nil {
			for idx, n := range p.open {
				if in(idx) {
					out.Requests += n
					out.Counts[Lost] += n
				}
			}
		}
	}
	return out
}
