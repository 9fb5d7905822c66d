package cli

import (
	"strings"
	"testing"
)

func TestClusterUpBadSandbox(t *testing.T) {
	code, stdout, stderr := runMain("cluster", "up", "-f", "v2", "--sandbox", "vm")
	if code != ExitBadArgs || stdout != "" || !strings.Contains(stderr, "--sandbox must be auto, ns or none") {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 naming --sandbox", code, stdout, stderr)
	}
}
