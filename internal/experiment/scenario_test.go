package experiment

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

var tree = fstest.MapFS{
	"v1-no-graceful/upstream.yaml":    {Data: []byte("a")},
	"v2-graceful/upstream.yaml":       {Data: []byte("b")},
	"v3-graceful-retry/upstream.yaml": {Data: []byte("c")},
	"README.md":                       {Data: []byte("not a scenario")},
}

func TestCatalog(t *testing.T) {
	cat, err := Catalog(tree, "k8s")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(Names(cat), ","); got != "v1,v2,v3" {
		t.Fatalf("names %s", got)
	}
	if cat[0].Title != "v1 no protection" || cat[2].Title != "v3 graceful + retry" || cat[1].Manifests != "k8s/v2-graceful" {
		t.Fatalf("catalog %+v", cat)
	}
	b, err := fs.ReadFile(cat[1].FS, "upstream.yaml")
	if err != nil || string(b) != "b" {
		t.Fatalf("v2's FS is not its directory: %q %v", b, err)
	}

	if _, err := Catalog(fstest.MapFS{"x.yaml": {}}, "k8s"); err == nil {
		t.Error("a tree without directories should be an error")
	}
	dup := fstest.MapFS{"v1-a/x.yaml": {}, "v1-b/x.yaml": {}}
	if _, err := Catalog(dup, "k8s"); err == nil || !strings.Contains(err.Error(), "both give scenario v1") {
		t.Errorf("duplicate names: %v", err)
	}
}

func TestSelect(t *testing.T) {
	cat, _ := Catalog(tree, "k8s")
	got, err := Select(cat, []string{"v3", " v1"})
	if err != nil || len(got) != 2 || got[0].Name != "v3" || got[1].Name != "v1" {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{nil, "no scenario given: choose from v1, v2, v3"},
		{[]string{"v4"}, `unknown scenario "v4": choose from v1, v2, v3`},
		{[]string{"v1", "v1"}, "listed twice"},
	} {
		if _, err := Select(cat, tc.names); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Select(%v) = %v, want %q", tc.names, err, tc.want)
		}
	}
}

func TestResolve(t *testing.T) {
	cat, _ := Catalog(tree, "k8s")
	dir := filepath.Join(t.TempDir(), "my-app")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.yaml"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Resolve(dir, cat)
	if err != nil || s.Name != "my-app" || s.Manifests != dir {
		t.Fatalf("own dir: %+v %v", s, err)
	}
	if b, _ := fs.ReadFile(s.FS, "app.yaml"); string(b) != "mine" {
		t.Fatal("own dir FS does not read the directory")
	}
	for _, arg := range []string{"v2", "k8s/v2-graceful/", "v2-graceful"} {
		s, err := Resolve(arg, cat)
		if err != nil || s.Name != "v2" {
			t.Errorf("Resolve(%q) = %+v, %v; want the embedded v2", arg, s.Name, err)
		}
	}
	if _, err := Resolve("nowhere/at-all", cat); err == nil || !strings.Contains(err.Error(), "no such directory, and not one of the built-in scenarios v1, v2, v3") {
		t.Errorf("unknown: %v", err)
	}
	if _, err := FromDir(filepath.Join(dir, "app.yaml")); err == nil || !strings.Contains(err.Error(), "is a file") {
		t.Errorf("file: %v", err)
	}
	if _, err := FromDir(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("missing: %v", err)
	}
}
