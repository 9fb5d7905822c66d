package experiment

import (
	"maps"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/load"
)

var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func sec(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }

func sample(sent, end float64, o load.Outcome, kind string) load.Sample {
	return load.Sample{Sent: sec(sent), End: sec(end), Latency: sec(end).Sub(sec(sent)), Outcome: o, Kind: kind}
}

// Two rollouts in one run: 5-12s (settled 7s, tail 5s) and 17-25s (settled 20s); the load
// runs 0-30s. Requests outside both windows belong to none.
func TestAttributeSyntheticTimeline(t *testing.T) {
	windows := []Window{
		{Index: 1, Start: sec(5), Settled: sec(7), End: sec(12)},
		{Index: 2, Start: sec(17), Settled: sec(20), End: sec(25)},
	}
	samples := []load.Sample{
		sample(1, 1.01, load.OK, ""),                 // before any restart: none
		sample(4.999, 10, load.Timeout, ""),          // sent before the first restart: none, although it ends inside
		sample(5, 5.01, load.OK, ""),                 // on the first restart: rollout 1
		sample(6.2, 6.21, load.HTTP5xx, "refused"),   // rollout 1
		sample(6.9, 6.91, load.Refused, ""),          // 0.7s later: the same disruption
		sample(6.5, 11.5, load.Timeout, ""),          // out of order; ends last: the disruption lasts 6.2..11.5
		sample(9, 9.02, load.OK, ""),                 // rollout 1
		sample(11.999, 12.3, load.OK, ""),            // just inside rollout 1
		sample(12, 12.01, load.HTTP5xx, "eof"),       // at the window's end: none
		sample(14, 14.5, load.Reset, ""),             // between the windows: none
		sample(18, 18.1, load.HTTP5xx, "eof"),        // rollout 2
		sample(21, 21.2, load.EOF, ""),               // 3s later: its own disruption
		sample(21.5, 21.5, load.Dropped, ""),         // dropped: counted, no latency; 0.5s later: same disruption
		sample(24.5, 24.6, load.OK, ""),              // rollout 2
		sample(29, 29.01, load.HTTP5xx, "connreset"), // after the last window: none
	}
	samples[12].Latency = -1
	got := Attribute(windows, samples)
	if len(got) != 2 {
		t.Fatalf("got %d rollouts", len(got))
	}
	r1, r2 := got[0], got[1]
	if r1.Index != 1 || r1.Requests != 6 || r1.OK != 3 || r1.Errors != 3 {
		t.Errorf("rollout 1: %+v", r1)
	}
	if want := map[string]int64{"http_5xx": 1, "refused": 1, "timeout": 1}; !maps.Equal(r1.ErrorsByKind, want) {
		t.Errorf("rollout 1 by kind %v, want %v", r1.ErrorsByKind, want)
	}
	if want := map[string]int64{"refused": 1}; !maps.Equal(r1.UpstreamKinds, want) {
		t.Errorf("rollout 1 upstream kinds %v, want %v", r1.UpstreamKinds, want)
	}
	if r1.LongestDisruption != sec(11.5).Sub(sec(6.2)) || r1.LatencyMax != 5*time.Second {
		t.Errorf("rollout 1: longest disruption %s, latency max %s; want 5.3s, 5s", r1.LongestDisruption, r1.LatencyMax)
	}
	if r2.Index != 2 || r2.Requests != 4 || r2.OK != 1 || r2.Errors != 3 {
		t.Errorf("rollout 2: %+v", r2)
	}
	if want := map[string]int64{"http_5xx": 1, "eof": 1, "dropped": 1}; !maps.Equal(r2.ErrorsByKind, want) {
		t.Errorf("rollout 2 by kind %v, want %v", r2.ErrorsByKind, want)
	}
	if r2.LongestDisruption != 500*time.Millisecond || r2.LatencyMax != 200*time.Millisecond {
		t.Errorf("rollout 2: longest disruption %s (want 500ms: 21s..21.5s), latency max %s (want 200ms)", r2.LongestDisruption, r2.LatencyMax)
	}
}

func TestAttributeNoWindowsNoSamples(t *testing.T) {
	if got := Attribute(nil, []load.Sample{sample(1, 2, load.OK, "")}); len(got) != 0 {
		t.Fatalf("no windows: %+v", got)
	}
	got := Attribute([]Window{{Index: 1, Start: sec(0), End: sec(1)}}, nil)
	if len(got) != 1 || got[0].Requests != 0 || got[0].LongestDisruption != 0 {
		t.Fatalf("no samples: %+v", got)
	}
}

// A window's latency quantiles are the empirical ones of its own requests: 1..100 ms sent in
// rollout 1 give p50 50ms, p99 99ms; rollout 2's slow requests do not leak into rollout 1.
func TestAttributeLatencyQuantiles(t *testing.T) {
	windows := []Window{{Index: 1, Start: sec(0), End: sec(10)}, {Index: 2, Start: sec(10), End: sec(20)}}
	var samples []load.Sample
	for i := 100; i >= 1; i-- { // out of order on purpose
		samples = append(samples, load.Sample{Sent: sec(1), End: sec(2), Latency: time.Duration(i) * time.Millisecond, Outcome: load.OK})
	}
	samples = append(samples,
		load.Sample{Sent: sec(11), End: sec(16), Latency: 5 * time.Second, Outcome: load.Timeout},
		load.Sample{Sent: sec(12), End: sec(12), Latency: -1, Outcome: load.Dropped}) // no latency: not a quantile's input
	got := Attribute(windows, samples)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	if want := (Quantiles{P50: ms(50), P90: ms(90), P95: ms(95), P99: ms(99)}); got[0].Latency != want {
		t.Errorf("rollout 1 quantiles %+v, want %+v", got[0].Latency, want)
	}
	if want := (Quantiles{P50: 5 * time.Second, P90: 5 * time.Second, P95: 5 * time.Second, P99: 5 * time.Second}); got[1].Latency != want {
		t.Errorf("rollout 2 quantiles %+v, want %+v", got[1].Latency, want)
	}
	if empty := Attribute([]Window{{Index: 1, Start: sec(30), End: sec(40)}}, samples); empty[0].Latency != (Quantiles{}) {
		t.Errorf("a window without requests has quantiles %+v", empty[0].Latency)
	}
}
