package ablate

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/gracelab/gracelab/internal/manifest"
)

// Scale returns a copy of docs with every Deployment's spec.replicas set to n (--replicas N).
func Scale(docs []manifest.Document, n int32) ([]manifest.Document, []Edit, error) {
	if n < 1 {
		return nil, nil, fmt.Errorf("--replicas %d: a Deployment needs at least 1 replica to roll", n)
	}
	out := copyDocs(docs)
	var edits []Edit
	for _, d := range out {
		dep, ok := d.Object.(*appsv1.Deployment)
		if !ok {
			continue
		}
		was := replicasOf(dep)
		if dep.Spec.Replicas != nil && was == n {
			continue
		}
		dep.Spec.Replicas = &n
		edits = append(edits, Edit{dep.Name, "spec.replicas", fmt.Sprintf("%d -> %d", was, n)})
	}
	return out, edits, nil
}

// Marshal writes each document's object as YAML, grouped by its file in the original order.
func Marshal(docs []manifest.Document) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, d := range docs {
		y, err := marshalObject(d.Object)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", d.File, d.Index, err)
		}
		var b bytes.Buffer
		if prev := files[d.File]; len(prev) > 0 {
			b.Write(prev)
			b.WriteString("---\n")
		}
		b.Write(y)
		files[d.File] = b.Bytes()
	}
	return files, nil
}

// WriteDir writes the documents into dir (created if needed) as files named as they were read,
// so the variant is read back like any scenario directory.
func WriteDir(dir string, docs []manifest.Document) error {
	files, err := Marshal(docs)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(name)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// marshalObject writes an object as YAML without the fields a typed object always carries but
// nobody wrote (status, creationTimestamp: null): server-side apply on a real cluster then owns
// only what a manifest author would have written.
func marshalObject(obj runtime.Object) ([]byte, error) {
	// The converter hands out an Unstructured's own map: copy it first, as the fields are removed.
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj.DeepCopyObject())
	if err != nil {
		return nil, err
	}
	unstructured.RemoveNestedField(m, "status")
	unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(m, "spec", "template", "metadata", "creationTimestamp")
	return yaml.Marshal(m)
}
