package check

import (
	"errors"
	"io/fs"

	"github.com/gracelab/gracelab/internal/manifest"
)

// FromDocuments turns documents read by package manifest into the checker's objects, with
// their file, line and the reader's warnings (unknown fields, when read leniently).
func FromDocuments(docs []manifest.Document) []Object {
	objs := make([]Object, 0, len(docs))
	for _, d := range docs {
		objs = append(objs, Object{Source: Source{File: d.File, Line: d.Line}, Object: d.Object, Warnings: d.Warnings})
	}
	return objs
}

// Dir checks the manifest files at the root of fsys (a scenario directory, as a drill runs
// it), read leniently as `gracelab check -f DIR` reads them. A drill prints the result beside
// its measurements with WriteText(w, res, TextOptions{NoFix: true}).
func Dir(fsys fs.FS, opts Options) (Result, error) {
	files, err := manifest.FilesOf(fsys)
	if err != nil {
		return Result{}, err
	}
	docs, err := manifest.Decode(files, manifest.Options{Lenient: true})
	if err != nil && !errors.Is(err, manifest.ErrNoObjects) {
		return Result{}, err
	}
	return Run(FromDocuments(docs), opts), nil
}
