package load

// Merging load pods' streams: gracelab reads every pod's stream (from its log), again after a
// dropped stream without counting a record twice, and merges them into one Result.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// PodResult is what one load pod's stream came to.
type PodResult struct {
	Pod    string  `json:"pod"`
	Result *Result `json:"result"`
	// Complete: the summary arrived and no record was missing.
	Complete bool `json:"complete"`
	// Lost: requests begun in seconds the pod never closed (it died), counted as Lost.
	Lost int64 `json:"lost"`
	// StartSkew is the pod's start minus the common start, by the pod's clock.
	StartSkew time.Duration `json:"start_skew_ns"`
	// Clock bounds the pod's clock against the reader's.
	Clock    ClockBound `json:"clock"`
	Problems []string   `json:"problems,omitempty"`
}

// ClockBound bounds a pod's clock minus the reader's: at least Low (a record cannot arrive
// before the pod wrote it) and, when HighKnown, at most High (the pod cannot notice the start
// announcement before it was sent).
type ClockBound struct {
	Low, High           time.Duration
	LowKnown, HighKnown bool
}

// Error is the largest the offset can be either way; ok is false when it is unbounded.
func (b ClockBound) Error() (d time.Duration, ok bool) {
	if !b.LowKnown || !b.HighKnown {
		return 0, false
	}
	return max(b.High, -b.Low, 0), true
}

func (b ClockBound) String() string {
	switch {
	case b.LowKnown && b.HighKnown:
		return fmt.Sprintf("between %s and %s", b.Low.Round(time.Millisecond), b.High.Round(time.Millisecond))
	case b.LowKnown:
		return fmt.Sprintf("at least %s, no upper bound (the pod reported no start notice)", b.Low.Round(time.Millisecond))
	}
	return "unknown (no record arrived)"
}

// Merged is the merge of several pods' streams.
type Merged struct {
	Result     *Result     `json:"result"`
	Pods       []PodResult `json:"pods"`
	Incomplete bool        `json:"incomplete"` // a pod died, a record was missing or malformed
	Problems   []string    `json:"problems,omitempty"`
}

// Merger merges load pods' streams. Read each pod's stream with Read (again after a dropped
// stream: records already applied are skipped), then call Merge. Safe for concurrent use.
type Merger struct {
	mu        sync.Mutex
	start     time.Time
	cfg       Config
	pods      map[string]*podStream
	announced time.Time        // when the start was announced, by the reader's clock
	now       func() time.Time // the reader's clock; tests replace it
}

type podStream struct {
	name      string
	lastSeq   int64
	start     time.Time
	lastTime  time.Time
	seconds   map[int]*StreamSecond
	open      map[int]int64
	summary   *StreamSummary
	problems  []string
	malformed int
	noticed   time.Time
	clock     ClockBound // Low only; High comes from noticed and the announcement
}

// maxProblems bounds the problems kept per pod: a stream of garbage must not fill the report.
const maxProblems = 5

func (p *podStream) problem(format string, args ...any) {
	if len(p.problems) < maxProblems {
		p.problems = append(p.problems, fmt.Sprintf("pod %s: ", p.name)+fmt.Sprintf(format, args...))
	}
}

// NewMerger merges runs that started at the common instant start with cfg (the whole run's
// configuration, before it was split over the pods).
func NewMerger(start time.Time, cfg Config) *Merger {
	return &Merger{start: start, cfg: cfg, pods: map[string]*podStream{}, now: time.Now}
}

// Announced records when the start instant was sent to the pods, by the reader's clock.
func (m *Merger) Announced(at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.announced = at
}

// Progress is what the pods reported so far: the requests of closed and open seconds, and the
// failures of closed ones.
func (m *Merger) Progress() (requests, errors int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.pods {
		for _, s := range p.seconds {
			requests += s.Requests
			errors += s.Requests - s.Counts[OK]
		}
		for _, n := range p.open {
			requests += n
		}
	}
	return requests, errors
}

// Pod registers a pod so that a pod whose stream never arrives is reported.
func (m *Merger) Pod(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pod(name)
}

