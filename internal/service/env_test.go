package service

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/lifecycle"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfig(t *testing.T) {
	defaults := Config{Port: 7000, PrestopDelay: 5 * time.Second,
		Config: lifecycle.Config{Mode: lifecycle.Graceful, DrainTimeout: 15 * time.Second, RetireKeepAlive: true}}
	valid := []struct {
		name string
		env  map[string]string
		want func(*Config)
	}{
		{"defaults", nil, func(*Config) {}},
		{"host ipv4", map[string]string{"HOST": "127.64.0.3"}, func(c *Config) { c.Host = "127.64.0.3" }},
		{"host ipv6", map[string]string{"HOST": "::1"}, func(c *Config) { c.Host = "::1" }},
		{"host localhost", map[string]string{"HOST": "localhost"}, func(c *Config) { c.Host = "localhost" }},
		{"port 0 lets the OS choose", map[string]string{"PORT": "0"}, func(c *Config) { c.Port = 0 }},
		{"port max", map[string]string{"PORT": "65535"}, func(c *Config) { c.Port = 65535 }},
		{"immediate", map[string]string{"SHUTDOWN": "immediate"}, func(c *Config) { c.Mode = lifecycle.Immediate }},
		{"graceful", map[string]string{"SHUTDOWN": "graceful"}, func(c *Config) { c.Mode = lifecycle.Graceful }},
		{"shutdown delay", map[string]string{"SHUTDOWN_DELAY": "1.5s"}, func(c *Config) { c.ShutdownDelay = 1500 * time.Millisecond }},
		{"shutdown delay zero", map[string]string{"SHUTDOWN_DELAY": "0"}, func(c *Config) { c.ShutdownDelay = 0 }},
		{"drain timeout", map[string]string{"DRAIN_TIMEOUT": "250ms"}, func(c *Config) { c.DrainTimeout = 250 * time.Millisecond }},
		{"prestop delay", map[string]string{"PRESTOP_DELAY": "0s"}, func(c *Config) { c.PrestopDelay = 0 }},
		{"prestop delay minutes", map[string]string{"PRESTOP_DELAY": "1m"}, func(c *Config) { c.PrestopDelay = time.Minute }},
		{"unfixed keep-alive", map[string]string{"RETIRE_KEEPALIVE": "false"}, func(c *Config) { c.RetireKeepAlive = false }},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := ParseConfig(envOf(tc.env), 7000)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			want := defaults
			tc.want(&want)
			if got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}

	invalid := []struct {
		name, key, value string
	}{
		{"host name", "HOST", "example.com"},
		{"host with port", "HOST", "127.0.0.1:80"},
		{"port text", "PORT", "http"},
		{"port negative", "PORT", "-1"},
		{"port too big", "PORT", "65536"},
		{"port float", "PORT", "80.5"},
		{"shutdown unknown", "SHUTDOWN", "maybe"},
		{"shutdown case", "SHUTDOWN", "Graceful"},
		{"shutdown delay text", "SHUTDOWN_DELAY", "abc"},
		{"shutdown delay unitless", "SHUTDOWN_DELAY", "5"},
		{"shutdown delay negative", "SHUTDOWN_DELAY", "-1s"},
		{"drain timeout zero", "DRAIN_TIMEOUT", "0s"},
		{"drain timeout text", "DRAIN_TIMEOUT", "soon"},
		{"prestop delay negative", "PRESTOP_DELAY", "-5s"},
		{"prestop delay spaces", "PRESTOP_DELAY", " 5s"},
		{"retire keep-alive word", "RETIRE_KEEPALIVE", "yes"},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseConfig(envOf(map[string]string{tc.key: tc.value}), 7000)
			var envErr *EnvError
			if !errors.As(err, &envErr) {
				t.Fatalf("%s=%q: want an *EnvError, got %v", tc.key, tc.value, err)
			}
			msg := err.Error()
			if envErr.Name != tc.key || !strings.HasPrefix(msg, tc.key+"=") || strings.Contains(msg, "\n") || !strings.Contains(msg, "want ") {
				t.Fatalf("error should be one line naming %s and what is accepted, got %q", tc.key, msg)
			}
		})
	}
}

func TestEnvReaders(t *testing.T) {
	env := Env(envOf(map[string]string{"N": "7", "BIG": "11", "D": "2s", "SMALL": "1ms", "W": "b"}))
	if n, err := env.Int("N", 1, 1, 10); err != nil || n != 7 {
		t.Errorf("Int(N) = %d, %v", n, err)
	}
	if n, err := env.Int("UNSET", 3, 1, 10); err != nil || n != 3 {
		t.Errorf("Int(UNSET) = %d, %v; want the default", n, err)
	}
	if _, err := env.Int("BIG", 1, 1, 10); err == nil || !strings.Contains(err.Error(), "from 1 to 10") {
		t.Errorf("Int(BIG) error = %v", err)
	}
	if d, err := env.Duration("D", 0, 0); err != nil || d != 2*time.Second {
		t.Errorf("Duration(D) = %v, %v", d, err)
	}
	if _, err := env.Duration("SMALL", 0, time.Second); err == nil || !strings.Contains(err.Error(), ">= 1s") {
		t.Errorf("Duration(SMALL) error = %v", err)
	}
	if w, err := env.OneOf("W", "a", "a", "b"); err != nil || w != "b" {
		t.Errorf("OneOf(W) = %q, %v", w, err)
	}
	if _, err := env.OneOf("W", "a", "a", "c"); err == nil || !strings.Contains(err.Error(), "one of a, c") {
		t.Errorf("OneOf(W) error = %v", err)
	}
}

func TestOrderedNamesTheVariableThatWasSet(t *testing.T) {
	cases := []struct {
		env        map[string]string
		lo, hi     time.Duration
		strict     bool
		wantName   string
		wantSubstr string
	}{
		{map[string]string{"LO": "3s", "HI": "2s"}, 3 * time.Second, 2 * time.Second, false, "LO", "not above HI (2s)"},
		{map[string]string{"LO": "3s"}, 3 * time.Second, 2 * time.Second, false, "LO", "not above HI"},
		{map[string]string{"HI": "2s"}, 3 * time.Second, 2 * time.Second, false, "HI", "not below LO (3s)"},
		{map[string]string{"LO": "2s"}, 2 * time.Second, 2 * time.Second, true, "LO", "below HI (2s), why"},
	}
	for _, tc := range cases {
		err := Env(envOf(tc.env)).Ordered("LO", tc.lo, "HI", tc.hi, tc.strict, ", why")
		var envErr *EnvError
		if !errors.As(err, &envErr) || envErr.Name != tc.wantName || !strings.Contains(err.Error(), tc.wantSubstr) {
			t.Errorf("%v: got %v, want %s named with %q", tc.env, err, tc.wantName, tc.wantSubstr)
		}
	}
	if err := Env(envOf(nil)).Ordered("LO", time.Second, "HI", time.Second, false, ""); err != nil {
		t.Errorf("equal values, not strict: %v", err)
	}
}
