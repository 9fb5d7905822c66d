package ablate

import (
	"math"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/gracelab/gracelab/internal/check"
	"github.com/gracelab/gracelab/internal/manifest"
)

// RolloutGuess estimates how long a rolling restart of the named Deployment takes, for the
// time estimate printed before an ablation runs: one step per batch of new pods (maxSurge +
// maxUnavailable at a time), each the pod's start (podStart) plus its readiness probe's first
// success, then the last old pod's preStop delay and exit (a second). It is a guess; the
// progress corrects it with what was measured.
func RolloutGuess(docs []manifest.Document, deployment string, podStart time.Duration) time.Duration {
	for _, doc := range docs {
		d, ok := doc.Object.(*appsv1.Deployment)
		if !ok || d.Name != deployment {
			continue
		}
		n := replicasOf(d)
		surge, unavailable, ok := resolveRollingUpdate(d.Spec.Strategy, n)
		batch := max(surge+unavailable, 1)
		if !ok { // Recreate: all at once
			batch = int(n)
		}
		steps := int(math.Ceil(float64(n) / float64(batch)))
		step := podStart
		var prestop time.Duration
		for i := range d.Spec.Template.Spec.Containers {
			c := &d.Spec.Template.Spec.Containers[i]
			if p := c.ReadinessProbe; p != nil {
				step = max(step, podStart+time.Duration(p.InitialDelaySeconds+max(p.PeriodSeconds, 1))*time.Second)
			}
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
				if dl, ok := check.PrestopDelay(&d.Spec.Template, c); ok {
					prestop = max(prestop, dl)
				}
			}
		}
		return time.Duration(steps)*step + prestop + time.Second
	}
	return 10 * time.Second // the demo's v2 rollout, when the Deployment is not in docs
}
