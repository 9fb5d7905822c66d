package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestClassifyResponse(t *testing.T) {
	cases := []struct {
		code    int
		body    string
		want    Outcome
		kind    string
		retries int64
	}{
		{200, `{"status":"ok","retries":2}`, OK, "", 2},
		{200, `{"message":"no status field"}`, OK, "", 0},
		{200, `<html>a page</html>`, OK, "", 0},
		{204, ``, OK, "", 0},
		{200, `[1,2]`, OK, "", 0},
		{200, `{"status":"error"}`, BodyNotOK, "", 0},
		{200, `{"status":"timeout","retries":3}`, BodyNotOK, "", 3},
		{200, `{"status":"upstream_unreachable"}`, BodyNotOK, "", 0},
		{200, `{"status":200}`, BodyNotOK, "", 0}, // a status that is not "ok" is not ok
		{200, `{"status":null}`, BodyNotOK, "", 0},
		{200, `{"status":"ok", "trunc`, BodyNotOK, "", 0}, // looks like status JSON, does not parse
		{201, `{"status":"ok"}`, OK, "", 0},
		{500, `{"kind":"reset"}`, HTTP5xx, "reset", 0},
		{502, `{"status":"error","kind":"refused","retries":2}`, HTTP5xx, "refused", 2},
		{504, `gateway timeout`, HTTP5xx, "", 0},
		{503, `{"kind":42}`, HTTP5xx, "", 0}, // a non-string kind is ignored
		{503, `{"retries":"two"}`, HTTP5xx, "", 0},
		{503, `{"retries":-1}`, HTTP5xx, "", 0},
		{404, `{"kind":"ignored for 4xx"}`, HTTP4xx, "", 0},
		{429, ``, HTTP4xx, "", 0},
		{302, ``, Other, "", 0},
		{101, ``, Other, "", 0},
	}
	for _, tc := range cases {
		a := classifyResponse(tc.code, fmt.Sprint(tc.code), []byte(tc.body))
		if a.outcome != tc.want || a.kind != tc.kind || a.retries != tc.retries {
			t.Errorf("%d %q: got %+v, want %s kind %q retries %d", tc.code, tc.body, a, tc.want, tc.kind, tc.retries)
		}
		if (a.outcome == OK) != (a.err == "") {
			t.Errorf("%d %q: outcome %s with error text %q", tc.code, tc.body, a.outcome, a.err)
		}
	}
}

func TestTransportOutcomesAreNeterrClasses(t *testing.T) {
	// The downstream names its upstream failures with the same words: one vocabulary.
	for _, o := range []Outcome{Refused, Reset, EOF, Timeout, Other} {
		if got := classifyError(errorOf(o)); got != o {
			t.Errorf("%s: classified as %s", o, got)
		}
	}
}

// errorOf returns a transport error of class o.
func errorOf(o Outcome) error {
	op := func(err error) error {
		return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", err)}
	}
	switch o {
	case Refused:
		return op(syscall.ECONNREFUSED)
	case Reset:
		return op(syscall.ECONNRESET)
	case EOF:
		return fmt.Errorf("get: %w", io.EOF)
	case Timeout:
		return fmt.Errorf("get: %w", context.DeadlineExceeded)
	}
	return errors.New("tls: handshake failure")
}

func TestOutcomeIndex(t *testing.T) {
	seen := map[int]Outcome{}
	for _, o := range append([]Outcome{OK}, ErrorClasses...) {
		i := outcomeIndex(o)
		if prev, dup := seen[i]; dup || i < 0 || i >= numOutcomes {
			t.Errorf("%s has index %d (also %s)", o, i, prev)
		}
		seen[i] = o
	}
	if len(ErrorClasses)+1 != numOutcomes {
		t.Errorf("%d classes, numOutcomes %d", len(ErrorClasses)+1, numOutcomes)
	}
}

func TestReadBodyBounded(t *testing.T) {
	big := make([]byte, 3*maxBody)
	b, err := readBody(&sliceReader{b: big})
	if err != nil || len(b) != maxBody {
		t.Errorf("kept %d bytes, err %v; want %d", len(b), err, maxBody)
	}
}

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func TestUpstreamReusedConnectionIsRead(t *testing.T) {
	for body, want := range map[string]bool{
		`{"kind":"eof","reused_connection":true}`:   true,
		`{"kind":"eof","reused_connection":false}`:  false,
		`{"kind":"eof","reused_connection":"true"}`: false, // not a boolean
		`{"kind":"eof"}`: false,
	} {
		if a := classifyResponse(502, "502 Bad Gateway", []byte(body)); a.upstreamReused != want {
			t.Errorf("%s: upstreamReused %v, want %v", body, a.upstreamReused, want)
		}
	}
}

// A POST on a pooled connection the server closes unanswered fails as eof, marked reused; the
// first request on the same connection was not reused.
func TestExchangeMarksFailuresOnReusedConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		if req, err := http.ReadRequest(r); err == nil {
			_, _ = io.Copy(io.Discard, req.Body)
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
		_, _ = http.ReadRequest(r) // read, then closed unanswered
	}()
	client := newClient(Config{Connections: ConnectionsReuse, VUs: 1, Timeout: 5 * time.Second})
	defer client.CloseIdleConnections()
	newReq := func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, "POST", "http://"+ln.Addr().String()+"/", strings.NewReader("{}"))
	}
	if a := exchange(context.Background(), client, newReq, newJudge(Config{}).judgeResponse); a.outcome != OK || a.reused {
		t.Fatalf("first POST: %+v", a)
	}
	if a := exchange(context.Background(), client, newReq, newJudge(Config{}).judgeResponse); a.outcome != EOF || !a.reused {
		t.Fatalf("POST on the closed pooled connection: %+v, want eof on a reused connection", a)
	}
}
