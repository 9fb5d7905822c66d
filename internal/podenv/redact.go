package podenv

import (
	"bytes"
	"io"
	"sort"
	"strings"
	"sync"
)

// Redacted replaces a secret value in anything shown to people.
const Redacted = "<redacted>"

// minSecretLen is the shortest secret value replaced inside text: shorter ones ("1", "on")
// would blank out unrelated words. Env.String hides secret variables whatever their length.
const minSecretLen = 4

// Redactor replaces secret values in text: output, logs and reports never show them.
type Redactor struct {
	r *strings.Replacer // nil: nothing to redact
}

// NewRedactor redacts each value (and each line of a multi-line value) of at least
// minSecretLen bytes, longest first so that a value containing another is replaced whole.
func NewRedactor(secrets ...string) *Redactor {
	seen := map[string]bool{}
	var vals []string
	for _, s := range secrets {
		for _, v := range append([]string{s}, strings.Split(s, "\n")...) {
			v = strings.TrimRight(v, "\r")
			if len(v) >= minSecretLen && !seen[v] {
				seen[v] = true
				vals = append(vals, v)
			}
		}
	}
	if len(vals) == 0 {
		return &Redactor{}
	}
	sort.Slice(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	pairs := make([]string, 0, 2*len(vals))
	for _, v := range vals {
		pairs = append(pairs, v, Redacted)
	}
	return &Redactor{r: strings.NewReplacer(pairs...)}
}

// String returns s with every secret value replaced by Redacted.
func (r *Redactor) String(s string) string {
	if r == nil || r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// Writer redacts what is written to w line by line (a secret split across two writes is still
// found); Close writes out a last unterminated line.
func (r *Redactor) Writer(w io.Writer) io.WriteCloser {
	return &redactWriter{r: r, w: w}
}

// maxLine bounds the bytes a redacting writer holds back waiting for a newline.
const maxLine = 64 << 10

type redactWriter struct {
	mu  sync.Mutex
	r   *Redactor
	w   io.Writer
	buf []byte
}

func (rw *redactWriter) Write(p []byte) (int, error) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	rw.buf = append(rw.buf, p...)
	i := bytes.LastIndexByte(rw.buf, '\n')
	if i < 0 && len(rw.buf) > maxLine {
		i = len(rw.buf) - 1 // a program that never ends a line must not grow the buffer forever
	}
	if i < 0 {
		return len(p), nil
	}
	out := rw.r.String(string(rw.buf[:i+1]))
	rw.buf = append(rw.buf[:0], rw.buf[i+1:]...)
	if _, err := io.WriteString(rw.w, out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (rw *redactWriter) Close() error {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if len(rw.buf) == 0 {
		return nil
	}
	out := rw.r.String(string(rw.buf))
	rw.buf = rw.buf[:0]
	_, err := io.WriteString(rw.w, out)
	return err
}
