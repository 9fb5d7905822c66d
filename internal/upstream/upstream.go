// Package upstream is the service at the end of the call chain: GET or POST /api/data simulates
// WORK_MIN..WORK_MAX of work and answers JSON. Serving, probes and shutdown come from
// internal/lifecycle, so the same binary behaves as v1 (SHUTDOWN=immediate) or v2/v3.
package upstream

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gracelab/gracelab/internal/lifecycle"
)

// DefaultPort is where the upstream listens unless PORT says otherwise.
const DefaultPort = 7000

// Config is the upstream's whole configuration, read from the environment.
type Config struct {
	Serve   lifecycle.Config
	WorkMin time.Duration // WORK_MIN, default 100ms
	WorkMax time.Duration // WORK_MAX, default 200ms
	Pod     string        // HOSTNAME, named in the answer so a reader sees which pod served
}

// ParseConfig reads the lifecycle's variables plus WORK_MIN and WORK_MAX.
func ParseConfig(getenv func(string) string) (Config, error) {
	var c Config
	var err error
	if c.Serve, err = lifecycle.ParseConfig(getenv, DefaultPort); err != nil {
		return c, err
	}
	env := lifecycle.Env(getenv)
	if c.WorkMin, err = env.Duration("WORK_MIN", 100*time.Millisecond, 0); err != nil {
		return c, err
	}
	if c.WorkMax, err = env.Duration("WORK_MAX", 200*time.Millisecond, 0); err != nil {
		return c, err
	}
	if c.WorkMin > c.WorkMax {
		// Name the variable that was set; blaming a default would confuse.
		if getenv("WORK_MIN") == "" {
			return c, &lifecycle.EnvError{Name: "WORK_MAX", Value: getenv("WORK_MAX"),
				Want: fmt.Sprintf("a duration not below WORK_MIN (%v)", c.WorkMin)}
		}
		return c, &lifecycle.EnvError{Name: "WORK_MIN", Value: getenv("WORK_MIN"),
			Want: fmt.Sprintf("a duration not above WORK_MAX (%v)", c.WorkMax)}
	}
	c.Pod = getenv("HOSTNAME")
	return c, nil
}

// New builds the upstream server: /api/data on top of the lifecycle's routes.
func New(cfg Config, logger *slog.Logger) *lifecycle.Server {
	s := lifecycle.NewServer(cfg.Serve, logger)
	h := &handler{cfg: cfg}
	s.Engine.GET("/api/data", h.data)
	s.Engine.POST("/api/data", h.data)
	return s
}

// Main runs the upstream process: exit 2 on a bad variable, else the lifecycle's exit code.
func Main(getenv func(string) string, stderr io.Writer) int {
	cfg, err := ParseConfig(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "upstream: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil)).With("service", "upstream")
	return New(cfg, logger).ListenAndRun()
}

type handler struct{ cfg Config }

// data sleeps a uniformly random time in [WorkMin, WorkMax], then answers.
func (h *handler) data(c *gin.Context) {
	work := h.cfg.WorkMin
	if span := h.cfg.WorkMax - h.cfg.WorkMin; span > 0 {
		work += rand.N(span + 1)
	}
	start := time.Now()
	if work > 0 {
		t := time.NewTimer(work)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.Request.Context().Done():
			c.Status(499) // client closed the request; nobody reads the answer
			return
		}
	}
	msg := "hello from upstream"
	if h.cfg.Pod != "" {
		msg += " pod " + h.cfg.Pod
	}
	c.JSON(http.StatusOK, Data{
		Source:    "upstream",
		Message:   msg,
		LatencyMS: time.Since(start).Milliseconds(),
		Timestamp: time.Now().UTC().Format(time.RFC3339Nano),
	})
}

// Data is the answer of /api/data.
type Data struct {
	Source    string `json:"source"` // "upstream"
	Message   string `json:"message"`
	LatencyMS int64  `json:"latency_ms"` // the simulated work, measured
	Timestamp string `json:"timestamp"`  // RFC 3339, UTC
}
