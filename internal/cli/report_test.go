package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gracelab/gracelab/internal/report"
)

// gracelab report re-prints a judged run's breaches after its table, once each (the table
// itself leaves them to the judging command's stderr).
func TestReportPrintsBreaches(t *testing.T) {
	r, err := report.Read("../report/testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	r.Breaches = []report.Breach{{Threshold: "max-errors", Scenario: "v1", Rollout: 2, Measured: 37, Limit: 0, Unit: "requests"}}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, report.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	code, stdout, stderr := runMain("report", dir)
	want := "threshold breached: v1 rollout 2: max-errors measured 37 requests, limit 0 requests\n"
	if code != ExitOK || stderr != "" || strings.Count(stdout, want) != 1 || strings.Index(stdout, want) < strings.Index(stdout, "requests") {
		t.Errorf("exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
}
