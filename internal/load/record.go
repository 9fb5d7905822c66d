package load

import (
	"sort"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// DisruptionGap: failures sent closer together than this belong to one disruption. With many
// concurrent clients, successes interleave with failures (other pods still answer), so a run of
// failures is cut by a quiet gap, not by a single success.
const DisruptionGap = time.Second

// Histogram range: 1 µs .. 60 s, 3 significant digits, values in microseconds.
func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, MaxTimeout.Microseconds(), 3)
}

func recordDuration(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	// Clamp into range rather than lose the value: every sent request has a latency.
	us = max(1, min(us, h.HighestTrackableValue()))
	_ = h.RecordValue(us)
}

func ms(us int64) float64 { return float64(us) / 1000 }

// recorder turns outcomes into the Result. Seconds of the timeline keep a histogram only while
// requests sent in them are pending, so a long run does not hold one histogram per second.
type recorder struct {
	mu      sync.Mutex
	start   time.Time
	latency *hdrhistogram.Histogram
	lag     *hdrhistogram.Histogram // nil in the closed model
	late    int64
	counts  [numOutcomes]int64
	kinds   map[string]int64
	// reusedConn counts failures on reused keep-alive connections.
	reusedConn ReusedConnFailures
	retries    int64

	live     map[int]*second // seconds that may still get outcomes
	sealed   int             // seconds below this get no new requests
	timeline []Second        // finished seconds, in any order
	spare    []*hdrhistogram.Histogram

	disruptions []*disruption // sorted by first, separated by more than DisruptionGap

	onClose func(idx int, s *second) // streaming: sees each second before it is recycled
}

type second struct {
	requests int64
	counts   [numOutcomes]int64
	kinds    map[string]int64 // 5xx answers by upstream kind; nil until one
	hist     *hdrhistogram.Histogram
	pending  int
	detail   *secondDetail // streaming only: what the totals of the run keep
}

type disruption struct {
	first, last time.Time // send times of its first and last failure
	end         time.Time // when its last failure was seen
	failed      int64
	classes     [numOutcomes]int64
	kinds       map[string]int64
	firstErr    string
}

func newRecorder(start time.Time, open bool) *recorder {
	r := &recorder{start: start, latency: newHistogram(), kinds: map[string]int64{}, live: map[int]*second{}}
	if open {
		r.lag = newHistogram()
	}
	return r
}

func (r *recorder) secondOf(t time.Time) int {
	return max(0, int(t.Sub(r.start)/time.Second))
}

// begin registers a request sent (or scheduled) at t and returns its second. Calls must come
// in time order; beginNow guarantees that for concurrent senders.
func (r *recorder) begin(t time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.beginLocked(t)
}

// beginNow is begin at the current time, read under the lock so times are in call order.
func (r *recorder) beginNow() (int, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := time.Now()
	return r.beginLocked(t), t
}

func (r *recorder) beginLocked(t time.Time) int {
	idx := r.secondOf(t)
	for k := r.sealed; k < idx; k++ {
		if s := r.live[k]; s != nil && s.pending == 0 {
			r.closeSecond(k, s)
		}
	}
	r.sealed = max(r.sealed, idx)
	s := r.live[idx]
	if s == nil {
		s = &second{}
		r.live[idx] = s
	}
	s.requests++
	s.pending++
	return idx
}

// finish records the outcome of a request begun in second idx. latency < 0 means it was not
// sent (dropped); lag < 0 means no send lag applies (closed model, dropped).
func (r *recorder) finish(idx int, sent, end time.Time, latency, lag time.Duration, a answer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := outcomeIndex(a.outcome)
	r.counts[o]++
	if a.outcome == HTTP5xx && a.kind != "" {
		r.kinds[a.kind]++
	}
	if a.reused && a.outcome != OK {
		r.reusedConn.Own++
	}
	if a.upstreamReused {
		r.reusedConn.Upstream++
	}
	r.retries += a.retries
	if latency >= 0 {
		recordDuration(r.latency, latency)
	}
	if lag >= 0 && r.lag != nil {
		recordDuration(r.lag, lag)
		if lag > LateAfter {
			r.late++
		}
	}
	s := r.live[idx]
	if s == nil { // cannot happen: begin created it and only pending == 0 closes it
		return
	}
	s.counts[o]++
	if a.outcome == HTTP5xx && a.kind != "" {
		s.kinds = addKind(s.kinds, a.kind, 1)
	}
	if latency >= 0 {
		if s.hist == nil {
			s.hist = r.newSecondHistogram()
		}
		recordDuration(s.hist, latency)
	}
	if r.onClose != nil {
		s.note(sent, end, a)
	}
	s.pending--
	if s.pending == 0 && idx < r.sealed {
		r.closeSecond(idx, s)
	}
	if a.outcome != OK {
		r.addFailure(sent, end, o, a)
	}
}

func (r *recorder) newSecondHistogram() *hdrhistogram.Histogram {
	if n := len(r.spare); n > 0 {
		h := r.spare[n-1]
		r.spare = r.spare[:n-1]
		return h
	}
	return newHistogram()
}

