package localkube

import (
	"context"
	"time"
)

// The kubelet's start report, emulated. A real kubelet does not learn from its own start call
// that a container runs: its PLEG relists the runtime every second, and only the pod sync after
// the relist that finds the container running writes the status that says so. Until then no
// probe runs (the prober skips a container the status does not show running), and a container
// without a readiness probe is not ready (the prober manager's UpdatePodStatus: "no
// readinessProbe -> always ready" once running); at the report a readiness probe is run at
// once (its manual trigger). So a probe-less pod gets traffic up to a second after its
// process started, not at once (k8s.io/kubernetes v1.34 pkg/kubelet/prober; docs/fidelity.md).

// measuredStartReport: on the lab cluster (Kubernetes v1.34.4, generic PLEG, load 14-36), from
// a container's start (containerd's startedAt) to its pod's status first showing it running
// (a watch), 0th to 100th percentile in steps of 5, of 60 upstream containers (48 without
// probes, 12 with); docs/fidelity.md.
var measuredStartReport = lagQuantiles{
	43 * time.Millisecond, 133 * time.Millisecond, 159 * time.Millisecond, 237 * time.Millisecond,
	257 * time.Millisecond, 292 * time.Millisecond, 340 * time.Millisecond, 435 * time.Millisecond,
	497 * time.Millisecond, 537 * time.Millisecond, 594 * time.Millisecond, 654 * time.Millisecond,
	705 * time.Millisecond, 722 * time.Millisecond, 731 * time.Millisecond, 758 * time.Millisecond,
	821 * time.Millisecond, 834 * time.Millisecond, 890 * time.Millisecond, 951 * time.Millisecond,
	1040 * time.Millisecond,
}

// newStartReportSource draws start-report delays, from its own stream of the seed.
func newStartReportSource(seed uint64) *lagSource {
	return newDrawn(measuredStartReport, seed, 0x7f4a7c159e3779b9)
}

// awaitStartReport waits until the kubelet has reported inst running, a drawn delay after its
// process started; false when ctx ends first (the container exited, the pod is going away).
func (c *Cluster) awaitStartReport(ctx context.Context, inst *container) bool {
	t := time.NewTimer(time.Until(inst.started.Add(c.reports.next())))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
