package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/gracelab/gracelab/internal/cluster"
)

const (
	// restartedAtAnnotation is what `kubectl rollout restart` sets on the pod template.
	restartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"
	// revisionAnnotation is the deployment controller's revision number, on the Deployment and
	// on each of its ReplicaSets.
	revisionAnnotation = "deployment.kubernetes.io/revision"
	// timedOutReason is the Progressing condition's reason once progressDeadlineSeconds passed.
	timedOutReason = "ProgressDeadlineExceeded"
)

// RolloutStatus judges a Deployment as `kubectl rollout status` does (kubectl's
// DeploymentStatusViewer, copied to avoid importing k8s.io/kubectl): done only once the
// controller has observed the latest spec, every replica is updated, no old replica is left and
// every updated replica is available. The Available condition alone is no proof: it stays true
// mid-rollout. A Progressing condition with reason ProgressDeadlineExceeded is an error.
func RolloutStatus(d *appsv1.Deployment) (message string, done bool, err error) {
	if d.Generation > d.Status.ObservedGeneration {
		return "waiting for the deployment spec update to be observed", false, nil
	}
	if c := deploymentCondition(d, appsv1.DeploymentProgressing); c != nil && c.Reason == timedOutReason {
		return "", false, fmt.Errorf("deployment %q exceeded its progress deadline", d.Name)
	}
	if d.Spec.Replicas != nil && d.Status.UpdatedReplicas < *d.Spec.Replicas {
		return fmt.Sprintf("%d out of %d new replicas have been updated", d.Status.UpdatedReplicas, *d.Spec.Replicas), false, nil
	}
	if d.Status.Replicas > d.Status.UpdatedReplicas {
		return fmt.Sprintf("%d old replicas are pending termination", d.Status.Replicas-d.Status.UpdatedReplicas), false, nil
	}
	if d.Status.AvailableReplicas < d.Status.UpdatedReplicas {
		return fmt.Sprintf("%d of %d updated replicas are available", d.Status.AvailableReplicas, d.Status.UpdatedReplicas), false, nil
	}
	return "successfully rolled out", true, nil
}

func deploymentCondition(d *appsv1.Deployment, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == t {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

// describeConditions lists a Deployment's conditions and counts for an error message.
func describeConditions(d *appsv1.Deployment) string {
	var parts []string
	for _, c := range d.Status.Conditions {
		s := fmt.Sprintf("%s=%s", c.Type, c.Status)
		if c.Reason != "" || c.Message != "" {
			s += fmt.Sprintf(" (%s: %s)", c.Reason, c.Message)
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		parts = append(parts, "no conditions reported")
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	return fmt.Sprintf("%s; replicas %d wanted, %d current, %d updated, %d ready, %d available",
		strings.Join(parts, ", "), want, d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas)
}

// RolloutRestart restarts a Deployment exactly as `kubectl rollout restart` does: a strategic
// merge patch that sets the kubectl.kubernetes.io/restartedAt pod-template annotation to the
// current time (RFC 3339), which makes a new template revision. Like kubectl it refuses a paused
// Deployment. It returns once the patch is accepted; the rollout itself goes on.
func RolloutRestart(ctx context.Context, client kubernetes.Interface, namespace, deployment string) error {
	_, _, err := rolloutRestart(ctx, client, namespace, deployment)
	return err
}

func rolloutRestart(ctx context.Context, client kubernetes.Interface, namespace, name string) (*appsv1.Deployment, string, error) {
	d, err := client.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, "", fmt.Errorf("deployment %q not found in namespace %q; check --namespace", name, namespace)
	}
	if err != nil {
		return nil, "", apiError(err, "get", "deployments.apps", namespace)
	}
	if d.Spec.Paused {
		return nil, "", fmt.Errorf("can't restart paused deployment %q (run kubectl rollout resume first)", name)
	}
	now := time.Now()
	stamp := now.Format(time.RFC3339)
	if d.Spec.Template.Annotations[restartedAtAnnotation] == stamp {
		// kubectl has one-second resolution: a second restart in the same second would change
		// nothing. Wait for the next second so every restart is a new revision.
		select {
		case <-ctx.Done():
			return nil, "", ctx.Err()
		case <-time.After(now.Truncate(time.Second).Add(time.Second).Sub(now)):
		}
		stamp = time.Now().Format(time.RFC3339)
	}
	patch, err := json.Marshal(map[string]any{
		"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
			"annotations": map[string]string{restartedAtAnnotation: stamp},
		}}},
	})
	if err != nil {
		return nil, "", err
	}
	patched, err := client.AppsV1().Deployments(namespace).Patch(ctx, name, types.StrategicMergePatchType, patch,
		metav1.PatchOptions{FieldManager: fieldManager})
	if err != nil {
		return nil, "", apiError(err, "patch", "deployments.apps", namespace)
	}
	return patched, stamp, nil
}

