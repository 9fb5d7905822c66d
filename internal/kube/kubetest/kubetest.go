// Package kubetest turns client-go's fake clientset into a small cluster for tests: it adds
// the API-server behaviours the fake lacks (generateName, metadata.generation bumped on a spec
// change, ClusterIP allocation) and a controller loop that plays the deployment controller,
// the kubelet, the EndpointSlice controller and the garbage collector, coarsely: enough to
// drive a kube.Cluster through Up, Restart, WaitSettled and Down with real transitions. Its
// addresses are never dialled.
package kubetest

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const (
	revisionAnnotation = "deployment.kubernetes.io/revision"
	timedOutReason     = "ProgressDeadlineExceeded"
)

// NewClientset is fake.NewClientset with generateName, generation bumps and ClusterIPs.
func NewClientset(objs ...runtime.Object) *fake.Clientset {
	cs := fake.NewClientset(objs...)
	tracker := cs.Tracker()
	react := k8stesting.ObjectReaction(tracker)
	var seq atomic.Int64
	cs.PrependReactor("create", "namespaces", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ns := a.(k8stesting.CreateAction).GetObject().(*corev1.Namespace)
		if ns.Name == "" && ns.GenerateName != "" {
			ns.Name = fmt.Sprintf("%s%05d", ns.GenerateName, seq.Add(1))
		}
		return false, nil, nil
	})
	cs.PrependReactor("*", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		verb := a.GetVerb()
		if (verb != "create" && verb != "update" && verb != "patch") || a.GetSubresource() != "" {
			return false, nil, nil
		}
		var name string
		switch act := a.(type) {
		case k8stesting.PatchAction:
			name = act.GetName()
		case k8stesting.CreateAction:
			name = act.GetObject().(*appsv1.Deployment).Name
		case k8stesting.UpdateAction:
			name = act.GetObject().(*appsv1.Deployment).Name
		}
		var before *appsv1.Deployment
		if obj, err := tracker.Get(a.GetResource(), a.GetNamespace(), name); err == nil {
			before = obj.(*appsv1.Deployment)
		}
		handled, obj, err := react(a)
		if !handled || err != nil || obj == nil {
			return handled, obj, err
		}
		d := obj.(*appsv1.Deployment).DeepCopy()
		switch {
		case before == nil:
			d.Generation = 1
		case !equality.Semantic.DeepEqual(before.Spec, d.Spec):
			d.Generation = before.Generation + 1
		default:
			return true, d, nil
		}
		if err := tracker.Update(a.GetResource(), d, a.GetNamespace(), metav1.UpdateOptions{FieldManager: "fake-apiserver"}); err != nil {
			return true, nil, err
		}
		return true, d, nil
	})
	// The API server allocates ClusterIPs; these are never dialled.
	var ips atomic.Int64
	cs.PrependReactor("*", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if verb := a.GetVerb(); verb != "create" && verb != "patch" {
			return false, nil, nil
		}
		handled, obj, err := react(a)
		if !handled || err != nil || obj == nil {
			return handled, obj, err
		}
		svc := obj.(*corev1.Service).DeepCopy()
		if svc.Spec.ClusterIP != "" {
			return true, svc, nil
		}
		svc.Spec.ClusterIP = fmt.Sprintf("127.2.0.%d", ips.Add(1))
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		if err := tracker.Update(a.GetResource(), svc, a.GetNamespace(), metav1.UpdateOptions{FieldManager: "fake-apiserver"}); err != nil {
			return true, nil, err
		}
		return true, svc, nil
	})
	return cs
}

// Controller makes Deployments roll out on the fake clientset: one new pod at a time, ready on
// the next step, old pods terminated once every new pod is ready, then exited, then deleted.
// Its methods change that behaviour while it runs.
type Controller struct {
	cs *fake.Clientset

	mu               sync.Mutex
	stallRevision    string // pods of this revision never become ready
	waitingReason    string // new pods with waitingImage wait with this reason instead of running
	waitingImage     string
	deadlineExceeded bool // report ProgressDeadlineExceeded on every Deployment
	noEndpoints      bool // the EndpointSlice controller is not running
	errors           []error
}

