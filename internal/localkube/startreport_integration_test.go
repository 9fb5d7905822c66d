//go:build linux

package localkube

import (
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

// TestIntegrationStartReport: the kubelet learns of a container's start only at its next
// relist (startreport.go). A pod without a readiness probe is ready no sooner than the
// shortest start report measured on a real kubelet, not the instant its process runs; a pod
// with a readiness probe is probed first at the report (an exec probe that always succeeds,
// so what it probes does not matter): ready then, not at the process's first instant, nor a
// period later.
func TestIntegrationStartReport(t *testing.T) {
	integration(t)
	t.Parallel()
	const period = 10 * time.Second
	bare := app{name: "bare", replicas: 2}
	probed := app{name: "probed", replicas: 2,
		readiness: "exec: {command: [/bin/true]}\nperiodSeconds: 10\n"}
	c := startCluster(t, Options{}, bare, probed)
	evs := c.Events()
	for _, p := range c.Pods() {
		started := eventOf(t, evs, p.Name, cluster.PodStarted)
		ready := eventOf(t, evs, p.Name, cluster.PodReady)
		gap := ready.Time.Sub(started.Time)
		if gap < measuredStartReport[0] {
			t.Errorf("pod %s ready %s after its process started, before the kubelet could report it (%s at the soonest)",
				p.Name, gap, measuredStartReport[0])
		}
		switch {
		case strings.HasPrefix(p.Name, "bare-"):
			if !strings.Contains(ready.Detail, "reported it started") {
				t.Errorf("pod %s: pod_ready says %q, not the kubelet's report", p.Name, ready.Detail)
			}
		case gap >= period/2:
			t.Errorf("pod %s ready %s after its start: its first probe did not wait for the report", p.Name, gap)
		}
	}
}
