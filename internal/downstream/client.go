package downstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gracelab/gracelab/internal/neterr"
)

// Kind is the machine-readable reason an upstream call failed: the error body's "kind". The
// transport kinds are neterr's classes, shared with the load generator.
type Kind string

const (
	KindRefused Kind = Kind(neterr.Refused) // connection refused: nothing listens, the request never left
	KindReset   Kind = Kind(neterr.Reset)   // connection reset by the peer
	KindEOF     Kind = Kind(neterr.EOF)     // connection closed before a full answer
	KindTimeout Kind = Kind(neterr.Timeout) // UPSTREAM_TIMEOUT or REQUEST_DEADLINE ran out
	KindHTTP5xx Kind = "http_5xx"           // the upstream answered 5xx
	KindHTTP4xx Kind = "http_4xx"           // the upstream answered 4xx
	KindBadBody Kind = "bad_body"           // a 2xx whose body is not a JSON object, or is too large
	KindOther   Kind = Kind(neterr.Other)   // anything else (DNS failure, redirect, cancelled caller)
)

// MaxUpstreamBody bounds how much of an upstream answer is read.
const MaxUpstreamBody = 64 << 10

// Jitter is the backoff's randomization: each wait is its nominal value times [1-J, 1+J].
const Jitter = 0.2

// failure is one failed attempt.
type failure struct {
	kind   Kind
	status int  // upstream HTTP status for http_* kinds
	sent   bool // the request may have reached the upstream (a connection was obtained)
	reused bool // the connection was a pooled one, used before
	err    error
}

func (f *failure) Error() string { return f.err.Error() }

// retryable says whether another attempt may follow. A POST is not idempotent: it is retried
// only when it provably never reached the upstream (refused, or no connection was obtained).
func (f *failure) retryable(method string) bool {
	switch f.kind {
	case KindRefused:
		return true
	case KindReset, KindEOF, KindTimeout:
		return method != http.MethodPost || !f.sent
	case KindHTTP5xx:
		switch f.status {
		case 500, 502, 503, 504:
			return method != http.MethodPost // the upstream answered: it was reached
		}
	}
	return false
}

// classify maps a transport error to a Kind.
func classify(err error) Kind { return Kind(neterr.Classify(err)) }

// caller calls the upstream with the retry policy.
type caller struct {
	cfg    Config
	target string
	pooled *http.Client // nil with CLIENT=per-request
	log    *slog.Logger

	attempts *prometheus.CounterVec // by result: ok or a Kind
	retries  prometheus.Counter

	// afterAttempt, when set (tests only), runs after each attempt, before any wait.
	afterAttempt func(attempt int, f *failure)
}

func newCaller(cfg Config, logger *slog.Logger, reg prometheus.Registerer) *caller {
	c := &caller{
		cfg:    cfg,
		target: cfg.UpstreamURL.String() + "/api/data",
		log:    logger,
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gracelab_upstream_attempts_total",
			Help: "Calls to the upstream, by result: ok or the kind of failure.",
		}, []string{"result"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gracelab_upstream_retries_total",
			Help: "Attempts made after a failed one.",
		}),
	}
	reg.MustRegister(c.attempts, c.retries)
	if cfg.Client == Pooled {
		c.pooled = newClient(false, cfg)
	}
	return c
}

