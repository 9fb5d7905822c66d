package kubetest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// APIServer is a small HTTP server on 127.0.0.1 that answers as a Kubernetes API server for
// the few requests a test expects, through the real client-go stack, and records every
// request it gets.
type APIServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []Request
}

// Request is one request the APIServer saw.
type Request struct {
	Method, Path, Query, ContentType, Body string
}

// NewAPIServer serves handle (which gets the request body already read) until the test ends.
func NewAPIServer(t testing.TB, handle func(w http.ResponseWriter, r *http.Request, body []byte)) *APIServer {
	t.Helper()
	s := &APIServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		s.mu.Lock()
		s.requests = append(s.requests, Request{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), string(body)})
		s.mu.Unlock()
		handle(w, r, body)
	}))
	t.Cleanup(s.Close)
	return s
}

// Seen returns the requests so far.
func (s *APIServer) Seen() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// WriteKubeconfig writes a kubeconfig with one cluster at server and the given contexts (token
// auth); current may be "". It returns the file's path.
func WriteKubeconfig(t testing.TB, server, current string, contexts ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: " + server + "\n")
	b.WriteString("users:\n- name: me\n  user:\n    token: test-token\n")
	b.WriteString("contexts:\n")
	for _, c := range contexts {
		b.WriteString("- name: " + c + "\n  context:\n    cluster: lab\n    user: me\n")
	}
	if current != "" {
		b.WriteString("current-context: " + current + "\n")
	}
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
