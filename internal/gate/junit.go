package gate

import (
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strings"
)

// The Jenkins/Ant JUnit schema, the form CI servers read: <testsuites> holding a <testsuite> per
// scenario, each holding <testcase>s with a <failure> (a breached threshold) or an <error> (the
// run itself failed).
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

// WriteJUnit writes the evaluation as JUnit XML: a test suite per scenario; a test case per judged
// rollout (or whole run) and threshold, failed with the breach message when breached; without
// thresholds one passing test case per rollout; a test case per baseline comparison
// ("baseline: lossy rollouts", "baseline: p99"). runFailures maps a scenario whose run failed to
// why: it gets a test case "run" in error, so CI shows the failure even without thresholds.
func (e Evaluation) WriteJUnit(w io.Writer, runFailures map[string]string) error {
	var order []string
	suites := map[string]*junitSuite{}
	suite := func(scenario string) *junitSuite {
		if s, ok := suites[scenario]; ok {
			return s
		}
		s := &junitSuite{Name: scenario}
		suites[scenario] = s
		order = append(order, scenario)
		return s
	}
	seconds := map[string]float64{}
	for _, m := range e.Judged {
		s := suite(m.Scenario)
		seconds[m.Scenario] += m.Duration.Seconds()
		base := junitCase{Name: caseName(m), Classname: "gracelab." + m.Scenario, Time: fmt.Sprintf("%.3f", m.Duration.Seconds())}
		if !e.Thresholds.limited() {
			base.SystemOut = fmt.Sprintf("%d requests, %d errors, longest disruption %s", m.Requests, m.Errors, m.LongestDisruption)
			s.Cases = append(s.Cases, base)
		}
		for _, c := range e.Checks {
			if c.Measurement.Scenario != m.Scenario || c.Measurement.Rollout != m.Rollout {
				continue
			}
			tc := base
			tc.Name = base.Name + ": " + c.Threshold
			tc.SystemOut = c.Measured
			if !c.Passed {
				tc.Failure = &junitProblem{Message: c.String(), Type: "threshold", Body: c.String()}
				s.Failures++
			}
			s.Cases = append(s.Cases, tc)
		}
	}
	for _, c := range e.Baseline {
		s := suite(c.Measurement.Scenario)
		tc := junitCase{Name: "baseline: " + strings.TrimPrefix(c.Name, "baseline "), Classname: "gracelab." + c.Measurement.Scenario,
			Time: "0.000", SystemOut: c.Measured}
		if !c.Passed {
			tc.Failure = &junitProblem{Message: c.String(), Type: "baseline", Body: c.String()}
			s.Failures++
		}
		s.Cases = append(s.Cases, tc)
	}
	failed := make([]string, 0, len(runFailures))
	for scenario := range runFailures {
		failed = append(failed, scenario)
	}
	sort.Strings(failed)
	for _, scenario := range failed {
		s := suite(scenario)
		why := strings.TrimSpace(runFailures[scenario])
		s.Cases = append(s.Cases, junitCase{Name: "run", Classname: "gracelab." + scenario, Time: "0.000",
			Error: &junitProblem{Message: "the run failed: " + why, Type: "run", Body: why}})
		s.Errors++
	}
	out := junitSuites{Name: "gracelab"}
	for _, name := range order {
		s := suites[name]
		s.Tests = len(s.Cases)
		s.Time = fmt.Sprintf("%.3f", seconds[name])
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
		out.Suites = append(out.Suites, *s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("writing JUnit XML: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func caseName(m Measurement) string {
	if m.Rollout == 0 {
		return "whole run"
	}
	return fmt.Sprintf("rollout %d", m.Rollout)
}
