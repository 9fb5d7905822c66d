package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"

	"github.com/gracelab/gracelab/internal/neterr"
)

// Outcome is the single class every request ends in.
type Outcome string

// The outcome classes. OK is the only success.
const (
	OK        Outcome = "ok"          // 2xx, and the JSON body's status is "ok" when it has one
	BodyNotOK Outcome = "body_not_ok" // 2xx whose JSON body says status other than "ok"
	HTTP5xx   Outcome = "http_5xx"
	HTTP4xx   Outcome = "http_4xx"
	Refused   Outcome = Outcome(neterr.Refused) // connection refused: nothing listens there
	Reset     Outcome = Outcome(neterr.Reset)   // connection reset or broken pipe
	EOF       Outcome = Outcome(neterr.EOF)     // connection closed before the whole response arrived
	Timeout   Outcome = Outcome(neterr.Timeout) // no full answer within the per-request timeout
	Dropped   Outcome = "dropped"               // open model: not sent, the in-flight cap was reached at its slot
	// Unexpected: an answer outside Config.Expect (a status it does not list, other than 4xx
	// and 5xx, or a body that does not match).
	Unexpected Outcome = "unexpected"
	Lost       Outcome = "lost"                // sent by a load pod that died before reporting the outcome
	Other      Outcome = Outcome(neterr.Other) // anything else (DNS failure, 3xx, TLS error, ...)
)

// ErrorClasses lists every error outcome in report order.
var ErrorClasses = []Outcome{BodyNotOK, HTTP5xx, HTTP4xx, Refused, Reset, EOF, Timeout, Dropped, Unexpected, Lost, Other}

// outcome indexes for fixed-size counters: 0 is OK, then ErrorClasses in order.
const numOutcomes = 12

func outcomeIndex(o Outcome) int {
	if o == OK {
		return 0
	}
	for i, c := range ErrorClasses {
		if c == o {
			return i + 1
		}
	}
	return numOutcomes - 1 // Other
}

// maxBody is how much of a body is kept for parsing; the rest is read and discarded so
// latency covers the whole response and a connection broken mid-body is seen.
const maxBody = 64 << 10

// answer is what a request came to.
type answer struct {
	outcome Outcome
	kind    string // the downstream's reason for a 5xx, from its JSON body
	retries int64  // the body's retries field
	err     string // what went wrong, for disruption reports; empty when OK
	// reused: the load generator's own connection was a keep-alive one used before, and the
	// request failed on it (a transport error). upstreamReused: the downstream's 5xx body says
	// its failed attempt went out on a reused connection. Both are the race of docs/keepalive.md.
	reused, upstreamReused bool
}

// classifyError maps a transport error (from Do or from reading the body) to its class, the
// same one the downstream gives for its own calls.
func classifyError(err error) Outcome { return Outcome(neterr.Classify(err)) }

// readBody keeps the first maxBody bytes and discards the rest.
func readBody(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxBody))
	if err != nil {
		return b, err
	}
	_, err = io.Copy(io.Discard, r)
	return b, err
}

// bodyFields are the fields of the downstream's JSON that the report uses.
type bodyFields struct {
	object    bool   // the body is a JSON object
	hasStatus bool   // it has a "status" field
	status    string // its value when it is a string
	kind      string
	retries   int64
	errText   string
	reused    bool // reused_connection
}

// knownFields are the body fields the report reads, kept raw so a field of an unexpected type
// does not fail the whole body.
type knownFields struct {
	Status  json.RawMessage `json:"status"`
	Kind    json.RawMessage `json:"kind"`
	Retries json.RawMessage `json:"retries"`
	Error   json.RawMessage `json:"error"`
	Message json.RawMessage `json:"message"`
	Detail  json.RawMessage `json:"detail"`
	Reused  json.RawMessage `json:"reused_connection"`
}

// parseBody reads the known fields leniently: a field of an unexpected type is ignored,
// except status, which then counts as "not ok".
func parseBody(b []byte) bodyFields {
	var f bodyFields
	t := bytes.TrimSpace(b)
	if len(t) == 0 || t[0] != '{' {
		return f
	}
	var k knownFields
	if json.Unmarshal(t, &k) != nil {
		return f
	}
	f.object = true
	if k.Status != nil {
		f.hasStatus = true
		if json.Unmarshal(k.Status, &f.status) != nil {
			f.status = string(k.Status)
		}
	}
	if k.Kind != nil {
		_ = json.Unmarshal(k.Kind, &f.kind) // a non-string kind is not a kind
	}
	if k.Retries != nil {
		var n float64
		if json.Unmarshal(k.Retries, &n) == nil && n > 0 && n < math.MaxInt32 {
			f.retries = int64(n)
		}
	}
	if k.Reused != nil {
		_ = json.Unmarshal(k.Reused, &f.reused) // a non-boolean is not a yes
	}
	for _, raw := range []json.RawMessage{k.Error, k.Message, k.Detail} {
		if raw != nil && json.Unmarshal(raw, &f.errText) == nil && f.errText != "" {
			break
		}
	}
	return f
}

// looksLikeStatusJSON is for a 2xx body that did not parse (cut short, or malformed): if it
// still looks like the status-carrying JSON it must not pass as ok.
func looksLikeStatusJSON(b []byte) bool {
	t := bytes.TrimSpace(b)
	return len(t) > 0 && t[0] == '{' && bytes.Contains(t, []byte(`"status"`))
}

// classifyResponse decides the outcome of a response whose body was read completely.
func classifyResponse(code int, status string, body []byte) answer {
	f := parseBody(body)
	a := answer{retries: f.retries}
	switch {
	case code >= 200 && code < 300:
		switch {
		case f.hasStatus && f.status != "ok":
			a.outcome = BodyNotOK
			a.err = fmt.Sprintf("%s with status %q", status, clip(f.status, 40))
		case !f.object && looksLikeStatusJSON(body):
			a.outcome = BodyNotOK
			a.err = fmt.Sprintf("%s with a status body that is not valid JSON", status)
		default:
			a.outcome = OK
		}
	case code >= 500 && code < 600:
		a.outcome = HTTP5xx
		a.kind = clip(f.kind, 64)
		a.upstreamReused = f.reused
		a.err = httpErrText(status, f)
	case code >= 400 && code < 500:
		a.outcome = HTTP4xx
		a.err = httpErrText(status, f)
	default:
		a.outcome = Other
		a.err = fmt.Sprintf("unexpected %s", status)
	}
	return a
}

func httpErrText(status string, f bodyFields) string {
	s := status
	if f.kind != "" {
		s += fmt.Sprintf(" (kind %s)", clip(f.kind, 64))
	}
	if f.errText != "" {
		s += ": " + clip(f.errText, 200)
	}
	return s
}

// clip bounds text taken from a server so one reply cannot bloat the report.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// exchange sends one request and classifies what came back, a complete response with judge.
func exchange(ctx context.Context, client *http.Client, newReq func(context.Context) (*http.Request, error), judge func(code int, status string, body []byte) answer) answer {
	var reused atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused.Store(i.Reused) }})
	req, err := newReq(ctx)
	if err != nil {
		return answer{outcome: Other, err: err.Error()}
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{outcome: classifyError(err), err: err.Error(), reused: reused.Load()}
	}
	body, err := readBody(resp.Body)
	resp.Body.Close()
	if err != nil {
		return answer{outcome: classifyError(err), err: fmt.Sprintf("%s, then reading the body: %v", resp.Status, err), reused: reused.Load()}
	}
	return judge(resp.StatusCode, resp.Status, body)
}
