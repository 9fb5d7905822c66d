package load

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"time"
)

// Model is how requests are paced.
type Model string

const (
	// Closed: VUs virtual users, each sends, waits for the answer, thinks, and sends again
	// (k6's model: a slow server lowers the rate, which hides the slowness).
	Closed Model = "closed"
	// Open: requests at fixed arrival times, whatever the server does (no coordinated omission).
	Open Model = "open"
)

// Connection reuse policies.
const (
	ConnectionsNew   = "new"   // a new TCP connection per request (keep-alives off)
	ConnectionsReuse = "reuse" // keep-alive pool
)

// Defaults for zero values of Config.
const (
	DefaultTimeout = 10 * time.Second
	// MaxTimeout is the top of the latency histograms' range.
	MaxTimeout = 60 * time.Second
	// maxDefaultInFlight caps the open model's default in-flight limit (rate × timeout).
	maxDefaultInFlight = 10000
	// MaxVUs bounds the closed model: each VU is a goroutine and, with reuse, a connection.
	MaxVUs = 10000
	// MaxRate bounds the open model's rate: beyond it a slot is shorter than a goroutine start.
	MaxRate = 1e6
)

// Config says what to send and how. Zero values of Method, Model, Timeout, Connections and
// MaxInFlight take defaults (GET, closed, 10s, new, rate × timeout capped at 10000).
type Config struct {
	URL         string
	Method      string        // any HTTP method
	Header      http.Header   // added to every request; Host sets the Host header
	Body        []byte        // sent with every request; a POST without Body sends "{}"
	Expect      Expect        // what an ok answer is; zero: 2xx and the JSON status check
	Model       Model         // closed or open
	VUs         int           // closed model
	Think       time.Duration // closed model, pause after each response
	Rate        float64       // open model, requests per second
	MaxInFlight int           // open model cap; 0 = rate × timeout, at most 10000
	Duration    time.Duration // 0 = run until Stop
	Timeout     time.Duration // per request
	Connections string        // new or reuse
}

