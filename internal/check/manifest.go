package check

import "github.com/gracelab/gracelab/internal/manifest"

// FromDocuments turns documents read by package manifest into the checker's objects, with
// their file, line and the reader's warnings (unknown fields, when read leniently).
func FromDocuments(docs []manifest.Document) []Object {
	objs := make([]Object, 0, len(docs))
	for _, d := range docs {
		objs = append(objs, Object{Source: Source{File: d.File, Line: d.Line}, Object: d.Object, Warnings: d.Warnings})
	}
	return objs
}
