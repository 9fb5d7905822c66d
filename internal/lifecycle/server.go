package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Limits of the HTTP server against slow or oversized requests.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 15 * time.Second
	IdleTimeout       = 60 * time.Second
	MaxHeaderBytes    = 16 << 10
	// PrestopSlots bounds concurrent GET /prestop calls; more answer 429 at once.
	PrestopSlots = 4
)

// Exit codes returned by Run.
const (
	ExitOK     = 0 // drained cleanly
	ExitForced = 1 // second signal, drain timeout, or the server failed
)

// Server is one service's HTTP server and lifecycle. The service adds its routes to Engine and
// its metrics to Registry, then calls ListenAndRun (or Listen and Run).
type Server struct {
	Engine   *gin.Engine
	Registry *prometheus.Registry

	cfg     Config
	log     *slog.Logger
	http    *http.Server
	conns   connTracker
	signals *signals
	prestop chan struct{} // semaphore of PrestopSlots
	// exitCode is set before Exited fires, for its log line.
	exitCode int

	inFlight   prometheus.Gauge
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	phase      *prometheus.GaugeVec
	phaseEnter *prometheus.GaugeVec
}

// NewServer builds the server with /health, /prestop, /metrics, JSON 404/405 and request
// metrics; its phase is Running once Run starts.
func NewServer(cfg Config, logger *slog.Logger) *Server {
	gin.SetMode(gin.ReleaseMode) // no debug route dump on stdout
	s := &Server{
		Engine:   gin.New(),
		Registry: prometheus.NewRegistry(),
		cfg:      cfg,
		log:      logger,
		prestop:  make(chan struct{}, PrestopSlots),
	}
	s.conns.state = make(map[net.Conn]http.ConnState)
	s.signals = newSignals(s.onPhase)
	s.registerMetrics()

	e := s.Engine
	e.HandleMethodNotAllowed = true
	e.Use(gin.CustomRecoveryWithWriter(discard{}, func(c *gin.Context, err any) {
		s.log.Error("handler panicked", "path", c.FullPath(), "panic", err)
		c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "internal error"})
	}), s.instrument)
	e.NoRoute(func(c *gin.Context) { c.JSON(http.StatusNotFound, gin.H{"error": "not found"}) })
	e.NoMethod(func(c *gin.Context) { c.JSON(http.StatusMethodNotAllowed, gin.H{"error": "method not allowed"}) })
	e.GET("/health", s.health)
	e.GET("/prestop", s.prestopHandler)
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{})))

	s.http = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ConnState:         s.conns.track,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return s
}

// discard swallows gin's plain-text panic dump; the recovery handler logs it as JSON instead.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func (s *Server) registerMetrics() {
	s.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gracelab_http_requests_in_flight",
		Help: "Requests being served now, this scrape included.",
	})
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gracelab_http_requests_total",
		Help: "Requests answered, by route template, method and status code.",
	}, []string{"route", "method", "code"})
	s.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gracelab_http_request_duration_seconds",
		Help:    "Time to answer a request, by route template.",
		Buckets: []float64{.005, .01, .025, .05, .1, .15, .2, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route"})
	s.phase = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gracelab_lifecycle_phase",
		Help: "1 for the current lifecycle phase, 0 for the others.",
	}, []string{"phase"})
	s.phaseEnter = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gracelab_lifecycle_phase_entered_timestamp_seconds",
		Help: "Unix time at which each phase fired; absent until it has.",
	}, []string{"phase"})
	for _, p := range Phases {
		s.phase.WithLabelValues(string(p)).Set(0)
	}
	s.Registry.MustRegister(s.inFlight, s.requests, s.duration, s.phase, s.phaseEnter,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

func (s *Server) onPhase(t Transition) {
	for _, p := range Phases {
		v := 0.0
		if p == t.Phase {
			v = 1
		}
		s.phase.WithLabelValues(string(p)).Set(v)
	}
	s.phaseEnter.WithLabelValues(string(t.Phase)).Set(float64(t.At.UnixNano()) / 1e9)
	args := []any{"phase", string(t.Phase), "in_flight", s.conns.active(), "mode", string(s.cfg.Mode)}
	if t.Phase == Exited {
		args = append(args, "code", s.exitCode)
	}
	s.log.Info("[graceful-termination] "+string(t.Phase), args...)
}

// knownMethods keeps the method label bounded whatever a client sends.
var knownMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true}

func (s *Server) instrument(c *gin.Context) {
	start := time.Now()
	s.inFlight.Inc()
	if s.signals.fired(ShutdownInitiated) {
		// Keep-alive clients reconnect (through the Service) instead of reusing this pod.
		c.Header("Connection", "close")
	}
	c.Next()
	s.inFlight.Dec()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	method := c.Request.Method
	if !knownMethods[method] {
		method = "other"
	}
	s.requests.WithLabelValues(route, method, strconv.Itoa(c.Writer.Status())).Inc()
	s.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

func (s *Server) health(c *gin.Context) {
	if s.signals.fired(ShutdownInitiated) {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "shutting_down"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "healthy"})
}

