package load

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// DefaultExpectStatus is what an answer's status must be unless Expect.Status says otherwise.
const DefaultExpectStatus = "2xx"

// Expect is what an answer must be to count as ok.
type Expect struct {
	// Status lists the accepted status codes: classes ("2xx") and codes ("200,204"), comma
	// separated; "" is DefaultExpectStatus.
	Status string
	// Body is a regular expression (Go syntax) the body must match; "" accepts any body. Only
	// the first 64 KiB of a body are matched.
	Body string
	// IgnoreJSONStatus turns off the check, made for the demo's services, that a JSON body's
	// "status" field is "ok".
	IgnoreJSONStatus bool
}

// ParseHeader parses one -H value, "Key: Value". A Host header sets the request's Host.
func ParseHeader(s string) (key, value string, err error) {
	k, v, ok := strings.Cut(s, ":")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return "", "", fmt.Errorf("header %q: want 'Key: Value'", s)
	}
	if !httpguts.ValidHeaderFieldName(k) {
		return "", "", fmt.Errorf("header %q: %q is not a valid header name", s, k)
	}
	v = strings.TrimSpace(v)
	if !httpguts.ValidHeaderFieldValue(v) {
		return "", "", fmt.Errorf("header %q: the value has a control character", k)
	}
	return http.CanonicalHeaderKey(k), v, nil
}

