package experiment

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestAwaitServingSendsHost: a server that routes on Host (a Service called by its DNS name)
// answers the serving check only when the check sends the load's Host.
func TestAwaitServingSendsHost(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "api:8080" {
			http.Error(w, "unknown host "+r.Host, http.StatusNotFound)
		}
	}))
	defer srv.Close()
	if err := awaitServing(context.Background(), srv.URL, "api:8080", 5*time.Second); err != nil {
		t.Errorf("with Host api:8080: %v", err)
	}
	if err := awaitServing(context.Background(), srv.URL, "", 300*time.Millisecond); err == nil {
		t.Error("without the Host header the server answers 404: the check should fail")
	}
}
