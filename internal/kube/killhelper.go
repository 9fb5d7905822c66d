package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gracelab/gracelab/internal/cluster"
)

// The kill helper, for --disruption kill on a real cluster. Neither the API nor an exec can
// SIGKILL a container's first process: the API only deletes pods (gracefully), and inside the
// container's PID namespace its PID 1 ignores signals it has no handler for, SIGKILL included.
// So, when the user opts in, gracelab runs a pod with the host's PID namespace on the target
// pod's node; it runs `gracelab kill-container` (killproc.go), which finds the container's
// first process by its cgroup and SIGKILLs it, writes what it did as its termination message
// and exits. Timeline of one kill:
//
//	T0  read the target pod: its node, its container's ID and restartCount
//	    remove stale helpers an earlier, crashed run left (by label)
//	T1  create the helper pod, pinned to the node (nodeName: no scheduler)
//	T2  the helper's container ends: Succeeded (the kill done) or Failed (its message says why)
//	    record sigkill; delete the helper (also on failure and on cancel), wait until gone
//	T3  the watch sees the container dead (restartCount up or terminated): KillContainer returns
//	    the kubelet restarts it (its back-off); the watch records container_restarted
//
// The risk: the helper can signal every process of the node. It runs root with only
// CAP_KILL, no privilege escalation, a read-only root, no service-account token, and an
// activeDeadlineSeconds, so even a helper whose gracelab died is stopped and later removed.

// KillHelperDeadline is the helper pod's activeDeadlineSeconds: the kubelet stops it by then.
const KillHelperDeadline = 60 * time.Second

// Labels and annotations of a helper pod.
const (
	componentLabel       = "app.kubernetes.io/component"
	killHelperComponent  = "kill-helper"
	killTargetAnnotation = "gracelab.io/kill-target" // "POD/CONTAINER"
)

// killHelperSelector finds every kill helper gracelab made in a namespace.
func killHelperSelector() string {
	return managedByLabel + "=" + managedByValue + "," + componentLabel + "=" + killHelperComponent
}

// KillHelperPermissions is what the kill helper needs beyond a drill's permissions: it
// creates, reads, lists (stale ones) and deletes pods.
func KillHelperPermissions() []Permission {
	return []Permission{
		{Verb: "get", Resource: "pods"},
		{Verb: "list", Resource: "pods"},
		{Verb: "create", Resource: "pods"},
		{Verb: "delete", Resource: "pods"},
	}
}

// KillHelperPod is the helper pod that SIGKILLs container id (containerd://ID) on node.
func KillHelperPod(namespace, image, node, target, container, id string) *corev1.Pod {
	yes, no := true, false
	root := int64(0)
	deadline := int64(KillHelperDeadline / time.Second)
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "gracelab-kill-", Namespace: namespace,
			Labels: map[string]string{managedByLabel: managedByValue, componentLabel: killHelperComponent},
			Annotations: map[string]string{
				killTargetAnnotation: target + "/" + container,
				// A mesh sidecar would keep the pod running after the helper is done.
				"sidecar.istio.io/inject": "false",
				"linkerd.io/inject":       "disabled",
			},
		},
		Spec: corev1.PodSpec{
			NodeName:                      node, // the target's node, bypassing the scheduler
			HostPID:                       true, // the node's processes, to find and signal the container's
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         &deadline,
			TerminationGracePeriodSeconds: &grace,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			// Whatever taints the node has: the helper must run where the target runs.
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name: "kill", Image: image, ImagePullPolicy: corev1.PullIfNotPresent,
				Args: []string{"kill-container", "--container-id", id},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
				},
				TerminationMessagePolicy: corev1.TerminationMessageReadFile,
				SecurityContext: &corev1.SecurityContext{
					// Root with CAP_KILL signals a process of any user; /proc/PID/{cgroup,stat,status}
					// are readable by anyone.
					RunAsUser: &root, RunAsNonRoot: &no,
					AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes,
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"KILL"}},
				},
			}},
		},
	}
}

// CheckKillHelper creates a helper pod as a server-side dry run: admission answers as it
// would for the real one (Pod Security, quotas, webhooks), before anything starts.
func CheckKillHelper(ctx context.Context, client kubernetes.Interface, namespace, image string) error {
	pod := KillHelperPod(namespace, image, "", "dry-run", "dry-run", strings.Repeat("0", 64))
	_, err := client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: fieldManager})
	if err != nil {
		return killHelperCreateError(err, namespace)
	}
	return nil
}

// killHelperCreateError explains a refused helper pod; Pod Security admission's refusal gets
// what to do about it.
func killHelperCreateError(err error, namespace string) error {
	if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "PodSecurity") {
		return fmt.Errorf("the kill helper pod is refused in namespace %q: %v; it needs the privileged Pod Security level (hostPID, root, CAP_KILL): "+
			"label the namespace pod-security.kubernetes.io/enforce=privileged if that risk is acceptable there, or drill without --disruption kill", namespace, apiMessage(err))
	}
	return apiError(err, "create", "pods (the kill helper)", namespace)
}

