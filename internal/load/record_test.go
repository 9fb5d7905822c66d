package load

import (
	"maps"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// near: HDR histograms with 3 significant digits report values within 0.1%.
func near(got, want float64) bool { return got >= want*0.999 && got <= want*1.001 }

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestDisruptionsMergeWithinGap(t *testing.T) {
	rec := newRecorder(t0, false)
	fail := func(sentMs, endMs int, o Outcome, text string) {
		idx := rec.begin(at(sentMs))
		_ = idx
		rec.finish(idx, at(sentMs), at(endMs), at(endMs).Sub(at(sentMs)), -1, answer{outcome: o, err: text})
	}
	// Outcomes arrive out of send order, as they do with concurrent requests.
	fail(1000, 1005, Refused, "first")
	fail(1500, 6500, Timeout, "slow")   // ends last: the disruption lasts until it is seen
	fail(5000, 5001, Reset, "separate") // 3.5s later: its own disruption
	fail(3200, 3210, EOF, "bridge?")    // 1.7s after 1500 and 1.8s before 5000: still separate
	fail(8000, 8001, Refused, "b1")
	fail(9500, 9501, Refused, "b2") // 1.5s apart: separate until ...
	fail(8800, 8801, HTTP5xx, "b3") // ... this one bridges them
	res := rec.result(Config{}, at(10000), at(10000))
	if len(res.Disruptions) != 4 {
		t.Fatalf("want 4 disruptions, got %+v", res.Disruptions)
	}
	d := res.Disruptions[0]
	if d.StartOffset != 1 || d.EndOffset != 6.5 || d.RequestsFailed != 2 || d.FirstError != "first" ||
		d.Classes[Refused] != 1 || d.Classes[Timeout] != 1 || len(d.Classes) != 2 {
		t.Errorf("first disruption %+v", d)
	}
	if d := res.Disruptions[1]; d.StartOffset != 3.2 || d.RequestsFailed != 1 || d.FirstError != "bridge?" {
		t.Errorf("second disruption %+v", d)
	}
	if d := res.Disruptions[2]; d.StartOffset != 5 || d.FirstError != "separate" {
		t.Errorf("third disruption %+v", d)
	}
	d = res.Disruptions[3]
	if d.StartOffset != 8 || d.EndOffset != 9.501 || d.RequestsFailed != 3 || d.FirstError != "b1" || d.Classes[HTTP5xx] != 1 {
		t.Errorf("bridged disruption %+v", d)
	}
	if !d.Start.Equal(at(8000)) || !d.End.Equal(at(9501)) {
		t.Errorf("absolute times %v..%v", d.Start, d.End)
	}
	// A failure that starts before an existing disruption takes over its first error.
	fail(7500, 7600, Other, "earlier")
	res = rec.result(Config{}, at(10000), at(10000))
	if d := res.Disruptions[3]; d.FirstError != "earlier" || d.StartOffset != 7.5 || d.RequestsFailed != 4 {
		t.Errorf("after an earlier failure: %+v", d)
	}
}

// A second stays open while requests sent in it are pending, and closes once they end.
func TestTimelineWaitsForPendingRequests(t *testing.T) {
	rec := newRecorder(t0, false)
	slow := rec.begin(at(100))   // second 0, answered in second 5
	fast := rec.begin(at(200))   // second 0
	later := rec.begin(at(2100)) // second 2 seals seconds 0 and 1
	rec.finish(fast, at(200), at(210), 10*time.Millisecond, -1, answer{outcome: OK})
	rec.finish(later, at(2100), at(2120), 20*time.Millisecond, -1, answer{outcome: OK})
	if len(rec.timeline) != 0 || rec.live[0] == nil {
		t.Fatalf("second 0 closed while a request sent in it is pending: %+v", rec.timeline)
	}
	rec.finish(slow, at(100), at(5100), 5*time.Second, -1, answer{outcome: Timeout, err: "deadline"})
	if len(rec.timeline) != 1 || rec.live[0] != nil {
		t.Fatalf("second 0 not closed after its last request: live %v timeline %+v", rec.live, rec.timeline)
	}
	res := rec.result(Config{}, at(3000), at(5100))
	if len(res.Timeline) != 3 {
		t.Fatalf("timeline %+v, want seconds 0, 1 (empty), 2", res.Timeline)
	}
	s0, s1, s2 := res.Timeline[0], res.Timeline[1], res.Timeline[2]
	if s0.Requests != 2 || s0.OK != 1 || s0.Errors != 1 || s0.ErrorsByKind[Timeout] != 1 || !near(s0.Max, 5000) || !near(s0.P50, 10) {
		t.Errorf("second 0: %+v", s0)
	}
	if s1.Second != 1 || s1.Requests != 0 || len(s1.ErrorsByKind) != len(ErrorClasses) {
		t.Errorf("second 1: %+v", s1)
	}
	if s2.Requests != 1 || !near(s2.P99, 20) {
		t.Errorf("second 2: %+v", s2)
	}
	if !near(res.Latency.Max, 5000) || !near(res.Latency.P50, 20) {
		t.Errorf("latency %+v", res.Latency)
	}
}

func TestResultTotals(t *testing.T) {
	rec := newRecorder(t0, true)
	for i, o := range []Outcome{OK, OK, HTTP5xx, Dropped, BodyNotOK} {
		sent := at(i * 10)
		idx := rec.begin(sent)
		lat, lag := 5*time.Millisecond, time.Duration(i)*time.Millisecond
		if o == Dropped {
			lat, lag = -1, -1
		}
		rec.finish(idx, sent, sent.Add(max(lat, 0)), lat, lag, answer{outcome: o, kind: "eof", retries: 1})
	}
	res := rec.result(Config{Model: Open}, at(500), at(600))
	if res.Requests != 5 || res.Sent != 4 || res.OK != 2 || res.Errors != 3 || res.ErrorRate != 0.6 {
		t.Errorf("totals: %+v", res)
	}
	if res.RPS != 10 {
		t.Errorf("rps %v, want 5 requests / 0.5s", res.RPS)
	}
	if res.UpstreamKinds["eof"] != 1 || len(res.UpstreamKinds) != 1 || res.Retries != 5 {
		t.Errorf("kinds %v (only the 5xx's kind counts), retries %d", res.UpstreamKinds, res.Retries)
	}
	if res.SendLag == nil || !near(res.SendLag.Max, 4) || res.SendLag.Late != 2 {
		t.Errorf("send lag %+v: want max 4ms, 2 sends later than 1ms", res.SendLag)
	}
	if !near(res.Latency.Max, 5) || !near(res.Latency.Avg, 5) {
		t.Errorf("latency %+v: dropped requests must not count", res.Latency)
	}
}

func TestEmptyResult(t *testing.T) {
	res := newRecorder(t0, false).result(Config{}, t0, t0)
	if res.Requests != 0 || res.ErrorRate != 0 || res.RPS != 0 || len(res.Timeline) != 0 || len(res.Disruptions) != 0 {
		t.Errorf("empty result: %+v", res)
	}
	if len(res.ErrorsByKind) != len(ErrorClasses) {
		t.Errorf("errors_by_kind %v lacks classes", res.ErrorsByKind)
	}
}

// The upstream kinds of 5xx answers are split per second and per disruption, so a chart can
// colour each second's errors by what went wrong behind the downstream.
func TestUpstreamKindsPerSecondAndDisruption(t *testing.T) {
	rec := newRecorder(t0, false)
	for _, f := range []struct {
		ms   int
		o    Outcome
		kind string
	}{{100, HTTP5xx, "refused"}, {200, HTTP5xx, "refused"}, {1100, HTTP5xx, "timeout"}, {1200, Reset, "eof"}, {5000, HTTP5xx, "eof"}} {
		sent := at(f.ms)
		idx := rec.begin(sent)
		rec.finish(idx, sent, sent.Add(time.Millisecond), time.Millisecond, -1, answer{outcome: f.o, kind: f.kind, err: "x"})
	}
	res := rec.result(Config{}, at(6000), at(6000))
	want := map[int]map[string]int64{0: {"refused": 2}, 1: {"timeout": 1}, 5: {"eof": 1}}
	for _, s := range res.Timeline {
		if w := want[s.Second]; len(w) != len(s.UpstreamKinds) || (w != nil && !maps.Equal(w, s.UpstreamKinds)) {
			t.Errorf("second %d: upstream kinds %v, want %v (a reset is no 5xx and has no kind)", s.Second, s.UpstreamKinds, w)
		}
	}
	if len(res.Disruptions) != 2 {
		t.Fatalf("disruptions %+v, want 2", res.Disruptions)
	}
	if got := res.Disruptions[0].UpstreamKinds; !maps.Equal(got, map[string]int64{"refused": 2, "timeout": 1}) {
		t.Errorf("first disruption's kinds %v", got)
	}
	if got := res.Disruptions[1].UpstreamKinds; !maps.Equal(got, map[string]int64{"eof": 1}) {
		t.Errorf("second disruption's kinds %v", got)
	}
}

func TestObserveGetsEveryOutcome(t *testing.T) {
	rec := newRecorder(t0, false)
	var got []Sample
	rec.observe = func(s Sample) { got = append(got, s) }
	idx := rec.begin(at(100))
	rec.finish(idx, at(100), at(130), 30*time.Millisecond, -1, answer{outcome: HTTP5xx, kind: "refused"})
	idx = rec.begin(at(200))
	rec.finish(idx, at(200), at(201), time.Millisecond, -1, answer{outcome: OK})
	want := []Sample{
		{Sent: at(100), End: at(130), Latency: 30 * time.Millisecond, Outcome: HTTP5xx, Kind: "refused"},
		{Sent: at(200), End: at(201), Latency: time.Millisecond, Outcome: OK},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("observed %+v, want %+v", got, want)
	}
}
