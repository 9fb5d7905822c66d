// Package manifest owns reading Kubernetes manifests: files, directories and stdin (Collect),
// split into documents with their file and line, `v1 List`s expanded, and every object decoded
// into its k8s.io/api type where Kubernetes knows the kind (Decode). It is the one reader
// shared by the embedded cluster (localkube), the real-cluster driver (kube), the drill, the
// linter and the manifest tests. Classify says what the drill does with each kind.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// Document is one object of a manifest file, decoded.
type Document struct {
	File  string // File.Name it came from
	Index int    // 1-based position of the YAML document in File, counting empty ones
	Line  int    // 1-based line in File where the object starts (its first key)
	Item  int    // 1-based position in the items of a `v1 List`; 0 for a plain document
	Raw   []byte // the object as written (JSON for a List item)
	// Object is the k8s.io/api type (*appsv1.Deployment, *corev1.Secret, ...) when Known, else
	// an *unstructured.Unstructured.
	Object runtime.Object
	GVK    schema.GroupVersionKind
	Known  bool // the kind is one of Kubernetes' built-in types
	// Warnings are problems lenient decoding let through (unknown or duplicate fields); strict
	// decoding makes them errors instead.
	Warnings []string
}

// Kind is the object's kind, such as "Deployment".
func (d Document) Kind() string { return d.GVK.Kind }

// Name is the object's metadata.name.
func (d Document) Name() string {
	if o, ok := d.Object.(metav1.Object); ok {
		return o.GetName()
	}
	return ""
}

// Namespace is the object's metadata.namespace, "" when it sets none.
func (d Document) Namespace() string {
	if o, ok := d.Object.(metav1.Object); ok {
		return o.GetNamespace()
	}
	return ""
}

// Where is "FILE:LINE", for messages that point at the object.
func (d Document) Where() string { return fmt.Sprintf("%s:%d", d.File, d.Line) }

// String names the object as kubectl does: "Deployment web" ("Deployment shop/web" in a namespace).
func (d Document) String() string {
	if ns := d.Namespace(); ns != "" {
		return d.Kind() + " " + ns + "/" + d.Name()
	}
	return d.Kind() + " " + d.Name()
}

// ErrNoObjects is returned (wrapped) when the manifests hold no object at all.
var ErrNoObjects = errors.New("no Deployment or Service found in the manifest directory (looked for *.yaml, *.yml, *.json)")

