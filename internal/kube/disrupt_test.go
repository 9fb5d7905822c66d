package kube

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gracelab/gracelab/internal/cluster"
)

// disruptFixture: Deployment upstream (2 pods on node-a), another workload's pod on node-a,
// and node-a itself. Evictions are answered by evict: nil deletes the pod, an error refuses.
type disruptFixture struct {
	cs *fake.Clientset
	c  *Cluster

	mu      sync.Mutex
	evicted []string
	refuse  func(pod string) error
}

func newDisruptFixture(t *testing.T, node *corev1.Node) *disruptFixture {
	t.Helper()
	replicas := int32(2)
	labels := map[string]string{"app": "upstream"}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "upstream", Namespace: "lab"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels}}}
	pod := func(name, node string, l map[string]string, age time.Duration) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "lab", Labels: l, CreationTimestamp: metav1.NewTime(time.Now().Add(-age))},
			Spec:   corev1.PodSpec{NodeName: node},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	}
	terminating := pod("upstream-old", "node-a", labels, time.Hour)
	terminating.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	terminating.Finalizers = []string{"test/keep"} // the tracker keeps an object being deleted only with a finalizer
	f := &disruptFixture{cs: fake.NewClientset(dep, node, pod("upstream-a", "node-a", labels, 2*time.Minute), pod("upstream-b", "node-a", labels, time.Minute),
		pod("other-x", "node-a", map[string]string{"app": "other"}, time.Hour), terminating)}
	f.cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		name := a.(k8stesting.CreateAction).GetObject().(interface{ GetName() string }).GetName()
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.refuse != nil {
			if err := f.refuse(name); err != nil {
				return true, nil, err
			}
		}
		f.evicted = append(f.evicted, name)
		return true, nil, nil
	})
	f.cs.PrependReactor("get", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		d, err := f.cs.Tracker().Get(appsv1.SchemeGroupVersion.WithResource("deployments"), "lab", "upstream")
		if err != nil {
			return true, nil, err
		}
		return true, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "upstream", Namespace: "lab"}, Spec: autoscalingv1.ScaleSpec{Replicas: *d.(*appsv1.Deployment).Spec.Replicas}}, nil
	})
	f.cs.PrependReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		sc := a.(k8stesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
		o, _ := f.cs.Tracker().Get(appsv1.SchemeGroupVersion.WithResource("deployments"), "lab", "upstream")
		d := o.(*appsv1.Deployment).DeepCopy()
		d.Spec.Replicas = &sc.Spec.Replicas
		d.Generation++
		return true, sc, f.cs.Tracker().Update(appsv1.SchemeGroupVersion.WithResource("deployments"), d, "lab")
	})
	f.c = &Cluster{client: f.cs, namespace: "lab", opts: Options{}}
	return f
}

func node(unschedulable bool, annotations map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Annotations: annotations}, Spec: corev1.NodeSpec{Unschedulable: unschedulable}}
}

// budget429 is the API server's refusal, as eviction.go builds it.
func budget429() error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: 429, Reason: metav1.StatusReasonTooManyRequests,
		Message: "Cannot evict pod as it would violate the pod's disruption budget.",
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: "DisruptionBudget", Message: "The disruption budget upstream needs 1 healthy pods and has 1 currently"}}}}}
}

