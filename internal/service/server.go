// Package service is the HTTP chassis both gracelab services run on: a hardened http.Server
// with gin (JSON 404/405, panic recovery), /health, /prestop, /metrics and request metrics, the
// environment variables every service shares (HOST, PORT, PRESTOP_DELAY and the shutdown's
// SHUTDOWN, SHUTDOWN_DELAY, DRAIN_TIMEOUT, RETIRE_KEEPALIVE) and Main, the process around it.
// How the server stops is internal/lifecycle's job.
package service

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gracelab/gracelab/internal/lifecycle"
)

func init() {
	gin.SetMode(gin.ReleaseMode) // no debug route dump on stdout
}

// Limits of the HTTP server against slow or oversized requests.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 15 * time.Second
	IdleTimeout       = 60 * time.Second
	MaxHeaderBytes    = 16 << 10
	// PrestopSlots bounds concurrent GET /prestop calls; more answer 429 at once.
	PrestopSlots = 4
)

// Server is one service's HTTP server. The service adds its routes to Engine and its metrics
// to Registry, then calls ListenAndRun (or Listen and Run).
type Server struct {
	Engine   *gin.Engine
	Registry *prometheus.Registry
	Shutdown *lifecycle.Shutdown

	cfg     Config
	log     *slog.Logger
	http    *http.Server
	prestop chan struct{} // semaphore of PrestopSlots

	inFlight   prometheus.Gauge
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	phase      *prometheus.GaugeVec
	phaseEnter *prometheus.GaugeVec
}

// NewServer builds the server with /health, /prestop, /metrics, JSON 404/405 and request
// metrics; its phase is Running once Run starts.
func NewServer(cfg Config, logger *slog.Logger) *Server {
	s := &Server{
		Engine:   gin.New(),
		Registry: prometheus.NewRegistry(),
		cfg:      cfg,
		log:      logger,
		prestop:  make(chan struct{}, PrestopSlots),
	}
	s.Shutdown = lifecycle.New(cfg.Config, logger, s.onPhase)
	s.registerMetrics()

	e := s.Engine
	e.HandleMethodNotAllowed = true
	e.Use(gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, err any) {
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
		ConnState:         s.Shutdown.ConnState,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		Protocols:         new(http.Protocols),
	}
	// HTTP/1.1, and HTTP/2 without TLS (h2c, prior knowledge) for clients with PROTOCOL=h2c:
	// there a response's "Connection: close" becomes a GOAWAY.
	s.http.Protocols.SetHTTP1(true)
	s.http.Protocols.SetUnencryptedHTTP2(true)
	return s
}

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
	var conns []prometheus.Collector
	for _, st := range []http.ConnState{http.StateNew, http.StateActive, http.StateIdle} {
		conns = append(conns, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "gracelab_http_connections",
			Help:        "Open connections by state: new (accepted, not yet read), active (a request in progress, this scrape included), idle (keep-alive).",
			ConstLabels: prometheus.Labels{"state": st.String()},
		}, func() float64 { return float64(s.Shutdown.Conns(st)) }))
	}
	for _, p := range lifecycle.Phases {
		s.phase.WithLabelValues(string(p)).Set(0)
	}
	s.Registry.MustRegister(s.inFlight, s.requests, s.duration, s.phase, s.phaseEnter,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.Registry.MustRegister(conns...)
}

func (s *Server) onPhase(t lifecycle.Transition) {
	for _, p := range lifecycle.Phases {
		v := 0.0
		if p == t.Phase {
			v = 1
		}
		s.phase.WithLabelValues(string(p)).Set(v)
	}
	s.phaseEnter.WithLabelValues(string(t.Phase)).Set(float64(t.At.UnixNano()) / 1e9)
}

// knownMethods keeps the method label bounded whatever a client sends.
var knownMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true}

func (s *Server) instrument(c *gin.Context) {
	start := time.Now()
	s.inFlight.Inc()
	if s.Shutdown.RetireConnection() {
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
	select {
	case <-s.Shutdown.Done(lifecycle.ShutdownInitiated):
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "shutting_down"})
	default:
		c.JSON(http.StatusOK, gin.H{"status": "healthy"})
	}
}

// prestopHandler holds the kubelet's preStop hook for PRESTOP_DELAY. The pod keeps serving and
// stays ready, so the wait gives the endpoint removal time to spread; the call is the first sign
// of termination, from which responses retire keep-alive connections. It returns early when the
// caller goes away or the shutdown has begun (nothing left to wait for).
func (s *Server) prestopHandler(c *gin.Context) {
	select {
	case s.prestop <- struct{}{}:
		defer func() { <-s.prestop }()
	default:
		c.JSON(http.StatusTooManyRequests, gin.H{"error": "too many concurrent /prestop calls"})
		return
	}
	s.Shutdown.PreStop()
	start := time.Now()
	ctx, cancel := context.WithCancel(c.Request.Context())
	defer cancel()
	go func() { // the shutdown's start ends the wait too
		select {
		case <-s.Shutdown.Done(lifecycle.ShutdownInitiated):
			cancel()
		case <-ctx.Done():
		}
	}()
	if !Sleep(ctx, s.cfg.PrestopDelay) && c.Request.Context().Err() != nil {
		c.Status(499) // client closed the request; nobody reads the answer
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok", "slept_ms": time.Since(start).Milliseconds()})
}

// Sleep waits d or until ctx is done; it reports whether the whole d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

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
		return lifecycle.ExitForced
	}
	sigs, stop := lifecycle.Notify(s.cfg.Mode)
	defer stop()
	return s.Run(ln, sigs)
}

// Run serves on ln until a signal arrives on sigs, then runs the staged shutdown and returns the
// exit code (see lifecycle.Shutdown.Run).
func (s *Server) Run(ln net.Listener, sigs <-chan os.Signal) int {
	return s.Shutdown.Run(s.http, ln, sigs)
}

// Main runs a service process named name: cfg is read from the environment by parse (a bad
// variable prints one line and exits 2), the logger writes JSON to stderr, build makes the
// server, and its exit code is returned.
func Main[C any](name string, getenv func(string) string, stderr io.Writer,
	parse func(func(string) string) (C, error), build func(C, *slog.Logger) *Server) int {
	cfg, err := parse(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil)).With("service", name)
	return build(cfg, logger).ListenAndRun()
}
