package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// The sandbox mode the embedded cluster used, and auto's reason to fall back, reach
// report.json and REPORT.md; a Kubernetes scenario says nothing about sandboxes.
func TestSandboxModeIsReported(t *testing.T) {
	r := &Report{Schema: SchemaVersion, Cluster: "embedded", Scenarios: []Scenario{
		{Scenario: "a", Title: "a", Sandbox: "ns"},
		{Scenario: "b", Title: "b", Sandbox: "none", SandboxFallback: "user namespaces are forbidden"},
		{Scenario: "c", Title: "c"},
	}}
	var md bytes.Buffer
	if err := WriteMarkdown(&md, r, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Pods: each in a sandbox of its own (network, mount, PID and UTS namespaces: --sandbox ns).",
		"Pods: on the host's shared loopback, each at its own 127.x address (--sandbox none), because pod sandboxes are not available here: user namespaces are forbidden.",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("REPORT.md lacks %q:\n%s", want, md.String())
		}
	}
	if n := strings.Count(md.String(), "Pods: "); n != 2 {
		t.Errorf("%d sandbox lines, want 2 (none for the scenario without a mode)", n)
	}
	b, err := json.Marshal(r.Scenarios[1])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"sandbox":"none","sandbox_fallback":"user namespaces are forbidden"`) {
		t.Errorf("report.json: %s", b)
	}
}
