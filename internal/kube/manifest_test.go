package kube

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadManifests(t *testing.T) {
	m, err := loadManifests(scenarioFS())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.deploymentNames(), []string{"downstream", "upstream"}; !reflect.DeepEqual(got, want) {
		t.Errorf("deployments %v, want %v", got, want)
	}
	if got, want := m.serviceNames(), []string{"downstream", "upstream"}; !reflect.DeepEqual(got, want) {
		t.Errorf("services %v, want %v", got, want)
	}
	if err := m.prepare("ns1", map[string]string{"upstream": "up:v2"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range m.deployments {
		if *d.Namespace != "ns1" || d.Labels[managedByLabel] != managedByValue || d.Spec.Template.Labels[managedByLabel] != managedByValue {
			t.Errorf("deployment %s: namespace %q labels %v template labels %v", *d.Name, *d.Namespace, d.Labels, d.Spec.Template.Labels)
		}
		if d.Labels["app"] != "" && d.Labels["app"] != *d.Name {
			t.Errorf("deployment %s lost its own labels: %v", *d.Name, d.Labels)
		}
	}
	if got := m.images(); got["upstream/upstream"] != "up:v2" || got["downstream/downstream"] != "downstream:dev" {
		t.Errorf("images %v", got)
	}
	for _, s := range m.services {
		if s.Labels[managedByLabel] != managedByValue || *s.Namespace != "ns1" {
			t.Errorf("service %s: labels %v namespace %q", *s.Name, s.Labels, *s.Namespace)
		}
	}
}

// The apply configuration holds only what the YAML sets: server-side apply must not claim
// fields (status, zero values) the author never wrote.
func TestManifestKeepsOnlyWrittenFields(t *testing.T) {
	m, err := loadManifests(scenarioFS())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range m.deployments {
		if d.Status != nil {
			t.Errorf("deployment %s carries a status", *d.Name)
		}
		if *d.Name == "downstream" && d.Spec.Strategy != nil {
			t.Errorf("downstream has a strategy the YAML does not set: %+v", d.Spec.Strategy)
		}
		if *d.Name == "upstream" && (d.Spec.Strategy == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 || d.Spec.Strategy.RollingUpdate.MaxSurge.IntValue() != 1) {
			t.Errorf("upstream strategy %+v, want maxSurge 1, maxUnavailable 0", d.Spec.Strategy)
		}
	}
}

func TestImageOverrideByDeploymentName(t *testing.T) {
	fsys := fstest.MapFS{"a.yaml": {Data: []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: upstream}
spec:
  selector: {matchLabels: {app: u}}
  template:
    metadata: {labels: {app: u}}
    spec:
      containers: [{name: app, image: old:1}]
`)}}
	m, err := loadManifests(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.prepare("ns", map[string]string{"upstream": "new:2"}); err != nil {
		t.Fatal(err)
	}
	if got := *m.deployments[0].Spec.Template.Spec.Containers[0].Image; got != "new:2" {
		t.Errorf("image %q, want new:2 (the only container of Deployment upstream)", got)
	}
}

func TestLoadManifestsErrors(t *testing.T) {
	deployment := `apiVersion: apps/v1
kind: Deployment
metadata: {name: upstream}
spec:
  selector: {matchLabels: {app: u}}
  template:
    metadata: {labels: {app: u}}
    spec:
      containers: [{name: upstream, image: u:1}]
`
	cases := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"empty dir", map[string]string{"README.md": "hi"}, "no .yaml"},
		{"no deployment", map[string]string{"s.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"}, "no Deployment"},
		{"unknown field", map[string]string{"d.yaml": strings.Replace(deployment, "replicas", "x", 1) + "  replica: 2\n"}, `unknown field "replica"`},
		{"unsupported kind", map[string]string{"c.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"}, `unsupported object v1 "ConfigMap"`},
		{"duplicate", map[string]string{"a.yaml": deployment, "b.yaml": deployment}, `Deployment "upstream" is also defined in a.yaml`},
		{"no name", map[string]string{"d.yaml": strings.Replace(deployment, "{name: upstream}", "{}", 1)}, "without metadata.name"},
		{"not yaml", map[string]string{"d.yaml": "kind: [unclosed"}, "d.yaml document 1"},
		{"no containers", map[string]string{"d.yaml": strings.Replace(deployment, "[{name: upstream, image: u:1}]", "[]", 1)}, "has no container"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for name, data := range tc.files {
				fsys[name] = &fstest.MapFile{Data: []byte(data)}
			}
			_, err := loadManifests(fsys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("loadManifests error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestMultiDocumentWithComments(t *testing.T) {
	fsys := fstest.MapFS{"all.yml": {Data: []byte(`# leading comment
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchLabels: {app: d}}
  template:
    metadata: {labels: {app: d}}
    spec: {containers: [{name: d, image: d:1}]}
---
# only a comment
---
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {ports: [{port: 80}]}
`)}}
	m, err := loadManifests(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.deployments) != 1 || len(m.services) != 1 {
		t.Errorf("%d deployments, %d services; want 1 and 1", len(m.deployments), len(m.services))
	}
}
