package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Config is the shutdown's configuration.
type Config struct {
	Mode          Mode          // SHUTDOWN
	ShutdownDelay time.Duration // SHUTDOWN_DELAY: keep serving (readiness 503) after SIGTERM
	DrainTimeout  time.Duration // DRAIN_TIMEOUT: longest wait for in-flight requests
	// RetireKeepAlive (RETIRE_KEEPALIVE) retires keep-alive connections from the first sign of
	// termination and closes idle ones only when the drain ends; false is the unfixed behaviour.
	RetireKeepAlive bool
}

// NewConnGrace is how long, from the moment the listener closes, a connection accepted but not
// yet read may take to send its request; a silent client cannot hold the drain longer.
const NewConnGrace = time.Second

// Exit codes returned by Run.
const (
	ExitOK     = 0 // drained cleanly
	ExitForced = 1 // second signal, drain timeout, or the server failed
)

// Shutdown runs one server's staged shutdown. Give ConnState to the http.Server, call PreStop
// from the preStop hook's handler, and ask RetireConnection before answering each request.
type Shutdown struct {
	cfg         Config
	log         *slog.Logger
	conns       connTracker
	signals     *signals
	terminating atomic.Bool // the first sign has been seen
	// exitCode and idleClosed are set before Exited fires, for its log line.
	exitCode, idleClosed int
}

// New returns the shutdown of a server; onPhase (metrics, say) runs once per phase, in order,
// after the phase's log line.
func New(cfg Config, logger *slog.Logger, onPhase func(Transition)) *Shutdown {
	s := &Shutdown{cfg: cfg, log: logger}
	s.conns.state = make(map[net.Conn]http.ConnState)
	s.signals = newSignals(func(t Transition) {
		args := []any{"phase", string(t.Phase), "in_flight", s.conns.active(), "mode", string(cfg.Mode)}
		if t.Phase == Exited {
			// idle_closed: keep-alive connections cut at exit, each a chance of the race.
			args = append(args, "code", s.exitCode, "idle_closed", s.idleClosed)
		}
		logger.Info("[graceful-termination] "+string(t.Phase), args...)
		if onPhase != nil {
			onPhase(t)
		}
	})
	return s
}

// ConnState is the http.Server's ConnState hook: the drain waits on what it records.
func (s *Shutdown) ConnState(c net.Conn, st http.ConnState) { s.conns.track(c, st) }

// PreStop marks the first sign of termination when the kubelet runs the preStop hook.
func (s *Shutdown) PreStop() { s.beginTermination("preStop hook called") }

func (s *Shutdown) beginTermination(why string) {
	if s.terminating.CompareAndSwap(false, true) && s.cfg.RetireKeepAlive {
		s.log.Info("[graceful-termination] retiring keep-alive connections: "+why, "in_flight", s.conns.active())
	}
}

// RetireConnection says whether the response being written should carry "Connection: close".
func (s *Shutdown) RetireConnection() bool {
	if s.cfg.RetireKeepAlive {
		return s.terminating.Load()
	}
	return s.signals.fired(ShutdownInitiated)
}

// Phase returns the latest phase fired (Running before Run has started, too).
func (s *Shutdown) Phase() Phase {
	h := s.signals.snapshot()
	if len(h) == 0 {
		return Running
	}
	return h[len(h)-1].Phase
}

// History returns the phases fired so far, in order, with their times.
func (s *Shutdown) History() []Transition { return s.signals.snapshot() }

// Done returns a channel closed when phase p has fired.
func (s *Shutdown) Done(p Phase) <-chan struct{} { return s.signals.done(p) }

// Active is the number of connections with a request in progress.
func (s *Shutdown) Active() int { return s.conns.active() }

