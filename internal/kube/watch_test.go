package kube

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/kube/kubetest"
)

func readyPod(ready bool) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Status: corev1.PodStatus{
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: st}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "upstream", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
		},
	}
}

func TestPodChanges(t *testing.T) {
	pending := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
	terminating := readyPod(true)
	now := metav1.Now()
	grace := int64(30)
	terminating.DeletionTimestamp, terminating.DeletionGracePeriodSeconds = &now, &grace
	exited := terminating.DeepCopy()
	exited.Status.Conditions[0].Status = corev1.ConditionFalse
	exited.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error"}}
	restarted := readyPod(true)
	restarted.Status.ContainerStatuses[0].RestartCount = 1
	restarted.Status.ContainerStatuses[0].LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2}}

	cases := []struct {
		name      string
		prev, cur *corev1.Pod
		want      []change
	}{
		{"created pending", nil, pending, []change{{kind: cluster.PodCreated}}},
		{"first seen ready", nil, readyPod(true), []change{{kind: cluster.PodCreated}, {kind: cluster.PodStarted}, {kind: cluster.PodReady}}},
		{"started", pending, readyPod(false), []change{{kind: cluster.PodStarted}}},
		{"became ready", readyPod(false), readyPod(true), []change{{kind: cluster.PodReady}}},
		{"lost readiness", readyPod(true), readyPod(false), []change{{kind: cluster.PodNotReady}}},
		{"no change", readyPod(true), readyPod(true), nil},
		{"terminating", readyPod(true), terminating, []change{{kind: cluster.PodTerminating, detail: "grace period 30s"}}},
		{"exited", terminating, exited, []change{{kind: cluster.PodNotReady}, {kind: cluster.PodExited, detail: "container upstream exit code 137 (Error)"}}},
		{"exited and restarted between deliveries", readyPod(true), restarted, []change{{kind: cluster.PodExited, detail: "container upstream exit code 2"}, {kind: cluster.ContainerRestarted, detail: "restartCount 1"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := podChanges(tc.prev, tc.cur); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("podChanges = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func ep(pod string, ready, serving, terminating bool) endpoint {
	return endpoint{pod: pod, address: "127.1.0.1:7000", service: "upstream", ready: ready, serving: serving, terminating: terminating}
}

func TestEndpointChanges(t *testing.T) {
	cases := []struct {
		name      string
		prev, cur map[string]endpoint
		want      []cluster.EventKind
	}{
		{"appears not ready: no news", nil, map[string]endpoint{"a": ep("a", false, false, false)}, nil},
		{"appears ready", nil, map[string]endpoint{"a": ep("a", true, true, false)}, []cluster.EventKind{cluster.EndpointAdded}},
		{"becomes ready", map[string]endpoint{"a": ep("a", false, false, false)}, map[string]endpoint{"a": ep("a", true, true, false)}, []cluster.EventKind{cluster.EndpointAdded}},
		{"readiness fails", map[string]endpoint{"a": ep("a", true, true, false)}, map[string]endpoint{"a": ep("a", false, false, false)}, []cluster.EventKind{cluster.EndpointNotReady}},
		{"terminating, still serving", map[string]endpoint{"a": ep("a", true, true, false)}, map[string]endpoint{"a": ep("a", false, true, true)}, []cluster.EventKind{cluster.EndpointTerminating}},
		{"terminating stops serving", map[string]endpoint{"a": ep("a", false, true, true)}, map[string]endpoint{"a": ep("a", false, false, true)}, []cluster.EventKind{cluster.EndpointNotReady}},
		{"removed", map[string]endpoint{"a": ep("a", false, false, true)}, map[string]endpoint{}, []cluster.EventKind{cluster.EndpointRemoved}},
		{"unchanged", map[string]endpoint{"a": ep("a", true, true, false)}, map[string]endpoint{"a": ep("a", true, true, false)}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []cluster.EventKind
			for _, ch := range endpointChanges(tc.prev, tc.cur) {
				got = append(got, ch.kind)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("endpointChanges = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEndpointsOfNilConditions(t *testing.T) {
	port := int32(7000)
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{discoveryv1.LabelServiceName: "upstream"}},
		Ports:      []discoveryv1.EndpointPort{{Port: &port}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"127.1.0.7"}}, // conditions unknown: ready and serving, not terminating
		},
	}
	got := endpointsOf(s)
	want := map[string]endpoint{"127.1.0.7:7000": {address: "127.1.0.7:7000", service: "upstream", ready: true, serving: true}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("endpointsOf = %+v, want %+v", got, want)
	}
}

// The watches deliver what happens after Up, through the fake's informers: a pod's whole life
// and its endpoint's, each event stamped on delivery, in order. Objects that existed before
// are a baseline, not events.
func TestWatchesTranslatePodAndEndpointChanges(t *testing.T) {
	ctx := testContext(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "work"}}
	before := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "existing", Namespace: "work", Labels: ownedLabels()}}
	cs := kubetest.NewClientset(ns, before)
	opts := testOptions()
	opts.Namespace = "work"
	c := newTestCluster(t, cs, opts)
	c.namespace = "work"
	if err := c.startWatches(ctx, labels.SelectorFromSet(ownedLabels()), []string{"upstream"}); err != nil {
		t.Fatal(err)
	}
	defer c.stopWatches()

	rs := "upstream-abc12"
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: rs + "-x1", Namespace: "work",
		Labels:          map[string]string{"pod-template-hash": "abc12", managedByLabel: managedByValue},
		OwnerReferences: []metav1.OwnerReference{controllerRef("apps/v1", "ReplicaSet", rs, "")}}}
	pods := cs.CoreV1().Pods("work")
	slices := cs.DiscoveryV1().EndpointSlices("work")
	port := int32(7000)
	slice := func(ready, serving, terminating bool) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "upstream-s1", Namespace: "work", Labels: map[string]string{discoveryv1.LabelServiceName: "upstream"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Port: &port}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"127.1.0.9"},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: pod.Name}}},
		}
	}
	// Pods and slices that are not ours (a shared namespace) are no events.
	foreign := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "billing-1", Namespace: "work"}}
	if _, err := pods.Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	other := slice(true, true, false)
	other.Name, other.Labels[discoveryv1.LabelServiceName] = "billing-s1", "billing"
	if _, err := slices.Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	count := func() int { return len(c.Events()) }
	step := func(what string, n int, do func() error) {
		t.Helper()
		if err := do(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		waitFor(t, what, func() bool { return count() >= n })
	}
	step("create pod", 1, func() error { _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); return err })
	running := pod.DeepCopy()
	running.Status = readyPod(true).Status
	step("pod ready", 3, func() error { _, err := pods.UpdateStatus(ctx, running, metav1.UpdateOptions{}); return err })
	step("endpoint ready", 4, func() error {
		_, err := slices.Create(ctx, slice(true, true, false), metav1.CreateOptions{})
		return err
	})
	term := running.DeepCopy()
	now := metav1.Now()
	term.DeletionTimestamp = &now
	step("pod terminating", 5, func() error { _, err := pods.Update(ctx, term, metav1.UpdateOptions{}); return err })
	step("endpoint terminating", 6, func() error {
		_, err := slices.Update(ctx, slice(false, true, true), metav1.UpdateOptions{})
		return err
	})
	step("endpoint stops serving", 7, func() error {
		_, err := slices.Update(ctx, slice(false, false, true), metav1.UpdateOptions{})
		return err
	})
	step("slice gone", 8, func() error { return slices.Delete(ctx, "upstream-s1", metav1.DeleteOptions{}) })
	exited := term.DeepCopy()
	exited.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}
	exited.Status.Conditions[0].Status = corev1.ConditionFalse
	step("container exited", 10, func() error { _, err := pods.UpdateStatus(ctx, exited, metav1.UpdateOptions{}); return err })
	step("pod deleted", 11, func() error { return pods.Delete(ctx, pod.Name, metav1.DeleteOptions{}) })

	events := c.Events()
	want := []cluster.EventKind{cluster.PodCreated, cluster.PodStarted, cluster.PodReady, cluster.EndpointAdded,
		cluster.PodTerminating, cluster.EndpointTerminating, cluster.EndpointNotReady, cluster.EndpointRemoved,
		cluster.PodNotReady, cluster.PodExited, cluster.PodDeleted}
	var got []cluster.EventKind
	for _, e := range events {
		got = append(got, e.Kind)
		if e.Pod != pod.Name || e.Deployment != "upstream" || e.Source != cluster.SourceAPI {
			t.Errorf("event %+v: want pod %s of deployment upstream from the API", e, pod.Name)
		}
		if e.Time.IsZero() || time.Since(e.Time) > time.Minute {
			t.Errorf("event %s stamped %v, want the delivery time", e.Kind, e.Time)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events %v\nwant   %v", got, want)
	}
	for i := 1; i < len(events); i++ {
		if events[i].Time.Before(events[i-1].Time) {
			t.Errorf("event %d is earlier than event %d", i, i-1)
		}
	}
	if events[0].Revision != "abc12" {
		t.Errorf("revision %q, want the pod-template hash abc12", events[0].Revision)
	}
}