func (m *Merger) pod(name string) *podStream {
	p := m.pods[name]
	if p == nil {
		p = &podStream{name: name, seconds: map[int]*StreamSecond{}}
		m.pods[name] = p
	}
	return p
}

// Finished says whether the pod's summary has arrived: its stream is whole.
func (m *Merger) Finished(pod string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pods[pod]
	return p != nil && p.summary != nil
}

// maxLine bounds one line (a second with many failures is long, never unbounded).
const maxLine = 64 << 20

// Read applies the records of one pod's stream until r ends. Lines that are not records
// (malformed, another version) are counted and reported, never fatal; only a read error is
// returned (the stream dropped: Read again from the start or from where it broke).
func (m *Merger) Read(pod string, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		m.apply(pod, line)
	}
	return sc.Err()
}

func (m *Merger) apply(pod, line string) {
	received := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pod(pod)
	var rec StreamRecord
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Version != StreamVersion || rec.Seq <= 0 {
		if p.summary != nil && !strings.HasPrefix(line, "{") {
			return // the pod's text summary: its stderr shares the log after the stream
		}
		p.malformed++
		reason := "not a stream record"
		switch {
		case err != nil:
			reason = err.Error()
		case rec.Version != StreamVersion:
			reason = fmt.Sprintf("stream version %d, want %d", rec.Version, StreamVersion)
		}
		p.problem("malformed line skipped (%s): %.80q", reason, line)
		return
	}
	if rec.Seq <= p.lastSeq {
		return // read again after a dropped stream
	}
	if low := rec.Time.Sub(received); !rec.Time.IsZero() && (!p.clock.LowKnown || low > p.clock.Low) {
		p.clock.Low, p.clock.LowKnown = low, true
	}
	if !rec.Noticed.IsZero() {
		p.noticed = rec.Noticed
	}
	for _, s := range rec.Seconds {
		if err := checkSecond(s); err != nil {
			p.malformed++
			p.problem("record %d: second %d skipped: %v", rec.Seq, s.Second, err)
			continue
		}
		if _, dup := p.seconds[s.Second]; dup {
			p.problem("record %d: second %d sent twice; the second copy is ignored", rec.Seq, s.Second)
			continue
		}
		p.seconds[s.Second] = &s
	}
	if rec.Seq != p.lastSeq+1 {
		p.problem("records %d to %d are missing: their seconds are not counted", p.lastSeq+1, rec.Seq-1)
	}
	p.lastSeq, p.lastTime, p.start, p.open = rec.Seq, rec.Time, rec.Start, rec.Open
	if rec.Summary != nil {
		p.summary = rec.Summary
	}
}

func checkSecond(s StreamSecond) error {
	var sum int64
	for class, n := range s.Counts {
		if class != OK && outcomeIndex(class) == numOutcomes-1 && class != Other {
			return fmt.Errorf("unknown class %q", class)
		}
		if n < 0 {
			return fmt.Errorf("negative count for %s", class)
		}
		sum += n
	}
	if s.Second < 0 || sum != s.Requests {
		return fmt.Errorf("counts add to %d, requests %d", sum, s.Requests)
	}
	if _, err := s.Latency.histogram(); err != nil {
		return err
	}
	return nil
}

