package ablate

import (
	"math"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/gracelab/gracelab/internal/check"
	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/manifest"
)

// RolloutGuess estimates how long a rolling restart of the named Deployment takes, for the
// time estimate printed before an ablation runs: one step per batch of new pods (maxSurge +
// maxUnavailable at a time), each the pod's start (podStart) plus its readiness probe's first
// success, then the last old pod's preStop delay and exit (a second). It is a guess; the
// progress corrects it with what was measured.
func RolloutGuess(docs []manifest.Document, deployment string, podStart time.Duration) time.Duration {
	g, ok := guessOf(docs, deployment, podStart)
	if !ok {
		return 10 * time.Second // the demo's v2 rollout, when the Deployment is not in docs
	}
	return time.Duration(g.steps)*g.step + g.prestop + time.Second
}

// DisruptionGuess estimates how long n disruptions of kind (each of count pods) take to
// settle, in all, as RolloutGuess does for restarts:
//   - delete, evict: the pod's preStop and exit, then its replacement's start (the embedded
//     cluster creates it once the pod has exited); an eviction beyond a budget's allowance
//     waits for the previous replacement and kubectl drain's 5 s retry;
//   - drain: an eviction of the Deployment's pods on one of two nodes;
//   - kill: the restart of the same container (the oldest pod's), after the kubelet's back-off
//     (0, 10 s, 20 s, ... since the container never runs the 10 minutes that reset it);
//   - scale: the removed pod's preStop and exit, then the scale-back's new pod.
func DisruptionGuess(docs []manifest.Document, deployment string, podStart time.Duration, kind cluster.DisruptionKind, count, n int) time.Duration {
	n, count = max(n, 1), max(count, 1)
	if kind == "" || kind == cluster.DisruptRestart {
		return time.Duration(n) * RolloutGuess(docs, deployment, podStart)
	}
	g, ok := guessOf(docs, deployment, podStart)
	if !ok {
		g = guess{replicas: 2, step: 2 * podStart, prestop: 5 * time.Second}
	}
	replace := g.prestop + time.Second + g.step // one pod out and its replacement in
	var one time.Duration
	switch kind {
	case cluster.DisruptDelete:
		one = replace
	case cluster.DisruptEvict:
		one = replace + time.Duration(count-1)*(cluster.EvictionRetryEvery+g.step)
	case cluster.DisruptDrain:
		onNode := int(math.Ceil(float64(g.replicas) / 2))
		one = replace + time.Duration(onNode-1)*(cluster.EvictionRetryEvery+g.step)
	case cluster.DisruptScale:
		one = replace
	case cluster.DisruptKill:
		var total time.Duration
		wait := time.Duration(0)
		for range n {
			total += wait + g.step
			wait = min(max(2*wait, 10*time.Second), 5*time.Minute)
		}
		return total
	default:
		one = replace
	}
	return time.Duration(n) * one
}

// guess is what the estimates read from a Deployment.
type guess struct {
	replicas, steps int
	step, prestop   time.Duration // a batch's start to ready; the longest preStop delay
}

func guessOf(docs []manifest.Document, deployment string, podStart time.Duration) (guess, bool) {
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
		g := guess{replicas: int(n), steps: int(math.Ceil(float64(n) / float64(batch))), step: podStart}
		for i := range d.Spec.Template.Spec.Containers {
			c := &d.Spec.Template.Spec.Containers[i]
			if p := c.ReadinessProbe; p != nil {
				g.step = max(g.step, podStart+time.Duration(p.InitialDelaySeconds+max(p.PeriodSeconds, 1))*time.Second)
			}
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
				if dl, ok := check.PrestopDelay(&d.Spec.Template, c); ok {
					g.prestop = max(g.prestop, dl)
				}
			}
		}
		return g, true
	}
	return guess{}, false
}
