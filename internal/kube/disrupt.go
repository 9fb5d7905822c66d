package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gracelab/gracelab/internal/cluster"
)

// The disruptions other than the rolling restart, through the API as kubectl does them:
// delete (kubectl delete pod), evict (the Eviction subresource, which honours
// PodDisruptionBudgets and answers 429 when one forbids), cordon and uncordon (kubectl
// cordon: spec.unschedulable, plus our annotation so a later run can repair a node a crashed
// run left cordoned), and scale (the scale subresource). Killing a container's process needs
// a helper pod on the node: killhelper.go.

var _ cluster.Disrupter = (*Cluster)(nil)

// DeploymentPods lists the Deployment's pods that are not being deleted.
func (c *Cluster) DeploymentPods(ctx context.Context, deployment string) ([]cluster.Pod, error) {
	d, err := c.client.AppsV1().Deployments(c.namespace).Get(ctx, deployment, metav1.GetOptions{})
	if err != nil {
		return nil, apiError(err, "get", "deployments.apps", c.namespace)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("deployment %q has an invalid selector: %w", deployment, err)
	}
	list, err := c.client.CoreV1().Pods(c.namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, apiError(err, "list", "pods", c.namespace)
	}
	var out []cluster.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		out = append(out, cluster.Pod{Name: p.Name, Node: p.Spec.NodeName, Ready: podReady(&p), Created: p.CreationTimestamp.Time})
	}
	return out, nil
}

// DeletePod deletes a pod with its own grace period, as `kubectl delete pod`.
func (c *Cluster) DeletePod(ctx context.Context, name string) error {
	if err := c.client.CoreV1().Pods(c.namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return apiError(err, "delete", "pods", c.namespace)
	}
	return c.awaitTerminating(ctx, name)
}

// EvictPod asks the Eviction API to evict the pod; a PodDisruptionBudget's 429 is
// *cluster.EvictionRefusedError and an eviction_refused event.
func (c *Cluster) EvictPod(ctx context.Context, name string) error {
	ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.namespace}}
	err := c.client.CoreV1().Pods(c.namespace).EvictV1(ctx, ev)
	if apierrors.IsTooManyRequests(err) {
		reason := evictionReason(err)
		c.record(cluster.Event{Kind: cluster.EvictionRefused, Pod: name, Detail: reason, Source: cluster.SourceDrill})
		return &cluster.EvictionRefusedError{Pod: name, Reason: reason}
	}
	if err != nil {
		return apiError(err, "create", "pods/eviction", c.namespace)
	}
	c.record(cluster.Event{Kind: cluster.PodEvicted, Pod: name, Source: cluster.SourceDrill})
	return c.awaitTerminating(ctx, name)
}

// evictionReason is the 429's message with the budget's cause ("The disruption budget X
// needs N healthy pods and has M currently").
func evictionReason(err error) string {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return err.Error()
	}
	s := st.Status()
	parts := []string{s.Message}
	if s.Details != nil {
		for _, cause := range s.Details.Causes {
			if cause.Message != "" {
				parts = append(parts, cause.Message)
			}
		}
	}
	return strings.Join(parts, " ")
}

// cordonedBy is what our annotation holds: who cordoned the node.
func (c *Cluster) cordonedBy() string { return "gracelab, namespace " + c.namespace }

// Cordon marks the node unschedulable with our annotation. A node already unschedulable is
// cluster.ErrCordoned, unless our annotation is on it: an earlier run crashed before it could
// uncordon, and this run adopts it, so its restore repairs the node.
func (c *Cluster) Cordon(ctx context.Context, node string) error {
	n, err := c.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return apiError(err, "get", "nodes", "")
	}
	if n.Spec.Unschedulable {
		if by, ours := n.Annotations[cluster.CordonedByAnnotation]; ours {
			c.record(cluster.Event{Kind: cluster.NodeCordoned, Node: node, Source: cluster.SourceDrill,
				Detail: "already cordoned by an earlier run (" + by + "): adopted, uncordoned afterwards"})
			return nil
		}
		return fmt.Errorf("node %s: %w", node, cluster.ErrCordoned)
	}
	if err := c.patchNode(ctx, node, true, c.cordonedBy()); err != nil {
		return err
	}
	c.record(cluster.Event{Kind: cluster.NodeCordoned, Node: node, Source: cluster.SourceDrill})
	return nil
}

// Uncordon makes a node we cordoned schedulable again and removes our annotation.
func (c *Cluster) Uncordon(ctx context.Context, node string) error {
	n, err := c.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return apiError(err, "get", "nodes", "")
	}
	if _, ours := n.Annotations[cluster.CordonedByAnnotation]; !ours {
		return fmt.Errorf("node %s was not cordoned by gracelab: left as it is", node)
	}
	if err := c.patchNode(ctx, node, false, ""); err != nil {
		return err
	}
	c.record(cluster.Event{Kind: cluster.NodeUncordoned, Node: node, Source: cluster.SourceDrill})
	return nil
}

// patchNode sets spec.unschedulable and our annotation (removed when by is "") in one patch.
func (c *Cluster) patchNode(ctx context.Context, node string, unschedulable bool, by string) error {
	var ann any // JSON null removes the key in a merge patch
	if by != "" {
		ann = by
	}
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{cluster.CordonedByAnnotation: ann}},
		"spec":     map[string]any{"unschedulable": unschedulable},
	})
	if _, err := c.client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager}); err != nil {
		return apiError(err, "patch", "nodes", "")
	}
	return nil
}

// Scale sets the Deployment's replicas through the scale subresource, as `kubectl scale`,
// and returns the previous count.
func (c *Cluster) Scale(ctx context.Context, deployment string, replicas int32) (int32, error) {
	deps := c.client.AppsV1().Deployments(c.namespace)
	sc, err := deps.GetScale(ctx, deployment, metav1.GetOptions{})
	if err != nil {
		return 0, apiError(err, "get", "deployments.apps/scale", c.namespace)
	}
	prev := sc.Spec.Replicas
	next := &autoscalingv1.Scale{ObjectMeta: sc.ObjectMeta, Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}
	if _, err := deps.UpdateScale(ctx, deployment, next, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil {
		return 0, apiError(err, "update", "deployments.apps/scale", c.namespace)
	}
	if d, err := deps.Get(ctx, deployment, metav1.GetOptions{}); err == nil {
		c.wrote(d) // WaitSettled judges the scaled Deployment, not the watch's older copy
	}
	c.record(cluster.Event{Kind: cluster.Scaled, Deployment: deployment, Source: cluster.SourceDrill,
		Detail: strconv.Itoa(int(prev)) + " -> " + strconv.Itoa(int(replicas))})
	return prev, nil
}

// awaitTerminating returns once the watch has seen the pod being deleted (or gone), so a
// WaitSettled after it waits for the pod instead of judging the state before.
func (c *Cluster) awaitTerminating(ctx context.Context, name string) error {
	if c.watch == nil {
		return nil
	}
	for {
		changed := c.watch.changes()
		p, err := c.watch.podLister.Pods(c.namespace).Get(name)
		if apierrors.IsNotFound(err) || (err == nil && p.DeletionTimestamp != nil) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for pod %s to terminate: %w", name, ctx.Err())
		case <-changed:
		}
	}
}
