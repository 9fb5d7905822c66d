// Package upstream is the service at the end of the call chain: GET or POST /api/data simulates
// WORK_MIN..WORK_MAX of work and answers JSON. Serving and probes come from internal/service,
// shutdown from internal/lifecycle, so the same binary behaves as v1 (SHUTDOWN=immediate) or v2/v3.
package upstream

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gracelab/gracelab/internal/service"
)

// DefaultPort is where the upstream listens unless PORT says otherwise.
const DefaultPort = 7000

// Config is the upstream's whole configuration, read from the environment.
type Config struct {
	Serve   service.Config
	WorkMin time.Duration // WORK_MIN, default 100ms
	WorkMax time.Duration // WORK_MAX, default 200ms
	Pod     string        // HOSTNAME, named in the answer so a reader sees which pod served
}

// ParseConfig reads the chassis's variables plus WORK_MIN and WORK_MAX.
func ParseConfig(getenv func(string) string) (Config, error) {
	serve, env, err := service.ParseConfig(getenv, DefaultPort)
	c := Config{Serve: serve, Pod: getenv("HOSTNAME")}
	if err != nil {
		return c, err
	}
	if c.WorkMin, err = env.Duration("WORK_MIN", 100*time.Millisecond, 0); err != nil {
		return c, err
	}
	if c.WorkMax, err = env.Duration("WORK_MAX", 200*time.Millisecond, 0); err != nil {
		return c, err
	}
	return c, env.Ordered("WORK_MIN", c.WorkMin, "WORK_MAX", c.WorkMax, false, "")
}

// New builds the upstream server: /api/data on top of the chassis's routes.
func New(cfg Config, logger *slog.Logger) *service.Server {
	s := service.NewServer(cfg.Serve, logger)
	h := &handler{cfg: cfg}
	s.Engine.GET("/api/data", h.data)
	s.Engine.POST("/api/data", h.data)
	return s
}

// Main runs the upstream process: exit 2 on a bad variable, else the lifecycle's exit code.
func Main(getenv func(string) string, stderr io.Writer) int {
	return service.Main("upstream", getenv, stderr, ParseConfig, New)
}

type handler struct{ cfg Config }

// data sleeps a uniformly random time in [WorkMin, WorkMax], then answers.
func (h *handler) data(c *gin.Context) {
	work := h.cfg.WorkMin
	if span := h.cfg.WorkMax - h.cfg.WorkMin; span > 0 {
		work += rand.N(span + 1)
	}
	start := time.Now()
	if !service.Sleep(c.Request.Context(), work) {
		c.Status(499) // client closed the request; nobody reads the answer
		return
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
