package manifest

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: app:1}]
`

const service = `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
`

func dir(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return fsys
}

func TestReadOrderAndEmptyDocuments(t *testing.T) {
	docs, err := Read(dir(map[string]string{
		"b.yml":     "# only a comment\n---\n" + service + "---\n\n---\n",
		"a.yaml":    "---\n" + deployment,
		"README.md": "not yaml: [",
		"notes.txt": "kind: ConfigMap",
	}))
	if err != nil {
		t.Fatal(err)
	}
	type where struct {
		File  string
		Index int
		Kind  string
	}
	var got []where
	for _, d := range docs {
		got = append(got, where{d.File, d.Index, d.Kind()})
	}
	want := []where{{"a.yaml", 1, "Deployment"}, {"b.yml", 2, "Service"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("documents %+v, want %+v", got, want)
	}
	d, ok := docs[0].Object.(*appsv1.Deployment)
	if !ok || d.Name != "web" || d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("deployment %+v", docs[0].Object)
	}
	if s, ok := docs[1].Object.(*corev1.Service); !ok || s.Spec.Ports[0].Port != 80 {
		t.Errorf("service %+v", docs[1].Object)
	}
	if !strings.Contains(string(docs[1].Raw), "kind: Service") {
		t.Errorf("raw %q", docs[1].Raw)
	}
}

func TestReadErrors(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"unknown field names the path", map[string]string{"a.yaml": strings.Replace(deployment, "replicas: 2", "replcas: 2", 1)},
			`a.yaml: document 1 (Deployment): unknown field "spec.replcas"`},
		{"nested unknown field", map[string]string{"a.yaml": service + "---\n" + strings.Replace(deployment, "image: app:1", "image: app:1, imagePolicy: x", 1)},
			`a.yaml: document 2 (Deployment): unknown field "spec.template.spec.containers[0].imagePolicy"`},
		{"unsupported kind", map[string]string{"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"},
			`a.yaml: document 1: unsupported object v1 "ConfigMap"`},
		{"old apiVersion", map[string]string{"a.yaml": strings.Replace(deployment, "apps/v1", "extensions/v1beta1", 1)},
			`unsupported object extensions/v1beta1 "Deployment"`},
		{"missing kind", map[string]string{"a.yaml": "apiVersion: v1\nmetadata: {name: x}\n"}, "a.yaml: document 1: missing kind"},
		{"missing name", map[string]string{"a.yaml": strings.Replace(service, "{name: web}", "{}", 1)}, "Service without metadata.name"},
		{"duplicate across files", map[string]string{"a.yaml": deployment, "b.yaml": deployment},
			`b.yaml: document 1: Deployment "web" is defined twice (also in a.yaml document 1)`},
		{"bad yaml", map[string]string{"a.yaml": deployment + "---\napiVersion: v1\nkind: [\n"}, "a.yaml: document 2: "},
		{"no objects", map[string]string{"a.yaml": "# nothing\n", "x.txt": "hi"}, "no Deployment or Service found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(dir(tc.files))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

func TestReadStructuredErrors(t *testing.T) {
	_, err := Read(dir(map[string]string{"a.yaml": strings.Replace(deployment, "replicas: 2", "replcas: 2", 1)}))
	var me *Error
	if !errors.As(err, &me) || me.File != "a.yaml" || me.Index != 1 || me.Kind != "Deployment" ||
		!reflect.DeepEqual(me.UnknownFields, []string{"spec.replcas"}) {
		t.Fatalf("unknown field: %#v", err)
	}

	_, err = Read(dir(map[string]string{"a.yaml": deployment + "---\n" + deployment}))
	var dup *DuplicateError
	if !errors.As(err, &dup) || dup.Kind != "Deployment" || dup.Name != "web" || dup.File != "a.yaml" || dup.Index != 1 {
		t.Fatalf("duplicate: %#v", err)
	}
	if !errors.As(err, &me) || me.Index != 2 {
		t.Fatalf("duplicate: %#v", err)
	}

	_, err = Read(dir(map[string]string{"a.yaml": "apiVersion: v1\nkind: Secret\n"}))
	var ue *UnsupportedError
	if !errors.As(err, &ue) || ue.APIVersion != "v1" || ue.Kind != "Secret" {
		t.Fatalf("unsupported: %#v", err)
	}

	if _, err := Read(dir(nil)); !errors.Is(err, ErrNoObjects) {
		t.Fatalf("empty directory: %v", err)
	}
	if _, err := Read(nil); err == nil {
		t.Fatal("nil directory accepted")
	}
}