// Start runs a Controller on cs until the test ends (at most one minute); errors of the loop
// fail the test.
func Start(t testing.TB, cs *fake.Clientset) *Controller {
	t.Helper()
	fc := &Controller{cs: cs}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := fc.step(ctx); err != nil && ctx.Err() == nil {
				fc.mu.Lock()
				fc.errors = append(fc.errors, err)
				fc.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		fc.mu.Lock()
		defer fc.mu.Unlock()
		for _, err := range fc.errors {
			t.Errorf("fake controller: %v", err)
		}
	})
	return fc
}

// StallRevision keeps the pods of a Deployment revision ("2": the first restart's) from ever
// becoming ready: the rollout stops making progress.
func (fc *Controller) StallRevision(revision string) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.stallRevision = revision
}

// FailPulls makes new pods whose first container runs image wait with reason (for example
// ImagePullBackOff or ErrImageNeverPull) instead of running.
func (fc *Controller) FailPulls(reason, image string) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.waitingReason, fc.waitingImage = reason, image
}

// ExceedDeadline makes every Deployment report Progressing=False, ProgressDeadlineExceeded.
func (fc *Controller) ExceedDeadline() {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.deadlineExceeded = true
}

// StopEndpoints stops the EndpointSlice controller: Services get no endpoints.
func (fc *Controller) StopEndpoints() {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.noEndpoints = true
}

func (fc *Controller) knobs() (stall, waiting, waitingImage string, deadline bool) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.stallRevision, fc.waitingReason, fc.waitingImage, fc.deadlineExceeded
}

func (fc *Controller) step(ctx context.Context) error {
	deps, err := fc.cs.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range deps.Items {
		if err := fc.rollout(ctx, &deps.Items[i]); err != nil {
			return err
		}
	}
	if err := fc.collectGarbage(ctx); err != nil {
		return err
	}
	fc.mu.Lock()
	noEndpoints := fc.noEndpoints
	fc.mu.Unlock()
	if noEndpoints {
		return nil
	}
	return fc.endpointSlices(ctx)
}

func templateHash(t corev1.PodTemplateSpec) string {
	b, _ := json.Marshal(t)
	h := fnv.New32a()
	h.Write(b)
	return fmt.Sprintf("%08x", h.Sum32())[:8]
}