func apiMessage(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return st.Status().Message
	}
	return err.Error()
}

// EnableKillHelper opts in to KillContainer on this cluster, with the helper pods running
// image (gracelab's own image: it holds the kill-container command).
func (c *Cluster) EnableKillHelper(image string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.killImage = image
}

// KillContainer SIGKILLs the pod's container process through a helper pod on its node, and
// returns once the watch has seen the container die. The helper pod is deleted before it
// returns, whatever happened; RemoveKillHelpers is the backstop for a second Ctrl-C.
func (c *Cluster) KillContainer(ctx context.Context, name string) (err error) {
	c.mu.Lock()
	image := c.killImage
	c.mu.Unlock()
	if image == "" {
		return errors.New("killing a container on a real cluster needs the privileged kill helper: opt in with --kill-helper IMAGE (docs/disruptions.md)")
	}
	ns := c.namespace
	pods := c.client.CoreV1().Pods(ns)
	target, err := pods.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return apiError(err, "get", "pods", ns)
	}
	status, err := killableContainer(target)
	if err != nil {
		return err
	}
	c.removeStaleKillHelpers(ctx)

	helper := KillHelperPod(ns, image, target.Spec.NodeName, name, status.Name, status.ContainerID)
	sent := time.Now()
	created, err := pods.Create(ctx, helper, metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil {
		return killHelperCreateError(err, ns)
	}
	c.trackKillHelper(created.Name, true)
	defer func() {
		// Not ctx: an interrupted kill still removes its helper.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		err = errors.Join(err, c.deleteKillHelper(dctx, created.Name))
	}()
	msg, err := c.awaitKillHelper(ctx, created.Name)
	if err != nil {
		return fmt.Errorf("killing pod %s's container %s on node %s: %w", name, status.Name, target.Spec.NodeName, err)
	}
	msg, at := killedAt(msg, sent, time.Now())
	c.recordAt(cluster.Event{Kind: cluster.SIGKILLSent, Pod: name, Node: target.Spec.NodeName, Source: cluster.SourceDrill,
		Detail: "killed: a crash or an OOM kill (" + msg + ", by helper pod " + created.Name + ")"}, at)
	return c.awaitContainerDead(ctx, name, status)
}

// KilledAtSeparator ends the helper's message before the instant of the kill (RFC 3339).
const KilledAtSeparator = " at "

// killedAt splits the helper's message from the instant of the kill, which it reads on the
// node's clock; clamped between the helper's creation and its end as this machine saw them,
// so a skewed node clock cannot move the event out of that window. Without an instant: seen.
func killedAt(msg string, created, seen time.Time) (string, time.Time) {
	i := strings.LastIndex(msg, KilledAtSeparator)
	if i < 0 {
		return msg, seen
	}
	at, err := time.Parse(time.RFC3339Nano, msg[i+len(KilledAtSeparator):])
	if err != nil {
		return msg, seen
	}
	switch {
	case at.Before(created):
		at = created
	case at.After(seen):
		at = seen
	}
	return msg[:i], at
}

// recordAt records an event that happened at a known instant before now, in its place on the
// timeline.
func (c *Cluster) recordAt(e cluster.Event, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.Time = at
	i := sort.Search(len(c.events), func(i int) bool { return c.events[i].Time.After(at) })
	c.events = slices.Insert(c.events, i, e)
}

// killableContainer is the pod's container to kill: kubectl's default container (the
// kubectl.kubernetes.io/default-container annotation), else the first; it must be running.
func killableContainer(p *corev1.Pod) (corev1.ContainerStatus, error) {
	want := p.Annotations["kubectl.kubernetes.io/default-container"]
	if want == "" && len(p.Spec.Containers) > 0 {
		want = p.Spec.Containers[0].Name
	}
	for _, s := range p.Status.ContainerStatuses {
		if s.Name != want {
			continue
		}
		if s.State.Running == nil || s.ContainerID == "" {
			return s, fmt.Errorf("pod %s: container %s is not running, nothing to kill", p.Name, s.Name)
		}
		if _, err := ParseContainerID(s.ContainerID); err != nil {
			return s, fmt.Errorf("pod %s: %w", p.Name, err)
		}
		return s, nil
	}
	return corev1.ContainerStatus{}, fmt.Errorf("pod %s has no status for container %q yet, nothing to kill", p.Name, want)
}

// killHelperWaiting are the reasons a helper's container cannot start that waiting will not fix.
var killHelperWaiting = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}

// killHelperPoll is how often the helper pod is read while it runs (it lives about a second).
const killHelperPoll = 100 * time.Millisecond

