// Package lifecycle owns how a gracelab service lives and dies on a pod: the HTTP server both
// services share (hardened limits, /health, /prestop, /metrics, request metrics), the common
// environment variables (HOST, PORT, SHUTDOWN, SHUTDOWN_DELAY, DRAIN_TIMEOUT, PRESTOP_DELAY) and
// the staged shutdown, shaped like kube-apiserver's named lifecycle signals.
//
// Timeline of a graceful shutdown (SHUTDOWN=graceful):
//
//	T0                  first SIGTERM or SIGINT: ShutdownInitiated. /health answers 503 and every
//	                    response carries "Connection: close"; requests are still served.
//	T0+SHUTDOWN_DELAY   NotAcceptingNewRequests: the listener is closed (http.Server.Shutdown),
//	                    idle keep-alive connections are closed, in-flight requests go on.
//	T0+SHUTDOWN_DELAY+d InFlightDrained: the last in-flight response has been written to its
//	                    socket (d <= DRAIN_TIMEOUT). Exited follows at once and Run returns 0.
//
// A second signal at any point after T0, or DRAIN_TIMEOUT running out, ends at once: a log line
// says why, Exited fires and Run returns 1. With SHUTDOWN=immediate no signal handler is
// installed at all, so SIGTERM kills the process as Go does by default (v1's behaviour).
package lifecycle

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// Mode says how a service reacts to SIGTERM.
type Mode string

const (
	// Immediate installs no handler: SIGTERM kills the process with requests in flight.
	Immediate Mode = "immediate"
	// Graceful runs the staged shutdown described in the package comment.
	Graceful Mode = "graceful"
)

// Phase is one named step of a service's life; each fires once, in the order of Phases.
type Phase string

const (
	Running                 Phase = "Running"
	ShutdownInitiated       Phase = "ShutdownInitiated"
	NotAcceptingNewRequests Phase = "NotAcceptingNewRequests"
	InFlightDrained         Phase = "InFlightDrained"
	Exited                  Phase = "Exited"
)

// Phases lists every phase in the order a clean graceful shutdown fires them. A forced exit
// skips from wherever it was straight to Exited.
var Phases = []Phase{Running, ShutdownInitiated, NotAcceptingNewRequests, InFlightDrained, Exited}

// Transition records when a phase fired.
type Transition struct {
	Phase Phase
	At    time.Time
}

// Config is the part of a service's configuration that the lifecycle owns.
type Config struct {
	Host          string        // HOST: bind address; empty means all interfaces
	Port          int           // PORT: 0 lets the OS choose (the actual address is logged)
	Mode          Mode          // SHUTDOWN
	ShutdownDelay time.Duration // SHUTDOWN_DELAY: keep serving (readiness 503) after SIGTERM
	DrainTimeout  time.Duration // DRAIN_TIMEOUT: longest wait for in-flight requests
	PrestopDelay  time.Duration // PRESTOP_DELAY: how long GET /prestop sleeps
}

// Default values of the lifecycle's variables.
const (
	DefaultDrainTimeout = 15 * time.Second
	DefaultPrestopDelay = 5 * time.Second
)

// ParseConfig reads HOST, PORT, SHUTDOWN, SHUTDOWN_DELAY, DRAIN_TIMEOUT and PRESTOP_DELAY.
func ParseConfig(getenv func(string) string, defaultPort int) (Config, error) {
	env := Env(getenv)
	var c Config
	var err error
	if c.Host, err = env.Host("HOST"); err != nil {
		return c, err
	}
	if c.Port, err = env.Int("PORT", defaultPort, 0, 65535); err != nil {
		return c, err
	}
	mode, err := env.OneOf("SHUTDOWN", string(Graceful), string(Graceful), string(Immediate))
	if err != nil {
		return c, err
	}
	c.Mode = Mode(mode)
	if c.ShutdownDelay, err = env.Duration("SHUTDOWN_DELAY", 0, 0); err != nil {
		return c, err
	}
	if c.DrainTimeout, err = env.Duration("DRAIN_TIMEOUT", DefaultDrainTimeout, time.Millisecond); err != nil {
		return c, err
	}
	if c.PrestopDelay, err = env.Duration("PRESTOP_DELAY", DefaultPrestopDelay, 0); err != nil {
		return c, err
	}
	return c, nil
}

// Notify returns the channel Run listens on for shutdown signals. In Immediate mode it installs
// nothing and returns nil (a nil channel never delivers), so SIGTERM keeps Go's default action.
// stop undoes the registration.
func Notify(mode Mode) (sigs <-chan os.Signal, stop func()) {
	if mode != Graceful {
		return nil, func() {}
	}
	// Buffered for two: the first starts the shutdown, the second forces the exit.
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	return ch, func() { signal.Stop(ch) }
}

// oneShot is a named signal that fires once; kube-apiserver's lifecycle_signals.go shape.
type oneShot struct {
	once sync.Once
	ch   chan struct{}
}

// signals holds one oneShot per phase and the order in which they fired.
type signals struct {
	byPhase map[Phase]*oneShot
	mu      sync.Mutex
	history []Transition
	onFire  func(Transition) // logging and metrics; called once per phase, in order
}

func newSignals(onFire func(Transition)) *signals {
	s := &signals{byPhase: make(map[Phase]*oneShot, len(Phases)), onFire: onFire}
	for _, p := range Phases {
		s.byPhase[p] = &oneShot{ch: make(chan struct{})}
	}
	return s
}

// fire signals p once; later calls do nothing.
func (s *signals) fire(p Phase) {
	sig, ok := s.byPhase[p]
	if !ok {
		panic(fmt.Sprintf("lifecycle: unknown phase %q", p))
	}
	sig.once.Do(func() {
		t := Transition{Phase: p, At: time.Now()}
		s.mu.Lock()
		s.history = append(s.history, t)
		s.mu.Unlock()
		s.onFire(t)
		close(sig.ch)
	})
}

func (s *signals) done(p Phase) <-chan struct{} { return s.byPhase[p].ch }

func (s *signals) fired(p Phase) bool {
	select {
	case <-s.byPhase[p].ch:
		return true
	default:
		return false
	}
}

func (s *signals) snapshot() []Transition {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Transition(nil), s.history...)
}