func (fc *Controller) rollout(ctx context.Context, d *appsv1.Deployment) error {
	stall, waiting, waitingImage, deadline := fc.knobs()
	ns := d.Namespace
	hash := templateHash(d.Spec.Template)
	sets, err := fc.cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	var newRS *appsv1.ReplicaSet
	maxRev := 0
	for i := range sets.Items {
		rs := &sets.Items[i]
		if ref := metav1.GetControllerOf(rs); ref == nil || ref.Name != d.Name {
			continue
		}
		n, _ := strconv.Atoi(rs.Annotations[revisionAnnotation])
		maxRev = max(maxRev, n)
		if rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == hash {
			newRS = rs
		}
	}
	if newRS == nil {
		rev := strconv.Itoa(maxRev + 1)
		lbls := labels.Merge(d.Spec.Template.Labels, labels.Set{appsv1.DefaultDeploymentUniqueLabelKey: hash})
		rs := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{
				Name: d.Name + "-" + hash, Namespace: ns, Labels: lbls,
				Annotations:     map[string]string{revisionAnnotation: rev},
				OwnerReferences: []metav1.OwnerReference{controllerRef("apps/v1", "Deployment", d.Name, d.UID)},
			},
			Spec: appsv1.ReplicaSetSpec{Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Template: d.Spec.Template},
		}
		rs.Spec.Template.Labels = lbls
		if newRS, err = fc.cs.AppsV1().ReplicaSets(ns).Create(ctx, rs, metav1.CreateOptions{FieldManager: "fake-controller"}); err != nil {
			return err
		}
		if err := mergePatch(ctx, fc.cs, "deployments", ns, d.Name, "",
			map[string]any{"metadata": map[string]any{"annotations": map[string]string{revisionAnnotation: rev}}}); err != nil {
			return err
		}
	}
	newRev := newRS.Annotations[revisionAnnotation]
	ours := map[string]bool{}
	for _, rs := range sets.Items {
		if ref := metav1.GetControllerOf(&rs); ref != nil && ref.Name == d.Name {
			ours[rs.Name] = true
		}
	}
	ours[newRS.Name] = true
	pods, err := fc.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	var newPods, oldPods []*corev1.Pod
	for i := range pods.Items {
		p := &pods.Items[i]
		ref := metav1.GetControllerOf(p)
		switch {
		case ref == nil || !ours[ref.Name]:
		case ref.Name == newRS.Name:
			newPods = append(newPods, p)
		default:
			oldPods = append(oldPods, p)
		}
	}
	newReady := 0
	for _, p := range newPods {
		switch {
		case podReady(p):
			newReady++
		case waiting != "" && p.Spec.Containers[0].Image == waitingImage:
			if err := patchPodStatus(ctx, fc.cs, p, waitingStatus(p, waiting)); err != nil {
				return err
			}
		case stall == newRev:
			if err := patchPodStatus(ctx, fc.cs, p, runningStatus(p, false)); err != nil {
				return err
			}
		default:
			if err := patchPodStatus(ctx, fc.cs, p, runningStatus(p, true)); err != nil {
				return err
			}
		}
	}
	// maxSurge 1, maxUnavailable 0: a new pod only when every new one so far is ready.
	if int32(len(newPods)) < want && newReady == len(newPods) {
		if err := fc.createPod(ctx, newRS); err != nil {
			return err
		}
	}
	if int32(newReady) == want {
		for _, p := range oldPods {
			if err := fc.terminate(ctx, p); err != nil {
				return err
			}
		}
	}
	// Status, as the controller would report it: terminating pods are not counted.
	var replicas, updated, ready int32
	for _, p := range append(append([]*corev1.Pod{}, newPods...), oldPods...) {
		if p.DeletionTimestamp != nil {
			continue
		}
		replicas++
		if podReady(p) {
			ready++
		}
	}
	for _, p := range newPods {
		if p.DeletionTimestamp == nil {
			updated++
		}
	}
	progressing := metav1.ConditionTrue
	reason := "ReplicaSetUpdated"
	if updated == want && replicas == want && ready == want {
		reason = "NewReplicaSetAvailable"
	}
	if deadline {
		progressing, reason = metav1.ConditionFalse, timedOutReason
	}
	available := "False"
	if ready >= want {
		available = "True"
	}
	status := map[string]any{
		"observedGeneration": d.Generation, "replicas": replicas, "updatedReplicas": updated,
		"readyReplicas": ready, "availableReplicas": ready,
		"conditions": []map[string]any{
			{"type": "Available", "status": available, "reason": "MinimumReplicasAvailable"},
			{"type": "Progressing", "status": string(progressing), "reason": reason},
		},
	}
	current, _ := json.Marshal(d.Status)
	next, _ := json.Marshal(status)
	var a, b appsv1.DeploymentStatus
	_ = json.Unmarshal(current, &a)
	_ = json.Unmarshal(next, &b)
	if equality.Semantic.DeepEqual(a, b) {
		return nil
	}
	return mergePatch(ctx, fc.cs, "deployments", ns, d.Name, "status", map[string]any{"status": status})
}

var podSeq atomic.Int64

func (fc *Controller) createPod(ctx context.Context, rs *appsv1.ReplicaSet) error {
	n := podSeq.Add(1)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s-%05d", rs.Name, n), Namespace: rs.Namespace, Labels: rs.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{controllerRef("apps/v1", "ReplicaSet", rs.Name, rs.UID)},
		},
		Spec:   rs.Spec.Template.Spec,
		Status: corev1.PodStatus{Phase: corev1.PodPending, PodIP: fmt.Sprintf("127.1.%d.%d", n/250, n%250+1)},
	}
	p.Spec.NodeName = "fake-node"
	_, err := fc.cs.CoreV1().Pods(rs.Namespace).Create(ctx, p, metav1.CreateOptions{FieldManager: "fake-controller"})
	return err
}