// withDefaults returns c with zero values replaced by defaults; call after Validate.
func (c Config) withDefaults() Config {
	if c.Method == "" {
		c.Method = "GET"
	}
	if c.Model == "" {
		c.Model = Closed
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Connections == "" {
		c.Connections = ConnectionsNew
	}
	if c.Model == Open && c.MaxInFlight == 0 {
		n := math.Ceil(c.Rate * c.Timeout.Seconds())
		c.MaxInFlight = int(math.Max(1, math.Min(n, maxDefaultInFlight)))
	}
	return c
}

// Validate reports the first problem with c in one line that says what to change.
func (c Config) Validate() error {
	if c.URL == "" {
		return fmt.Errorf("url is required, for example http://127.0.0.1:8000/")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("url %q does not parse: give an absolute http:// or https:// URL", c.URL)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url %q must start with http:// or https://", c.URL)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("url %q has no host: give one, for example http://127.0.0.1:8000/", c.URL)
	}
	if err := c.validateRequest(); err != nil {
		return err
	}
	switch c.Connections {
	case "", ConnectionsNew, ConnectionsReuse:
	default:
		return fmt.Errorf("connections %q is not supported: use new or reuse", c.Connections)
	}
	if c.Duration < 0 {
		return fmt.Errorf("duration %s is negative: give a positive duration, or 0 to run until stopped", c.Duration)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("timeout %s is negative: give a positive per-request timeout", c.Timeout)
	}
	if c.Timeout > MaxTimeout {
		return fmt.Errorf("timeout %s is longer than %s, the top of the latency histograms: lower it", c.Timeout, MaxTimeout)
	}
	switch c.Model {
	case "", Closed:
		if c.VUs <= 0 {
			return fmt.Errorf("vus must be at least 1 in the closed model, got %d", c.VUs)
		}
		if c.VUs > MaxVUs {
			return fmt.Errorf("vus %d is more than %d: use fewer, or the open model with --rate", c.VUs, MaxVUs)
		}
		if c.Think < 0 {
			return fmt.Errorf("think %s is negative: give 0 or a positive pause", c.Think)
		}
		if c.Duration > 0 && c.Think > c.Duration {
			return fmt.Errorf("think %s is longer than the run (%s): shorten it or run longer", c.Think, c.Duration)
		}
		if c.Rate != 0 || c.MaxInFlight != 0 {
			return fmt.Errorf("rate and max in flight belong to the open model: drop them or choose the open model")
		}
	case Open:
		if math.IsNaN(c.Rate) || c.Rate <= 0 || c.Rate > MaxRate {
			return fmt.Errorf("rate must be a number of requests per second in (0, %g], got %v", float64(MaxRate), c.Rate)
		}
		if c.MaxInFlight < 0 {
			return fmt.Errorf("max in flight must be at least 1 (or 0 for the default), got %d", c.MaxInFlight)
		}
		if c.VUs != 0 || c.Think != 0 {
			return fmt.Errorf("vus and think belong to the closed model: drop them or choose the closed model")
		}
	default:
		return fmt.Errorf("model %q is not supported: use closed or open", c.Model)
	}
	return nil
}

// configJSON is Config as it appears in the report: durations as Go duration strings.
type configJSON struct {
	URL         string            `json:"url"`
	Method      string            `json:"method"`
	Header      map[string]string `json:"header,omitempty"` // credentials redacted
	BodyBytes   int               `json:"body_bytes,omitempty"`
	Expect      *expectJSON       `json:"expect,omitempty"`
	Model       Model             `json:"model"`
	VUs         int               `json:"vus,omitempty"`
	Think       string            `json:"think,omitempty"`
	Rate        float64           `json:"rate,omitempty"`
	MaxInFlight int               `json:"max_in_flight,omitempty"`
	Duration    string            `json:"duration"`
	Timeout     string            `json:"timeout"`
	Connections string            `json:"connections"`
}

type expectJSON struct {
	Status           string `json:"status,omitempty"`
	Body             string `json:"body,omitempty"`
	IgnoreJSONStatus bool   `json:"ignore_json_status,omitempty"`
}

// MarshalJSON writes durations as strings ("100ms") and leaves out the other model's fields.
// The body is written as its length and credentials in headers as <redacted>.
func (c Config) MarshalJSON() ([]byte, error) {
	j := configJSON{
		URL: c.URL, Method: c.Method, Model: c.Model, VUs: c.VUs, Rate: c.Rate,
		MaxInFlight: c.MaxInFlight, Duration: c.Duration.String(), Timeout: c.Timeout.String(),
		Connections: c.Connections, Header: headerForReport(c.Header), BodyBytes: len(c.Body),
	}
	if c.Expect != (Expect{}) {
		j.Expect = &expectJSON{Status: c.Expect.Status, Body: c.Expect.Body, IgnoreJSONStatus: c.Expect.IgnoreJSONStatus}
	}
	if c.Model != Open {
		j.Think = c.Think.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *Config) UnmarshalJSON(b []byte) error {
	var j configJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	parse := func(name, s string) (time.Duration, error) {
		if s == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("config %s: %w", name, err)
		}
		return d, nil
	}
	var err error
	out := Config{URL: j.URL, Method: j.Method, Model: j.Model, VUs: j.VUs, Rate: j.Rate,
		MaxInFlight: j.MaxInFlight, Connections: j.Connections}
	if j.Expect != nil {
		out.Expect = Expect{Status: j.Expect.Status, Body: j.Expect.Body, IgnoreJSONStatus: j.Expect.IgnoreJSONStatus}
	}
	for k, v := range j.Header { // as reported: credentials stay redacted
		if out.Header == nil {
			out.Header = http.Header{}
		}
		out.Header.Set(k, v)
	}
	if out.Think, err = parse("think", j.Think); err != nil {
		return err
	}
	if out.Duration, err = parse("duration", j.Duration); err != nil {
		return err
	}
	if out.Timeout, err = parse("timeout", j.Timeout); err != nil {
		return err
	}
	*c = out
	return nil
}
