// Package manifest owns reading a manifest directory into strictly decoded Kubernetes
// objects: the one place where the scenario YAML is listed, split, and decoded, shared by the
// embedded cluster (localkube), the real-cluster driver (kube) and the manifest tests.
package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Document is one non-empty YAML document of a manifest file, decoded.
type Document struct {
	File   string         // file name inside the directory
	Index  int            // 1-based position of the document in File, counting empty ones
	Raw    []byte         // the document as written
	Object runtime.Object // *appsv1.Deployment or *corev1.Service
}

// Kind is "Deployment" or "Service".
func (d Document) Kind() string {
	switch d.Object.(type) {
	case *appsv1.Deployment:
		return "Deployment"
	case *corev1.Service:
		return "Service"
	}
	return ""
}

// Name is the object's metadata.name.
func (d Document) Name() string {
	if o, ok := d.Object.(metav1.Object); ok {
		return o.GetName()
	}
	return ""
}

// ErrNoObjects is returned (wrapped) when the directory holds no Deployment or Service.
var ErrNoObjects = errors.New("no Deployment or Service found in the manifest directory (looked for *.yaml, *.yml, *.json)")

// Error is a problem with one document. Its message is one line:
// "FILE: document N (KIND): problem".
type Error struct {
	File  string
	Index int    // 1-based document number
	Kind  string // "Deployment" or "Service" once known, else ""
	Err   error
	// UnknownFields are the paths (spec.replcas) of fields the object's type does not have,
	// when strict decoding failed because of them.
	UnknownFields []string
}

func (e *Error) Error() string {
	where := fmt.Sprintf("%s: document %d", e.File, e.Index)
	if e.Kind != "" {
		where += " (" + e.Kind + ")"
	}
	return where + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// UnsupportedError is a document that is neither an apps/v1 Deployment nor a v1 Service.
type UnsupportedError struct {
	APIVersion, Kind string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("unsupported object %s %q: only apps/v1 Deployment and v1 Service are accepted", e.APIVersion, e.Kind)
}

// DuplicateError is a second object of the same kind and name (namespaces are not compared:
// a scenario is applied into one namespace).
type DuplicateError struct {
	Kind, Name string
	File       string // where it was first defined
	Index      int
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("%s %q is defined twice (also in %s document %d)", e.Kind, e.Name, e.File, e.Index)
}

// Read decodes every .yaml/.yml/.json file at the root of fsys (not recursive, like
// `kubectl apply -f DIR`), in file-name order then document order. Empty and comment-only
// documents are skipped. Each document is decoded strictly into k8s.io/api types: unknown and
// duplicate fields are errors naming the field's path. Only apps/v1 Deployment and v1 Service
// are accepted, each needs metadata.name, and a kind/name may appear once. Errors about a
// document are *Error; a directory without any object is ErrNoObjects.
func Read(fsys fs.FS) ([]Document, error) {
	if fsys == nil {
		return nil, errors.New("no manifest directory")
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("reading manifest directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		ext := strings.ToLower(path.Ext(e.Name()))
		if !e.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var docs []Document
	seen := map[string]Document{} // kind/name
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for n := 1; ; n++ {
			raw, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, &Error{File: name, Index: n, Err: errors.New(cleanYAMLError(err))}
			}
			doc, derr := decode(raw)
			if derr != nil {
				derr.File, derr.Index = name, n
				return nil, derr
			}
			if doc.Object == nil {
				continue // empty document or comments only
			}
			doc.File, doc.Index = name, n
			key := doc.Kind() + "/" + doc.Name()
			if prev, dup := seen[key]; dup {
				return nil, &Error{File: name, Index: n, Err: &DuplicateError{Kind: doc.Kind(), Name: doc.Name(), File: prev.File, Index: prev.Index}}
			}
			seen[key] = doc
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		return nil, ErrNoObjects
	}
	return docs, nil
}

// decode decodes one document; a Document without Object is an empty one.
func decode(raw []byte) (Document, *Error) {
	var probe map[string]any
	if err := yaml.Unmarshal(raw, &probe); err != nil {
		return Document{}, &Error{Err: errors.New(cleanYAMLError(err))}
	}
	if len(probe) == 0 {
		return Document{}, nil
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(raw, &tm); err != nil {
		return Document{}, &Error{Err: errors.New(cleanYAMLError(err))}
	}
	var obj runtime.Object
	switch {
	case tm.APIVersion == "apps/v1" && tm.Kind == "Deployment":
		obj = &appsv1.Deployment{}
	case tm.APIVersion == "v1" && tm.Kind == "Service":
		obj = &corev1.Service{}
	case tm.Kind == "":
		return Document{}, &Error{Err: errors.New("missing kind")}
	default:
		return Document{}, &Error{Err: &UnsupportedError{APIVersion: tm.APIVersion, Kind: tm.Kind}}
	}
	if _, _, err := strictSerializer.Decode(raw, nil, obj); err != nil {
		e := &Error{Kind: tm.Kind, Err: errors.New(strings.TrimPrefix(cleanYAMLError(err), "strict decoding error: "))}
		if se, ok := runtime.AsStrictDecodingError(err); ok {
			for _, fe := range se.Errors() {
				if p, ok := fe.(interface{ FieldPath() string }); ok && strings.HasPrefix(fe.Error(), "unknown field ") {
					e.UnknownFields = append(e.UnknownFields, p.FieldPath())
				}
			}
		}
		return Document{}, e
	}
	doc := Document{Raw: raw, Object: obj}
	if doc.Name() == "" {
		return Document{}, &Error{Kind: tm.Kind, Err: fmt.Errorf("%s without metadata.name", tm.Kind)}
	}
	return doc, nil
}

// strictSerializer is apimachinery's YAML serializer in strict mode: unknown and duplicate
// fields are errors that name the field's path (spec.replcas).
var strictSerializer = func() *kjson.Serializer {
	scheme := runtime.NewScheme()
	_ = appsv1.AddToScheme(scheme)
	_ = corev1.AddToScheme(scheme)
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})
}()

// cleanYAMLError drops the wrapper prefixes sigs.k8s.io/yaml adds, keeping the cause, on one line.
func cleanYAMLError(err error) string {
	msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ")), " ")
	for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "error converting YAML to JSON: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return msg
}