// FindNamespace finds the namespace of a gracelab run that holds the named Deployment, for
// `gracelab restart deployment NAME --cluster` in a second terminal without --namespace. It
// looks only at namespaces labelled as gracelab's and fails unless exactly one matches.
func FindNamespace(ctx context.Context, client kubernetes.Interface, deployment string) (string, error) {
	list, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: ownedSelector()})
	if err != nil {
		return "", apiError(err, "list", "namespaces", "")
	}
	var found []string
	for _, ns := range list.Items {
		if ns.DeletionTimestamp != nil {
			continue
		}
		_, err := client.AppsV1().Deployments(ns.Name).Get(ctx, deployment, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return "", apiError(err, "get", "deployments.apps", ns.Name)
		}
		found = append(found, ns.Name)
	}
	sort.Strings(found)
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no gracelab namespace holds deployment %q; pass --namespace", deployment)
	case 1:
		return found[0], nil
	default:
		return "", fmt.Errorf("deployment %q exists in several gracelab namespaces (%s); pass --namespace", deployment, strings.Join(found, ", "))
	}
}

// settleState is one look at a Deployment, its ReplicaSets and pods.
type settleState struct {
	deployment *appsv1.Deployment
	message    string
	done       bool   // RolloutStatus says done
	revision   string // the Deployment's current revision
	newRS      string // the ReplicaSet of that revision
	oldPods    []string
	problem    error // a pod that will not get better by waiting
}

func (s settleState) progressKey() string {
	st := s.deployment.Status
	return fmt.Sprintf("%d/%d/%d/%d/%d/%d/%s", st.ObservedGeneration, st.Replicas, st.UpdatedReplicas,
		st.ReadyReplicas, st.AvailableReplicas, len(s.oldPods), strings.Join(s.oldPods, ","))
}

// observe reads the Deployment, its ReplicaSets and its pods once, from the watches' caches.
// A Deployment older than the generation this Cluster last wrote (the watch has not delivered
// the write yet) is not done.
func (c *Cluster) observe(name string) (settleState, error) {
	ns := c.namespace
	d, err := c.watch.deployments.Deployments(ns).Get(name)
	if apierrors.IsNotFound(err) {
		if c.written(name) == 0 {
			return settleState{}, fmt.Errorf("deployment %q not found in namespace %q", name, ns)
		}
		return settleState{deployment: &appsv1.Deployment{}, message: "waiting for the watch to deliver the deployment"}, nil
	}
	if err != nil {
		return settleState{}, err
	}
	st := settleState{deployment: d, revision: d.Annotations[revisionAnnotation]}
	if d.Generation < c.written(name) {
		st.message = "waiting for the watch to deliver the latest write"
		return st, nil
	}
	st.message, st.done, err = RolloutStatus(d)
	if err != nil {
		return st, fmt.Errorf("%w: %s; see kubectl -n %s describe deployment %s", err, describeConditions(d), ns, name)
	}
	selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return st, fmt.Errorf("deployment %q has an invalid selector: %w", name, err)
	}
	sets, err := c.watch.replicaSets.ReplicaSets(ns).List(selector)
	if err != nil {
		return st, err
	}
	pods, err := c.watch.podLister.Pods(ns).List(selector)
	if err != nil {
		return st, err
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	newRS := newReplicaSet(d, sets)
	st.newRS = newRS
	for _, p := range pods {
		owner := metav1.GetControllerOf(p)
		if owner == nil || owner.Kind != "ReplicaSet" || !ownedByDeployment(owner.Name, d, sets) {
			continue
		}
		// A pod being deleted (a deletion, an eviction, a scale-down) is waited for too.
		if newRS == "" || owner.Name != newRS || p.DeletionTimestamp != nil {
			st.oldPods = append(st.oldPods, p.Name)
			continue
		}
		if st.problem == nil {
			st.problem = c.podProblem(p)
		}
	}
	return st, nil
}

// wrote remembers the generation of a Deployment this Cluster applied or patched, so waits do
// not judge the state the watch delivered before the write.
func (c *Cluster) wrote(d *appsv1.Deployment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.generations == nil {
		c.generations = map[string]int64{}
	}
	c.generations[d.Name] = max(c.generations[d.Name], d.Generation, 1)
}

func (c *Cluster) written(name string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.generations[name]
}

