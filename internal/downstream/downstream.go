// Package downstream is the service in front: GET or POST / calls the upstream's /api/data
// (UPSTREAM_URL) and answers the combined JSON. It owns the upstream client (pooled or one
// connection per request), the retry policy (exponential backoff, POST retried only when it
// never reached the upstream, every attempt inside REQUEST_DEADLINE) and the mapping of upstream
// failures to 502/504 with a machine-readable kind. An upstream failure is never a 200.
package downstream

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gracelab/gracelab/internal/service"
)

// Status values of the answer's "status" field.
const (
	StatusOK                  = "ok"
	StatusUpstreamUnreachable = "upstream_unreachable" // no answer: refused, reset, eof, other; 502
	StatusUpstreamError       = "upstream_error"       // an answer, but not a usable one: 502
	StatusTimeout             = "timeout"              // timeout: 504
)

// Success is the answer to a call that reached the upstream and got a valid answer.
type Success struct {
	Source    string          `json:"source"` // "downstream"
	Status    string          `json:"status"` // "ok"
	Upstream  json.RawMessage `json:"upstream"`
	ElapsedMS int64           `json:"elapsed_ms"`
	Retries   int             `json:"retries"`
}

// Failure is the answer (502 or 504) to a call whose last attempt failed.
type Failure struct {
	Source         string `json:"source"` // "downstream"
	Status         string `json:"status"` // one of the Status* values above
	Error          string `json:"error"`
	Kind           Kind   `json:"kind"`
	UpstreamStatus int    `json:"upstream_status,omitempty"` // for http_* kinds
	// ReusedConnection says the failed attempt went out on a pooled connection used before: the
	// keep-alive race of docs/keepalive.md when the upstream pod was shutting down.
	ReusedConnection bool  `json:"reused_connection"`
	ElapsedMS        int64 `json:"elapsed_ms"`
	Retries          int   `json:"retries"`
}

// New builds the downstream server: GET and POST / on top of the chassis's routes.
func New(cfg Config, logger *slog.Logger) *service.Server {
	s, _ := newServer(cfg, logger)
	return s
}

func newServer(cfg Config, logger *slog.Logger) (*service.Server, *caller) {
	s := service.NewServer(cfg.Serve, logger)
	h := &handler{caller: newCaller(cfg, logger, s.Registry), log: logger, method: cfg.UpstreamMethod}
	s.Engine.GET("/", h.serve)
	s.Engine.POST("/", h.serve)
	return s, h.caller
}

// Main runs the downstream process: exit 2 on a bad variable, else the lifecycle's exit code.
func Main(getenv func(string) string, stderr io.Writer) int {
	return service.Main("downstream", getenv, stderr, ParseConfig, func(cfg Config, logger *slog.Logger) *service.Server {
		logger.Info("upstream client", "upstream_url", cfg.UpstreamURL.String(), "client", string(cfg.Client),
			"upstream_method", cfg.UpstreamMethod, "idle_conn_timeout", cfg.IdleConnTimeout.String(),
			"retry_attempts", cfg.RetryAttempts, "upstream_timeout", cfg.UpstreamTimeout.String(),
			"request_deadline", cfg.RequestDeadline.String())
		return New(cfg, logger)
	})
}

type handler struct {
	caller *caller
	log    *slog.Logger
	method string // UPSTREAM_METHOD; empty forwards the caller's method
}

func (h *handler) serve(c *gin.Context) {
	start := time.Now()
	method := h.method
	if method == "" {
		method = c.Request.Method
	}
	out := h.caller.call(c.Request.Context(), method)
	elapsed := time.Since(start).Milliseconds()
	if out.fail == nil {
		c.JSON(http.StatusOK, Success{Source: "downstream", Status: StatusOK, Upstream: out.body,
			ElapsedMS: elapsed, Retries: out.attempts - 1})
		return
	}
	code, status := http.StatusBadGateway, StatusUpstreamUnreachable
	switch {
	case out.fail.kind == KindTimeout:
		code, status = http.StatusGatewayTimeout, StatusTimeout
	case out.fail.status != 0, out.fail.kind == KindBadBody:
		status = StatusUpstreamError // the upstream answered, but not usefully
	}
	h.log.Warn("upstream call failed", "method", method, "kind", string(out.fail.kind), "reused_connection", out.fail.reused,
		"error", out.fail.Error(), "attempts", out.attempts, "elapsed_ms", elapsed)
	c.JSON(code, Failure{Source: "downstream", Status: status, Error: out.fail.Error(), Kind: out.fail.kind,
		UpstreamStatus: out.fail.status, ReusedConnection: out.fail.reused, ElapsedMS: elapsed, Retries: out.attempts - 1})
}
