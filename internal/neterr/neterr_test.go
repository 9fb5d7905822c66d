package neterr

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

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	op := func(err error) error {
		return fmt.Errorf("Get \"http://x/\": %w", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", err)})
	}
	cases := []struct {
		err  error
		want Class
	}{
		{op(syscall.ECONNREFUSED), Refused},
		{op(syscall.ECONNRESET), Reset},
		{op(syscall.EPIPE), Reset},
		{fmt.Errorf("get: %w", io.EOF), EOF},
		{fmt.Errorf("body: %w", io.ErrUnexpectedEOF), EOF},
		{errors.New(`Post "http://x/": http: server closed idle connection`), EOF},
		{fmt.Errorf("get: %w", context.DeadlineExceeded), Timeout},
		{op(timeoutErr{}), Timeout},
		{errors.New("tls: handshake failure"), Other},
		{&net.DNSError{Err: "no such host", Name: "nowhere.invalid"}, Other},
	}
	for _, tc := range cases {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("%v: got %s, want %s", tc.err, got, tc.want)
		}
	}
}

// A POST sent on a pooled connection that the server closes without answering is what the
// keep-alive race looks like to Go's transport (it does not resend a POST): class eof.
func TestPOSTOnAClosedPooledConnectionIsEOF(t *testing.T) {
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
		req, err := http.ReadRequest(r) // the first request is answered, keep-alive
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		_, _ = http.ReadRequest(r) // the second one is read, then the connection closes unanswered
	}()
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	url := "http://" + ln.Addr().String() + "/"
	for i, want := range []Class{"", EOF} {
		resp, err := client.Post(url, "application/json", strings.NewReader("{}"))
		if want == "" {
			if err != nil {
				t.Fatalf("first POST: %v", err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			continue
		}
		if err == nil {
			resp.Body.Close()
			t.Fatalf("POST %d on the closed pooled connection succeeded", i+1)
		}
		if got := Classify(err); got != want {
			t.Fatalf("%v: got %s, want %s", err, got, want)
		}
	}
}