// Error is a problem with one document. Its message is one line:
// "FILE: document N (KIND): problem"; YAML syntax errors name the line in FILE.
type Error struct {
	File  string
	Index int    // 1-based document number
	Line  int    // 1-based line in File of the problem, else where the document (or List item) starts
	Kind  string // the object's kind once known, else ""
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

// UnsupportedError is a document of a kind the caller does not accept (Read: anything but an
// apps/v1 Deployment or a v1 Service).
type UnsupportedError struct {
	APIVersion, Kind string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("unsupported object %s %q: only apps/v1 Deployment, v1 Service and policy/v1 PodDisruptionBudget are accepted", e.APIVersion, e.Kind)
}

// DuplicateError is a second object of the same kind, namespace and name.
type DuplicateError struct {
	Kind, Name string
	File       string // where it was first defined
	Index      int
	Line       int
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("%s %q is defined twice (also in %s document %d)", e.Kind, e.Name, e.File, e.Index)
}

// Options tunes Decode.
type Options struct {
	// Lenient keeps objects with unknown or duplicate fields, listing them in
	// Document.Warnings (for a linter); by default they are errors (for anything that runs
	// the objects, where a misspelt field would silently change what is measured).
	Lenient bool
}

// Read decodes the manifest files at the root of fsys (see FilesOf), strictly, and accepts
// only apps/v1 Deployments, v1 Services and policy/v1 PodDisruptionBudgets, a kind/name once (namespaces not compared: a
// scenario is applied into one namespace). It is the reader of the built-in scenarios; Decode
// reads everything else.
func Read(fsys fs.FS) ([]Document, error) {
	files, err := FilesOf(fsys)
	if err != nil {
		return nil, err
	}
	return decode(files, readOptions)
}

// readOptions are Read's: strict, Deployments, Services and PDBs only, namespaces not compared.
var readOptions = decodeOptions{
	accept: func(gvk schema.GroupVersionKind) error {
		if gvk != deploymentGVK && gvk != serviceGVK && gvk != pdbGVK {
			return &UnsupportedError{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind}
		}
		return nil
	},
}

// decodeOptions are Options plus what only Read needs.
type decodeOptions struct {
	Options
	accept      func(schema.GroupVersionKind) error // nil: every kind
	byNamespace bool                                // duplicates are per namespace
}

// Decode splits every file into YAML documents (JSON files are one document), expands
// `v1 List`s and decodes each object: built-in kinds into their k8s.io/api types, strictly
// unless opts.Lenient, anything else (custom resources, kinds this Kubernetes version does not
// know) into *unstructured.Unstructured with Known false, for the caller to judge (Classify).
// Empty and comment-only documents are skipped. Every object needs apiVersion, kind and
// metadata.name, and a kind/namespace/name may appear once. Errors about a document are
// *Error; manifests without any object are ErrNoObjects.
func Decode(files []File, opts Options) ([]Document, error) {
	return decode(files, decodeOptions{Options: opts, byNamespace: true})
}

func decode(files []File, opts decodeOptions) ([]Document, error) {
	var docs []Document
	seen := map[string]Document{}
	for _, f := range files {
		chunks, err := split(f.Data)
		if err != nil {
			return nil, &Error{File: f.Name, Index: err.index, Line: err.line, Err: err}
		}
		for _, c := range chunks {
			objs, derr := decodeChunk(c, opts)
			if derr != nil {
				derr.File, derr.Index = f.Name, c.index
				return nil, derr
			}
			for _, d := range objs {
				d.File, d.Index = f.Name, c.index
				key := d.GVK.Group + "/" + d.GVK.Kind + "/" + d.Name()
				if opts.byNamespace {
					key += "/" + d.Namespace()
				}
				if prev, dup := seen[key]; dup {
					return nil, &Error{File: f.Name, Index: c.index, Line: d.Line,
						Err: &DuplicateError{Kind: d.Kind(), Name: d.Name(), File: prev.File, Index: prev.Index, Line: prev.Line}}
				}
				seen[key] = d
				docs = append(docs, d)
			}
		}
	}
	if len(docs) == 0 {
		return nil, ErrNoObjects
	}
	return docs, nil
}

// chunk is one YAML document of a file.
type chunk struct {
	index int    // 1-based document number
	line  int    // line in the file of the chunk's first line
	data  []byte // the document's text
}

type splitError struct {
	index, line int
	msg         string
}

func (e *splitError) Error() string { return e.msg }

// split cuts a file at "---" lines as apimachinery's YAMLReader does (a separator may be
// followed by a comment only; an empty leading part is not a document), keeping each
// document's first line.
func split(data []byte) ([]chunk, *splitError) {
	var chunks []chunk
	start, lineNo := 1, 0
	var buf bytes.Buffer
	flush := func(next int) {
		if buf.Len() > 0 {
			chunks = append(chunks, chunk{index: len(chunks) + 1, line: start, data: bytes.Clone(buf.Bytes())})
		}
		buf.Reset()
		start = next
	}
	for len(data) > 0 {
		lineNo++
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		if bytes.HasPrefix(line, []byte("---")) {
			rest := strings.TrimSpace(string(line[3:]))
			if rest != "" && rest[0] != '#' {
				index := len(chunks) + 1 // the document this separator would start
				if buf.Len() > 0 {
					index++
				}
				return nil, &splitError{index: index, line: lineNo,
					msg: fmt.Sprintf("line %d: invalid YAML document separator: %s", lineNo, rest)}
			}
			flush(lineNo + 1)
			continue
		}
		buf.Write(line)
	}
	flush(0)
	return chunks, nil
}

var (
	deploymentGVK = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	serviceGVK    = schema.GroupVersionKind{Version: "v1", Kind: "Service"}
	pdbGVK        = schema.GroupVersionKind{Group: "policy", Version: "v1", Kind: "PodDisruptionBudget"}
	listGVK       = schema.GroupVersionKind{Version: "v1", Kind: "List"}
)

// decodeChunk decodes one YAML document into its objects: none when it is empty, the items
// of a v1 List, else one.
func decodeChunk(c chunk, opts decodeOptions) ([]Document, *Error) {
	var probe any
	if err := yaml.Unmarshal(c.data, &probe); err != nil {
		msg, line := yamlError(err, c.line)
		return nil, &Error{Line: line, Err: errors.New(msg)}
	}
	if probe == nil {
		return nil, nil // empty document or comments only
	}
	line := c.line + firstContentLine(c.data) - 1
	m, ok := probe.(map[string]any)
	if !ok {
		return nil, &Error{Line: line, Err: fmt.Errorf("line %d: not a Kubernetes object (want a mapping with apiVersion, kind and metadata)", line)}
	}
	if len(m) == 0 {
		return nil, nil // "{}"
	}
	gvk, err := typeOf(m)
	if err != nil {
		return nil, &Error{Line: line, Err: err}
	}
	if gvk != listGVK {
		if opts.accept != nil {
			if err := opts.accept(gvk); err != nil {
				return nil, &Error{Line: line, Err: err}
			}
		}
		d, derr := decodeObject(c.data, gvk, opts.Options)
		if derr != nil {
			derr.Line = line
			return nil, derr
		}
		d.Line = line
		return []Document{d}, nil
	}
	items, ok := m["items"].([]any)
	if !ok && m["items"] != nil {
		return nil, &Error{Line: line, Kind: "List", Err: errors.New("items is not a list")}
	}
	lines := itemLines(c.data)
	var docs []Document
	for i, it := range items {
		itemLine := line
		if i < len(lines) {
			itemLine = c.line + lines[i] - 1
		}
		fail := func(err error, kind string) *Error {
			return &Error{Line: itemLine, Kind: kind, Err: fmt.Errorf("List item %d: %w", i+1, err)}
		}
		im, ok := it.(map[string]any)
		if !ok {
			return nil, fail(errors.New("not a Kubernetes object"), "")
		}
		igvk, err := typeOf(im)
		if err != nil {
			return nil, fail(err, "")
		}
		if igvk == listGVK {
			return nil, fail(errors.New("a List inside a List"), "")
		}
		if opts.accept != nil {
			if err := opts.accept(igvk); err != nil {
				return nil, fail(err, "")
			}
		}
		raw, err := json.Marshal(im)
		if err != nil {
			return nil, fail(err, igvk.Kind)
		}
		d, derr := decodeObject(raw, igvk, opts.Options)
		if derr != nil {
			e := fail(derr.Err, derr.Kind)
			e.UnknownFields = derr.UnknownFields
			return nil, e
		}
		d.Line, d.Item = itemLine, i+1
		docs = append(docs, d)
	}
	return docs, nil
}

func typeOf(m map[string]any) (schema.GroupVersionKind, error) {
	apiVersion, _ := m["apiVersion"].(string)
	kind, _ := m["kind"].(string)
	if kind == "" {
		return schema.GroupVersionKind{}, errors.New("missing kind")
	}
	if apiVersion == "" {
		return schema.GroupVersionKind{}, fmt.Errorf("%s without apiVersion", kind)
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return schema.GroupVersionKind{}, fmt.Errorf("apiVersion %q: %w", apiVersion, err)
	}
	return gv.WithKind(kind), nil
}

// decodeObject decodes one object: strictly into its k8s.io/api type when Kubernetes knows the
// kind, else as unstructured.
func decodeObject(raw []byte, gvk schema.GroupVersionKind, opts Options) (Document, *Error) {
	d := Document{Raw: raw, GVK: gvk}
	if scheme.Scheme.Recognizes(gvk) {
		obj, _, err := strictSerializer.Decode(raw, &gvk, nil)
		var unknown []string
		if se, ok := runtime.AsStrictDecodingError(err); ok && obj != nil {
			for _, fe := range se.Errors() {
				if p, ok := fe.(interface{ FieldPath() string }); ok && strings.HasPrefix(fe.Error(), "unknown field ") {
					unknown = append(unknown, p.FieldPath())
				}
				d.Warnings = append(d.Warnings, fe.Error())
			}
			if opts.Lenient {
				err = nil
			}
		}
		if err != nil {
			return Document{}, &Error{Kind: gvk.Kind, UnknownFields: unknown,
				Err: errors.New(strings.TrimPrefix(cleanYAMLError(err), "strict decoding error: "))}
		}
		obj.GetObjectKind().SetGroupVersionKind(gvk)
		d.Object, d.Known = obj, true
	} else {
		u := &unstructured.Unstructured{}
		jsonDoc, err := yaml.YAMLToJSON(raw)
		if err == nil {
			err = u.UnmarshalJSON(jsonDoc)
		}
		if err != nil {
			return Document{}, &Error{Kind: gvk.Kind, Err: errors.New(cleanYAMLError(err))}
		}
		d.Object = u
	}
	if d.Name() == "" {
		return Document{}, &Error{Kind: gvk.Kind, Err: fmt.Errorf("%s without metadata.name", gvk.Kind)}
	}
	return d, nil
}

// strictSerializer decodes every built-in kind (client-go's scheme) in strict mode: unknown
// and duplicate fields are errors that name the field's path (spec.replcas), while the object
// is still returned, which lenient decoding keeps.
var strictSerializer = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	kjson.SerializerOptions{Yaml: true, Strict: true})

