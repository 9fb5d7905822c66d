// Package lifecycle owns how a gracelab service dies on a pod: the staged shutdown, shaped like
// kube-apiserver's named lifecycle signals, and the retirement of keep-alive connections. It
// drives an *http.Server it is given; the routes, metrics and environment live in
// internal/service.
//
// Timeline of a graceful shutdown (SHUTDOWN=graceful, RETIRE_KEEPALIVE=true):
//
//	first sign          the first preStop call (PreStop) or the first SIGTERM/SIGINT: every
//	                    response from now on carries "Connection: close", so each pooled
//	                    connection is retired after its next request while the pod still serves.
//	T0                  first SIGTERM or SIGINT: ShutdownInitiated. /health answers 503.
//	T0+SHUTDOWN_DELAY   NotAcceptingNewRequests: the listener is closed. Open connections stay:
//	                    in-flight requests go on, idle keep-alive connections may still send one
//	                    more request (answered with "Connection: close"), and a connection
//	                    accepted but not yet read gets NewConnGrace to send its request.
//	T0+SHUTDOWN_DELAY+d InFlightDrained: no request in progress and no fresh connection left
//	                    (d <= DRAIN_TIMEOUT). Only now are idle keep-alive connections closed;
//	                    Exited follows at once and Run returns 0.
//
// With RETIRE_KEEPALIVE=false (the unfixed comparison of docs/keepalive.md) "Connection: close"
// starts only at T0, and idle keep-alive connections are closed at T0+SHUTDOWN_DELAY, racing
// any request a pooled client is sending on them at that moment.
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