// ParseHeaders parses repeated -H values into a header. A value @FILE reads one header a line
// from the file, as curl does (a load pod gets its headers so, out of its arguments).
func ParseHeaders(values []string) (http.Header, error) {
	if len(values) == 0 {
		return nil, nil
	}
	var lines []string
	for _, s := range values {
		name, ok := strings.CutPrefix(s, "@")
		if !ok {
			lines = append(lines, s)
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			if pe, ok := err.(*os.PathError); ok {
				err = pe.Err
			}
			return nil, fmt.Errorf("header @%s: %v", name, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimRight(line, "\r"); strings.TrimSpace(line) != "" {
				lines = append(lines, line)
			}
		}
	}
	h := http.Header{}
	for _, s := range lines {
		k, v, err := ParseHeader(s)
		if err != nil {
			return nil, err
		}
		h.Add(k, v)
	}
	return h, nil
}

// ParseBody reads a --body value: the string itself, or with a leading '@' the named file's
// bytes (as curl does).
func ParseBody(s string) ([]byte, error) {
	name, ok := strings.CutPrefix(s, "@")
	if !ok {
		return []byte(s), nil
	}
	if name == "" {
		return nil, fmt.Errorf("body @: give a file name after '@'")
	}
	b, err := os.ReadFile(name)
	if err != nil {
		if pe, ok := err.(*os.PathError); ok {
			err = pe.Err
		}
		return nil, fmt.Errorf("body @%s: %v", name, err)
	}
	return b, nil
}

// statusSet is a parsed Expect.Status.
type statusSet struct {
	classes [6]bool // 1xx..5xx
	codes   map[int]bool
}

func (s statusSet) match(code int) bool {
	return s.codes[code] || (code >= 100 && code < 600 && s.classes[code/100])
}

func parseStatus(spec string) (statusSet, error) {
	s := statusSet{codes: map[int]bool{}}
	if spec == "" {
		spec = DefaultExpectStatus
	}
	for _, item := range strings.Split(spec, ",") {
		item = strings.ToLower(strings.TrimSpace(item))
		if len(item) == 3 && strings.HasSuffix(item, "xx") && item[0] >= '1' && item[0] <= '5' {
			s.classes[item[0]-'0'] = true
			continue
		}
		n, err := strconv.Atoi(item)
		if err != nil || len(item) != 3 || n < 100 || n > 599 {
			return s, fmt.Errorf("expect-status %q: %q is not a status code (100-599) or a class such as 2xx", spec, item)
		}
		s.codes[n] = true
	}
	return s, nil
}

// validateRequest checks the request fields of c: method, headers and expectations.
func (c Config) validateRequest() error {
	if c.Method != "" {
		if _, err := http.NewRequest(c.Method, "http://x/", nil); err != nil || !httpguts.ValidHeaderFieldName(c.Method) {
			return fmt.Errorf("method %q is not a valid HTTP method", c.Method)
		}
	}
	for k, vs := range c.Header {
		for _, v := range vs {
			if _, _, err := ParseHeader(k + ": " + v); err != nil {
				return err
			}
		}
	}
	if _, err := parseStatus(c.Expect.Status); err != nil {
		return err
	}
	if c.Expect.Body != "" {
		if _, err := regexp.Compile(c.Expect.Body); err != nil {
			return fmt.Errorf("expect-body %q is not a regular expression: %v", c.Expect.Body, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
	}
	return nil
}

// judge decides an answer's outcome from Config.Expect.
type judge struct {
	status     statusSet
	statusText string
	body       *regexp.Regexp
	ignoreJSON bool
	plain      bool // the default expectation: classifyResponse alone decides
}

// newJudge compiles c.Expect; call after Validate.
func newJudge(c Config) judge {
	j := judge{statusText: c.Expect.Status, ignoreJSON: c.Expect.IgnoreJSONStatus}
	if j.statusText == "" {
		j.statusText = DefaultExpectStatus
	}
	j.status, _ = parseStatus(j.statusText)
	if c.Expect.Body != "" {
		j.body = regexp.MustCompile(c.Expect.Body)
	}
	j.plain = j.statusText == DefaultExpectStatus && j.body == nil && !j.ignoreJSON
	return j
}

// judgeResponse classifies a completely read response. An unexpected 4xx or 5xx keeps its
// class (http_4xx, http_5xx); any other unexpected status, and a body that does not match,
// is Unexpected.
func (j judge) judgeResponse(code int, status string, body []byte) answer {
	a := classifyResponse(code, status, body)
	if j.plain {
		return a
	}
	if !j.status.match(code) {
		if a.outcome == HTTP4xx || a.outcome == HTTP5xx {
			return a
		}
		return answer{outcome: Unexpected, retries: a.retries, err: fmt.Sprintf("%s, want %s", status, j.statusText)}
	}
	if a.outcome == BodyNotOK && !j.ignoreJSON {
		return a
	}
	if j.body != nil && !j.body.Match(body) {
		return answer{outcome: Unexpected, retries: a.retries, err: fmt.Sprintf("%s with a body that does not match %s", status, clip(j.body.String(), 80))}
	}
	return answer{outcome: OK, retries: a.retries}
}

// sensitiveHeaders never have their values written to a report.
var sensitiveHeaders = map[string]bool{"Authorization": true, "Proxy-Authorization": true, "Cookie": true}

// headerNames lists the header for a report: values of credentials are redacted.
func headerForReport(h http.Header) map[string]string {
	if len(h) == 0 {
		return nil
	}
	out := make(map[string]string, len(h))
	for k, vs := range h {
		v := strings.Join(vs, ", ")
		if sensitiveHeaders[k] || strings.Contains(strings.ToLower(k), "token") || strings.Contains(strings.ToLower(k), "key") || strings.Contains(strings.ToLower(k), "secret") {
			v = "<redacted>"
		}
		out[k] = v
	}
	return out
}

// RequestFlags are the request flags as a command line gives them (-H, --body,
// --expect-status, --expect-body), for every command that sends load.
type RequestFlags struct {
	Headers      []string // -H 'Key: Value', repeatable
	Body         string   // --body STRING|@FILE
	ExpectStatus string   // --expect-status 2xx|200,204
	ExpectBody   string   // --expect-body REGEX
}

// Apply parses the flags into c (Header, Body, Expect). Errors are one line naming the flag.
func (f RequestFlags) Apply(c *Config) error {
	h, err := ParseHeaders(f.Headers)
	if err != nil {
		return fmt.Errorf("-H: %v", err)
	}
	c.Header = h
	if f.Body != "" {
		if c.Body, err = ParseBody(f.Body); err != nil {
			return fmt.Errorf("--body: %v", err)
		}
	}
	c.Expect.Status, c.Expect.Body = f.ExpectStatus, f.ExpectBody
	if _, err := parseStatus(f.ExpectStatus); err != nil {
		return fmt.Errorf("--%v", err)
	}
	if f.ExpectBody != "" {
		if _, err := regexp.Compile(f.ExpectBody); err != nil {
			return fmt.Errorf("--expect-body %q is not a regular expression: %v", f.ExpectBody, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
	}
	return nil
}
