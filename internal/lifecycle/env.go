package lifecycle

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

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
