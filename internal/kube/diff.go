package kube

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/gracelab/gracelab/internal/cluster"
)

// The pure half of the timeline: two states of a Pod or an EndpointSlice in, the transitions
// between them out. watch.go feeds them what the informers deliver.

// change is one transition found by comparing two states of an object.
type change struct {
	kind   cluster.EventKind
	detail string
}

// podChanges compares two states of a pod; prev is nil for a pod not seen before.
func podChanges(prev, cur *corev1.Pod) []change {
	var out []change
	if prev == nil {
		out = append(out, change{kind: cluster.PodCreated, detail: nodeDetail(cur)})
		prev = &corev1.Pod{}
	}
	if !running(prev) && running(cur) {
		out = append(out, change{kind: cluster.PodStarted})
	}
	if !podReady(prev) && podReady(cur) {
		out = append(out, change{kind: cluster.PodReady})
	}
	if podReady(prev) && !podReady(cur) {
		out = append(out, change{kind: cluster.PodNotReady})
	}
	if prev.DeletionTimestamp == nil && cur.DeletionTimestamp != nil {
		detail := ""
		if cur.DeletionGracePeriodSeconds != nil {
			detail = fmt.Sprintf("grace period %ds", *cur.DeletionGracePeriodSeconds)
		}
		out = append(out, change{kind: cluster.PodTerminating, detail: detail})
	}
	before := map[string]corev1.ContainerStatus{}
	for _, s := range prev.Status.ContainerStatuses {
		before[s.Name] = s
	}
	for _, s := range cur.Status.ContainerStatuses {
		old, seen := before[s.Name]
		switch {
		case s.State.Terminated != nil && (!seen || old.State.Terminated == nil || old.RestartCount != s.RestartCount):
			out = append(out, change{kind: cluster.PodExited, detail: exitDetail(s.Name, s.State.Terminated)})
		case seen && s.RestartCount > old.RestartCount && s.LastTerminationState.Terminated != nil && old.State.Terminated == nil:
			// The container exited and was restarted between two deliveries.
			out = append(out, change{kind: cluster.PodExited, detail: exitDetail(s.Name, s.LastTerminationState.Terminated)})
		}
		if seen && s.RestartCount > old.RestartCount {
			// The kubelet started the container again in the same pod (a crash, a kill).
			detail := fmt.Sprintf("restartCount %d", s.RestartCount)
			if len(cur.Status.ContainerStatuses) > 1 {
				detail += ", container " + s.Name
			}
			out = append(out, change{kind: cluster.ContainerRestarted, detail: detail})
		}
	}
	return out
}

func nodeDetail(p *corev1.Pod) string {
	if p.Spec.NodeName != "" {
		return "node " + p.Spec.NodeName
	}
	return ""
}

func exitDetail(container string, t *corev1.ContainerStateTerminated) string {
	d := fmt.Sprintf("container %s exit code %d", container, t.ExitCode)
	if t.Signal != 0 {
		d += fmt.Sprintf(" signal %d", t.Signal)
	}
	if t.Reason != "" {
		d += " (" + t.Reason + ")"
	}
	return d
}

func running(p *corev1.Pod) bool {
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Running != nil {
			return true
		}
	}
	return false
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// endpoint is the part of an EndpointSlice endpoint that the timeline reports.
type endpoint struct {
	pod, address, service       string
	ready, serving, terminating bool
}

func (e endpoint) detail() string {
	return fmt.Sprintf("%s ready=%t serving=%t terminating=%t (service %s)", e.address, e.ready, e.serving, e.terminating, e.service)
}

// endpointsOf keys a slice's endpoints by pod (or address when there is no pod reference). The
// API's nil conditions mean: ready unknown = ready, serving unknown = same as ready, terminating
// unknown = not terminating.
func endpointsOf(s *discoveryv1.EndpointSlice) map[string]endpoint {
	port := ""
	if len(s.Ports) > 0 && s.Ports[0].Port != nil {
		port = fmt.Sprintf(":%d", *s.Ports[0].Port)
	}
	out := map[string]endpoint{}
	for _, e := range s.Endpoints {
		ep := endpoint{service: s.Labels[discoveryv1.LabelServiceName]}
		if len(e.Addresses) > 0 {
			ep.address = e.Addresses[0] + port
		}
		if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
			ep.pod = e.TargetRef.Name
		}
		ep.ready = e.Conditions.Ready == nil || *e.Conditions.Ready
		ep.serving = ep.ready
		if e.Conditions.Serving != nil {
			ep.serving = *e.Conditions.Serving
		}
		ep.terminating = e.Conditions.Terminating != nil && *e.Conditions.Terminating
		key := ep.pod
		if key == "" {
			key = ep.address
		}
		out[key] = ep
	}
	return out
}

type endpointChange struct {
	kind cluster.EventKind
	ep   endpoint
}

// endpointChanges compares two states of a slice. An endpoint that appears not ready is no news
// (it never took traffic); one that becomes ready is added; one that becomes terminating, or
// stops being ready, or (while terminating) changes serving, is reported with all three
// conditions; one that leaves the slice is removed.
func endpointChanges(prev, cur map[string]endpoint) []endpointChange {
	var out []endpointChange
	for _, key := range sortedKeys(cur) {
		n := cur[key]
		o, seen := prev[key]
		switch {
		case !seen:
			if n.ready {
				out = append(out, endpointChange{cluster.EndpointAdded, n})
			} else if n.terminating {
				out = append(out, endpointChange{cluster.EndpointTerminating, n})
			}
		case !o.ready && n.ready:
			out = append(out, endpointChange{cluster.EndpointAdded, n})
		case !o.terminating && n.terminating:
			out = append(out, endpointChange{cluster.EndpointTerminating, n})
		case o.ready && !n.ready:
			out = append(out, endpointChange{cluster.EndpointNotReady, n})
		case n.terminating && o.serving != n.serving:
			out = append(out, endpointChange{cluster.EndpointNotReady, n})
		}
	}
	for _, key := range sortedKeys(prev) {
		if _, still := cur[key]; !still {
			out = append(out, endpointChange{cluster.EndpointRemoved, prev[key]})
		}
	}
	return out
}

func sortedKeys(m map[string]endpoint) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
