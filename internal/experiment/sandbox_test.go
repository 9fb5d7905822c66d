package experiment

import (
	"context"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

// sandboxed is a scripted cluster that ran its pods with the shared loopback after auto fell
// back, as the embedded cluster reports it.
type sandboxed struct{ *scripted }

func (sandboxed) SandboxUsed() (string, string) { return "none", "user namespaces are forbidden" }

// The sandbox mode a cluster used reaches the scenario's report; a cluster without sandboxes
// leaves it empty.
func TestSandboxModeReachesTheReport(t *testing.T) {
	t.Parallel()
	j := &journal{}
	scripts := map[string]script{"a": {settleAfter: 200 * time.Millisecond}, "b": {settleAfter: 200 * time.Millisecond}}
	cfg := drillConfig(j, scripts, "a", "b")
	plain := cfg.Factory
	cfg.Factory = func(sc Scenario) (cluster.Cluster, error) {
		c, err := plain(sc)
		if err != nil || sc.Name != "a" {
			return c, err
		}
		return sandboxed{c.(*scripted)}, nil
	}
	out, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a := out[0]; a.Sandbox != "none" || a.SandboxFallback != "user namespaces are forbidden" {
		t.Errorf("scenario a: sandbox %q, fallback %q", a.Sandbox, a.SandboxFallback)
	}
	if b := out[1]; b.Sandbox != "" || b.SandboxFallback != "" {
		t.Errorf("scenario b, without sandboxes: sandbox %q, fallback %q", b.Sandbox, b.SandboxFallback)
	}
}