// Merge builds the merged Result and each pod's own, from what was read so far.
func (m *Merger) Merge() *Merged {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.pods))
	for name := range m.pods {
		names = append(names, name)
	}
	sort.Strings(names)
	out := &Merged{}
	var all []*podStream
	for _, name := range names {
		p := m.pods[name]
		all = append(all, p)
		pr := PodResult{Pod: name, Complete: p.summary != nil && len(p.problems) == 0 && p.malformed == 0}
		pr.Problems = append([]string(nil), p.problems...)
		if p.malformed > 0 {
			pr.Problems = append(pr.Problems, fmt.Sprintf("pod %s: %d malformed lines or seconds skipped", name, p.malformed))
		}
		if p.summary == nil {
			for _, n := range p.open {
				pr.Lost += n
			}
			if p.lastSeq == 0 {
				pr.Problems = append(pr.Problems, fmt.Sprintf("pod %s: no record arrived: its requests are unknown", name))
			} else {
				pr.Problems = append(pr.Problems, fmt.Sprintf("pod %s: the stream ended without a summary (the pod died?): %d requests in flight or unreported are counted as lost", name, pr.Lost))
			}
		}
		if !p.start.IsZero() {
			pr.StartSkew = p.start.Sub(m.start)
		}
		pr.Clock = p.clock
		if !p.noticed.IsZero() && !m.announced.IsZero() {
			pr.Clock.High, pr.Clock.HighKnown = p.noticed.Sub(m.announced), true
		}
		cfg := m.cfg
		if p.summary != nil && p.summary.Result != nil {
			cfg = p.summary.Result.Config
		}
		pr.Result = build(m.start, cfg, []*podStream{p})
		out.Pods = append(out.Pods, pr)
		out.Problems = append(out.Problems, pr.Problems...)
		out.Incomplete = out.Incomplete || !pr.Complete
	}
	out.Result = build(m.start, m.cfg, all)
	return out
}

// build makes one Result from pods' seconds: counts add, histograms merge, disruptions are
// rebuilt from every failure, and the open seconds of a pod without summary count as Lost.
func build(start time.Time, cfg Config, pods []*podStream) *Result {
	rec := newRecorder(start, cfg.Model == Open)
	type merged struct {
		s        *second
		failures []StreamFailure
	}
	seconds := map[int]*merged{}
	at := func(idx int) *merged {
		if seconds[idx] == nil {
			seconds[idx] = &merged{s: &second{hist: newHistogram()}}
		}
		return seconds[idx]
	}
	sendEnd, end := start, start
	var late int64
	for _, p := range pods {
		for idx, ss := range p.seconds {
			mg := at(idx)
			mg.s.requests += ss.Requests
			for class, n := range ss.Counts {
				mg.s.counts[outcomeIndex(class)] += n
				rec.counts[outcomeIndex(class)] += n
			}
			h, _ := ss.Latency.histogram() // checked when applied
			mg.s.hist.Merge(h)
			rec.latency.Merge(h)
			for k, n := range ss.Kinds {
				rec.kinds[k] += n
				mg.s.kinds = addKind(mg.s.kinds, k, n)
			}
			rec.retries += ss.Retries
			mg.failures = append(mg.failures, ss.Failures...)
		}
		if p.summary == nil {
			for idx, n := range p.open {
				mg := at(idx)
				mg.s.requests += n
				mg.s.counts[outcomeIndex(Lost)] += n
				rec.counts[outcomeIndex(Lost)] += n
			}
			end = later(end, p.lastTime)
			sendEnd = later(sendEnd, p.lastTime)
			continue
		}
		if r := p.summary.Result; r != nil {
			sendEnd, end = later(sendEnd, r.SendEnd), later(end, r.End)
			if r.SendLag != nil {
				late += r.SendLag.Late
			}
		}
		if h, err := p.summary.Lag.histogram(); err == nil && rec.lag != nil {
			rec.lag.Merge(h)
		}
	}
	rec.late = late
	idxs := make([]int, 0, len(seconds))
	for idx := range seconds {
		idxs = append(idxs, idx)
	}
	sort.Ints(idxs)
	var failures []StreamFailure
	for _, idx := range idxs {
		mg := seconds[idx]
		if mg.s.hist.TotalCount() == 0 {
			mg.s.hist = nil
		}
		rec.closeSecond(idx, mg.s)
		failures = append(failures, mg.failures...)
	}
	sort.SliceStable(failures, func(i, j int) bool { return failures[i].Sent.Before(failures[j].Sent) })
	for _, f := range failures {
		rec.addFailure(f.Sent, f.End, outcomeIndex(f.Class), answer{outcome: f.Class, kind: f.Kind, err: f.Error})
	}
	return rec.result(cfg, sendEnd, end)
}
