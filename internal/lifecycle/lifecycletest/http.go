package lifecycletest

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
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
