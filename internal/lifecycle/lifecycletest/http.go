package lifecycletest

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"
)

// RunMain is a TestMain body: unless -short, it builds pkgs into a temporary directory, hands
// their paths to built, runs the tests and removes the directory. It returns the exit code.
func RunMain(m *testing.M, built func(bins []string), pkgs ...string) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "gracelab-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bins, err := Build(dir, pkgs...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	built(bins)
	return m.Run()
}

// LocalEnv is the environment of a service on 127.0.0.1 at a port the OS picks, plus extra.
func LocalEnv(extra ...string) []string {
	return append([]string{"HOST=127.0.0.1", "PORT=0"}, extra...)
}

// Reply is the outcome of one request sent by SendAll.
type Reply struct {
	Status int
	Body   []byte
	Err    error
	At     time.Time // when the outcome was known
}

// SendAll sends n GET requests to url at once, each on its own connection, so each one is
// in flight on the server independently; the channel yields every outcome.
func SendAll(url string, n int) <-chan Reply {
	out := make(chan Reply, n)
	for range n {
		go func() {
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := c.Get(url)
			r := Reply{Err: err}
			if err == nil {
				r.Body, r.Err = io.ReadAll(resp.Body)
				resp.Body.Close()
				r.Status = resp.StatusCode
			}
			r.At = time.Now()
			out <- r
		}()
	}
	return out
}

// Health returns the status code of GET base+"/health", on a fresh connection.
func Health(base string) (int, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(base + "/health")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Conn is a raw client connection whose every byte the test times itself, as a client's
// keep-alive pool would hold it.
type Conn struct {
	net.Conn
	r *bufio.Reader
}

// Dial opens a TCP connection to addr; it is closed at the end of the test.
func Dial(t testing.TB, addr string) *Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Conn{Conn: c, r: bufio.NewReader(c)}
}

// Send writes a request head for method and path (HTTP/1.1, keep-alive) with the given
// Content-Length, and no body.
func (c *Conn) Send(method, path string, contentLength int) error {
	_, err := fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: gracelab\r\nContent-Length: %d\r\n\r\n", method, path, contentLength)
	return err
}

// Read reads one response and its whole body, waiting up to 20s.
func (c *Conn) Read() (*http.Response, []byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// Do sends a bodiless request and reads its response.
func (c *Conn) Do(method, path string) (*http.Response, []byte, error) {
	if err := c.Send(method, path, 0); err != nil {
		return nil, nil, err
	}
	return c.Read()
}

// SyncBuffer is a log sink a server's goroutines and the test can share.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