// awaitKillHelper waits for the helper pod to end and returns its termination message, or
// why it failed.
func (c *Cluster) awaitKillHelper(ctx context.Context, helper string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, KillHelperDeadline+10*time.Second)
	defer cancel()
	tick := time.NewTicker(killHelperPoll)
	defer tick.Stop()
	for {
		p, err := c.client.CoreV1().Pods(c.namespace).Get(ctx, helper, metav1.GetOptions{})
		if err != nil && ctx.Err() == nil {
			return "", apiError(err, "get", "pods", c.namespace)
		}
		if err == nil {
			if done, msg, err := killHelperOutcome(p); done {
				return msg, err
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for kill helper pod %s: %w", helper, ctx.Err())
		case <-tick.C:
		}
	}
}

// killHelperOutcome reads a helper pod: done once it has ended or cannot start.
func killHelperOutcome(p *corev1.Pod) (done bool, msg string, err error) {
	var term *corev1.ContainerStateTerminated
	for _, s := range p.Status.ContainerStatuses {
		if w := s.State.Waiting; w != nil && killHelperWaiting[w.Reason] {
			return true, "", fmt.Errorf("kill helper pod %s cannot start: %s: %s", p.Name, w.Reason, w.Message)
		}
		term = s.State.Terminated
	}
	switch p.Status.Phase {
	case corev1.PodSucceeded:
		if term != nil {
			msg = strings.TrimSpace(term.Message)
		}
		return true, msg, nil
	case corev1.PodFailed:
		why := strings.TrimSpace(p.Status.Reason + " " + p.Status.Message)
		if term != nil {
			why = strings.TrimSpace(fmt.Sprintf("exit code %d: %s", term.ExitCode, strings.TrimSpace(term.Message)))
		}
		return true, "", fmt.Errorf("kill helper pod %s failed: %s", p.Name, why)
	}
	return false, "", nil
}

// awaitContainerDead returns once the watch shows the killed container dead: terminated, a
// new container ID, or a higher restartCount.
func (c *Cluster) awaitContainerDead(ctx context.Context, pod string, before corev1.ContainerStatus) error {
	if c.watch == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		changed := c.watch.changes()
		p, err := c.watch.podLister.Pods(c.namespace).Get(pod)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err == nil {
			for _, s := range p.Status.ContainerStatuses {
				if s.Name == before.Name && (s.State.Terminated != nil || s.ContainerID != before.ContainerID || s.RestartCount > before.RestartCount) {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the helper killed pod %s's container %s, but the watch did not see it die: %w", pod, before.Name, ctx.Err())
		case <-changed:
		}
	}
}

func (c *Cluster) trackKillHelper(name string, live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.killHelpers == nil {
		c.killHelpers = map[string]bool{}
	}
	if live {
		c.killHelpers[name] = true
	} else {
		delete(c.killHelpers, name)
	}
}

// deleteKillHelper deletes a helper pod at once and waits until it is gone.
func (c *Cluster) deleteKillHelper(ctx context.Context, name string) error {
	pods := c.client.CoreV1().Pods(c.namespace)
	zero := int64(0)
	err := pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing kill helper pod %s: %w (delete it: kubectl -n %s delete pod %s)", name, apiError(err, "delete", "pods", c.namespace), c.namespace, name)
	}
	err = c.poll(ctx, "kill helper pod "+name+" to be deleted", func() (bool, error) {
		_, err := pods.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return fmt.Errorf("removing kill helper pod %s: %w", name, err)
	}
	c.trackKillHelper(name, false)
	return nil
}

// RemoveKillHelpers deletes every helper pod this cluster created that is still there (a
// second Ctrl-C can cut KillContainer short before its own clean-up).
func (c *Cluster) RemoveKillHelpers(ctx context.Context) error {
	c.mu.Lock()
	var names []string
	for n := range c.killHelpers {
		names = append(names, n)
	}
	c.mu.Unlock()
	var errs []error
	for _, n := range names {
		errs = append(errs, c.deleteKillHelper(ctx, n))
	}
	return errors.Join(errs...)
}

// removeStaleKillHelpers deletes the helper pods an earlier run left (it crashed, or was
// killed): those that have ended or outlived their deadline. A younger running one may be
// another run's at work and is left alone. Each removal is a warning of the report.
func (c *Cluster) removeStaleKillHelpers(ctx context.Context) {
	list, err := c.client.CoreV1().Pods(c.namespace).List(ctx, metav1.ListOptions{LabelSelector: killHelperSelector()})
	if err != nil {
		c.opts.Logger.Warn("listing stale kill helpers", "err", err)
		return
	}
	for _, p := range list.Items {
		c.mu.Lock()
		ours := c.killHelpers[p.Name]
		c.mu.Unlock()
		ended := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
		old := time.Since(p.CreationTimestamp.Time) > KillHelperDeadline+30*time.Second
		if ours || !(ended || old || p.DeletionTimestamp != nil) {
			continue
		}
		msg := fmt.Sprintf("removed kill helper pod %s left by an earlier run (%s)", p.Name, p.Status.Phase)
		if err := c.deleteKillHelper(ctx, p.Name); err != nil {
			msg = err.Error()
		}
		c.opts.Logger.Info(msg)
		c.mu.Lock()
		c.warnings = append(c.warnings, msg)
		c.mu.Unlock()
	}
}