func (r *recorder) closeSecond(idx int, s *second) {
	if r.onClose != nil {
		r.onClose(idx, s)
	}
	out := Second{Second: idx, Requests: s.requests, OK: s.counts[0], ErrorsByKind: byKind(s.counts), UpstreamKinds: s.kinds}
	out.Errors = s.requests - s.counts[0]
	if s.hist != nil {
		out.P50 = ms(s.hist.ValueAtQuantile(50))
		out.P99 = ms(s.hist.ValueAtQuantile(99))
		out.Max = ms(s.hist.Max())
		s.hist.Reset()
		r.spare = append(r.spare, s.hist)
	}
	r.timeline = append(r.timeline, out)
	delete(r.live, idx)
}

func byKind(counts [numOutcomes]int64) map[Outcome]int64 {
	m := make(map[Outcome]int64, len(ErrorClasses))
	for i, c := range ErrorClasses {
		m[c] = counts[i+1]
	}
	return m
}

// addFailure merges a failure into the disruption it is within DisruptionGap of, bridging
// two disruptions when it falls between them.
func (r *recorder) addFailure(sent, end time.Time, o int, a answer) {
	kind := ""
	if a.outcome == HTTP5xx {
		kind = a.kind
	}
	ds := r.disruptions
	// First disruption that could take it: its last failure is no more than the gap before.
	i := sort.Search(len(ds), func(i int) bool { return !ds[i].last.Add(DisruptionGap).Before(sent) })
	j := i // disruptions [i, j) take it
	for j < len(ds) && !ds[j].first.Add(-DisruptionGap).After(sent) {
		j++
	}
	if i == j {
		d := &disruption{first: sent, last: sent, end: end, firstErr: a.err}
		d.failed, d.classes[o] = 1, 1
		if kind != "" {
			d.kinds = addKind(nil, kind, 1)
		}
		r.disruptions = append(ds[:i], append([]*disruption{d}, ds[i:]...)...)
		return
	}
	d := ds[i]
	for _, other := range ds[i+1 : j] {
		d.failed += other.failed
		for k, n := range other.classes {
			d.classes[k] += n
		}
		for k, n := range other.kinds {
			d.kinds = addKind(d.kinds, k, n)
		}
		d.last = later(d.last, other.last)
		d.end = later(d.end, other.end)
	}
	if sent.Before(d.first) {
		d.first, d.firstErr = sent, a.err
	}
	d.last = later(d.last, sent)
	d.end = later(d.end, end)
	d.failed++
	d.classes[o]++
	if kind != "" {
		d.kinds = addKind(d.kinds, kind, 1)
	}
	r.disruptions = append(ds[:i+1], ds[j:]...)
}

func addKind(m map[string]int64, kind string, n int64) map[string]int64 {
	if m == nil {
		m = map[string]int64{}
	}
	m[kind] += n
	return m
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// result closes every second and builds the Result. Call once, after the last finish.
func (r *recorder) result(cfg Config, sendEnd, end time.Time) *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	for idx, s := range r.live {
		r.closeSecond(idx, s)
	}
	sort.Slice(r.timeline, func(i, j int) bool { return r.timeline[i].Second < r.timeline[j].Second })
	// Seconds in which nothing was sent still belong on the axis.
	timeline := []Second{}
	for _, s := range r.timeline {
		for next := len(timeline); next < s.Second; next++ {
			timeline = append(timeline, Second{Second: next, ErrorsByKind: byKind([numOutcomes]int64{})})
		}
		timeline = append(timeline, s)
	}

	res := &Result{
		Start: r.start, SendEnd: sendEnd, End: end, Config: cfg,
		OK: r.counts[0], ErrorsByKind: byKind(r.counts), UpstreamKinds: r.kinds, Retries: r.retries, ReusedConn: r.reusedConn,
		Timeline: timeline, Disruptions: []Disruption{},
	}
	for _, n := range r.counts {
		res.Requests += n
	}
	res.Errors = res.Requests - res.OK
	res.Sent = res.Requests - res.ErrorsByKind[Dropped]
	if res.Requests > 0 {
		res.ErrorRate = float64(res.Errors) / float64(res.Requests)
	}
	if secs := sendEnd.Sub(r.start).Seconds(); secs > 0 {
		res.RPS = float64(res.Requests) / secs
	}
	if h := r.latency; h.TotalCount() > 0 {
		res.Latency = Latency{
			Avg: h.Mean() / 1000, P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)),
			P95: ms(h.ValueAtQuantile(95)), P99: ms(h.ValueAtQuantile(99)), Max: ms(h.Max()),
		}
	}
	if h := r.lag; h != nil {
		res.SendLag = &SendLag{Late: r.late}
		if h.TotalCount() > 0 {
			res.SendLag.P50, res.SendLag.P99, res.SendLag.Max = ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(99)), ms(h.Max())
		}
	}
	for _, d := range r.disruptions {
		classes := map[Outcome]int64{}
		for i, c := range ErrorClasses {
			if n := d.classes[i+1]; n > 0 {
				classes[c] = n
			}
		}
		res.Disruptions = append(res.Disruptions, Disruption{
			Start: d.first, End: d.end,
			StartOffset: d.first.Sub(r.start).Seconds(), EndOffset: d.end.Sub(r.start).Seconds(),
			RequestsFailed: d.failed, FirstError: d.firstErr, Classes: classes, UpstreamKinds: d.kinds,
		})
	}
	return res
}