// newClient builds the upstream client. IdleConnTimeout bounds how long a pooled connection
// waits unused: shorter than the upstream's own limits, so this side is the one that closes it.
func newClient(perRequest bool, cfg Config) *http.Client {
	tr := &http.Transport{
		Proxy:                  nil, // in-cluster traffic: never through an environment proxy
		DialContext:            (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
		DisableKeepAlives:      perRequest,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    256, // the default 2 would churn connections under 15 clients
		IdleConnTimeout:        cfg.IdleConnTimeout,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	if cfg.Protocol == H2C {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// outcome is the result of a whole call.
type outcome struct {
	body     json.RawMessage // the upstream's JSON object, on success
	fail     *failure        // the last attempt's failure, or nil
	attempts int
}

// call runs attempts until one succeeds, a failure is not retryable, RETRY_ATTEMPTS are used,
// or the next wait would end at or after REQUEST_DEADLINE. Each attempt is bounded by
// min(UPSTREAM_TIMEOUT, time left before the deadline).
func (c *caller) call(ctx context.Context, method string) outcome {
	deadline := time.Now().Add(c.cfg.RequestDeadline)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var out outcome
	op := func() (json.RawMessage, error) {
		out.attempts++
		if out.attempts > 1 {
			c.retries.Inc()
		}
		body, f := c.attempt(ctx, method)
		if c.afterAttempt != nil {
			c.afterAttempt(out.attempts, f)
		}
		out.fail = f
		if f == nil {
			c.attempts.WithLabelValues("ok").Inc()
			return body, nil
		}
		c.attempts.WithLabelValues(string(f.kind)).Inc()
		if !f.retryable(method) {
			return nil, backoff.Permanent(f)
		}
		return nil, f
	}
	notify := func(err error, wait time.Duration) {
		c.log.Warn("upstream attempt failed, retrying", "attempt", out.attempts, "kind", string(out.fail.kind),
			"error", err.Error(), "retry_in", wait.String())
	}
	// The last failure is kept in out: Retry itself may return the context's error instead.
	body, _ := backoff.Retry(ctx, op,
		backoff.WithBackOff(newPolicy(c.cfg, deadline)),
		backoff.WithMaxTries(uint(c.cfg.RetryAttempts)),
		backoff.WithMaxElapsedTime(0), // the policy enforces the deadline itself
		backoff.WithNotify(notify))
	out.body = body
	return out
}

// attempt makes one call and validates the answer.
func (c *caller) attempt(ctx context.Context, method string) (json.RawMessage, *failure) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.UpstreamTimeout) // the parent's deadline may come first
	defer cancel()
	var sent, reused atomic.Bool
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		sent.Store(true)
		reused.Store(info.Reused)
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), method, c.target, http.NoBody)
	if err != nil {
		return nil, &failure{kind: KindOther, err: err}
	}
	req.Header.Set("Accept", "application/json")
	client := c.pooled
	if client == nil {
		client = newClient(true, c.cfg)
		defer client.CloseIdleConnections()
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, &failure{kind: classify(err), sent: sent.Load(), reused: reused.Load(), err: err}
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, MaxUpstreamBody+1))
	switch code := resp.StatusCode; {
	case code >= 500:
		return nil, &failure{kind: KindHTTP5xx, status: code, sent: true, err: fmt.Errorf("upstream answered %d", code)}
	case code >= 400:
		return nil, &failure{kind: KindHTTP4xx, status: code, sent: true, err: fmt.Errorf("upstream answered %d", code)}
	case code < 200 || code > 299:
		return nil, &failure{kind: KindOther, status: code, sent: true, err: fmt.Errorf("upstream answered %d", code)}
	}
	if readErr != nil {
		return nil, &failure{kind: classify(readErr), sent: true, reused: reused.Load(), err: fmt.Errorf("reading the upstream answer: %w", readErr)}
	}
	if len(body) > MaxUpstreamBody {
		return nil, &failure{kind: KindBadBody, sent: true, err: fmt.Errorf("upstream answer larger than %d bytes", MaxUpstreamBody)}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return nil, &failure{kind: KindBadBody, sent: true, err: errors.New("upstream answer is not a JSON object")}
	}
	return body, nil
}

// policy is exponential backoff: RETRY_BACKOFF, then doubling, each wait jittered by ±Jitter and
// never above RETRY_MAX_BACKOFF (jitter included). It stops when a wait would end at or after
// the call's deadline, so no attempt starts that has no time left.
type policy struct {
	exp      *backoff.ExponentialBackOff
	max      time.Duration
	deadline time.Time
}

func newPolicy(cfg Config, deadline time.Time) *policy {
	exp := backoff.NewExponentialBackOff()
	exp.InitialInterval = cfg.RetryBackoff
	exp.Multiplier = 2
	exp.RandomizationFactor = Jitter
	exp.MaxInterval = cfg.RetryMaxBackoff
	return &policy{exp: exp, max: cfg.RetryMaxBackoff, deadline: deadline}
}

func (p *policy) NextBackOff() time.Duration {
	d := min(p.exp.NextBackOff(), p.max)
	if !time.Now().Add(d).Before(p.deadline) {
		return backoff.Stop
	}
	return d
}

func (p *policy) Reset() { p.exp.Reset() }
