package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// DisruptionKind names one way pods die: the rolling restart, or one of the others.
type DisruptionKind string

// The disruptions a drill can apply at its trigger time.
const (
	DisruptRestart DisruptionKind = "restart" // kubectl rollout restart
	DisruptDelete  DisruptionKind = "delete"  // kubectl delete pod: graceful
	DisruptEvict   DisruptionKind = "evict"   // the Eviction API, honouring PodDisruptionBudgets
	DisruptDrain   DisruptionKind = "drain"   // cordon a node, evict the Deployment's pods on it, uncordon
	DisruptKill    DisruptionKind = "kill"    // SIGKILL to the container's process: a crash, no preStop, no grace
	DisruptScale   DisruptionKind = "scale"   // replicas to --to, and back after the settle time
)

// DisruptionKinds lists every kind, in the order a matrix shows them.
var DisruptionKinds = []DisruptionKind{DisruptRestart, DisruptDelete, DisruptEvict, DisruptDrain, DisruptKill, DisruptScale}

// ParseDisruptionKind accepts one of DisruptionKinds.
func ParseDisruptionKind(s string) (DisruptionKind, error) {
	k := DisruptionKind(strings.ToLower(strings.TrimSpace(s)))
	if slices.Contains(DisruptionKinds, k) {
		return k, nil
	}
	names := make([]string, len(DisruptionKinds))
	for i, k := range DisruptionKinds {
		names[i] = string(k)
	}
	return "", fmt.Errorf("unknown disruption %q (one of %s)", s, strings.Join(names, ", "))
}

// Defaults of a Disruption, as kubectl drain has them.
const (
	DefaultEvictionTimeout = 2 * time.Minute
	EvictionRetryEvery     = 5 * time.Second // kubectl drain's wait between refused evictions
)

// Disruption is what happens to a Deployment at the drill's trigger time.
type Disruption struct {
	Kind  DisruptionKind
	Count int // delete, evict, kill: how many pods (0 means 1)
	// EvictionTimeout bounds the retries of a refused eviction (0: DefaultEvictionTimeout).
	EvictionTimeout time.Duration
	// To is scale's replica count; negative: one less than now.
	To int32
	// Node is the node a drain cordons; "" picks the node of the Deployment's oldest pod.
	Node string
	// RetryEvery is the wait between refused evictions (0: EvictionRetryEvery); tests shorten it.
	RetryEvery time.Duration
}

// Pod is a pod of a Deployment as a disruption chooses among them.
type Pod struct {
	Name    string
	Node    string
	Ready   bool
	Created time.Time
}

// Disrupter is what a cluster offers beyond the rolling restart; both back ends implement it
// and record the events of what they did (evicted, refused, cordoned, scaled, ...).
type Disrupter interface {
	// DeploymentPods lists the Deployment's pods that are not being deleted.
	DeploymentPods(ctx context.Context, deployment string) ([]Pod, error)
	// DeletePod deletes a pod gracefully, as `kubectl delete pod`.
	DeletePod(ctx context.Context, pod string) error
	// EvictPod asks the Eviction API; a PodDisruptionBudget's refusal is *EvictionRefusedError.
	EvictPod(ctx context.Context, pod string) error
	// KillContainer SIGKILLs the pod's container process and returns once it has died.
	KillContainer(ctx context.Context, pod string) error
	// Cordon marks a node unschedulable and records on it that gracelab did; ErrCordoned when
	// it already was (then it is not gracelab's to uncordon).
	Cordon(ctx context.Context, node string) error
	// Uncordon undoes Cordon (only on a node gracelab cordoned).
	Uncordon(ctx context.Context, node string) error
	// Scale sets the Deployment's replicas and returns the previous count.
	Scale(ctx context.Context, deployment string, replicas int32) (int32, error)
}

// ErrCordoned: the node was unschedulable before gracelab came.
var ErrCordoned = errors.New("the node is already cordoned")

