package load

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The stream: a load pod writes one JSON line per second while it runs and a summary line at the
// end; gracelab reads the lines of every pod (from its log) and merges them into one Result of
// the same shape as a local run. Records carry sequence numbers, so a stream read again from the
// start after it dropped is not counted twice. Each line holds the seconds of the timeline that
// closed since the previous line (all their requests have an outcome) and the seconds still open;
// when a pod dies, the requests of its open seconds are counted as Lost.

// StreamVersion is the version of the line format; a reader refuses other versions.
const StreamVersion = 1

// StreamRecord is one line of a load pod's stream.
type StreamRecord struct {
	Version int       `json:"v"`
	Seq     int64     `json:"seq"`  // 1, 2, ... in the order written
	Time    time.Time `json:"time"` // the pod's clock when written
	Start   time.Time `json:"start"`
	// Noticed is when the pod read the announced start instant, by its clock: with when the
	// announcement was sent, it bounds the pod's clock against the announcer's.
	Noticed time.Time `json:"noticed,omitzero"`
	// Open is, per second still open, the requests begun in it so far.
	Open    map[int]int64  `json:"open,omitempty"`
	Seconds []StreamSecond `json:"seconds,omitempty"`
	Summary *StreamSummary `json:"summary,omitempty"` // the last line only
}

// StreamSecond is one closed second of a pod's timeline.
type StreamSecond struct {
	Second   int               `json:"second"`
	Requests int64             `json:"requests"`
	Counts   map[Outcome]int64 `json:"counts"` // by class, ok included, zeros left out
	Kinds    map[string]int64  `json:"kinds,omitempty"`
	Retries  int64             `json:"retries,omitempty"`
	Latency  *Snapshot         `json:"latency,omitempty"`
	Failures []StreamFailure   `json:"failures,omitempty"`
}

// StreamFailure is one failed request: when it was sent and seen, its class and error.
type StreamFailure struct {
	Sent  time.Time `json:"sent"`
	End   time.Time `json:"end"`
	Class Outcome   `json:"class"`
	Kind  string    `json:"kind,omitempty"` // the downstream's reason for a 5xx
	Error string    `json:"error,omitempty"`
}

// StreamSummary closes a stream: the pod's own Result and its send-lag histogram.
type StreamSummary struct {
	Result *Result   `json:"result"`
	Lag    *Snapshot `json:"lag,omitempty"`
}

// Snapshot is an HDR histogram of microseconds in the range of the run's histograms, sparse:
// Counts holds pairs of bucket index and count.
type Snapshot struct {
	Counts []int64 `json:"counts"`
}

func snapshotOf(h *hdrhistogram.Histogram) *Snapshot {
	if h == nil || h.TotalCount() == 0 {
		return nil
	}
	s := &Snapshot{}
	for i, n := range h.Export().Counts {
		if n != 0 {
			s.Counts = append(s.Counts, int64(i), n)
		}
	}
	return s
}

// histogram rebuilds the histogram, refusing indexes out of range and negative counts.
func (s *Snapshot) histogram() (*hdrhistogram.Histogram, error) {
	exp := newHistogram().Export()
	if s == nil {
		return hdrhistogram.Import(exp), nil
	}
	if len(s.Counts)%2 != 0 {
		return nil, errors.New("histogram counts are not index/count pairs")
	}
	for i := 0; i < len(s.Counts); i += 2 {
		idx, n := s.Counts[i], s.Counts[i+1]
		if idx < 0 || idx >= int64(len(exp.Counts)) || n < 0 {
			return nil, fmt.Errorf("histogram bucket %d count %d out of range", idx, n)
		}
		exp.Counts[idx] += n
	}
	return hdrhistogram.Import(exp), nil
}

// secondDetail is what a streamed second carries beyond the recorder's own counts.
type secondDetail struct {
	retries  int64
	failures []StreamFailure
}

func (s *second) note(sent, end time.Time, a answer) {
	if s.detail == nil {
		s.detail = &secondDetail{}
	}
	s.detail.retries += a.retries
	if a.outcome != OK {
		f := StreamFailure{Sent: sent, End: end, Class: a.outcome, Error: a.err}
		if a.outcome == HTTP5xx {
			f.Kind = a.kind
		}
		s.detail.failures = append(s.detail.failures, f)
	}
}

