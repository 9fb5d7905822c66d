package kube

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/gracelab/gracelab/internal/cluster"
)

// The watches: Deployments, ReplicaSets, Pods and EndpointSlices of the namespace, through
// informers (list, then watch from the list's resourceVersion, relist when a watch expires).
// Each change is compared with the last state seen and turned into cluster.Events, timestamped
// when the watch delivers it: API timestamps have whole seconds only. ReplicaSets give each new
// pod's revision number. The informers' caches also answer the rollout waits, which wake on
// every change instead of polling the API. What only a kubelet or proxy sees (preStop start and
// end, SIGTERM, SIGKILL, removal at the proxy, pod network teardown) is not reported by the API
// and is not produced here.

// watcher owns the informers of one namespace and the last state of every object they report.
type watcher struct {
	c        *Cluster
	factory  informers.SharedInformerFactory
	ours     labels.Selector // the pods whose transitions are events (the namespace may be shared)
	services map[string]bool // the Services whose slices are events

	deployments appslisters.DeploymentLister
	replicaSets appslisters.ReplicaSetLister
	podLister   corelisters.PodLister

	// Guarded by c.mu.
	pods      map[string]*corev1.Pod         // by name: the last state seen
	slices    map[string]map[string]endpoint // slice name -> endpoint key -> last state
	revisions map[string]string              // ReplicaSet name -> revision number, for details
	deploys   map[string]string              // pod name -> deployment, kept after deletion for endpoints
	changed   chan struct{}                  // closed and replaced on every delivery
}

// startWatches checks that the watches are allowed (a reflector that is denied only retries
// quietly, and the timeline would stay empty), starts them, and waits for their first list.
// Pods matching ours and slices of services make the timeline.
func (c *Cluster) startWatches(ctx context.Context, ours labels.Selector, services []string) error {
	ns := c.namespace
	checks := []struct {
		resource string
		list     func(context.Context, metav1.ListOptions) error
		watch    func(context.Context, metav1.ListOptions) (watch.Interface, error)
	}{
		{"deployments.apps", listOnly(c.client.AppsV1().Deployments(ns).List), c.client.AppsV1().Deployments(ns).Watch},
		{"replicasets.apps", listOnly(c.client.AppsV1().ReplicaSets(ns).List), c.client.AppsV1().ReplicaSets(ns).Watch},
		{"pods", listOnly(c.client.CoreV1().Pods(ns).List), c.client.CoreV1().Pods(ns).Watch},
		{"endpointslices.discovery.k8s.io", listOnly(c.client.DiscoveryV1().EndpointSlices(ns).List), c.client.DiscoveryV1().EndpointSlices(ns).Watch},
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
		ours:      ours,
		pods:      map[string]*corev1.Pod{},
		slices:    map[string]map[string]endpoint{},
		revisions: map[string]string{},
		deploys:   map[string]string{},
		services:  map[string]bool{},
		changed:   make(chan struct{}),
	}
	for _, name := range services {
		w.services[name] = true
	}
	w.deployments = w.factory.Apps().V1().Deployments().Lister()
	w.replicaSets = w.factory.Apps().V1().ReplicaSets().Lister()
	w.podLister = w.factory.Core().V1().Pods().Lister()
	handlers := []struct {
		informer cache.SharedIndexInformer
		funcs    cache.ResourceEventHandlerDetailedFuncs
	}{
		{w.factory.Apps().V1().Deployments().Informer(), cache.ResourceEventHandlerDetailedFuncs{
			AddFunc:    func(any, bool) { w.notify() },
			UpdateFunc: func(_, _ any) { w.notify() },
			DeleteFunc: func(any) { w.notify() },
		}},
		{w.factory.Apps().V1().ReplicaSets().Informer(), cache.ResourceEventHandlerDetailedFuncs{
			AddFunc:    func(obj any, _ bool) { w.replicaSet(obj) },
			UpdateFunc: func(_, obj any) { w.replicaSet(obj) },
			DeleteFunc: func(any) { w.notify() },
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

func listOnly[L any](list func(context.Context, metav1.ListOptions) (L, error)) func(context.Context, metav1.ListOptions) error {
	return func(ctx context.Context, o metav1.ListOptions) error {
		_, err := list(ctx, o)
		return err
	}
}

// stopWatches stops the informers and waits for their goroutines.
func (c *Cluster) stopWatches() {
	if c.watch == nil {
		return
	}
	c.stopOnce.Do(func() { close(c.stop) })
	c.watch.factory.Shutdown()
}

// notify wakes whoever waits on the caches (see waitWatched).
func (w *watcher) notify() {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	w.notifyLocked()
}

func (w *watcher) notifyLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// changes returns a channel closed at the next delivery of any watch.
func (w *watcher) changes() <-chan struct{} {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.changed
}

// deliveredObject unwraps the tombstone of an object deleted while a watch was down.
func deliveredObject[T any](obj any) (T, bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	t, ok := obj.(T)
	return t, ok
}

func (w *watcher) replicaSet(obj any) {
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return
	}
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	defer w.notifyLocked()
	if rev := rs.Annotations[revisionAnnotation]; rev != "" {
		w.revisions[rs.Name] = rev
	}
}

// pod records the transitions between the last state seen and this one. Objects of the first
// list are a baseline, not news.
func (w *watcher) pod(obj any, initial, deleted bool) {
	p, ok := deliveredObject[*corev1.Pod](obj)
	if !ok {
		return
	}
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	defer w.notifyLocked()
	if !w.ours.Matches(labels.Set(p.Labels)) {
		return // not a pod of the drilled Deployments (the namespace may be shared)
	}
	prev := w.pods[p.Name]
	if deleted {
		delete(w.pods, p.Name)
	} else {
		w.pods[p.Name] = p
	}
	dep, rev, number := w.identify(p)
	w.deploys[p.Name] = dep
	if initial {
		if w.c.existing != nil && podReady(p) {
			// A drilled Deployment's pods were there before: without an event of theirs the
			// report would take the first new pod for the old revision.
			w.c.appendLocked(cluster.Event{Kind: cluster.PodReady, Deployment: dep, Pod: p.Name, Revision: rev,
				Detail: "already ready when the drill began", Source: cluster.SourceAPI})
		}
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
		w.c.appendLocked(cluster.Event{Kind: ch.kind, Deployment: dep, Pod: p.Name, Revision: rev, Detail: ch.detail, Source: cluster.SourceAPI})
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

// slice records endpoint transitions of one EndpointSlice.
func (w *watcher) slice(obj any, initial, deleted bool) {
	s, ok := deliveredObject[*discoveryv1.EndpointSlice](obj)
	if !ok {
		return
	}
	cur := map[string]endpoint{}
	if !deleted {
		cur = endpointsOf(s)
	}
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	defer w.notifyLocked()
	if !w.services[s.Labels[discoveryv1.LabelServiceName]] {
		return
	}
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
		w.c.appendLocked(cluster.Event{Kind: ch.kind, Deployment: dep, Pod: ch.ep.pod, Detail: ch.ep.detail(), Source: cluster.SourceAPI})
	}
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
		err := c.watch.waitFor(ctx, func() bool {
			endpoints, pods = c.watch.readyEndpoints(name, selector)
			return pods > 0 && endpoints >= pods
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

// waitFor checks cond now and after every delivery of the watches until it holds or ctx ends.
func (w *watcher) waitFor(ctx context.Context, cond func() bool) error {
	for {
		changed := w.changes()
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}
