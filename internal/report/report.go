// Package report owns what a drill leaves behind: the report.json schema, and the renderings
// made from it (the terminal comparison table, REPORT.md with a plain-words account of what went
// wrong, timeline charts as PNG and SVG, and a self-contained report.html). Everything renders
// from a Report alone, so a report.json written elsewhere (a real cluster) re-renders here.
package report

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

// SchemaVersion is the version of report.json this package writes. It reads this one and
// every earlier one (see docs/report.md for what changed).
const SchemaVersion = 2

// oldestSchema is the oldest report.json this package still reads.
const oldestSchema = 1

// FileName is the report's JSON file inside a report directory.
const FileName = "report.json"

// Duration is a time.Duration written in JSON as Go's duration text ("30s").
type Duration time.Duration

// MarshalJSON writes d as "30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"30s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Failed reports whether any scenario's run failed.
func (r *Report) Failed() bool {
	for _, s := range r.Scenarios {
		if s.Failure != "" {
			return true
		}
	}
	return false
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Decode reads a report.json and checks that it can be rendered. Errors are one line and say
// where the JSON broke.
func Decode(data []byte) (*Report, error) {
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, decodeError(data, err)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	r.renameTriggers()
	return &r, nil
}

// renameTriggers reads a report written before each disruption had a trigger event of its
// own: there the drill marked a deletion, eviction, drain, kill or scale with
// restart_triggered; it is renamed to the kind's event (eviction_requested, ...), so older
// reports render as newer ones do. A scenario that was restarted keeps its events.
func (r *Report) renameTriggers() {
	for i := range r.Scenarios {
		s := &r.Scenarios[i]
		trigger := triggerOf(*s)
		if trigger == cluster.RestartTriggered {
			continue
		}
		for j := range s.Events {
			if e := &s.Events[j]; e.Kind == cluster.RestartTriggered && e.Source == cluster.SourceDrill {
				e.Kind = trigger
			}
		}
	}
}

// ReadDir reads DIR/report.json.
func ReadDir(dir string) (*Report, error) {
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s not found: give the directory a drill wrote (it holds %s)", path, FileName)
		}
		return nil, err
	}
	r, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Read reads a report from a report directory (its report.json), a report.json, or a
// gzip-compressed one (NAME.json.gz, as docs/fidelity keeps them).
func Read(path string) (*Report, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s not found: give a report directory or its %s", path, FileName)
		}
		return nil, err
	}
	if st.IsDir() {
		return ReadDir(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var in io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: not a gzip-compressed report: %w", path, err)
		}
		in = zr
	}
	data, err := io.ReadAll(in)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

func decodeError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case len(strings.TrimSpace(string(data))) == 0:
		return errors.New("empty file: not a report")
	case errors.As(err, &syn) && syn.Offset >= int64(len(data)):
		return fmt.Errorf("truncated JSON (it ends at byte %d, in the middle of a value): the file was cut short", len(data))
	case errors.As(err, &syn):
		line, col := position(data, syn.Offset)
		return fmt.Errorf("malformed JSON at line %d, column %d: %v", line, col, syn)
	case errors.As(err, &typ):
		line, col := position(data, typ.Offset)
		field := typ.Field
		if field == "" {
			field = "the top level"
		}
		return fmt.Errorf("wrong type at line %d, column %d: %s must be %s, not %s", line, col, field, typ.Type, typ.Value)
	}
	return fmt.Errorf("not a report: %v", err)
}

func position(data []byte, offset int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < offset && i < int64(len(data)); i++ {
		if data[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// validate rejects what would render as nonsense, naming the field.
func (r *Report) validate() error {
	if r.Schema < oldestSchema || r.Schema > SchemaVersion {
		if r.Schema == 0 {
			return errors.New(`not a gracelab report: "schema" is missing`)
		}
		return fmt.Errorf("schema %d is not supported: this gracelab reads schemas %d to %d", r.Schema, oldestSchema, SchemaVersion)
	}
	if len(r.Scenarios) == 0 {
		return errors.New(`the report has no scenarios`)
	}
	seen := map[string]bool{}
	for i, s := range r.Scenarios {
		if s.Scenario == "" {
			return fmt.Errorf("scenario %d has no name", i+1)
		}
		if seen[s.Scenario] {
			return fmt.Errorf("scenario %q appears twice", s.Scenario)
		}
		seen[s.Scenario] = true
		if s.Result == nil {
			if s.Failure == "" {
				return fmt.Errorf("scenario %q has neither results nor a failure", s.Scenario)
			}
			continue
		}
		res := s.Result
		if res.Requests < 0 || res.OK < 0 || res.Errors < 0 || res.OK+res.Errors != res.Requests {
			return fmt.Errorf("scenario %q: ok (%d) + errors (%d) must equal requests (%d)", s.Scenario, res.OK, res.Errors, res.Requests)
		}
		if res.Requests > 0 && res.Start.IsZero() {
			return fmt.Errorf("scenario %q has requests but no start time", s.Scenario)
		}
		for j, sec := range res.Timeline {
			if sec.Second < 0 || sec.Second > maxSeconds {
				return fmt.Errorf("scenario %q: timeline entry %d has second %d, outside 0..%d", s.Scenario, j+1, sec.Second, maxSeconds)
			}
		}
		if end := res.End.Sub(res.Start); end < 0 || end > maxSeconds*time.Second {
			return fmt.Errorf("scenario %q: end is %s after start, outside 0..%ds", s.Scenario, end, maxSeconds)
		}
	}
	return nil
}

// maxSeconds bounds a run's length so a corrupt file cannot ask for a chart miles wide.
const maxSeconds = 24 * 3600