// StartStream is Start at the instant at (a common start announced to several pods; zero = now)
// that also writes the stream to w: a line every interval and the summary once the run is done.
// Write errors end the stream but not the run; Done is closed after the summary is written.
func StartStream(cfg Config, at time.Time, w io.Writer, interval time.Duration) (*Run, <-chan error, error) {
	st := &streamer{enc: json.NewEncoder(w)}
	if !at.IsZero() {
		st.noticed = time.Now() // the caller has just read the announcement
	}
	run, err := start(cfg, at, st.closed)
	if err != nil {
		return nil, nil, err
	}
	st.run = run
	errc := make(chan error, 1)
	go func() { errc <- st.loop(interval) }()
	return run, errc, nil
}

type streamer struct {
	enc     *json.Encoder
	run     *Run
	noticed time.Time

	mu     sync.Mutex // guards closed seconds; taken under the recorder's lock
	seq    int64
	ready  []StreamSecond
	broken error
}

// closed runs under the recorder's lock, before the second's histogram is recycled.
func (st *streamer) closed(idx int, s *second) {
	out := StreamSecond{Second: idx, Requests: s.requests, Counts: map[Outcome]int64{}, Latency: snapshotOf(s.hist), Kinds: maps.Clone(s.kinds)}
	for i, n := range s.counts {
		if n > 0 {
			out.Counts[outcomeName(i)] = n
		}
	}
	if d := s.detail; d != nil {
		out.Retries, out.Failures = d.retries, d.failures
	}
	st.mu.Lock()
	st.ready = append(st.ready, out)
	st.mu.Unlock()
}

func outcomeName(i int) Outcome {
	if i == 0 {
		return OK
	}
	return ErrorClasses[i-1]
}

func (st *streamer) loop(interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-st.run.Done():
			res := st.run.Result()
			sum := &StreamSummary{Result: res}
			if lag := st.run.rec.lag; lag != nil {
				st.run.rec.mu.Lock()
				sum.Lag = snapshotOf(lag)
				st.run.rec.mu.Unlock()
			}
			return st.write(sum)
		case <-tick.C:
			if err := st.write(nil); err != nil {
				return err
			}
		}
	}
}

func (st *streamer) write(sum *StreamSummary) error {
	rec := st.run.rec
	rec.mu.Lock()
	open := map[int]int64{}
	for idx, s := range rec.live {
		open[idx] = s.requests
	}
	st.mu.Lock()
	seconds := st.ready
	st.ready = nil
	st.mu.Unlock()
	rec.mu.Unlock()
	st.seq++
	line := StreamRecord{Version: StreamVersion, Seq: st.seq, Time: time.Now(), Start: rec.start, Noticed: st.noticed, Seconds: seconds, Summary: sum}
	if len(open) > 0 {
		line.Open = open
	}
	return st.enc.Encode(line)
}

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

// Split divides a run's load over n pods: the VUs or the rate evenly, the first pods taking
// the remainder of VUs. It refuses a split that would leave a pod with nothing to send.
func Split(cfg Config, n int) ([]Config, error) {
	if n < 1 {
		return nil, fmt.Errorf("load pods must be at least 1, got %d", n)
	}
	out := make([]Config, n)
	for i := range out {
		c := cfg
		switch cfg.Model {
		case Open:
			c.Rate = cfg.Rate / float64(n)
			if cfg.MaxInFlight > 0 {
				c.MaxInFlight = max(1, cfg.MaxInFlight/n)
			}
		default:
			if cfg.VUs < n {
				return nil, fmt.Errorf("%d VUs cannot be split over %d load pods; use at most %d pods or more VUs", cfg.VUs, n, cfg.VUs)
			}
			c.VUs = cfg.VUs / n
			if i < cfg.VUs%n {
				c.VUs++
			}
		}
		out[i] = c
	}
	return out, nil
}

// WaitStartFile waits until the file at path holds an RFC 3339 instant (a load pod reads the
// common start from its downward-API volume, which the kubelet fills once gracelab announces
// it) and returns it. A signal ends the wait.
func WaitStartFile[S any](path string, stop <-chan S) (time.Time, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return time.Time{}, fmt.Errorf("read the start instant: %w", err)
		}
		if text := strings.TrimSpace(string(b)); text != "" {
			at, err := time.Parse(time.RFC3339Nano, text)
			if err != nil {
				return time.Time{}, fmt.Errorf("start instant %q in %s: %w", text, path, err)
			}
			return at, nil
		}
		select {
		case <-stop:
			return time.Time{}, errors.New("stopped before the start instant was announced")
		case <-tick.C:
		}
	}
}