// A labelled pod makes events while the watches run; once they are stopped, the same change
// makes none.
func TestStopWatchesStopsDelivery(t *testing.T) {
	ctx := testContext(t)
	cs := kubetest.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "work"}})
	opts := testOptions()
	opts.Namespace = "work"
	c := newTestCluster(t, cs, opts)
	c.namespace = "work"
	if err := c.startWatches(ctx, labels.SelectorFromSet(ownedLabels()), nil); err != nil {
		t.Fatal(err)
	}
	pods := cs.CoreV1().Pods("work")
	labelled := func(name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "work", Labels: ownedLabels()}}
	}
	if _, err := pods.Create(ctx, labelled("early"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pod_created of the labelled pod", func() bool { return len(kinds(c.Events(), "early")) == 1 })

	c.stopWatches()
	c.stopWatches() // idempotent
	// The test's own watch sees the late pod; by then a running watcher would have seen it too
	// (both are fed by the same fake tracker in the same call).
	seen := make(chan struct{})
	w, err := pods.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	go func() {
		for e := range w.ResultChan() {
			if p, ok := e.Object.(*corev1.Pod); ok && p.Name == "late" {
				close(seen)
				return
			}
		}
	}()
	if _, err := pods.Create(ctx, labelled("late"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-seen:
	case <-ctx.Done():
		t.Fatal("the test's own watch never saw the late pod")
	}
	for name, inf := range map[string]cache.SharedIndexInformer{
		"deployments": c.watch.factory.Apps().V1().Deployments().Informer(), "replicasets": c.watch.factory.Apps().V1().ReplicaSets().Informer(),
		"pods": c.watch.factory.Core().V1().Pods().Informer(), "endpointslices": c.watch.factory.Discovery().V1().EndpointSlices().Informer(),
	} {
		if !inf.IsStopped() {
			t.Errorf("the %s informer still runs after stopWatches", name)
		}
	}
	if got := kinds(c.Events(), "late"); len(got) != 0 {
		t.Errorf("events %v for a pod created after the watches stopped", got)
	}
}
