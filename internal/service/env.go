package service

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/gracelab/gracelab/internal/lifecycle"
)

// Config is the part of a service's configuration that the chassis owns.
type Config struct {
	lifecycle.Config
	Host         string        // HOST: bind address; empty means all interfaces
	Port         int           // PORT: 0 lets the OS choose (the actual address is logged)
	PrestopDelay time.Duration // PRESTOP_DELAY: how long GET /prestop sleeps
}

// Default values of the chassis's variables.
const (
	DefaultDrainTimeout = 15 * time.Second
	DefaultPrestopDelay = 5 * time.Second
)

// ParseConfig reads HOST, PORT, PRESTOP_DELAY, SHUTDOWN, SHUTDOWN_DELAY, DRAIN_TIMEOUT and
// RETIRE_KEEPALIVE, and returns the Env for the service's own variables.
func ParseConfig(getenv func(string) string, defaultPort int) (Config, Env, error) {
	env := Env(getenv)
	var c Config
	var err error
	if c.Host, err = env.Host("HOST"); err != nil {
		return c, env, err
	}
	if c.Port, err = env.Int("PORT", defaultPort, 0, 65535); err != nil {
		return c, env, err
	}
	mode, err := env.OneOf("SHUTDOWN", string(lifecycle.Graceful), string(lifecycle.Graceful), string(lifecycle.Immediate))
	if err != nil {
		return c, env, err
	}
	c.Mode = lifecycle.Mode(mode)
	if c.ShutdownDelay, err = env.Duration("SHUTDOWN_DELAY", 0, 0); err != nil {
		return c, env, err
	}
	if c.DrainTimeout, err = env.Duration("DRAIN_TIMEOUT", DefaultDrainTimeout, time.Millisecond); err != nil {
		return c, env, err
	}
	if c.PrestopDelay, err = env.Duration("PRESTOP_DELAY", DefaultPrestopDelay, 0); err != nil {
		return c, env, err
	}
	if c.RetireKeepAlive, err = env.Bool("RETIRE_KEEPALIVE", true); err != nil {
		return c, env, err
	}
	return c, env, nil
}

// Env reads typed configuration variables. An unset or empty variable takes its default; any
// other value must parse, or the error names the variable, the value and what is accepted.
type Env func(string) string

// EnvError is a configuration variable with a value the service refuses to start with.
type EnvError struct {
	Name  string // the variable, e.g. WORK_MIN
	Value string // the value as given
	Want  string // what is accepted, e.g. "a duration such as 100ms or 2s"
}

func (e *EnvError) Error() string {
	return fmt.Sprintf("%s=%q is invalid: want %s", e.Name, e.Value, e.Want)
}

// Duration reads a Go duration (100ms, 2s, 1m30s) of at least min.
func (e Env) Duration(name string, def, min time.Duration) (time.Duration, error) {
	v := e(name)
	if v == "" {
		return def, nil
	}
	want := fmt.Sprintf("a duration >= %v such as 100ms or 2s", min)
	d, err := time.ParseDuration(v)
	if err != nil || d < min {
		return 0, &EnvError{Name: name, Value: v, Want: want}
	}
	return d, nil
}

// Int reads a decimal integer in [min, max].
func (e Env) Int(name string, def, min, max int) (int, error) {
	v := e(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, &EnvError{Name: name, Value: v, Want: fmt.Sprintf("an integer from %d to %d", min, max)}
	}
	return n, nil
}

// OneOf reads one of a fixed set of words.
func (e Env) OneOf(name, def string, allowed ...string) (string, error) {
	v := e(name)
	if v == "" {
		return def, nil
	}
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", &EnvError{Name: name, Value: v, Want: "one of " + strings.Join(allowed, ", ")}
}

// Host reads a bind address: empty (all interfaces), an IP literal or "localhost".
func (e Env) Host(name string) (string, error) {
	v := e(name)
	if v == "" || v == "localhost" || net.ParseIP(v) != nil {
		return v, nil
	}
	return "", &EnvError{Name: name, Value: v, Want: "an IP address such as 127.0.0.1 or ::, localhost, or empty for all interfaces"}
}

// Bool reads true or false.
func (e Env) Bool(name string, def bool) (bool, error) {
	v, err := e.OneOf(name, strconv.FormatBool(def), "true", "false")
	return v == "true", err
}

// Ordered checks that lo is below hi (or not above it, unless strict). The error names the
// variable that was set, the lower one when both were, and ends with why.
func (e Env) Ordered(loName string, lo time.Duration, hiName string, hi time.Duration, strict bool, why string) error {
	if lo < hi || (lo == hi && !strict) {
		return nil
	}
	below, above := "not above", "not below"
	if strict {
		below, above = "below", "above"
	}
	if e(loName) == "" {
		return &EnvError{Name: hiName, Value: e(hiName), Want: fmt.Sprintf("a duration %s %s (%v)%s", above, loName, lo, why)}
	}
	return &EnvError{Name: loName, Value: e(loName), Want: fmt.Sprintf("a duration %s %s (%v)%s", below, hiName, hi, why)}
}
