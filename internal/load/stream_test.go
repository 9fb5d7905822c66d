package load

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// request is one synthetic request: sent at offset, taking latency, ending in answer.
type request struct {
	at      time.Duration
	latency time.Duration
	a       answer
}

// feed gives a recorder the requests in send order; those with a negative latency never end.
func feed(rec *recorder, start time.Time, reqs []request, each func(int)) {
	reqs = append([]request(nil), reqs...)
	sort.SliceStable(reqs, func(i, j int) bool { return reqs[i].at < reqs[j].at })
	for i, r := range reqs {
		sent := start.Add(r.at)
		idx := rec.begin(sent)
		if r.latency >= 0 {
			rec.finish(idx, sent, sent.Add(r.latency), r.latency, -1, r.a)
		}
		if each != nil {
			each(i)
		}
	}
}

// pod plays a load pod: a recorder fed requests, streaming into a buffer, a line after every
// third request as the ticker would write them. It returns the stream's lines.
func pod(t *testing.T, start time.Time, reqs []request, summary bool) []string {
	t.Helper()
	var buf bytes.Buffer
	rec := newRecorder(start, false)
	st := &streamer{run: &Run{rec: rec}, enc: json.NewEncoder(&buf)}
	rec.onClose = st.closed
	feed(rec, start, reqs, func(i int) {
		if i%3 == 2 {
			if err := st.write(nil); err != nil {
				t.Fatal(err)
			}
		}
	})
	var sum *StreamSummary
	if summary {
		sum = &StreamSummary{Result: rec.result(Config{URL: "http://127.0.0.1:1/", VUs: 1}, start.Add(5*time.Second), start.Add(6*time.Second))}
	}
	if err := st.write(sum); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(buf.String()), "\n")
}

func ok() answer { return answer{outcome: OK} }
func fail(o Outcome, kind string) answer {
	return answer{outcome: o, kind: kind, retries: 1, err: fmt.Sprintf("%s happened", o)}
}

func podA() []request {
	return []request{
		{0, 3 * time.Millisecond, ok()}, {100 * time.Millisecond, 7 * time.Millisecond, ok()},
		{1100 * time.Millisecond, 2 * time.Millisecond, fail(Refused, "")}, {1300 * time.Millisecond, 40 * time.Millisecond, ok()},
		{2500 * time.Millisecond, 900 * time.Millisecond, fail(HTTP5xx, "upstream_refused")}, {3200 * time.Millisecond, 1 * time.Millisecond, ok()},
	}
}

func podB() []request {
	return []request{
		{50 * time.Millisecond, 5 * time.Millisecond, ok()}, {1200 * time.Millisecond, 3 * time.Millisecond, fail(Reset, "")},
		{1250 * time.Millisecond, 12 * time.Millisecond, ok()}, {2600 * time.Millisecond, 2 * time.Millisecond, fail(EOF, "")},
		{3900 * time.Millisecond, 250 * time.Millisecond, ok()}, {4100 * time.Millisecond, 4 * time.Millisecond, ok()},
	}
}

func mergeLines(t *testing.T, m *Merger, pod string, lines []string) {
	t.Helper()
	if err := m.Read(pod, strings.NewReader(strings.Join(lines, "\n")+"\n")); err != nil {
		t.Fatal(err)
	}
}