// terminate walks an old pod through deletion: deletionTimestamp, then its container exits,
// then it is gone.
func (fc *Controller) terminate(ctx context.Context, p *corev1.Pod) error {
	switch {
	case p.DeletionTimestamp == nil:
		grace := int64(30)
		return mergePatch(ctx, fc.cs, "pods", p.Namespace, p.Name, "", map[string]any{"metadata": map[string]any{
			"deletionTimestamp": time.Now().UTC().Format(time.RFC3339), "deletionGracePeriodSeconds": grace,
		}})
	case running(p):
		st := runningStatus(p, false)
		for i := range st.ContainerStatuses {
			st.ContainerStatuses[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}
		}
		return patchPodStatus(ctx, fc.cs, p, st)
	default:
		err := fc.cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
}

// collectGarbage deletes ReplicaSets whose Deployment is gone and pods whose ReplicaSet is gone.
func (fc *Controller) collectGarbage(ctx context.Context) error {
	sets, err := fc.cs.AppsV1().ReplicaSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, rs := range sets.Items {
		ref := metav1.GetControllerOf(&rs)
		if ref == nil {
			continue
		}
		if _, err := fc.cs.AppsV1().Deployments(rs.Namespace).Get(ctx, ref.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			if err := fc.cs.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
	}
	pods, err := fc.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		ref := metav1.GetControllerOf(&p)
		if ref == nil {
			continue
		}
		if _, err := fc.cs.AppsV1().ReplicaSets(p.Namespace).Get(ctx, ref.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			if err := fc.cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
	}
	return nil
}

// endpointSlices keeps one slice per Service with the conditions the real controller reports.
func (fc *Controller) endpointSlices(ctx context.Context) error {
	svcs, err := fc.cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, svc := range svcs.Items {
		if len(svc.Spec.Selector) == 0 {
			continue
		}
		pods, err := fc.cs.CoreV1().Pods(svc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.Set(svc.Spec.Selector).String()})
		if err != nil {
			return err
		}
		sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
		port := svc.Spec.Ports[0].TargetPort.IntVal
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: svc.Name + "-fake", Namespace: svc.Namespace,
				Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Port: &port}},
		}
		for _, p := range pods.Items {
			if p.Status.PodIP == "" || (p.DeletionTimestamp != nil && !running(&p)) {
				continue // a pod whose container exited has left the slice
			}
			terminating := p.DeletionTimestamp != nil
			ready := podReady(&p) && !terminating
			serving := podReady(&p)
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{p.Status.PodIP},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: p.Name, Namespace: p.Namespace},
			})
		}
		client := fc.cs.DiscoveryV1().EndpointSlices(svc.Namespace)
		old, err := client.Get(ctx, slice.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = client.Create(ctx, slice, metav1.CreateOptions{FieldManager: "fake-controller"})
		case err == nil && !equality.Semantic.DeepEqual(old.Endpoints, slice.Endpoints):
			old.Endpoints = slice.Endpoints
			_, err = client.Update(ctx, old, metav1.UpdateOptions{FieldManager: "fake-controller"})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func runningStatus(p *corev1.Pod, ready bool) corev1.PodStatus {
	st := *p.Status.DeepCopy()
	st.Phase = corev1.PodRunning
	cond := corev1.ConditionFalse
	if ready {
		cond = corev1.ConditionTrue
	}
	st.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: cond}}
	st.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, Ready: ready,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
		})
	}
	return st
}

func waitingStatus(p *corev1.Pod, reason string) corev1.PodStatus {
	st := *p.Status.DeepCopy()
	st.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "Back-off pulling image \"" + c.Image + "\""}},
		})
	}
	return st
}

func patchPodStatus(ctx context.Context, cs *fake.Clientset, p *corev1.Pod, st corev1.PodStatus) error {
	if equality.Semantic.DeepEqual(p.Status, st) {
		return nil
	}
	return mergePatch(ctx, cs, "pods", p.Namespace, p.Name, "status", map[string]any{"status": st})
}

// mergePatch patches only the fields given, so the controller never overwrites a concurrent
// change to the rest of the object (the fake has no resourceVersion conflicts).
func mergePatch(ctx context.Context, cs *fake.Clientset, resource, ns, name, sub string, patch any) error {
	data, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	var subs []string
	if sub != "" {
		subs = []string{sub}
	}
	switch resource {
	case "pods":
		_, err = cs.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, data, metav1.PatchOptions{FieldManager: "fake-controller"}, subs...)
	case "deployments":
		_, err = cs.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, data, metav1.PatchOptions{FieldManager: "fake-controller"}, subs...)
	default:
		return fmt.Errorf("mergePatch: unknown resource %s", resource)
	}
	if apierrors.IsNotFound(err) {
		return nil // deleted meanwhile
	}
	return err
}

func controllerRef(apiVersion, kind, name string, uid types.UID) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: &yes}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func running(p *corev1.Pod) bool {
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Running != nil {
			return true
		}
	}
	return false
}
