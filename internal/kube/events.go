package kube

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/gracelab/gracelab/internal/cluster"
)

// The watches: Pods, ReplicaSets and EndpointSlices of the namespace, through informers (list,
// then watch from the list's resourceVersion, relist when a watch expires). Each change is
// compared with the last state seen and turned into cluster.Events, timestamped when the watch
// delivers it: API timestamps have whole seconds only. ReplicaSets give each new pod's
// revision number. What only a kubelet or proxy sees (preStop start and end, SIGTERM, SIGKILL, removal
// at the proxy, pod network teardown) is not reported by the API and is not produced here.

// watcher owns the informers of one namespace and the last state of every object they report.
type watcher struct {
	c        *Cluster
	factory  informers.SharedInformerFactory
	services map[string]bool // the Services of the manifests: other slices are not ours

	// Guarded by c.mu.
	pods      map[string]*corev1.Pod         // by name: the last state seen
	slices    map[string]map[string]endpoint // slice name -> endpoint key -> last state
	revisions map[string]string              // ReplicaSet name -> revision number, for details
	deploys   map[string]string              // pod name -> deployment, kept after deletion for endpoints
}

// endpoint is the part of an EndpointSlice endpoint that the timeline reports.
type endpoint struct {
	pod, address, service       string
	ready, serving, terminating bool
}

func (e endpoint) detail() string {
	return fmt.Sprintf("%s ready=%t serving=%t terminating=%t (service %s)", e.address, e.ready, e.serving, e.terminating, e.service)
}

// startWatches checks that the watches are allowed (a reflector that is denied only retries
// quietly, and the timeline would stay empty), starts them, and waits for their first list.
func (c *Cluster) startWatches(ctx context.Context) error {
	ns := c.namespace
	checks := []struct {
		resource string
		list     func(context.Context, metav1.ListOptions) error
		watch    func(context.Context, metav1.ListOptions) (watch.Interface, error)
	}{
		{"pods",
			func(ctx context.Context, o metav1.ListOptions) error {
				_, err := c.client.CoreV1().Pods(ns).List(ctx, o)
				return err
			},
			c.client.CoreV1().Pods(ns).Watch},
		{"replicasets.apps",
			func(ctx context.Context, o metav1.ListOptions) error {
				_, err := c.client.AppsV1().ReplicaSets(ns).List(ctx, o)
				return err
			},
			c.client.AppsV1().ReplicaSets(ns).Watch},
		{"endpointslices.discovery.k8s.io",
			func(ctx context.Context, o metav1.ListOptions) error {
				_, err := c.client.DiscoveryV1().EndpointSlices(ns).List(ctx, o)
				return err
			},
			c.client.DiscoveryV1().EndpointSlices(ns).Watch},
	}
	for _, check := range checks {
		if err := check.list(ctx, metav1.ListOptions{Limit: 1}); err != nil {
			return apiError(err, "list", check.resource, ns)
		}
		timeout := int64(1)
		w, err := check.watch(ctx, metav1.ListOptions{TimeoutSeconds: &timeout})
		if err != nil {
			return apiError(err, "watch", check.resource, ns)
		}
		w.Stop()
	}
	w := &watcher{
		c:         c,
		factory:   informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace(ns)),
		pods:      map[string]*corev1.Pod{},
		slices:    map[string]map[string]endpoint{},
		revisions: map[string]string{},
		deploys:   map[string]string{},
		services:  map[string]bool{},
	}
	for _, name := range c.manifests.serviceNames() {
		w.services[name] = true
	}
	handlers := []struct {
		informer cache.SharedIndexInformer
		funcs    cache.ResourceEventHandlerDetailedFuncs
	}{
		{w.factory.Apps().V1().ReplicaSets().Informer(), cache.ResourceEventHandlerDetailedFuncs{
			AddFunc:    func(obj any, _ bool) { w.replicaSet(obj) },
			UpdateFunc: func(_, obj any) { w.replicaSet(obj) },
		}},
		{w.factory.Core().V1().Pods().Informer(), cache.ResourceEventHandlerDetailedFuncs{
			AddFunc:    func(obj any, initial bool) { w.pod(obj, initial, false) },
			UpdateFunc: func(_, obj any) { w.pod(obj, false, false) },
			DeleteFunc: func(obj any) { w.pod(obj, false, true) },
		}},
		{w.factory.Discovery().V1().EndpointSlices().Informer(), cache.ResourceEventHandlerDetailedFuncs{
			AddFunc:    func(obj any, initial bool) { w.slice(obj, initial, false) },
			UpdateFunc: func(_, obj any) { w.slice(obj, false, false) },
			DeleteFunc: func(obj any) { w.slice(obj, false, true) },
		}},
	}
	for _, h := range handlers {
		if _, err := h.informer.AddEventHandler(h.funcs); err != nil {
			return fmt.Errorf("watch namespace %q: %w", ns, err)
		}
	}
	c.watch = w
	w.factory.Start(c.stop)
	syncCtx, cancel := context.WithTimeout(ctx, c.opts.RolloutTimeout)
	defer cancel()
	for typ, ok := range w.factory.WaitForCacheSync(syncCtx.Done()) {
		if !ok {
			return fmt.Errorf("watch %v in namespace %q: first list did not complete within %s", typ, ns, c.opts.RolloutTimeout)
		}
	}
	return nil
}

