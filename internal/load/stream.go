package load

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
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