func (f *disruptFixture) node(t *testing.T) *corev1.Node {
	t.Helper()
	n, err := f.cs.CoreV1().Nodes().Get(context.Background(), "node-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDeploymentPodsSkipsTerminatingAndOtherWorkloads(t *testing.T) {
	f := newDisruptFixture(t, node(false, nil))
	pods, err := f.c.DeploymentPods(context.Background(), "upstream")
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 2 || pods[0].Node != "node-a" || !pods[0].Ready {
		t.Fatalf("pods %+v, want upstream-a and upstream-b, ready, on node-a", pods)
	}
}

func TestEvictRetriesTheBudgetsRefusal(t *testing.T) {
	f := newDisruptFixture(t, node(false, nil))
	refusals := 2
	f.refuse = func(string) error {
		if refusals > 0 {
			refusals--
			return budget429()
		}
		return nil
	}
	var said []string
	d := cluster.Disruption{Kind: cluster.DisruptEvict, RetryEvery: time.Millisecond}
	if _, err := cluster.Disrupt(context.Background(), f.c, "upstream", d, func(s string) { said = append(said, s) }); err != nil {
		t.Fatal(err)
	}
	if len(f.evicted) != 1 || f.evicted[0] != "upstream-a" {
		t.Fatalf("evicted %v, want the oldest pod upstream-a", f.evicted)
	}
	if len(said) != 2 || !strings.Contains(said[0], "needs 1 healthy pods and has 1 currently") {
		t.Fatalf("shown: %q", said)
	}
	refused := 0
	for _, e := range f.c.Events() {
		if e.Kind == cluster.EvictionRefused {
			refused++
		}
	}
	if refused != 2 || !hasEvent(f.c.Events(), func(e cluster.Event) bool { return e.Kind == cluster.PodEvicted && e.Pod == "upstream-a" }) {
		t.Fatalf("events %v", f.c.Events())
	}
}

// The lab's single node: the budget refuses the last eviction until the timeout; the drain
// fails, says why, and the node is uncordoned all the same; the other workload is untouched.
func TestDrainOfTheOnlyNodeUncordonsAfterTheBudgetBlocks(t *testing.T) {
	f := newDisruptFixture(t, node(false, nil))
	f.refuse = func(pod string) error {
		if pod == "upstream-b" {
			return budget429()
		}
		return nil
	}
	d := cluster.Disruption{Kind: cluster.DisruptDrain, Node: "node-a", RetryEvery: time.Millisecond, EvictionTimeout: 20 * time.Millisecond}
	restore, err := cluster.Disrupt(context.Background(), f.c, "upstream", d, nil)
	var refused *cluster.EvictionRefusedError
	if !errors.As(err, &refused) || refused.Pod != "upstream-b" {
		t.Fatalf("drain: %v, want upstream-b's refusal", err)
	}
	n := f.node(t)
	if !n.Spec.Unschedulable || !strings.Contains(n.Annotations[cluster.CordonedByAnnotation], "namespace lab") {
		t.Fatalf("during the drain the node is %+v, want cordoned with our annotation", n)
	}
	if restore == nil {
		t.Fatal("no restore: the node would stay cordoned")
	}
	if err := restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	n = f.node(t)
	if _, ok := n.Annotations[cluster.CordonedByAnnotation]; n.Spec.Unschedulable || ok {
		t.Fatalf("after the restore the node is %+v", n)
	}
	for _, p := range f.evicted {
		if p == "other-x" {
			t.Fatal("a drain evicted another workload's pod")
		}
	}
}

func TestCordonRespectsOthersAndAdoptsOurs(t *testing.T) {
	ctx := context.Background()
	f := newDisruptFixture(t, node(true, nil))
	if err := f.c.Cordon(ctx, "node-a"); !errors.Is(err, cluster.ErrCordoned) {
		t.Fatalf("cordon of a node someone cordoned: %v", err)
	}
	if err := f.c.Uncordon(ctx, "node-a"); err == nil || !f.node(t).Spec.Unschedulable {
		t.Fatal("gracelab uncordoned a node it had not cordoned")
	}
	// Left cordoned by a crashed run: adopted, and repaired by this run's restore.
	f = newDisruptFixture(t, node(true, map[string]string{cluster.CordonedByAnnotation: "gracelab, namespace gone"}))
	if err := f.c.Cordon(ctx, "node-a"); err != nil {
		t.Fatal(err)
	}
	if err := f.c.Uncordon(ctx, "node-a"); err != nil || f.node(t).Spec.Unschedulable {
		t.Fatalf("repair: %v, unschedulable %v", err, f.node(t).Spec.Unschedulable)
	}
}

func TestScaleAndBack(t *testing.T) {
	f := newDisruptFixture(t, node(false, nil))
	restore, err := cluster.Disrupt(context.Background(), f.c, "upstream", cluster.Disruption{Kind: cluster.DisruptScale, To: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	replicas := func() int32 {
		d, _ := f.cs.AppsV1().Deployments("lab").Get(context.Background(), "upstream", metav1.GetOptions{})
		return *d.Spec.Replicas
	}
	if replicas() != 1 || f.c.written("upstream") < 1 {
		t.Fatalf("replicas %d (want one less: 1), generation written %d", replicas(), f.c.written("upstream"))
	}
	if err := restore(context.Background()); err != nil || replicas() != 2 {
		t.Fatalf("scale back: %v, replicas %d", err, replicas())
	}
	if !hasEvent(f.c.Events(), func(e cluster.Event) bool { return e.Kind == cluster.Scaled && e.Detail == "2 -> 1" }) {
		t.Fatalf("events %v", f.c.Events())
	}
}
