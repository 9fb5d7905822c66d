// Package load is gracelab's load generator: it sends HTTP requests in a closed model (k6-like
// virtual users) or an open model (fixed arrival times, without coordinated omission), gives
// every request exactly one outcome, and keeps latency histograms, a per-second timeline and
// the disruption intervals. The `gracelab load` command and the drill both drive it.
//
// Timeline of a run:
//
//	Start           sending begins at once (open model: slot i is due at Start + i/Rate)
//	Start+Duration  or Stop: no request is started any more (SendEnd)
//	... +Timeout    requests still in flight end by their own deadline: a timeout at worst
//	Done            every request has its outcome; Result is ready (End)
package load

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Run is one load run in progress.
type Run struct {
	cfg     Config
	judge   judge
	client  *http.Client
	rec     *recorder
	start   time.Time
	stopCh  chan struct{}
	endOnce sync.Once
	sendEnd time.Time // set once, under endOnce, before stopCh closes
	senders sync.WaitGroup
	done    chan struct{}
	result  *Result

	requests, errors, inFlight atomic.Int64
}

// Progress is a live view of a run.
type Progress struct {
	Elapsed  time.Duration
	Requests int64 // outcomes recorded so far
	Errors   int64
	InFlight int64
}

// postBody is what POST sends: small, and valid JSON for servers that parse it.
var postBody = []byte("{}\n")

// Start validates cfg, begins sending at once and returns. The run ends after Duration or on
// Stop; Done is closed when every request has its outcome.
func Start(cfg Config) (*Run, error) { return start(cfg, time.Time{}, nil) }

// start is Start at the instant at (now when zero: it waits for a later one), with onClose
// seeing every second of the timeline as it closes.
func start(cfg Config, at time.Time, onClose func(int, *second)) (*Run, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	r := &Run{cfg: cfg, judge: newJudge(cfg), client: newClient(cfg), stopCh: make(chan struct{}), done: make(chan struct{})}
	if wait := time.Until(at); wait > 0 {
		time.Sleep(wait) // the common start of several load pods, not synchronisation
	}
	r.start = time.Now()
	if !at.IsZero() && r.start.Sub(at) < time.Second {
		r.start = at // seconds line up with the other pods'
	}
	r.rec = newRecorder(r.start, cfg.Model == Open)
	r.rec.onClose = onClose
	var timer *time.Timer // ends the closed model's sending
	if cfg.Model == Open {
		r.senders.Add(1)
		go r.schedule()
	} else {
		if cfg.Duration > 0 {
			end := r.start.Add(cfg.Duration)
			timer = time.AfterFunc(cfg.Duration, func() { r.endSending(end) })
		}
		r.senders.Add(cfg.VUs)
		for range cfg.VUs {
			go r.vu()
		}
	}
	go func() {
		r.senders.Wait()
		if timer != nil {
			timer.Stop()
		}
		r.endSending(time.Now()) // Stop, or the open schedule ran out
		r.client.CloseIdleConnections()
		r.result = r.rec.result(r.cfg, r.sendEnd, time.Now())
		close(r.done)
	}()
	return r, nil
}

// Stop stops starting requests. Requests in flight are awaited up to their timeout, then
// counted as timeouts. Safe to call more than once and after the run ended.
func (r *Run) Stop() { r.endSending(time.Now()) }

func (r *Run) endSending(t time.Time) {
	r.endOnce.Do(func() {
		r.sendEnd = t
		close(r.stopCh)
	})
}

// Done is closed when every request has an outcome.
func (r *Run) Done() <-chan struct{} { return r.done }

// Result is the run's result; nil before Done is closed.
func (r *Run) Result() *Result {
	select {
	case <-r.done:
		return r.result
	default:
		return nil
	}
}

// Progress is safe to call at any time.
func (r *Run) Progress() Progress {
	return Progress{
		Elapsed: time.Since(r.start), Requests: r.requests.Load(),
		Errors: r.errors.Load(), InFlight: r.inFlight.Load(),
	}
}

// Config is the run's configuration with defaults filled in.
func (r *Run) Config() Config { return r.cfg }

func (r *Run) stopped() bool {
	select {
	case <-r.stopCh:
		return true
	default:
		return false
	}
}