// Two pods' streams merge into exactly the Result one recorder would have made of all their
// requests: counts add, histograms merge, the timeline and disruptions are the same.
func TestStreamMergeEqualsOneRun(t *testing.T) {
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ref := newRecorder(start, false)
	feed(ref, start, append(podA(), podB()...), nil)
	a := pod(t, start, podA(), true)
	b := pod(t, start, podB(), true)
	cfg := Config{URL: "http://127.0.0.1:1/", VUs: 2}
	want := ref.result(cfg, start.Add(5*time.Second), start.Add(6*time.Second))

	m := NewMerger(start, cfg)
	mergeLines(t, m, "load-a", a)
	mergeLines(t, m, "load-b", b)
	got := m.Merge()
	if got.Incomplete || len(got.Problems) > 0 {
		t.Fatalf("complete streams reported incomplete: %v", got.Problems)
	}
	if !reflect.DeepEqual(got.Result, want) {
		t.Errorf("merged result\n%+v\nwant\n%+v", got.Result, want)
	}
	if len(got.Pods) != 2 || got.Pods[0].Result.Requests != 6 || got.Pods[1].Result.Requests != 6 || !got.Pods[0].Complete {
		t.Errorf("per-pod results %+v", got.Pods)
	}
	if got.Result.ErrorsByKind[Refused] != 1 || got.Result.UpstreamKinds["upstream_refused"] != 1 || len(got.Result.Disruptions) == 0 {
		t.Errorf("merged classes %v kinds %v disruptions %v", got.Result.ErrorsByKind, got.Result.UpstreamKinds, got.Result.Disruptions)
	}
}

// A stream read again from the start after it dropped counts each record once.
func TestStreamResumeDoesNotDoubleCount(t *testing.T) {
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ref := newRecorder(start, false)
	feed(ref, start, podA(), nil)
	a := pod(t, start, podA(), true)
	cfg := Config{URL: "http://127.0.0.1:1/", VUs: 1}
	m := NewMerger(start, cfg)
	mergeLines(t, m, "load-a", a[:2]) // the log stream broke here
	mergeLines(t, m, "load-a", a)     // followed again from the beginning
	got := m.Merge()
	want := ref.result(cfg, start.Add(5*time.Second), start.Add(6*time.Second))
	if got.Incomplete || got.Result.Requests != want.Requests || !reflect.DeepEqual(got.Result.Timeline, want.Timeline) {
		t.Errorf("after a resume: incomplete %v, %d requests (want %d), problems %v", got.Incomplete, got.Result.Requests, want.Requests, got.Problems)
	}
}

// Malformed lines and a missing record are reported, the rest is merged, nothing crashes.
func TestStreamMalformedAndMissingLines(t *testing.T) {
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	a := pod(t, start, podA(), true)
	if len(a) < 3 {
		t.Fatalf("want at least 3 lines, got %d", len(a))
	}
	n := len(a) // the next sequence numbers
	bad := []string{
		`{"v":1,"seq":`, // cut short
		`hello from the kubelet`,
		`{"v":99,"seq":50}`,
		fmt.Sprintf(`{"v":1,"seq":%d,"seconds":[{"second":9,"requests":5,"counts":{"ok":1}}]}`, n+1), // counts do not add up
		fmt.Sprintf(`{"v":1,"seq":%d,"seconds":[{"second":8,"requests":1,"counts":{"ok":1},"latency":{"counts":[-4,1]}}]}`, n+2),
		fmt.Sprintf(`{"v":1,"seq":%d,"seconds":[{"second":7,"requests":1,"counts":{"teapot":1}}]}`, n+3),
	}
	// a[1] is lost; text lines come before the summary (after it they are the pod's stderr)
	lines := append(append(append([]string{a[0]}, bad[:2]...), a[2:]...), bad[2:]...)
	m := NewMerger(start, Config{VUs: 1})
	mergeLines(t, m, "load-a", lines)
	got := m.Merge()
	if !got.Incomplete {
		t.Error("a stream with malformed lines and a missing record is complete")
	}
	joined := strings.Join(got.Problems, "\n")
	for _, want := range []string{"records 2 to 2 are missing", "malformed line skipped", "stream version 99", "counts add to 1, requests 5",
		"6 malformed lines or seconds skipped"} {
		if !strings.Contains(joined, want) {
			t.Errorf("problems do not mention %q:\n%s", want, joined)
		}
	}
	if len(got.Problems) > maxProblems+1 {
		t.Errorf("%d problems kept, want at most %d", len(got.Problems), maxProblems+1)
	}
	// The checks that the limit hid from the report, one by one.
	for _, line := range bad[4:] {
		m := NewMerger(start, Config{VUs: 1})
		mergeLines(t, m, "p", []string{regexp.MustCompile(`"seq":\d+`).ReplaceAllString(line, `"seq":1`)})
		got := strings.Join(m.Merge().Problems, " ")
		if !strings.Contains(got, "out of range") && !strings.Contains(got, `unknown class "teapot"`) || strings.Contains(got, "missing") {
			t.Errorf("%s: problems %s", line, got)
		}
	}
	if got.Result.Requests == 0 {
		t.Error("the good records were not merged")
	}
}

