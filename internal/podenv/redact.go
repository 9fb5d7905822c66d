package podenv

import (
	"bytes"
	"errors"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Redacted replaces a secret value in anything shown to people.
const Redacted = "<redacted>"

// minSecretLen is the shortest secret value replaced inside text: shorter ones ("1", "on")
// would blank out unrelated words. Env.String hides secret variables whatever their length.
const minSecretLen = 4

// Redactor replaces secret values in text: output, logs and reports never show them. It is
// safe for concurrent use; values added later apply to writers made before.
type Redactor struct {
	mu   sync.Mutex
	seen map[string]bool
	vals []string
	r    atomic.Pointer[strings.Replacer] // nil: nothing to redact
}

// NewRedactor redacts each value (and each line of a multi-line value) of at least
// minSecretLen bytes, longest first so that a value containing another is replaced whole.
func NewRedactor(secrets ...string) *Redactor {
	r := &Redactor{seen: map[string]bool{}}
	r.Add(secrets...)
	return r
}

// Add redacts more values from now on, such as a secret as a pod was given it after a
// Service name in it was rewritten.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	grew := false
	for _, s := range secrets {
		for _, v := range append([]string{s}, strings.Split(s, "\n")...) {
			v = strings.TrimRight(v, "\r")
			if len(v) >= minSecretLen && !r.seen[v] {
				r.seen[v] = true
				r.vals = append(r.vals, v)
				grew = true
			}
		}
	}
	if !grew {
		return
	}
	sort.SliceStable(r.vals, func(i, j int) bool { return len(r.vals[i]) > len(r.vals[j]) })
	pairs := make([]string, 0, 2*len(r.vals))
	for _, v := range r.vals {
		pairs = append(pairs, v, Redacted)
	}
	r.r.Store(strings.NewReplacer(pairs...))
}

// Empty reports whether there is nothing to redact (yet).
func (r *Redactor) Empty() bool { return r == nil || r.r.Load() == nil }

// String returns s with every secret value replaced by Redacted.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	if rep := r.r.Load(); rep != nil {
		return rep.Replace(s)
	}
	return s
}

// Error is err with every secret value in its message replaced; err itself when its message
// holds none (so errors.Is and As still see through it).
func (r *Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	if msg := r.String(err.Error()); msg != err.Error() {
		return errors.New(msg)
	}
	return err
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