// newClient builds a client whose connection policy is the config's. Note that Go's transport
// retries an idempotent request (GET) by itself when a reused keep-alive connection fails
// before any response byte; POST is never retried, so it shows that race.
func newClient(cfg Config) *http.Client {
	conc := max(cfg.VUs, cfg.MaxInFlight)
	tr := &http.Transport{
		Proxy:               nil, // a load target is addressed directly, never via HTTP_PROXY
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: cfg.Timeout,
		DisableCompression:  true,
		DisableKeepAlives:   cfg.Connections == ConnectionsNew,
		MaxIdleConnsPerHost: conc,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{
		Transport: tr,
		// A redirect is an answer to measure (class other), not something to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (r *Run) newRequest(ctx context.Context) (*http.Request, error) {
	var req *http.Request
	var err error
	switch {
	case r.cfg.Body != nil:
		req, err = http.NewRequestWithContext(ctx, r.cfg.Method, r.cfg.URL, bytes.NewReader(r.cfg.Body))
	case r.cfg.Method == "POST":
		req, err = http.NewRequestWithContext(ctx, "POST", r.cfg.URL, bytes.NewReader(postBody))
		if req != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	default:
		req, err = http.NewRequestWithContext(ctx, r.cfg.Method, r.cfg.URL, nil)
	}
	if req != nil {
		req.Header.Set("User-Agent", "gracelab-load")
		for k, vs := range r.cfg.Header {
			if k == "Host" {
				req.Host = vs[0]
				continue
			}
			req.Header[k] = vs
		}
	}
	return req, err
}

// send performs one exchange bounded by the per-request timeout.
func (r *Run) send() answer {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
	defer cancel()
	return exchange(ctx, r.client, r.newRequest, r.judge.judgeResponse)
}

func (r *Run) count(a answer) {
	r.requests.Add(1)
	if a.outcome != OK {
		r.errors.Add(1)
	}
}

// vu is one closed-model virtual user: send, wait for the answer, think, repeat.
func (r *Run) vu() {
	defer r.senders.Done()
	think := time.NewTimer(time.Hour)
	think.Stop()
	for !r.stopped() {
		if r.cfg.Duration > 0 && time.Since(r.start) >= r.cfg.Duration {
			r.endSending(r.start.Add(r.cfg.Duration)) // the timer may fire a little late
			return
		}
		idx, sent := r.rec.beginNow()
		r.inFlight.Add(1)
		a := r.send()
		end := time.Now()
		r.inFlight.Add(-1)
		r.rec.finish(idx, sent, end, end.Sub(sent), -1, a)
		r.count(a)
		if r.cfg.Think > 0 {
			think.Reset(r.cfg.Think)
			select {
			case <-think.C:
			case <-r.stopCh:
				return
			}
		}
	}
}

// spinAhead: the scheduler sleeps on a timer until this long before a slot, then yields in a
// loop until the slot. Go's timers on Linux wake up to a millisecond late (the netpoller
// sleeps in whole milliseconds), which alone would put the open model's p99 send lag near
// 1 ms. The price is up to ~1 ms of CPU per slot.
const spinAhead = 1100 * time.Microsecond

// schedule is the open model: slot i is due at start + i/rate, whatever the server does.
// A slot that finds MaxInFlight requests in flight is recorded as dropped, never delayed:
// delaying it would lower the rate and hide the server's slowness.
func (r *Run) schedule() {
	defer r.senders.Done()
	interval := float64(time.Second) / r.cfg.Rate
	var end time.Time
	if r.cfg.Duration > 0 {
		end = r.start.Add(r.cfg.Duration)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	dropped := answer{outcome: Dropped, err: fmt.Sprintf("dropped: %d requests already in flight at its slot", r.cfg.MaxInFlight)}
	for i := 0; ; i++ {
		due := r.start.Add(time.Duration(float64(i) * interval))
		if !end.IsZero() && !due.Before(end) {
			r.endSending(end)
			return
		}
		if !r.waitUntil(due, timer) {
			return
		}
		idx := r.rec.begin(due)
		if r.inFlight.Add(1) > int64(r.cfg.MaxInFlight) {
			r.inFlight.Add(-1)
			r.rec.finish(idx, due, due, -1, -1, dropped)
			r.count(dropped)
			continue
		}
		r.senders.Add(1)
		go func() {
			defer r.senders.Done()
			lag := time.Since(due)
			a := r.send()
			done := time.Now()
			r.inFlight.Add(-1)
			r.rec.finish(idx, due, done, done.Sub(due), lag, a)
			r.count(a)
		}()
	}
}

// waitUntil returns at due, or false as soon as the run is stopped.
func (r *Run) waitUntil(due time.Time, timer *time.Timer) bool {
	if d := time.Until(due) - spinAhead; d > 0 {
		timer.Reset(d)
		select {
		case <-timer.C:
		case <-r.stopCh:
			timer.Stop()
			return false
		}
	}
	for time.Now().Before(due) {
		runtime.Gosched()
	}
	return !r.stopped()
}
