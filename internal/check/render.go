package check

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
)

// ANSI colours for the text output on a terminal.
const (
	reset  = "\x1b[0m"
	bold   = "\x1b[1m"
	red    = "\x1b[31m"
	yellow = "\x1b[33m"
	cyan   = "\x1b[36m"
	dim    = "\x1b[2m"
)

// TextOptions shape the text output.
type TextOptions struct {
	Colour bool // ANSI colours (on a terminal)
	NoFix  bool // leave the fix snippets out (drill prints findings beside its results)
}

// WriteText writes the findings grouped by object, then a summary line.
func WriteText(w io.Writer, r Result, o TextOptions) error {
	paint := func(code, s string) string {
		if !o.Colour {
			return s
		}
		return code + s + reset
	}
	var b strings.Builder
	var last string
	for _, f := range r.Findings {
		head := f.Object.String()
		if src := f.Object.Source.String(); src != "" {
			head = src + "  " + head
		}
		if head != last {
			if last != "" {
				b.WriteString("\n")
			}
			b.WriteString(paint(bold, head) + "\n")
			last = head
		}
		sev := fmt.Sprintf("%-7s", f.Severity)
		switch f.Severity {
		case Error:
			sev = paint(red, sev)
		case Warning:
			sev = paint(yellow, sev)
		default:
			sev = paint(cyan, sev)
		}
		who := ""
		if f.Container != "" {
			who = "container " + f.Container + ": "
		}
		fmt.Fprintf(&b, "  %s %s  %s%s\n", sev, f.Rule, who, f.Message)
		if f.Fix != "" && !o.NoFix {
			b.WriteString(paint(dim, indent("fix:\n"+indent(f.Fix, 2), 10)))
		}
	}
	if len(r.Findings) > 0 {
		b.WriteString("\n")
	}
	b.WriteString(Summary(r) + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// Summary is one line: counts by severity, objects read, suppressed findings.
func Summary(r Result) string {
	s := fmt.Sprintf("%s, %s, %s in %d objects (%d workloads)",
		plural(r.Count(Error), "error"), plural(r.Count(Warning), "warning"), plural(r.Count(Info), "info"), r.Objects, r.Workloads)
	if n := r.SuppressedTotal(); n > 0 {
		ids := make([]string, 0, len(r.Suppressed))
		for id, c := range r.Suppressed {
			ids = append(ids, fmt.Sprintf("%s %d", id, c))
		}
		sort.Strings(ids)
		s += fmt.Sprintf("; %d suppressed (%s)", n, strings.Join(ids, ", "))
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 || word == "info" {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// jsonResult is Result with the counts a CI job reads without counting.
type jsonResult struct {
	Result
	Summary map[string]int `json:"summary"`
}

// WriteJSON writes the result as one indented JSON object.
func WriteJSON(w io.Writer, r Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(jsonResult{Result: r, Summary: map[string]int{
		"error": r.Count(Error), "warning": r.Count(Warning), "info": r.Count(Info), "suppressed": r.SuppressedTotal(),
	}})
}

// SARIF 2.1.0, the parts gracelab fills.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool       sarifTool      `json:"tool"`
	Results    []sarifResult  `json:"results"`
	Properties map[string]any `json:"properties,omitempty"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string      `json:"id"`
	ShortDescription     sarifText   `json:"shortDescription"`
	HelpURI              string      `json:"helpUri"`
	DefaultConfiguration sarifConfig `json:"defaultConfiguration"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifResult struct {
	RuleID     string          `json:"ruleId"`
	RuleIndex  int             `json:"ruleIndex"`
	Level      string          `json:"level"`
	Message    sarifText       `json:"message"`
	Locations  []sarifLocation `json:"locations"`
	Properties map[string]any  `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysical `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogical `json:"logicalLocations"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifLogical struct {
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

const docsURI = "https://github.com/gracelab/gracelab/blob/main/docs/check.md"

func sarifLevel(s Severity) string {
	switch s {
	case Error:
		return "error"
	case Warning:
		return "warning"
	}
	return "note"
}

// WriteSARIF writes the result as a SARIF 2.1.0 log: one run, every rule in the driver, each
// finding with its file and the line its object starts on.
func WriteSARIF(w io.Writer, r Result, version string) error {
	driver := sarifDriver{Name: "gracelab", Version: version, InformationURI: "https://github.com/gracelab/gracelab"}
	index := map[string]int{}
	for i, rule := range Rules {
		index[rule.ID] = i
		driver.Rules = append(driver.Rules, sarifRule{
			ID: rule.ID, ShortDescription: sarifText{rule.Summary}, HelpURI: docsURI + "#" + rule.ID,
			DefaultConfiguration: sarifConfig{Level: sarifLevel(rule.Severity)},
		})
	}
	run := sarifRun{Tool: sarifTool{Driver: driver}, Results: []sarifResult{}}
	for _, f := range r.Findings {
		msg := f.Message
		if f.Container != "" {
			msg = "container " + f.Container + ": " + msg
		}
		loc := sarifLocation{LogicalLocations: []sarifLogical{{FullyQualifiedName: f.Object.String(), Kind: "object"}}}
		if f.Object.File != "" {
			p := &sarifPhysical{ArtifactLocation: sarifArtifact{URI: fileURI(f.Object.File)}}
			if f.Object.Line > 0 {
				p.Region = &sarifRegion{StartLine: f.Object.Line}
			}
			loc.PhysicalLocation = p
		}
		res := sarifResult{RuleID: f.Rule, RuleIndex: index[f.Rule], Level: sarifLevel(f.Severity), Message: sarifText{msg}, Locations: []sarifLocation{loc}}
		if f.Fix != "" {
			res.Properties = map[string]any{"fix": f.Fix}
		}
		run.Results = append(run.Results, res)
	}
	if n := r.SuppressedTotal(); n > 0 {
		run.Properties = map[string]any{"suppressed": r.Suppressed}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}})
}

// fileURI turns a path into a relative URI reference ("-" is stdin).
func fileURI(p string) string {
	u := url.URL{Path: filepath.ToSlash(p)}
	return u.EscapedPath()
}
