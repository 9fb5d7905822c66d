package check

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	corev1 "k8s.io/api/core/v1"
)

// findingsSet is a mix of severities on two objects, one of them suppressed by --ignore.
func findingsSet() Result {
	bad := withContainer(func(c *corev1.Container) { c.Lifecycle = nil; c.ReadinessProbe = nil })
	pub := service(func(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = true })
	objs := objects(bad, pub)
	objs[0].Source.File = "deploy dir/web.yaml" // a space, escaped in the SARIF URI
	return Run(objs, Options{Ignore: []string{RuleNoPDB}})
}

func TestWriteTextGroupsByObject(t *testing.T) {
	res := findingsSet()
	var b bytes.Buffer
	if err := WriteText(&b, res, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Count(out, "deploy dir/web.yaml:1  Deployment web\n") != 1 {
		t.Errorf("want one header per object:\n%s", out)
	}
	if !strings.Contains(out, "warning no-prestop  container web: ") || !strings.Contains(out, "fix:\n") {
		t.Errorf("want severity, rule, container and fix:\n%s", out)
	}
	if !strings.Contains(out, "1 suppressed (no-pdb 1)") {
		t.Errorf("summary lacks the suppressed count:\n%s", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colour without a terminal")
	}
	b.Reset()
	_ = WriteText(&b, res, TextOptions{Colour: true, NoFix: true})
	if !strings.Contains(b.String(), yellow+"warning") || strings.Contains(b.String(), "fix:") {
		t.Errorf("colour on, fixes off:\n%q", b.String())
	}
}

func TestWriteJSON(t *testing.T) {
	res := findingsSet()
	var b bytes.Buffer
	if err := WriteJSON(&b, res); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Findings []struct {
			Rule, Severity, Container, Message, Fix string
			Object                                  struct {
				Kind, Name, File string
				Line             int
			}
		}
		Suppressed map[string]int
		Summary    map[string]int
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Findings) != len(res.Findings) || got.Summary["warning"] != res.Count(Warning) || got.Summary["suppressed"] != 1 {
		t.Fatalf("JSON does not carry the result: %s", b.String())
	}
	f := got.Findings[0]
	if f.Severity != "warning" || f.Object.File != "deploy dir/web.yaml" || f.Object.Line != 1 || f.Fix == "" {
		t.Errorf("first finding: %+v", f)
	}
}

// TestWriteSARIFValidates checks the SARIF output against the published SARIF 2.1.0 schema
// (OASIS, errata 01), kept in testdata.
func TestWriteSARIFValidates(t *testing.T) {
	schemaFile, err := os.Open("testdata/sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	defer schemaFile.Close()
	doc, err := jsonschema.UnmarshalJSON(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("sarif-schema-2.1.0.json", doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	for name, res := range map[string]Result{"findings": findingsSet(), "empty": Run(nil, Options{})} {
		var b bytes.Buffer
		if err := WriteSARIF(&b, res, "v0.0.0-test"); err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(inst); err != nil {
			t.Errorf("%s: SARIF output is not valid SARIF 2.1.0: %v\n%s", name, err, b.String())
		}
		if name != "findings" {
			continue
		}
		var log sarifLog
		if err := json.Unmarshal(b.Bytes(), &log); err != nil {
			t.Fatal(err)
		}
		r := log.Runs[0].Results[0]
		loc := r.Locations[0].PhysicalLocation
		if loc == nil || loc.ArtifactLocation.URI != "deploy%20dir/web.yaml" || loc.Region.StartLine != 1 {
			t.Errorf("want file and line of the object: %+v", loc)
		}
		if log.Runs[0].Tool.Driver.Rules[r.RuleIndex].ID != r.RuleID {
			t.Errorf("ruleIndex %d does not point at %s", r.RuleIndex, r.RuleID)
		}
	}
	// The validator really validates: a log without its version is refused.
	bad, _ := jsonschema.UnmarshalJSON(strings.NewReader(`{"runs": []}`))
	if schema.Validate(bad) == nil {
		t.Error("the schema accepted a log without version")
	}
}
