package load

import (
	"encoding/json"
	"math"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	good := Config{URL: "http://127.0.0.1:8000/", VUs: 15, Think: 100 * time.Millisecond, Duration: 30 * time.Second}
	open := Config{URL: "http://127.0.0.1:8000/", Model: Open, Rate: 50, Duration: 30 * time.Second}
	if err := good.Validate(); err != nil {
		t.Errorf("closed defaults: %v", err)
	}
	if err := open.Validate(); err != nil {
		t.Errorf("open: %v", err)
	}
	cases := []struct {
		name string
		edit func(c *Config)
		base Config
		want string
	}{
		{"no url", func(c *Config) { c.URL = "" }, good, "url is required"},
		{"bad url", func(c *Config) { c.URL = "http://[::1" }, good, "does not parse"},
		{"relative url", func(c *Config) { c.URL = "/path" }, good, "must start with http://"},
		{"ftp", func(c *Config) { c.URL = "ftp://host/" }, good, "must start with http://"},
		{"no host", func(c *Config) { c.URL = "http:///x" }, good, "has no host"},
		{"port only", func(c *Config) { c.URL = "http://:8000/" }, good, "has no host"},
		{"method", func(c *Config) { c.Method = "GET /x" }, good, `method "GET /x" is not a valid HTTP method`},
		{"header", func(c *Config) { c.Header = http.Header{"Bad Name": {"x"}} }, good, `"Bad Name" is not a valid header name`},
		{"expect status", func(c *Config) { c.Expect.Status = "2xx,20" }, good, `expect-status "2xx,20": "20" is not a status code`},
		{"expect body", func(c *Config) { c.Expect.Body = "(" }, good, `expect-body "(" is not a regular expression: missing closing )`},
		{"connections", func(c *Config) { c.Connections = "pooled" }, good, "use new or reuse"},
		{"negative duration", func(c *Config) { c.Duration = -time.Second }, good, "duration -1s is negative"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, good, "timeout -1s is negative"},
		{"huge timeout", func(c *Config) { c.Timeout = 2 * time.Minute }, good, "longer than 1m0s"},
		{"zero vus", func(c *Config) { c.VUs = 0 }, good, "vus must be at least 1"},
		{"too many vus", func(c *Config) { c.VUs = 1e7 }, good, "vus 10000000 is more than 10000"},
		{"negative vus", func(c *Config) { c.VUs = -3 }, good, "got -3"},
		{"negative think", func(c *Config) { c.Think = -time.Millisecond }, good, "think -1ms is negative"},
		{"think longer than run", func(c *Config) { c.Think = time.Minute }, good, "longer than the run"},
		{"rate in closed", func(c *Config) { c.Rate = 5 }, good, "belong to the open model"},
		{"zero rate", func(c *Config) { c.Rate = 0 }, open, "rate must be"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, open, "got -1"},
		{"NaN rate", func(c *Config) { c.Rate = math.NaN() }, open, "rate must be"},
		{"infinite rate", func(c *Config) { c.Rate = math.Inf(1) }, open, "rate must be"},
		{"negative cap", func(c *Config) { c.MaxInFlight = -1 }, open, "max in flight"},
		{"vus in open", func(c *Config) { c.VUs = 3 }, open, "belong to the closed model"},
		{"model", func(c *Config) { c.Model = "poisson" }, good, "use closed or open"},
	}
	for _, tc := range cases {
		c := tc.base
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: got %v, want one line containing %q", tc.name, err, tc.want)
		}
		if _, err := Start(c); err == nil {
			t.Errorf("%s: Start accepted an invalid config", tc.name)
		}
	}
	// Think time may equal the run; a run without duration takes any think time.
	c := good
	c.Think, c.Duration = time.Minute, 0
	if err := c.Validate(); err != nil {
		t.Errorf("think without duration: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	c := Config{URL: "http://h/", Model: Open, Rate: 50}.withDefaults()
	if c.Method != "GET" || c.Timeout != DefaultTimeout || c.Connections != ConnectionsNew || c.MaxInFlight != 500 {
		t.Errorf("open defaults: %+v", c)
	}
	if c := (Config{URL: "http://h/", Model: Open, Rate: 1e5}).withDefaults(); c.MaxInFlight != maxDefaultInFlight {
		t.Errorf("in-flight default not capped: %d", c.MaxInFlight)
	}
	if c := (Config{URL: "http://h/", Model: Open, Rate: 0.01, Timeout: time.Second}).withDefaults(); c.MaxInFlight != 1 {
		t.Errorf("in-flight default below 1: %d", c.MaxInFlight)
	}
	if c := (Config{URL: "http://h/", VUs: 2}).withDefaults(); c.Model != Closed || c.MaxInFlight != 0 {
		t.Errorf("closed defaults: %+v", c)
	}
}

func TestConfigJSONRoundTrip(t *testing.T) {
	for _, c := range []Config{
		{URL: "http://h/", Method: "GET", Model: Closed, VUs: 15, Think: 100 * time.Millisecond, Duration: 30 * time.Second, Timeout: 10 * time.Second, Connections: "new"},
		{URL: "http://h/", Method: "POST", Model: Open, Rate: 12.5, MaxInFlight: 7, Duration: time.Minute, Timeout: time.Second, Connections: "reuse"},
		{URL: "http://h/", Method: "PATCH", Model: Open, Rate: 1, Duration: time.Minute, Timeout: time.Second, Connections: "reuse",
			Header: http.Header{"X-Team": {"a"}}, Expect: Expect{Status: "200,204", Body: "^ok$", IgnoreJSONStatus: true}},
	} {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var back Config
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Errorf("round trip of %s: %+v, want %+v", b, back, c)
		}
	}
	if !strings.Contains(string(mustJSON(t, Config{Think: 100 * time.Millisecond, Model: Closed})), `"think":"100ms"`) {
		t.Error("durations are not written as strings")
	}
	var c Config
	if err := json.Unmarshal([]byte(`{"timeout":"ten seconds"}`), &c); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("bad duration: %v", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
