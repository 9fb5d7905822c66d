package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Read takes a report directory, its report.json, or a gzip-compressed schema-1 report.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := syntheticReport().WriteJSON(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, p := range []string{dir, filepath.Join(dir, FileName)} {
		r, err := Read(p)
		if err != nil || r.Schema != SchemaVersion || len(r.Scenarios[0].Rollouts) != 2 {
			t.Errorf("%s: %v", p, err)
		}
	}
	r, err := Read("../../docs/fidelity/e1.json.gz")
	if err != nil || r.Schema != 1 || len(r.Scenarios) != 3 || r.Scenarios[0].Errors == 0 {
		t.Fatalf("schema 1, gzipped: %v", err)
	}
	for path, want := range map[string]string{
		filepath.Join(dir, "nothing"):   "not found: give a report directory",
		"../../docs/fidelity":           "report.json not found",
		"../../docs/statistics.md":      "malformed JSON at line 1",
		filepath.Join(dir, "x.json.gz"): "",
	} {
		if strings.HasSuffix(path, ".gz") {
			os.WriteFile(path, []byte("plain"), 0o644)
			want = "gzip"
		}
		if _, err := Read(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
}
