package kubetest

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestControllerRollsOutAndRestarts(t *testing.T) {
	ctx := context.Background()
	cs := NewClientset()
	Start(t, cs)
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}, metav1.CreateOptions{})
	if err != nil || ns.Name == "" || ns.Name == "t-" {
		t.Fatalf("generateName: %v, name %q", err, ns.Name)
	}
	two := int32(2)
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns.Name},
		Spec: appsv1.DeploymentSpec{Replicas: &two, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}}}},
	}
	deps := cs.AppsV1().Deployments(ns.Name)
	if _, err := deps.Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	complete := func(gen int64) func() bool {
		return func() bool {
			cur, err := deps.Get(ctx, "web", metav1.GetOptions{})
			return err == nil && cur.Generation == gen && cur.Status.ObservedGeneration == gen &&
				cur.Status.UpdatedReplicas == 2 && cur.Status.Replicas == 2 && cur.Status.AvailableReplicas == 2
		}
	}
	waitUntil(t, "the first rollout", complete(1))
	sets, err := cs.AppsV1().ReplicaSets(ns.Name).List(ctx, metav1.ListOptions{})
	if err != nil || len(sets.Items) != 1 {
		t.Fatalf("replica sets %v, %v; want one", sets, err)
	}
	first := sets.Items[0].Name

	patch := []byte(`{"spec":{"template":{"metadata":{"annotations":{"restart":"1"}}}}}`)
	if _, err := deps.Patch(ctx, "web", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the second rollout", complete(2))
	waitUntil(t, "old pods to go", func() bool {
		pods, _ := cs.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{})
		cur, _ := deps.Get(ctx, "web", metav1.GetOptions{})
		for _, p := range pods.Items {
			if metav1.GetControllerOf(&p).Name == first {
				return false
			}
		}
		return len(pods.Items) == 2 && cur.Annotations[revisionAnnotation] == "2"
	})
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns.Name},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}}}
	created, err := cs.CoreV1().Services(ns.Name).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil || created.Spec.ClusterIP == "" {
		t.Fatalf("service: %v, ClusterIP %q", err, created.Spec.ClusterIP)
	}
	waitUntil(t, "two ready endpoints", func() bool {
		s, err := cs.DiscoveryV1().EndpointSlices(ns.Name).Get(ctx, "web-fake", metav1.GetOptions{})
		if err != nil {
			return false
		}
		ready := 0
		for _, e := range s.Endpoints {
			if *e.Conditions.Ready {
				ready++
			}
		}
		return ready == 2
	})
}