// stopWatches stops the informers and waits for their goroutines.
func (c *Cluster) stopWatches() {
	if c.watch == nil {
		return
	}
	c.stopOnce.Do(func() { close(c.stop) })
	c.watch.factory.Shutdown()
}

func (w *watcher) replicaSet(obj any) {
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return
	}
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	if rev := rs.Annotations[revisionAnnotation]; rev != "" {
		w.revisions[rs.Name] = rev
	}
}

// pod records the transitions between the last state seen and this one. Objects of the first
// list are a baseline, not news.
func (w *watcher) pod(obj any, initial, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok || p.Labels[managedByLabel] != managedByValue {
		return // not a pod of our Deployments (the namespace may be shared)
	}
	now := time.Now()
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	prev := w.pods[p.Name]
	if deleted {
		delete(w.pods, p.Name)
	} else {
		w.pods[p.Name] = p
	}
	dep, rev, number := w.identify(p)
	w.deploys[p.Name] = dep
	if initial {
		return
	}
	changes := podChanges(prev, p)
	if prev == nil && number != "" && len(changes) > 0 && changes[0].kind == cluster.PodCreated {
		changes[0].detail = strings.TrimSpace("revision " + number + " " + changes[0].detail)
	}
	if deleted {
		changes = append(changes, change{kind: cluster.PodDeleted})
	}
	for _, ch := range changes {
		w.c.appendLocked(now, cluster.Event{Kind: ch.kind, Deployment: dep, Pod: p.Name, Revision: rev, Detail: ch.detail, Source: cluster.SourceAPI})
	}
}

// identify names a pod's Deployment (its ReplicaSet's name less the template hash) and
// revision: the pod-template hash, as the embedded cluster names revisions. The ReplicaSet's
// revision number goes into the detail of pod_created.
func (w *watcher) identify(p *corev1.Pod) (deployment, revision, number string) {
	hash := p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	owner := metav1.GetControllerOf(p)
	if owner == nil || owner.Kind != "ReplicaSet" {
		return "", hash, ""
	}
	return strings.TrimSuffix(owner.Name, "-"+hash), hash, w.revisions[owner.Name]
}

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

// slice records endpoint transitions of one EndpointSlice.
func (w *watcher) slice(obj any, initial, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || !w.services[s.Labels[discoveryv1.LabelServiceName]] {
		return
	}
	now := time.Now()
	cur := map[string]endpoint{}
	if !deleted {
		cur = endpointsOf(s)
	}
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	prev := w.slices[s.Name]
	if deleted {
		delete(w.slices, s.Name)
	} else {
		w.slices[s.Name] = cur
	}
	if initial {
		return
	}
	for _, ch := range endpointChanges(prev, cur) {
		dep := w.deploys[ch.ep.pod]
		w.c.appendLocked(now, cluster.Event{Kind: ch.kind, Deployment: dep, Pod: ch.ep.pod, Detail: ch.ep.detail(), Source: cluster.SourceAPI})
	}
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

// waitEndpoints waits until every Service of the manifests lists each ready pod it selects as a
// ready endpoint, so the first request of the load finds the Service populated.
func (c *Cluster) waitEndpoints(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.RolloutTimeout)
	defer cancel()
	for _, svc := range c.manifests.services {
		if svc.Spec == nil || len(svc.Spec.Selector) == 0 {
			continue // no selector: endpoints are managed by hand
		}
		name, selector := *svc.Name, labels.SelectorFromSet(svc.Spec.Selector)
		var endpoints, pods int
		err := c.poll(ctx, "endpoints of Service "+name, func() (bool, error) {
			endpoints, pods = c.watch.readyEndpoints(name, selector)
			return pods > 0 && endpoints >= pods, nil
		})
		if err != nil {
			return fmt.Errorf("Service %q lists %d ready endpoints for %d ready pods after %s; see kubectl -n %s get endpointslices -l %s=%s",
				name, endpoints, pods, c.opts.RolloutTimeout, c.namespace, discoveryv1.LabelServiceName, name)
		}
	}
	return nil
}

// readyEndpoints counts, from the watches, the ready endpoints of a Service and the ready,
// not terminating pods its selector matches.
func (w *watcher) readyEndpoints(service string, selector labels.Selector) (endpoints, pods int) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	for _, eps := range w.slices {
		for _, e := range eps {
			if e.service == service && e.ready {
				endpoints++
			}
		}
	}
	for _, p := range w.pods {
		if p.DeletionTimestamp == nil && podReady(p) && selector.Matches(labels.Set(p.Labels)) {
			pods++
		}
	}
	return endpoints, pods
}

// hasOldPods reports whether the watches still know a pod of the Deployment outside newRS.
func (w *watcher) hasOldPods(deployment, newRS string) bool {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	for _, p := range w.pods {
		owner := metav1.GetControllerOf(p)
		if owner != nil && owner.Kind == "ReplicaSet" && owner.Name != newRS && w.deploys[p.Name] == deployment {
			return true
		}
	}
	return false
}