// firstContentLine is the 1-based line of data's first line that is not blank or a comment.
func firstContentLine(data []byte) int {
	for i, l := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") {
			return i + 1
		}
	}
	return 1
}

// itemLines finds the 1-based line (within data) of each element of a List's items.
func itemLines(data []byte) []int {
	var n yamlv3.Node
	if yamlv3.Unmarshal(data, &n) != nil || len(n.Content) == 0 {
		return nil
	}
	root := n.Content[0]
	if root.Kind != yamlv3.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "items" {
			var lines []int
			for _, it := range root.Content[i+1].Content {
				lines = append(lines, it.Line)
			}
			return lines
		}
	}
	return nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// yamlError words a YAML syntax error on one line, with line numbers counted in the file
// rather than in the document, and returns the (first) line it names, else firstLine.
func yamlError(err error, firstLine int) (string, int) {
	msg := strings.TrimPrefix(cleanYAMLError(err), "yaml: ")
	line := 0
	msg = yamlLineRE.ReplaceAllStringFunc(msg, func(s string) string {
		n, _ := strconv.Atoi(strings.TrimPrefix(s, "line "))
		if line == 0 {
			line = firstLine + n - 1
		}
		return "line " + strconv.Itoa(firstLine+n-1)
	})
	if line == 0 {
		line = firstLine
	}
	return msg, line
}

// cleanYAMLError drops the wrapper prefixes sigs.k8s.io/yaml adds, keeping the cause, on one line.
func cleanYAMLError(err error) string {
	msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ")), " ")
	for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "error converting YAML to JSON: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return msg
}
