package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func fixture(t *testing.T) *Report {
	t.Helper()
	r, err := ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestTableGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTable(&buf, fixture(t)); err != nil {
		t.Fatal(err)
	}
	golden(t, "table.golden", buf.Bytes())
}

func TestMarkdownGolden(t *testing.T) {
	r := fixture(t)
	var buf bytes.Buffer
	cf := chartNames(r)
	if err := WriteMarkdown(&buf, r, &cf); err != nil {
		t.Fatal(err)
	}
	golden(t, "REPORT.md.golden", buf.Bytes())
}

func TestTableContent(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTable(&buf, fixture(t)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	// One column per scenario, the titles in order.
	if !regexp.MustCompile(`^\s+v1 no protection\s+v2 graceful\s+v3 graceful \+ retry\s*$`).MatchString(lines[0]) {
		t.Errorf("header %q", lines[0])
	}
	for _, want := range []string{
		`^requests\s+1,459\s+1,714\s+1,726\s*$`,
		`^errors\s+33\s+0\s+0\s*$`,
		`^error rate\s+2\.26 %\s+0\.00 %\s+0\.00 %\s*$`,
		`^latency max\s+5,018 ms\s+305 ms\s+305 ms\s*$`,
		`^retries\s+0\s+0\s+0\s*$`,
		`^  http_5xx\s+33 \(timeout 15, reset 10, eof 8\)\s+-\s+-\s*$`,
		`^rollout duration\s+0\.1 s\s+7\.1 s\s+7\.4 s\s*$`,
	} {
		re := regexp.MustCompile(want)
		found := false
		for _, l := range lines {
			found = found || re.MatchString(l)
		}
		if !found {
			t.Errorf("no line matches %s in\n%s", want, buf.String())
		}
	}
}

func TestTableShowsFailuresAndWarnings(t *testing.T) {
	r := fixture(t)
	r.Scenarios[1].Result = nil
	r.Scenarios[1].Failure = "the cluster did not come up: port 8000 is taken"
	r.Scenarios[2].Warnings = []string{"target matches no address of Service downstream"}
	var buf bytes.Buffer
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"v2 failed: the cluster did not come up: port 8000 is taken", "v3 warning: target matches no address", "FAILED"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if !r.Failed() {
		t.Error("Failed() = false with a failed scenario")
	}
}

func TestStoryNamesClassesTimesAndEvents(t *testing.T) {
	r := fixture(t)
	v1 := strings.Join(Story(r.Scenarios[0]), "\n")
	for _, want := range []string{
		"33 of 1,459 requests failed (2.26 %)",
		"33 requests failed between 4.9 s and 10.2 s",
		"8 because the upstream connection hit EOF mid-request (502)",
		"15 because the upstream did not answer within the downstream's timeout (504)",
		"10 because the upstream connection was reset (502)",
		// In-flight requests were sent before the SIGTERM that broke them.
		"The first of them was sent 0.1 s before pod h6kn2 received SIGTERM at 5.0 s.",
		"The rolling restart was triggered at 5.0 s and settled 0.1 s later",
	} {
		if !strings.Contains(v1, want) {
			t.Errorf("v1 story lacks %q:\n%s", want, v1)
		}
	}
	v2 := strings.Join(Story(r.Scenarios[1]), "\n")
	for _, want := range []string{"No request failed: all 1,714 requests were answered",
		"Every stopped pod had left the Service before its process stopped (bjq2j 4.0 s before, pbp7b 4.1 s before)"} {
		if !strings.Contains(v2, want) {
			t.Errorf("v2 story lacks %q:\n%s", want, v2)
		}
	}
}

func TestStoryNamesTheKeepAliveRace(t *testing.T) {
	r := fixture(t)
	s := r.Scenarios[0]
	if strings.Contains(strings.Join(Story(s), "\n"), "reused keep-alive connection") {
		t.Fatal("the story names the keep-alive race with no failure on a reused connection")
	}
	res := *s.Result
	res.ReusedConn = ReusedConnFailures{Upstream: 2}
	s.Result = &res
	if got := strings.Join(Story(s), "\n"); !strings.Contains(got, "2 failed on a reused keep-alive connection (2 on the downstream's call to the upstream, 0 on the load's own)") {
		t.Fatalf("story lacks the keep-alive race:\n%s", got)
	}
}

func TestStoryPicksTheEventJustBeforeTheFirstFailure(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := Scenario{
		Scenario: "x", RestartAt: t0.Add(2 * time.Second),
		Result: &Result{Start: t0, End: t0.Add(10 * time.Second), Requests: 10, OK: 7, Errors: 3, Retries: 4,
			ErrorsByKind: map[string]int64{"eof": 2, "refused": 1},
			Disruptions: []Disruption{{Start: t0.Add(4100 * time.Millisecond), End: t0.Add(4300 * time.Millisecond), StartOffset: 4.1, EndOffset: 4.3,
				RequestsFailed: 3, Classes: map[string]int64{"eof": 2, "refused": 1}}}},
		Events: []cluster.Event{
			{Time: t0.Add(2 * time.Second), Kind: cluster.RestartTriggered, Deployment: "upstream"},
			{Time: t0.Add(3 * time.Second), Kind: cluster.PodTerminating, Pod: "up-a"},
			{Time: t0.Add(4 * time.Second), Kind: cluster.SIGTERMSent, Pod: "up-a"},
			{Time: t0.Add(4200 * time.Millisecond), Kind: cluster.EndpointRemoved, Pod: "up-a"},
			{Time: t0.Add(9 * time.Second), Kind: cluster.PodDeleted, Pod: "up-a"},
		},
	}
	story := strings.Join(Story(s), "\n")
	for _, want := range []string{
		"3 requests failed between 4.1 s and 4.3 s: 1 refused (nothing listened at the downstream's address), 2 cut off",
		"The first of them was sent 0.1 s after pod a received SIGTERM at 4.0 s.",
		"The downstream retried 4 times in all",
	} {
		if !strings.Contains(story, want) {
			t.Errorf("story lacks %q:\n%s", want, story)
		}
	}
	if strings.Contains(story, "deleted") {
		t.Errorf("an event after the disruption was mentioned:\n%s", story)
	}
}

func TestChartsRender(t *testing.T) {
	r := fixture(t)
	for _, s := range r.Scenarios {
		var buf bytes.Buffer
		if err := WriteChart(&buf, s, PNG); err != nil {
			t.Fatalf("%s png: %v", s.Scenario, err)
		}
		img, err := png.Decode(&buf)
		if err != nil {
			t.Fatalf("%s: the PNG does not decode: %v", s.Scenario, err)
		}
		if h := TimelineHeight(len(podLives(s))); img.Bounds().Dx() != ChartWidth || img.Bounds().Dy() != h {
			b := img.Bounds()
			t.Errorf("%s: PNG is %dx%d, want %dx%d", s.Scenario, b.Dx(), b.Dy(), ChartWidth, h)
		}
		buf.Reset()
		if err := WriteChart(&buf, s, SVG); err != nil {
			t.Fatalf("%s svg: %v", s.Scenario, err)
		}
		svg := buf.String()
		if !strings.Contains(svg, "<svg") || !strings.HasSuffix(strings.TrimSpace(svg), "</svg>") {
			t.Errorf("%s: not a whole SVG document", s.Scenario)
		}
		// The event labels are drawn as text.
		if !strings.Contains(svg, "SIGTERM") {
			t.Errorf("%s: the SVG has no SIGTERM label", s.Scenario)
		}
	}
	var buf bytes.Buffer
	if err := WriteCombinedChart(&buf, r, PNG); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != ChartWidth || b.Dy() != CombinedHeight(3) {
		t.Errorf("combined PNG is %dx%d, want %dx%d", b.Dx(), b.Dy(), ChartWidth, CombinedHeight(3))
	}
}

func TestChartsSurviveOddData(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	odd := []Scenario{
		{Scenario: "empty", Result: &Result{Start: t0, End: t0}},
		{Scenario: "zeros", Result: &Result{Start: t0, End: t0.Add(3 * time.Second), Timeline: []Second{{Second: 0}, {Second: 1}, {Second: 2}}}},
		{Scenario: "events only", Result: &Result{Start: t0, End: t0.Add(2 * time.Second)},
			Events: []cluster.Event{{Time: t0.Add(time.Second), Kind: cluster.SIGTERMSent, Pod: "p"}, {Time: t0.Add(-time.Second), Kind: cluster.PodReady}}},
	}
	for _, s := range odd {
		for _, f := range []Format{PNG, SVG} {
			var buf bytes.Buffer
			if err := WriteChart(&buf, s, f); err != nil {
				t.Errorf("%s %s: %v", s.Scenario, f, err)
			}
		}
	}
	var buf bytes.Buffer
	if err := WriteChart(&buf, Scenario{Scenario: "failed", Failure: "x"}, PNG); err == nil {
		t.Error("a scenario without results should not chart")
	}
	r := &Report{Schema: 1, Scenarios: append(odd, Scenario{Scenario: "failed", Failure: "x"})}
	if err := WriteCombinedChart(&buf, r, PNG); err != nil {
		t.Errorf("combined with a failed scenario: %v", err)
	}
	if err := WriteChart(&buf, odd[1], Format("gif")); err == nil || !strings.Contains(err.Error(), "use png or svg") {
		t.Errorf("unknown format: %v", err)
	}
}

func TestWriteAllAndRender(t *testing.T) {
	r := fixture(t)
	dir := t.TempDir()
	files, err := WriteAll(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"report.json", "REPORT.md", "report.html",
		"timeline-v1.png", "timeline-v1.svg", "timeline-v2.png", "timeline-v2.svg", "timeline-v3.png", "timeline-v3.svg",
		"comparison.png", "comparison.svg"}
	var got []string
	for _, p := range files.List() {
		if filepath.Dir(p) != dir {
			t.Errorf("%s is outside the report directory", p)
		}
		got = append(got, filepath.Base(p))
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty: %v", p, err)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("files %v, want %v", got, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(want) {
		t.Errorf("the directory holds %d entries, want %d (no temporary files left)", len(entries), len(want))
	}

	// report.json round-trips.
	back, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(r)
	b, _ := json.Marshal(back)
	if !bytes.Equal(a, b) {
		t.Error("report.json does not round-trip")
	}

	md, _ := os.ReadFile(filepath.Join(dir, "REPORT.md"))
	for _, img := range []string{"(comparison.png)", "(timeline-v1.png)", "(timeline-v3.svg)"} {
		if !bytes.Contains(md, []byte(img)) {
			t.Errorf("REPORT.md does not link %s", img)
		}
	}

	html, _ := os.ReadFile(filepath.Join(dir, "report.html"))
	h := string(html)
	if n := strings.Count(h, `src="data:image/png;base64,`); n != 4 {
		t.Errorf("report.html embeds %d images, want 4 (combined + 3)", n)
	}
	// Self-contained: nothing is fetched from elsewhere.
	for _, bad := range []string{`src="http`, `href="http`, "<link", "<script", "url(http"} {
		if strings.Contains(h, bad) {
			t.Errorf("report.html refers to something outside itself: %q", bad)
		}
	}
	for _, want := range []string{"<td class=\"num\">1,459</td>", "v1 no protection", "33 requests failed between 4.9 s and 10.2 s"} {
		if !strings.Contains(h, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
}

func TestHTMLEscapesReportText(t *testing.T) {
	r := fixture(t)
	r.Scenarios[0].Title = `<script>alert(1)</script>`
	r.Scenarios[0].Warnings = []string{`<img src=x onerror=alert(1)>`}
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r, nil, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "<script>alert") || strings.Contains(buf.String(), "<img src=x") {
		t.Error("report text reached the HTML unescaped")
	}
}

func TestDecodeErrors(t *testing.T) {
	good, err := os.ReadFile("testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data string
		want string
	}{
		{"empty", "", "empty file"},
		{"truncated", string(good[:len(good)/2]), "truncated JSON"},
		{"malformed", "{\n  \"schema\": 1,\n  \"scenarios\": [}\n", "malformed JSON at line 3, column 18"},
		{"wrong type", `{"schema": "one"}`, "wrong type at line 1, column 17: schema must be int, not string"},
		{"not a report", `{"hello": 1}`, `not a gracelab report: "schema" is missing`},
		{"future schema", `{"schema": 9, "scenarios": []}`, "schema 9 is not supported"},
		{"no scenarios", `{"schema": 1, "scenarios": []}`, "no scenarios"},
		{"nameless", `{"schema": 1, "scenarios": [{"failure": "x"}]}`, "scenario 1 has no name"},
		{"nothing", `{"schema": 1, "scenarios": [{"scenario": "v1"}]}`, `scenario "v1" has neither results nor a failure`},
		{"inconsistent", `{"schema": 1, "scenarios": [{"scenario": "v1", "start": "2026-01-01T00:00:00Z", "requests": 5, "ok": 1, "errors": 1}]}`, "ok (1) + errors (1) must equal requests (5)"},
		{"huge timeline", `{"schema": 1, "scenarios": [{"scenario": "v1", "timeline": [{"second": 99999999}]}]}`, "outside 0..86400"},
		{"bad duration", `{"schema": 1, "settings": {"duration": 30}, "scenarios": []}`, `a duration must be a string such as "30s"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestReadDirErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadDir(dir); err == nil || !strings.Contains(err.Error(), "report.json not found") {
		t.Errorf("missing file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(`{"schema": 1, "scen`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadDir(dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, FileName)+": truncated JSON") {
		t.Errorf("truncated file: %v", err)
	}
}

func TestFormatting(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4321: "-4,321"} {
		if got := fmtInt(in); got != want {
			t.Errorf("fmtInt(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[float64]string{0.42: "0.4 ms", 9.96: "10.0 ms", 10.4: "10 ms", 5047.2: "5,047 ms"} {
		if got := fmtMS(in); got != want {
			t.Errorf("fmtMS(%v) = %q, want %q", in, got, want)
		}
	}
	if got := safeName("my app/../x"); got != "my-app-..-x" {
		t.Errorf("safeName = %q", got)
	}
}