// Run serves srv on ln until a signal arrives on sigs, then runs the staged shutdown and returns
// the exit code. A nil sigs (Immediate mode) never delivers: Run then returns only if serving
// fails. srv.ConnState must be s.ConnState.
func (s *Shutdown) Run(srv *http.Server, ln net.Listener, sigs <-chan os.Signal) int {
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	s.log.Info("listening", "addr", ln.Addr().String(), "mode", string(s.cfg.Mode))
	s.signals.fire(Running)

	var sig os.Signal
	select {
	case err := <-serveErr:
		s.log.Error("server failed", "error", err.Error())
		return s.exit(srv, ExitForced)
	case sig = <-sigs:
	}
	s.beginTermination("signal " + sig.String())
	s.signals.fire(ShutdownInitiated)
	s.log.Info("shutdown signal received", "signal", sig.String(), "shutdown_delay", s.cfg.ShutdownDelay.String())

	if s.cfg.ShutdownDelay > 0 {
		delay := time.NewTimer(s.cfg.ShutdownDelay)
		select {
		case <-delay.C:
		case sig = <-sigs:
			delay.Stop()
			return s.force(srv, "second signal during the shutdown delay", "signal", sig.String())
		}
	}

	if s.cfg.RetireKeepAlive {
		// Only the listener closes: idle keep-alive connections may still bring a request,
		// answered with "Connection: close"; they are closed when the drain ends.
		_ = ln.Close()
	} else {
		// Shutdown closes the listener and every idle connection at once, whatever a client
		// may be sending on it. Its own wait polls at up to 500ms, so the drain is watched below.
		go func() { _ = srv.Shutdown(context.Background()) }()
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		s.log.Error("server failed while stopping", "error", err.Error())
		return s.exit(srv, ExitForced)
	}
	s.signals.fire(NotAcceptingNewRequests)

	drain := time.NewTimer(s.cfg.DrainTimeout)
	defer drain.Stop()
	grace := time.NewTimer(NewConnGrace)
	defer grace.Stop()
	graceOver := false
	for {
		active, fresh, changed := s.conns.pending()
		if active == 0 && (fresh == 0 || graceOver) {
			break
		}
		select {
		case <-changed:
		case <-grace.C:
			graceOver = true // fresh connections still silent now are closed with the idle ones
		case <-drain.C:
			return s.force(srv, "drain timeout: requests still in flight", "drain_timeout", s.cfg.DrainTimeout.String(), "in_flight", s.conns.active())
		case sig = <-sigs:
			return s.force(srv, "second signal while draining", "signal", sig.String(), "in_flight", s.conns.active())
		}
	}
	s.signals.fire(InFlightDrained)
	return s.exit(srv, ExitOK)
}

// force ends the shutdown at once; open connections are closed, their requests lost.
func (s *Shutdown) force(srv *http.Server, reason string, args ...any) int {
	s.log.Warn("[graceful-termination] forced exit: "+reason, args...)
	return s.exit(srv, ExitForced)
}

// exit closes every connection left (idle keep-alive ones, after a clean drain) and fires Exited.
func (s *Shutdown) exit(srv *http.Server, code int) int {
	s.idleClosed = s.conns.count(http.StateIdle)
	_ = srv.Close()
	s.exitCode = code
	s.signals.fire(Exited)
	return code
}

// connTracker counts connections with a request in progress (active) and connections accepted
// but not yet read (fresh). A connection leaves the active state only after its response has
// been flushed to the socket, which is the moment the drain may end without cutting it short.
type connTracker struct {
	mu       sync.Mutex
	state    map[net.Conn]http.ConnState
	byState  [http.StateClosed + 1]int
	changeCh chan struct{} // closed at the next change; nil until someone waits
}

func (t *connTracker) track(c net.Conn, st http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if was, ok := t.state[c]; ok {
		t.byState[was]--
	}
	switch st {
	case http.StateClosed, http.StateHijacked:
		delete(t.state, c)
	default:
		t.state[c] = st
		t.byState[st]++
	}
	if t.changeCh != nil {
		close(t.changeCh)
		t.changeCh = nil
	}
}

// pending returns the active and fresh counts and a channel closed at the next change.
func (t *connTracker) pending() (active, fresh int, changed <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.changeCh == nil {
		t.changeCh = make(chan struct{})
	}
	return t.byState[http.StateActive], t.byState[http.StateNew], t.changeCh
}

func (t *connTracker) active() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byState[http.StateActive]
}

// count returns how many connections are in state st now.
func (t *connTracker) count(st http.ConnState) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byState[st]
}

// Conns returns how many connections are in state st now (new, active or idle).
func (s *Shutdown) Conns(st http.ConnState) int { return s.conns.count(st) }
