package load

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// seen is what the echo server received.
type seen struct {
	Method, Host, Body, ContentType, Auth string
	Teams                                 []string
}

func TestRequestAsConfigured(t *testing.T) {
	got := make(chan seen, 1)
	url, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.Host, string(b), r.Header.Get("Content-Type"), r.Header.Get("Authorization"), r.Header.Values("X-Team")}
		w.WriteHeader(http.StatusNoContent)
	})
	h, err := ParseHeaders([]string{"Host: api.shop.svc.cluster.local:8080", "x-team: a", "X-Team:b", "Authorization: Bearer abcd", "Content-Type: text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  Config
		want seen
	}{
		{Config{Method: "PURGE", Header: h, Body: []byte("hello")},
			seen{Method: "PURGE", Host: "api.shop.svc.cluster.local:8080", Body: "hello", ContentType: "text/plain", Auth: "Bearer abcd", Teams: []string{"a", "b"}}},
		{Config{Method: "POST"}, seen{Method: "POST", Host: strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/"), Body: "{}\n", ContentType: "application/json"}},
		{Config{}, seen{Method: "GET", Host: strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")}},
	} {
		cfg := tc.cfg
		cfg.URL, cfg.VUs = url, 1
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		cfg = cfg.withDefaults()
		r := &Run{cfg: cfg, judge: newJudge(cfg), client: newClient(cfg)}
		a := r.send()
		if a.outcome != OK {
			t.Fatalf("%+v: %+v", cfg, a)
		}
		if s := <-got; !reflect.DeepEqual(s, tc.want) {
			t.Errorf("server saw %+v, want %+v", s, tc.want)
		}
	}
}

func TestJudgeExpectations(t *testing.T) {
	for _, tc := range []struct {
		expect Expect
		code   int
		body   string
		want   Outcome
		err    string
	}{
		{Expect{}, 200, `{"status":"ok"}`, OK, ""},
		{Expect{}, 200, `{"status":"degraded"}`, BodyNotOK, ""},
		{Expect{}, 302, ``, Other, ""},
		{Expect{IgnoreJSONStatus: true}, 200, `{"status":"degraded"}`, OK, ""},
		{Expect{Status: "200,204"}, 204, ``, OK, ""},
		{Expect{Status: "200,204"}, 201, ``, Unexpected, "201 Created, want 200,204"},
		{Expect{Status: "200"}, 503, ``, HTTP5xx, ""},
		{Expect{Status: "200"}, 404, ``, HTTP4xx, ""},
		{Expect{Status: "2xx,404"}, 404, ``, OK, ""},
		{Expect{Status: "3XX"}, 302, ``, OK, ""},
		{Expect{Status: "503"}, 503, `{"kind":"x"}`, OK, ""},
		{Expect{Status: "2xx"}, 302, ``, Other, ""}, // the default expectation: 3xx stays "other"
		{Expect{Status: "2xx,404"}, 302, ``, Unexpected, "302 Found, want 2xx,404"},
		{Expect{Body: `"orders":\[`}, 200, `{"orders":[1]}`, OK, ""},
		{Expect{Body: `"orders":\[`}, 200, `{"error":"db down"}`, Unexpected, `200 OK with a body that does not match "orders":\[`},
		{Expect{Body: `ok`}, 200, `{"status":"bad","x":"ok"}`, BodyNotOK, ""},
		{Expect{Body: `ok`}, 500, `ok`, HTTP5xx, ""},
	} {
		cfg := Config{URL: "http://127.0.0.1/", VUs: 1, Expect: tc.expect}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		a := newJudge(cfg).judgeResponse(tc.code, http.StatusText(tc.code), []byte(tc.body))
		a.err = strings.TrimSpace(a.err)
		wantErr := tc.err
		if wantErr != "" {
			wantErr = strings.Replace(wantErr, "201 Created", "Created", 1)
			wantErr = strings.Replace(wantErr, "302 Found", "Found", 1)
			wantErr = strings.Replace(wantErr, "200 OK", "OK", 1)
		}
		if a.outcome != tc.want || (wantErr != "" && a.err != wantErr) || (a.outcome == OK) != (a.err == "") {
			t.Errorf("%+v %d %q: %+v, want %s %q", tc.expect, tc.code, tc.body, a, tc.want, wantErr)
		}
	}
}

func TestRequestFlagParsing(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"no colon", `header "no colon": want 'Key: Value'`},
		{": v", `want 'Key: Value'`},
		{"Bad Name: v", `"Bad Name" is not a valid header name`},
		{"X: a\x01b", "control character"},
	} {
		if _, _, err := ParseHeader(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseHeader(%q): %v, want %q", tc.in, err, tc.want)
		}
	}
	k, v, err := ParseHeader("x-request-id:  42 ")
	if err != nil || k != "X-Request-Id" || v != "42" {
		t.Errorf("ParseHeader: %q %q %v", k, v, err)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "order.json")
	if err := os.WriteFile(file, []byte(`{"item":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{"plain text": "plain text", "@" + file: `{"item":1}`, "": ""} {
		b, err := ParseBody(in)
		if err != nil || string(b) != want {
			t.Errorf("ParseBody(%q) = %q, %v", in, b, err)
		}
	}
	for in, want := range map[string]string{"@": "give a file name", "@" + dir + "/missing": "body @" + dir + "/missing: no such file or directory"} {
		if _, err := ParseBody(in); err == nil || err.Error() != want && !strings.Contains(err.Error(), want) {
			t.Errorf("ParseBody(%q): %v, want %q", in, err, want)
		}
	}
}

func TestReportHidesCredentialsAndBody(t *testing.T) {
	cfg := Config{URL: "http://h/", Method: "POST", VUs: 1, Timeout: time.Second, Body: []byte("password=hunter2"),
		Header: http.Header{"Authorization": {"Bearer abcd"}, "X-Api-Key": {"k123"}, "X-Team": {"a"}}}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"abcd", "k123", "hunter2"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("report config shows %q: %s", secret, b)
		}
	}
	if !strings.Contains(string(b), `"X-Team":"a"`) || !strings.Contains(string(b), `"body_bytes":16`) {
		t.Errorf("report config: %s", b)
	}
}

func TestRequestFlagsApply(t *testing.T) {
	var c Config
	err := RequestFlags{Headers: []string{"X-A: 1", "Host: api"}, Body: "hi", ExpectStatus: "200,204", ExpectBody: "^ok"}.Apply(&c)
	if err != nil || c.Header.Get("X-A") != "1" || c.Header.Get("Host") != "api" || string(c.Body) != "hi" ||
		c.Expect != (Expect{Status: "200,204", Body: "^ok"}) {
		t.Fatalf("Apply: %+v %v", c, err)
	}
	for _, tc := range []struct {
		f    RequestFlags
		want string
	}{
		{RequestFlags{Headers: []string{"nope"}}, `-H: header "nope": want 'Key: Value'`},
		{RequestFlags{Body: "@"}, "--body: body @: give a file name after '@'"},
		{RequestFlags{ExpectStatus: "ok"}, `--expect-status "ok": "ok" is not a status code (100-599) or a class such as 2xx`},
		{RequestFlags{ExpectBody: "a["}, `--expect-body "a[" is not a regular expression: missing closing ]`},
	} {
		var c Config
		if err := tc.f.Apply(&c); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Apply(%+v): %v, want %q", tc.f, err, tc.want)
		}
	}
}

// -H @FILE reads one header a line, as curl does: how a load pod gets its headers.
func TestParseHeadersFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "headers")
	if err := os.WriteFile(path, []byte("Authorization: Bearer x\r\n\nX-Tenant: a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := ParseHeaders([]string{"@" + path, "X-Tenant: b"})
	if err != nil {
		t.Fatal(err)
	}
	if h.Get("Authorization") != "Bearer x" || strings.Join(h.Values("X-Tenant"), ",") != "a,b" {
		t.Errorf("headers %v", h)
	}
	if _, err := ParseHeaders([]string{"@" + path + ".missing"}); err == nil || !strings.Contains(err.Error(), "header @") {
		t.Errorf("missing file: %v", err)
	}
}
