package downstream

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gracelab/gracelab/internal/lifecycle"
	"github.com/gracelab/gracelab/internal/service"
)

// DefaultPort is where the downstream listens unless PORT says otherwise.
const DefaultPort = 8000

// ClientMode says how the downstream connects to the upstream.
type ClientMode string

const (
	// Pooled keeps one client with keep-alive connections (v3).
	Pooled ClientMode = "pooled"
	// PerRequest opens a new connection for every call and closes it after (v1, v2, the original).
	PerRequest ClientMode = "per-request"
)

// Protocol is the HTTP version spoken to the upstream.
type Protocol string

const (
	HTTP1 Protocol = "http1" // HTTP/1.1
	H2C   Protocol = "h2c"   // HTTP/2 without TLS, prior knowledge; GOAWAY closes the keep-alive race
)

// Config is the downstream's whole configuration, read from the environment.
type Config struct {
	Serve           service.Config
	UpstreamURL     *url.URL      // UPSTREAM_URL; /api/data is appended
	UpstreamMethod  string        // UPSTREAM_METHOD: GET or POST for every call; empty forwards the caller's
	Client          ClientMode    // CLIENT
	IdleConnTimeout time.Duration // UPSTREAM_IDLE_TIMEOUT: a pooled connection idle this long is closed
	Protocol        Protocol      // PROTOCOL
	RetryAttempts   int           // RETRY_ATTEMPTS: attempts in all; 1 means no retry
	RetryBackoff    time.Duration // RETRY_BACKOFF: the first wait; each next one doubles
	RetryMaxBackoff time.Duration // RETRY_MAX_BACKOFF: hard cap of any wait, jitter included
	UpstreamTimeout time.Duration // UPSTREAM_TIMEOUT: bounds each attempt
	RequestDeadline time.Duration // REQUEST_DEADLINE: bounds the whole call, retries and waits included
}

// Defaults of the downstream's own variables.
const (
	DefaultUpstreamURL     = "http://127.0.0.1:7000"
	DefaultRetryBackoff    = 500 * time.Millisecond
	DefaultRetryMaxBackoff = 2 * time.Second
	DefaultUpstreamTimeout = 5 * time.Second
	DefaultRequestDeadline = 9 * time.Second
	// DefaultIdleConnTimeout closes a pooled connection before the upstream can: below the
	// upstream's IdleTimeout, and below its PRESTOP_DELAY, so a connection left idle through a
	// pod's retirement window is closed by this side, never raced by the pod's exit.
	DefaultIdleConnTimeout = 3 * time.Second
	MaxRetryAttempts       = 10
)

// ParseConfig reads the chassis's variables plus UPSTREAM_URL, UPSTREAM_METHOD, CLIENT, PROTOCOL,
// UPSTREAM_IDLE_TIMEOUT, RETRY_ATTEMPTS, RETRY_BACKOFF, RETRY_MAX_BACKOFF, UPSTREAM_TIMEOUT and
// REQUEST_DEADLINE.
func ParseConfig(getenv func(string) string) (Config, error) {
	serve, env, err := service.ParseConfig(getenv, DefaultPort)
	c := Config{Serve: serve}
	if err != nil {
		return c, err
	}
	raw := getenv("UPSTREAM_URL")
	if raw == "" {
		raw = DefaultUpstreamURL
	}
	if c.UpstreamURL, err = parseUpstreamURL(raw); err != nil {
		return c, &service.EnvError{Name: "UPSTREAM_URL", Value: raw, Want: "an http:// or https:// URL with a host and no query, such as http://upstream:7000"}
	}
	if c.UpstreamMethod, err = env.OneOf("UPSTREAM_METHOD", "", http.MethodGet, http.MethodPost); err != nil {
		return c, err
	}
	mode, err := env.OneOf("CLIENT", string(Pooled), string(Pooled), string(PerRequest))
	if err != nil {
		return c, err
	}
	c.Client = ClientMode(mode)
	proto, err := env.OneOf("PROTOCOL", string(HTTP1), string(HTTP1), string(H2C))
	if err != nil {
		return c, err
	}
	c.Protocol = Protocol(proto)
	if c.Protocol == H2C && c.UpstreamURL.Scheme != "http" {
		return c, &service.EnvError{Name: "PROTOCOL", Value: proto, Want: "http1 with an https:// UPSTREAM_URL (h2c is HTTP/2 without TLS)"}
	}
	if c.IdleConnTimeout, err = env.Duration("UPSTREAM_IDLE_TIMEOUT", DefaultIdleConnTimeout, time.Millisecond); err != nil {
		return c, err
	}
	if err := env.Ordered("UPSTREAM_IDLE_TIMEOUT", c.IdleConnTimeout, "the upstream's idle timeout", service.IdleTimeout, true,
		", so the pool closes an idle connection before the upstream does"); err != nil {
		return c, err
	}
	if c.RetryAttempts, err = env.Int("RETRY_ATTEMPTS", 1, 1, MaxRetryAttempts); err != nil {
		return c, err
	}
	if c.RetryBackoff, err = env.Duration("RETRY_BACKOFF", DefaultRetryBackoff, time.Millisecond); err != nil {
		return c, err
	}
	if c.RetryMaxBackoff, err = env.Duration("RETRY_MAX_BACKOFF", DefaultRetryMaxBackoff, time.Millisecond); err != nil {
		return c, err
	}
	if err := env.Ordered("RETRY_BACKOFF", c.RetryBackoff, "RETRY_MAX_BACKOFF", c.RetryMaxBackoff, false, ""); err != nil {
		return c, err
	}
	if c.UpstreamTimeout, err = env.Duration("UPSTREAM_TIMEOUT", DefaultUpstreamTimeout, time.Millisecond); err != nil {
		return c, err
	}
	if c.RequestDeadline, err = env.Duration("REQUEST_DEADLINE", DefaultRequestDeadline, time.Millisecond); err != nil {
		return c, err
	}
	// A request still running when the drain gives up would be cut: keep it inside the drain.
	if c.Serve.Mode == lifecycle.Graceful {
		return c, env.Ordered("REQUEST_DEADLINE", c.RequestDeadline, "DRAIN_TIMEOUT", c.Serve.DrainTimeout, true,
			", so a draining pod can finish every call")
	}
	return c, nil
}

// parseUpstreamURL accepts http(s)://host[:port][/prefix] with nothing else.
func parseUpstreamURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || strings.ContainsAny(raw, " \t\r\n") {
		return nil, fmt.Errorf("unsupported URL %q", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("bad port %q", p)
		}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}