// CordonedByAnnotation marks a node gracelab cordoned, so a later run can uncordon it.
const CordonedByAnnotation = "gracelab.io/cordoned-by"

// EvictionRefusedError is the Eviction API's HTTP 429: a PodDisruptionBudget allows no
// disruption now.
type EvictionRefusedError struct {
	Pod    string
	Reason string // the API's message
}

func (e *EvictionRefusedError) Error() string {
	return fmt.Sprintf("eviction of pod %s refused: %s", e.Pod, e.Reason)
}

// Restore undoes what a disruption left changed (a cordon, a scale); it runs once, with a
// context of its own so an interrupted drill still restores.
type Restore func(context.Context) error

// Disrupt applies d to the Deployment's pods through the cluster. say, when set, gets one line
// per thing worth showing (a refused eviction and how long it has waited). The Restore it
// returns (nil when nothing needs undoing) must be called, also after an error.
func Disrupt(ctx context.Context, c Disrupter, deployment string, d Disruption, say func(string)) (Restore, error) {
	if say == nil {
		say = func(string) {}
	}
	if d.Count <= 0 {
		d.Count = 1
	}
	if d.EvictionTimeout <= 0 {
		d.EvictionTimeout = DefaultEvictionTimeout
	}
	if d.RetryEvery <= 0 {
		d.RetryEvery = EvictionRetryEvery
	}
	switch d.Kind {
	case DisruptDelete, DisruptEvict, DisruptKill:
		pods, err := choose(ctx, c, deployment, d.Count)
		if err != nil {
			return nil, err
		}
		for _, p := range pods {
			switch d.Kind {
			case DisruptDelete:
				err = c.DeletePod(ctx, p.Name)
			case DisruptEvict:
				err = evict(ctx, c, p.Name, d, say)
			case DisruptKill:
				err = c.KillContainer(ctx, p.Name)
			}
			if err != nil {
				return nil, err
			}
		}
		return nil, nil
	case DisruptDrain:
		return drain(ctx, c, deployment, d, say)
	case DisruptScale:
		return scale(ctx, c, deployment, d, say)
	}
	return nil, fmt.Errorf("disruption %q is not applied through Disrupt", d.Kind)
}

// choose picks n of the Deployment's pods, oldest first (the ones a rollout would also
// replace first), or fails when it has fewer.
func choose(ctx context.Context, c Disrupter, deployment string, n int) ([]Pod, error) {
	pods, err := c.DeploymentPods(ctx, deployment)
	if err != nil {
		return nil, err
	}
	if len(pods) < n {
		return nil, fmt.Errorf("deployment %s has %d pods, fewer than --count %d", deployment, len(pods), n)
	}
	sortOldestFirst(pods)
	return pods[:n], nil
}

func sortOldestFirst(pods []Pod) {
	sort.SliceStable(pods, func(i, j int) bool {
		if !pods[i].Created.Equal(pods[j].Created) {
			return pods[i].Created.Before(pods[j].Created)
		}
		return pods[i].Name < pods[j].Name
	})
}

// evict retries a refused eviction every RetryEvery until EvictionTimeout, as kubectl drain.
func evict(ctx context.Context, c Disrupter, pod string, d Disruption, say func(string)) error {
	start := time.Now()
	for {
		err := c.EvictPod(ctx, pod)
		var refused *EvictionRefusedError
		if !errors.As(err, &refused) {
			return err
		}
		waited := time.Since(start)
		if waited+d.RetryEvery > d.EvictionTimeout {
			return fmt.Errorf("%w; still refused after %s (--eviction-timeout %s)", err, waited.Round(time.Second), d.EvictionTimeout)
		}
		say(fmt.Sprintf("%s; waited %s, retrying in %s", refused.Error(), waited.Round(time.Second), d.RetryEvery))
		t := time.NewTimer(d.RetryEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("evicting pod %s: %w", pod, ctx.Err())
		case <-t.C:
		}
	}
}