// prestopHandler holds the kubelet's preStop hook for PRESTOP_DELAY. It changes no state: the
// pod keeps serving and stays ready; only the wait gives the endpoint removal time to spread.
// It returns early when the caller goes away or the shutdown has begun (nothing left to wait for).
func (s *Server) prestopHandler(c *gin.Context) {
	select {
	case s.prestop <- struct{}{}:
		defer func() { <-s.prestop }()
	default:
		c.JSON(http.StatusTooManyRequests, gin.H{"error": "too many concurrent /prestop calls"})
		return
	}
	start := time.Now()
	t := time.NewTimer(s.cfg.PrestopDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.Request.Context().Done():
		c.Status(499) // client closed the request; nobody reads the answer
		return
	case <-s.signals.done(ShutdownInitiated):
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok", "slept_ms": time.Since(start).Milliseconds()})
}

// Phase returns the latest phase fired (Running before Run has started, too).
func (s *Server) Phase() Phase {
	h := s.signals.snapshot()
	if len(h) == 0 {
		return Running
	}
	return h[len(h)-1].Phase
}

// History returns the phases fired so far, in order, with their times.
func (s *Server) History() []Transition { return s.signals.snapshot() }

// Done returns a channel closed when phase p has fired.
func (s *Server) Done(p Phase) <-chan struct{} { return s.signals.done(p) }

// Listen opens the listening socket on HOST:PORT.
func (s *Server) Listen() (net.Listener, error) {
	return net.Listen("tcp", net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)))
}

// ListenAndRun listens, installs the signal handler for the configured mode and runs. It is
// what a service's Main calls; it returns the process exit code.
func (s *Server) ListenAndRun() int {
	ln, err := s.Listen()
	if err != nil {
		s.log.Error("cannot listen", "addr", net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)), "error", err.Error())
		return ExitForced
	}
	sigs, stop := Notify(s.cfg.Mode)
	defer stop()
	return s.Run(ln, sigs)
}

// Run serves on ln until a signal arrives on sigs, then runs the staged shutdown and returns the
// exit code. A nil sigs (Immediate mode) never delivers: Run then returns only if serving fails.
func (s *Server) Run(ln net.Listener, sigs <-chan os.Signal) int {
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.http.Serve(ln) }()
	s.log.Info("listening", "addr", ln.Addr().String(), "mode", string(s.cfg.Mode))
	s.signals.fire(Running)

	var sig os.Signal
	select {
	case err := <-serveErr:
		s.log.Error("server failed", "error", err.Error())
		return s.exit(ExitForced)
	case sig = <-sigs:
	}
	s.signals.fire(ShutdownInitiated)
	s.log.Info("shutdown signal received", "signal", sig.String(), "shutdown_delay", s.cfg.ShutdownDelay.String())

	if s.cfg.ShutdownDelay > 0 {
		delay := time.NewTimer(s.cfg.ShutdownDelay)
		select {
		case <-delay.C:
		case sig = <-sigs:
			delay.Stop()
			return s.force("second signal during the shutdown delay", "signal", sig.String())
		}
	}

	// Shutdown closes the listener, then idle connections; Serve returns once the listener is
	// closed. Shutdown's own wait polls at up to 500ms, so the drain is watched here instead.
	shutdownCtx, cancelShutdown := context.WithCancel(context.Background())
	defer cancelShutdown()
	go func() { _ = s.http.Shutdown(shutdownCtx) }()
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("server failed while stopping", "error", err.Error())
		return s.exit(ExitForced)
	}
	s.signals.fire(NotAcceptingNewRequests)

	drain := time.NewTimer(s.cfg.DrainTimeout)
	defer drain.Stop()
	for {
		idle := s.conns.idleCh()
		if idle == nil {
			break
		}
		select {
		case <-idle:
		case <-drain.C:
			return s.force("drain timeout: requests still in flight", "drain_timeout", s.cfg.DrainTimeout.String(), "in_flight", s.conns.active())
		case sig = <-sigs:
			return s.force("second signal while draining", "signal", sig.String(), "in_flight", s.conns.active())
		}
	}
	s.signals.fire(InFlightDrained)
	return s.exit(ExitOK)
}

// force ends the shutdown at once; open connections are closed, their requests lost.
func (s *Server) force(reason string, args ...any) int {
	s.log.Warn("[graceful-termination] forced exit: "+reason, args...)
	return s.exit(ExitForced)
}

func (s *Server) exit(code int) int {
	_ = s.http.Close()
	s.exitCode = code
	s.signals.fire(Exited)
	return code
}

// connTracker counts connections with a request in progress. A connection leaves the active
// state only after its response has been flushed to the socket, which is the moment the drain
// may end without cutting a response short.
type connTracker struct {
	mu    sync.Mutex
	state map[net.Conn]http.ConnState
	n     int
	idle  chan struct{} // closed while n == 0; replaced when n leaves 0
}

func (t *connTracker) track(c net.Conn, st http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	was := t.state[c]
	switch st {
	case http.StateClosed, http.StateHijacked:
		delete(t.state, c)
	default:
		t.state[c] = st
	}
	switch {
	case st == http.StateActive && was != http.StateActive:
		if t.n == 0 {
			t.idle = make(chan struct{})
		}
		t.n++
	case st != http.StateActive && was == http.StateActive:
		t.n--
		if t.n == 0 {
			close(t.idle)
		}
	}
}

// idleCh returns nil when no request is in progress, else a channel closed when that happens.
func (t *connTracker) idleCh() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		return nil
	}
	return t.idle
}

func (t *connTracker) active() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}
