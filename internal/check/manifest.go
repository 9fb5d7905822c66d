package check

import "github.com/gracelab/gracelab/internal/manifest"

// FromDocuments turns documents read by package manifest into the checker's objects.
func FromDocuments(docs []manifest.Document) []Object {
	objs := make([]Object, 0, len(docs))
	for _, d := range docs {
		objs = append(objs, Object{Source: Source{File: d.File}, Object: d.Object})
	}
	return objs
}
