package manifest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// File is one manifest file's bytes, read once: decoding the same Files twice (a command that
// reads the manifests twice) sees the same bytes even when they came from stdin.
type File struct {
	Name string // as given on the command line, "dir/a.yaml" inside a directory, or Stdin
	Data []byte
}

// Stdin is the File.Name of manifests read from standard input ("-f -").
const Stdin = "<stdin>"

// manifestExt reports whether a file found in a directory is a manifest, as kubectl decides.
func manifestExt(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// Collect reads the manifest sources as `kubectl apply -f` takes them: a file (any name), a
// directory (its *.yaml, *.yml and *.json files in name order; subdirectories only when
// recursive, like -R) or "-" for stdin (read once, allowed once). Files keep the order of the
// arguments. Errors name the argument and are one line.
func Collect(args []string, recursive bool, stdin io.Reader) ([]File, error) {
	if len(args) == 0 {
		return nil, errors.New("no manifests given: -f FILE, -f DIR or -f - (stdin)")
	}
	var files []File
	stdinRead := false
	for _, arg := range args {
		switch {
		case arg == "":
			return nil, errors.New("-f: empty path")
		case arg == "-":
			if stdinRead {
				return nil, errors.New("-f -: stdin can be given once")
			}
			stdinRead = true
			if stdin == nil {
				return nil, errors.New("-f -: no standard input")
			}
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("-f -: reading stdin: %w", err)
			}
			files = append(files, File{Name: Stdin, Data: data})
		case strings.Contains(arg, "://"):
			return nil, fmt.Errorf("-f %s: URLs are not fetched; download the file, or pipe it: curl -sL URL | gracelab ... -f -", arg)
		default:
			fi, err := os.Stat(arg)
			if err != nil {
				return nil, fmt.Errorf("-f %s: %w", arg, unwrapPathError(err))
			}
			if !fi.IsDir() {
				data, err := os.ReadFile(arg)
				if err != nil {
					return nil, fmt.Errorf("-f %s: %w", arg, unwrapPathError(err))
				}
				files = append(files, File{Name: arg, Data: data})
				continue
			}
			found, err := collectDir(arg, recursive)
			if err != nil {
				return nil, err
			}
			files = append(files, found...)
		}
	}
	return files, nil
}

func collectDir(dir string, recursive bool) ([]File, error) {
	var files []File
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("-f %s: %w", dir, unwrapPathError(err))
		}
		if d.IsDir() {
			if p != dir && !recursive {
				return fs.SkipDir
			}
			return nil
		}
		if !manifestExt(p) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("-f %s: %w", dir, unwrapPathError(err))
		}
		files = append(files, File{Name: p, Data: data})
		return nil
	})
	return files, err
}

// unwrapPathError keeps the cause of an *fs.PathError, since the message names the path already.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// FilesOf lists the manifest files at the root of fsys (not recursive, like `kubectl apply -f
// DIR`) in name order: *.yaml, *.yml and *.json.
func FilesOf(fsys fs.FS) ([]File, error) {
	if fsys == nil {
		return nil, errors.New("no manifest directory")
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("reading manifest directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && manifestExt(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	files := make([]File, 0, len(names))
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		files = append(files, File{Name: name, Data: data})
	}
	return files, nil
}