// newReplicaSet names the ReplicaSet of the Deployment's current revision ("" while the
// controller has not made it yet).
func newReplicaSet(d *appsv1.Deployment, sets []*appsv1.ReplicaSet) string {
	rev := d.Annotations[revisionAnnotation]
	best, bestRev := "", int64(-1)
	for _, rs := range sets {
		if !isControlledBy(rs, d) {
			continue
		}
		if rev != "" {
			if rs.Annotations[revisionAnnotation] == rev {
				return rs.Name
			}
			continue
		}
		// No revision on the Deployment yet: take the newest ReplicaSet.
		n, _ := strconv.ParseInt(rs.Annotations[revisionAnnotation], 10, 64)
		if n > bestRev {
			best, bestRev = rs.Name, n
		}
	}
	return best
}

func ownedByDeployment(rsName string, d *appsv1.Deployment, sets []*appsv1.ReplicaSet) bool {
	for _, rs := range sets {
		if rs.Name == rsName {
			return isControlledBy(rs, d)
		}
	}
	// The ReplicaSet is already gone while its pods terminate: judge by name.
	return strings.HasPrefix(rsName, d.Name+"-")
}

func isControlledBy(rs *appsv1.ReplicaSet, d *appsv1.Deployment) bool {
	ref := metav1.GetControllerOf(rs)
	if ref == nil || ref.Kind != "Deployment" {
		return false
	}
	if d.UID != "" && ref.UID != "" {
		return ref.UID == d.UID
	}
	return ref.Name == d.Name
}

// podProblem reports a pod that waiting will not fix: an image that cannot be pulled, a
// container that keeps crashing or cannot be created.
func (c *Cluster) podProblem(p *corev1.Pod) error {
	statuses := append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for _, s := range statuses {
		w := s.State.Waiting
		if w == nil {
			continue
		}
		switch w.Reason {
		case "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName":
			image := s.Image
			if image == "" {
				image = imageOfContainer(p, s.Name)
			}
			return fmt.Errorf("pod %s cannot get image %q for container %s (%s: %s); build it and load it into the cluster "+
				"(kind load docker-image %s, or minikube image load %s), or pass --image-%s with an image the cluster can pull",
				p.Name, image, s.Name, w.Reason, oneLine(w.Message), image, image, s.Name)
		case "CrashLoopBackOff":
			last := ""
			if t := s.LastTerminationState.Terminated; t != nil {
				last = fmt.Sprintf(", last exit code %d (%s)", t.ExitCode, t.Reason)
			}
			return fmt.Errorf("container %s of pod %s keeps crashing (CrashLoopBackOff%s); see kubectl -n %s logs %s -c %s --previous",
				s.Name, p.Name, last, p.Namespace, p.Name, s.Name)
		case "CreateContainerConfigError", "CreateContainerError", "RunContainerError":
			return fmt.Errorf("container %s of pod %s cannot start (%s: %s)", s.Name, p.Name, w.Reason, oneLine(w.Message))
		}
	}
	return nil
}

func imageOfContainer(p *corev1.Pod, name string) string {
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		if c.Name == name {
			return c.Image
		}
	}
	return "?"
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// waitSettled waits until the Deployment's rollout is complete by RolloutStatus and no pod of an
// older ReplicaSet is left, terminating ones included. It reads the watches' caches after every
// delivery. It fails at once on a pod problem or an exceeded progress deadline, and when nothing
// changes for RolloutTimeout. When record is set it records RolloutComplete the first time the
// rollout is judged complete.
func (c *Cluster) waitSettled(ctx context.Context, name string, record bool) error {
	var (
		lastKey      string
		lastProgress = time.Now()
		completeSeen bool
	)
	for {
		changed := c.watch.changes()
		st, err := c.observe(name)
		if err != nil {
			return err
		}
		if st.problem != nil {
			return st.problem
		}
		if st.done && !completeSeen {
			completeSeen = true
			if record {
				c.record(cluster.Event{Kind: cluster.RolloutComplete, Deployment: name, Revision: st.revision, Source: cluster.SourceAPI, Detail: "rollout status: " + st.message})
			}
		}
		if st.done && len(st.oldPods) == 0 {
			return nil
		}
		if key := st.progressKey(); key != lastKey {
			lastKey, lastProgress = key, time.Now()
		}
		idle := time.Since(lastProgress)
		if idle > c.opts.RolloutTimeout {
			what := st.message
			if st.done {
				what = fmt.Sprintf("old pods still present: %s", strings.Join(st.oldPods, ", "))
			}
			return fmt.Errorf("deployment %q made no progress for %s (%s): %s; see kubectl -n %s describe deployment %s",
				name, c.opts.RolloutTimeout, what, describeConditions(st.deployment), c.namespace, name)
		}
		idleLeft := time.NewTimer(c.opts.RolloutTimeout - idle + time.Millisecond)
		select {
		case <-ctx.Done():
			idleLeft.Stop()
			return fmt.Errorf("waiting for deployment %q: %w", name, ctx.Err())
		case <-changed:
		case <-idleLeft.C:
		}
		idleLeft.Stop()
	}
}