// A pod that dies mid-run: its stream ends without a summary; the requests of its open seconds
// are lost, so every request begun still has exactly one outcome.
func TestStreamDeadPodCountsLost(t *testing.T) {
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	reqs := podA()
	// Two requests that never finish: in flight when the pod was killed.
	reqs = append(reqs, request{3300 * time.Millisecond, -1, answer{}}, request{3400 * time.Millisecond, -1, answer{}})
	lines := pod(t, start, reqs, false)
	m := NewMerger(start, Config{VUs: 1})
	m.Pod("load-b") // registered, never streamed
	mergeLines(t, m, "load-a", lines)
	got := m.Merge()
	if !got.Incomplete {
		t.Error("a run with a dead pod is complete")
	}
	r := got.Result
	// Second 3 holds one finished request and the two in flight: all three are unreported.
	if r.ErrorsByKind[Lost] != 3 || r.Requests != int64(len(reqs)) {
		t.Errorf("lost %d requests %d; want 3 lost of %d", r.ErrorsByKind[Lost], r.Requests, len(reqs))
	}
	var sum int64
	for _, n := range r.ErrorsByKind {
		sum += n
	}
	if sum+r.OK != r.Requests {
		t.Errorf("outcomes add to %d, requests %d", sum+r.OK, r.Requests)
	}
	if len(r.Timeline) != 4 || r.Timeline[3].ErrorsByKind[Lost] != 3 || r.Timeline[3].Requests != 3 {
		t.Errorf("timeline %+v; want the 3 lost requests in second 3", r.Timeline)
	}
	if got.Pods[0].Lost != 3 || got.Pods[0].Complete {
		t.Errorf("pod a: %+v", got.Pods[0])
	}
	joined := strings.Join(got.Problems, "\n")
	if !strings.Contains(joined, "load-a: the stream ended without a summary") || !strings.Contains(joined, "load-b: no record arrived") {
		t.Errorf("problems %v", got.Problems)
	}
}

func TestSplit(t *testing.T) {
	cfgs, err := Split(Config{Model: Closed, VUs: 5}, 2)
	if err != nil || cfgs[0].VUs != 3 || cfgs[1].VUs != 2 {
		t.Errorf("closed split %+v, %v", cfgs, err)
	}
	cfgs, err = Split(Config{Model: Open, Rate: 600, MaxInFlight: 90}, 3)
	if err != nil || cfgs[2].Rate != 200 || cfgs[2].MaxInFlight != 30 {
		t.Errorf("open split %+v, %v", cfgs, err)
	}
	if _, err := Split(Config{Model: Closed, VUs: 1}, 2); err == nil || !strings.Contains(err.Error(), "cannot be split") {
		t.Errorf("1 VU over 2 pods: %v", err)
	}
	if _, err := Split(Config{VUs: 1}, 0); err == nil {
		t.Error("0 pods accepted")
	}
}

func TestWaitStartFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/start-at"
	at := time.Date(2026, 12, 1, 12, 0, 0, 123456789, time.UTC)
	stop := make(chan struct{})
	got := make(chan error, 1)
	var read time.Time
	go func() {
		var err error
		read, err = WaitStartFile(path, stop)
		got <- err
	}()
	// The kubelet fills the file after the pod started: an empty file first, then the instant.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(at.Format(time.RFC3339Nano)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil || !read.Equal(at) {
		t.Fatalf("WaitStartFile = %v, %v; want %v", read, err, at)
	}
	if err := os.WriteFile(path, []byte("soon"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := WaitStartFile(path, stop); err == nil || !strings.Contains(err.Error(), `"soon"`) {
		t.Errorf("bad instant: %v", err)
	}
	close(stop)
	if _, err := WaitStartFile(dir+"/never", stop); err == nil {
		t.Error("a stopped wait returned an instant")
	}
}

// The pod's clock is bounded against the reader's: from below by each record's arrival (a
// record cannot arrive before it was written), from above by the start notice (a pod cannot
// read the announcement before it was sent). A pod 300ms ahead, with records arriving 20ms to
// 80ms after they were written and the notice read 150ms after the announcement, is bounded
// to [+280ms, +450ms]; without a notice the bound is open.
func TestMergerClockBound(t *testing.T) {
	announced := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ahead := 300 * time.Millisecond
	m := NewMerger(announced.Add(5*time.Second), Config{VUs: 1})
	m.Announced(announced)
	noticedPod := announced.Add(150 * time.Millisecond).Add(ahead)
	delays := []time.Duration{80 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond}
	var lines []string
	var received []time.Time
	for i, d := range delays {
		written := announced.Add(time.Duration(6+i) * time.Second)
		rec := StreamRecord{Version: StreamVersion, Seq: int64(i + 1), Time: written.Add(ahead), Start: announced.Add(5 * time.Second).Add(ahead), Noticed: noticedPod}
		b, _ := json.Marshal(rec)
		lines = append(lines, string(b))
		received = append(received, written.Add(d))
	}
	i := 0
	m.now = func() time.Time { i++; return received[i-1] }
	mergeLines(t, m, "a", lines)
	// Pod b never reports a notice (an older gracelab): no upper bound.
	b, _ := json.Marshal(StreamRecord{Version: StreamVersion, Seq: 1, Time: announced.Add(7 * time.Second)})
	m.now = func() time.Time { return announced.Add(7*time.Second + 10*time.Millisecond) }
	mergeLines(t, m, "b", []string{string(b)})

	got := m.Merge()
	a := got.Pods[0].Clock
	if !a.LowKnown || !a.HighKnown || a.Low != ahead-20*time.Millisecond || a.High != ahead+150*time.Millisecond {
		t.Errorf("pod a's clock bound %+v, want [280ms, 450ms]", a)
	}
	if d, ok := a.Error(); !ok || d != 450*time.Millisecond {
		t.Errorf("pod a's error %s %v, want 450ms", d, ok)
	}
	if got.Pods[0].StartSkew != ahead {
		t.Errorf("pod a's start skew %s, want %s by its own clock", got.Pods[0].StartSkew, ahead)
	}
	bb := got.Pods[1].Clock
	if _, ok := bb.Error(); ok || !bb.LowKnown || bb.Low != -10*time.Millisecond || !strings.Contains(bb.String(), "no upper bound") {
		t.Errorf("pod b's clock bound %+v (%s), want only a lower bound of -10ms", bb, bb)
	}
}

// A pod's log holds its stderr too: the text summary after the stream's summary line is not
// a problem, while text before it is.
func TestMergerIgnoresTextAfterTheSummary(t *testing.T) {
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	lines := pod(t, start, podA(), true)
	m := NewMerger(start, Config{VUs: 1})
	mergeLines(t, m, "a", append(lines, "gracelab load: GET http://checkout.shop/", "requests       941   31.1/s"))
	if got := m.Merge(); got.Incomplete || len(got.Problems) != 0 {
		t.Errorf("text after the summary: incomplete %v, problems %q", got.Incomplete, got.Problems)
	}
	m = NewMerger(start, Config{VUs: 1})
	mergeLines(t, m, "a", append([]string{"panic: oops"}, lines...))
	if got := m.Merge(); !got.Incomplete || len(got.Problems) == 0 || !strings.Contains(got.Problems[0], "panic: oops") {
		t.Errorf("text before the summary: incomplete %v, problems %q; want it reported", got.Incomplete, got.Problems)
	}
}