// drain cordons the node and evicts the Deployment's pods on it, all at once, each retrying
// as kubectl drain does. Unlike kubectl drain it never evicts other workloads' pods. The
// Restore uncordons the node, only if this drain cordoned it.
func drain(ctx context.Context, c Disrupter, deployment string, d Disruption, say func(string)) (Restore, error) {
	pods, err := c.DeploymentPods(ctx, deployment)
	if err != nil {
		return nil, err
	}
	node := d.Node
	if node == "" {
		if len(pods) == 0 {
			return nil, fmt.Errorf("deployment %s has no pod, so no node to drain", deployment)
		}
		sortOldestFirst(pods)
		node = pods[0].Node
	}
	var restore Restore
	switch err := c.Cordon(ctx, node); {
	case errors.Is(err, ErrCordoned):
		say(fmt.Sprintf("node %s was already cordoned: draining it, leaving it cordoned", node))
	case err != nil:
		return nil, err
	default:
		var once sync.Once
		restore = func(ctx context.Context) error {
			var err error
			once.Do(func() { err = c.Uncordon(ctx, node) })
			return err
		}
	}
	var names []string
	for _, p := range pods {
		if p.Node == node {
			names = append(names, p.Name)
		}
	}
	say(fmt.Sprintf("draining node %s: evicting %s's pods on it (%s); other workloads' pods stay", node, deployment, strings.Join(names, ", ")))
	var wg sync.WaitGroup
	errs := make([]error, len(pods))
	for i, p := range pods {
		if p.Node != node {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = evict(ctx, c, p.Name, d, say)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return restore, fmt.Errorf("draining node %s: %w", node, err)
	}
	return restore, nil
}

// scale sets the replicas to d.To (or one less) and returns the Restore that scales back.
func scale(ctx context.Context, c Disrupter, deployment string, d Disruption, say func(string)) (Restore, error) {
	to := d.To
	if to < 0 {
		pods, err := c.DeploymentPods(ctx, deployment)
		if err != nil {
			return nil, err
		}
		to = max(int32(len(pods))-1, 0)
	}
	prev, err := c.Scale(ctx, deployment, to)
	if err != nil {
		return nil, err
	}
	say(fmt.Sprintf("scaled %s from %d to %d replicas; back to %d once it settles", deployment, prev, to, prev))
	var once sync.Once
	return func(ctx context.Context) error {
		var err error
		once.Do(func() { _, err = c.Scale(ctx, deployment, prev) })
		return err
	}, nil
}

// The events that mark when the drill triggered a disruption other than the restart (whose
// mark is RestartTriggered), named for what was asked of the cluster.
const (
	DeletionRequested EventKind = "deletion_requested" // delete: the drill deletes --count pods
	EvictionRequested EventKind = "eviction_requested" // evict: the drill asks the Eviction API
	DrainRequested    EventKind = "drain_requested"    // drain: the drill cordons a node and evicts
	KillRequested     EventKind = "kill_requested"     // kill: the drill SIGKILLs container processes
	ScaleRequested    EventKind = "scale_requested"    // scale: the drill sets the replicas
)

// TriggerEvent is the event that marks when the drill triggered a disruption of kind k;
// RestartTriggered for the restart (and for "").
func (k DisruptionKind) TriggerEvent() EventKind {
	switch k {
	case DisruptDelete:
		return DeletionRequested
	case DisruptEvict:
		return EvictionRequested
	case DisruptDrain:
		return DrainRequested
	case DisruptKill:
		return KillRequested
	case DisruptScale:
		return ScaleRequested
	}
	return RestartTriggered
}

// IsTrigger reports whether e marks a disruption's trigger, of any kind.
func IsTrigger(e EventKind) bool {
	if e == RestartTriggered {
		return true
	}
	for _, k := range DisruptionKinds {
		if k.TriggerEvent() == e {
			return true
		}
	}
	return false
}
