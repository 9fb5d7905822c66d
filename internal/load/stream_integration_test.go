package load

import (
	"bytes"
	"net/http"
	"reflect"
	"testing"
	"time"
)

// A real run streamed to a buffer merges back into the run's own Result, and the server counted
// every request the stream reports.
func TestIntegrationStreamOfARealRun(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	url, served := serve(t, jsonReply(http.StatusOK, `{"status":"ok"}`))
	cfg := Config{URL: url, Model: Open, Rate: 200, Duration: 1500 * time.Millisecond}
	at := time.Now().Add(200 * time.Millisecond)
	var out bytes.Buffer
	run, errc, err := StartStream(cfg, at, &out, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	<-run.Done()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	local := run.Result()
	if !local.Start.Equal(at) {
		t.Errorf("run started at %v, want the common instant %v", local.Start, at)
	}
	m := NewMerger(at, run.Config())
	if err := m.Read("pod", &out); err != nil {
		t.Fatal(err)
	}
	got := m.Merge()
	if got.Incomplete {
		t.Fatalf("incomplete: %v", got.Problems)
	}
	r := got.Result
	if r.Requests != local.Requests || r.OK != local.OK || r.Requests != served.Load() || r.Latency != local.Latency ||
		!reflect.DeepEqual(r.Timeline, local.Timeline) || !reflect.DeepEqual(r.SendLag, local.SendLag) {
		t.Errorf("merged %d requests (%d ok, latency %+v, lag %+v), local %d (%d ok, latency %+v, lag %+v), served %d",
			r.Requests, r.OK, r.Latency, r.SendLag, local.Requests, local.OK, local.Latency, local.SendLag, served.Load())
	}
}
