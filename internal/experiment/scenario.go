package experiment

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// titles name the project's own scenarios in the report.
var titles = map[string]string{
	"v1": "v1 no protection",
	"v2": "v2 graceful",
	"v3": "v3 graceful + retry",
	// The pooled-POST race (docs/keepalive.md): unfixed, then fixed.
	"v2race":   "v2 pooled POST, unfixed",
	"v2pooled": "v2 pooled POST, fixed",
}

// Catalog lists the scenarios of a manifest tree: every top-level directory is one, named by
// the part of its name before the first '-' (v1-no-graceful -> v1). origin says where the tree
// comes from, for the report ("k8s").
func Catalog(tree fs.FS, origin string) ([]Scenario, error) {
	entries, err := fs.ReadDir(tree, ".")
	if err != nil {
		return nil, fmt.Errorf("listing the manifests: %w", err)
	}
	var out []Scenario
	seen := map[string]string{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name, _, _ := strings.Cut(e.Name(), "-")
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("manifest directories %s and %s both give scenario %s", prev, e.Name(), name)
		}
		seen[name] = e.Name()
		sub, err := fs.Sub(tree, e.Name())
		if err != nil {
			return nil, err
		}
		title := titles[name]
		if title == "" {
			title = name
		}
		out = append(out, Scenario{Name: name, Title: title, Manifests: origin + "/" + e.Name(), FS: sub})
	}
	if len(out) == 0 {
		return nil, errors.New("the manifest tree has no scenario directory")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Names lists a catalog's scenario names.
func Names(catalog []Scenario) []string {
	out := make([]string, len(catalog))
	for i, s := range catalog {
		out[i] = s.Name
	}
	return out
}

// Select picks scenarios by name, in the order given.
func Select(catalog []Scenario, names []string) ([]Scenario, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("no scenario given: choose from %s", strings.Join(Names(catalog), ", "))
	}
	var out []Scenario
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if seen[n] {
			return nil, fmt.Errorf("scenario %s is listed twice", n)
		}
		seen[n] = true
		s, ok := lookup(catalog, n)
		if !ok {
			return nil, fmt.Errorf("unknown scenario %q: choose from %s", n, strings.Join(Names(catalog), ", "))
		}
		out = append(out, s)
	}
	return out, nil
}

func lookup(catalog []Scenario, name string) (Scenario, bool) {
	for _, s := range catalog {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// FromDir makes a scenario of a directory of one's own, named after the directory.
func FromDir(path string) (Scenario, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Scenario{}, fmt.Errorf("manifests %s: %w", path, errors.Unwrap(err))
	}
	if !st.IsDir() {
		return Scenario{}, fmt.Errorf("manifests %s is a file: give the directory that holds the YAML", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Scenario{}, err
	}
	name := filepath.Base(abs)
	return Scenario{Name: name, Title: name, Manifests: path, FS: os.DirFS(abs)}, nil
}

// Resolve turns a -f argument into a scenario: a directory on disk wins; else a scenario name
// (v2) or the name of a catalog directory (k8s/v2-graceful/), so an installed binary without
// the source tree still finds the manifests it embeds.
func Resolve(arg string, catalog []Scenario) (Scenario, error) {
	if arg == "" {
		return Scenario{}, fmt.Errorf("no manifests given: a directory, or one of %s", strings.Join(Names(catalog), ", "))
	}
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		return FromDir(arg)
	}
	if s, ok := lookup(catalog, arg); ok {
		return s, nil
	}
	base := filepath.Base(filepath.Clean(arg))
	for _, s := range catalog {
		if filepath.Base(s.Manifests) == base {
			return s, nil
		}
	}
	return Scenario{}, fmt.Errorf("manifests %q: no such directory, and not one of the built-in scenarios %s", arg, strings.Join(Names(catalog), ", "))
}
