package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// File names inside a report directory.
const (
	MarkdownName = "REPORT.md"
	HTMLName     = "report.html"
	combinedBase = "comparison"
	rolloutsBase = "rollouts"
)

// ChartPair is one chart in both formats, as paths relative to the report directory.
type ChartPair struct {
	PNG string `json:"png"`
	SVG string `json:"svg"`
}

// ChartFiles names the charts of a report: one per scenario that has results (in scenario
// order; empty for a failed one) and the combined one.
type ChartFiles struct {
	Scenarios []ChartPair
	Combined  ChartPair
	Rollouts  ChartPair // empty unless a scenario ran several rollouts
}

// Files are the paths WriteAll or Render wrote, relative to nothing: ready to print.
type Files struct {
	JSON     string
	Markdown string
	HTML     string
	Charts   []string
}

// List returns every path, report.json first.
func (f Files) List() []string {
	var out []string
	for _, p := range []string{f.JSON, f.Markdown, f.HTML} {
		if p != "" {
			out = append(out, p)
		}
	}
	return append(out, f.Charts...)
}

// chartNames picks a file name per scenario: timeline-<scenario>, made safe and unique.
func chartNames(r *Report) ChartFiles {
	var cf ChartFiles
	used := map[string]bool{combinedBase: true, rolloutsBase: true}
	for _, s := range r.Scenarios {
		if s.Result == nil {
			cf.Scenarios = append(cf.Scenarios, ChartPair{})
			continue
		}
		base := "timeline-" + safeName(s.Scenario)
		name := base
		for i := 2; used[name]; i++ {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		used[name] = true
		cf.Scenarios = append(cf.Scenarios, ChartPair{PNG: name + ".png", SVG: name + ".svg"})
	}
	cf.Combined = ChartPair{PNG: combinedBase + ".png", SVG: combinedBase + ".svg"}
	if hasRollouts(r) {
		cf.Rollouts = ChartPair{PNG: rolloutsBase + ".png", SVG: rolloutsBase + ".svg"}
	}
	return cf
}

func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '-'
	}, s)
	s = strings.Trim(s, ".-")
	if s == "" {
		return "scenario"
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

// WriteAll writes report.json and everything rendered from it into dir (created if needed).
func WriteAll(dir string, r *Report) (Files, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Files{}, fmt.Errorf("creating the report directory: %w", err)
	}
	jsonPath := filepath.Join(dir, FileName)
	if err := writeFile(jsonPath, r.WriteJSON); err != nil {
		return Files{}, err
	}
	files, err := Render(dir, r)
	files.JSON = jsonPath
	return files, err
}

// Render writes the charts, REPORT.md and report.html into dir from r; report.json is left
// as it is. A chart that cannot be drawn does not stop the text reports: its error is returned
// after everything else was written.
func Render(dir string, r *Report) (Files, error) {
	var files Files
	var errs []error
	charts := chartNames(r)
	images := map[string][]byte{} // PNGs, for report.html
	chart := func(name string, format Format, draw func(io.Writer, Format) error) bool {
		var buf bytes.Buffer
		if err := draw(&buf, format); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			return false
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			errs = append(errs, err)
			return false
		}
		if format == PNG {
			images[name] = buf.Bytes()
		}
		files.Charts = append(files.Charts, path)
		return true
	}
	for i, s := range r.Scenarios {
		pair := charts.Scenarios[i]
		if pair.PNG == "" {
			continue
		}
		draw := func(w io.Writer, f Format) error { return WriteChart(w, s, f) }
		if !chart(pair.PNG, PNG, draw) || !chart(pair.SVG, SVG, draw) {
			charts.Scenarios[i] = ChartPair{}
		}
	}
	combined := func(w io.Writer, f Format) error { return WriteCombinedChart(w, r, f) }
	if !chart(charts.Combined.PNG, PNG, combined) || !chart(charts.Combined.SVG, SVG, combined) {
		charts.Combined = ChartPair{}
	}
	if charts.Rollouts.PNG != "" {
		rollouts := func(w io.Writer, f Format) error { return WriteRolloutChart(w, r, f) }
		if !chart(charts.Rollouts.PNG, PNG, rollouts) || !chart(charts.Rollouts.SVG, SVG, rollouts) {
			charts.Rollouts = ChartPair{}
		}
	}

	files.Markdown = filepath.Join(dir, MarkdownName)
	if err := writeFile(files.Markdown, func(w io.Writer) error { return WriteMarkdown(w, r, &charts) }); err != nil {
		return files, err
	}
	files.HTML = filepath.Join(dir, HTMLName)
	if err := writeFile(files.HTML, func(w io.Writer) error { return WriteHTML(w, r, &charts, images) }); err != nil {
		return files, err
	}
	return files, errors.Join(errs...)
}

// writeFile writes through a temporary file and renames it, so an interrupted write never
// leaves a truncated report behind.
func writeFile(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
