package kube

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/kube/kubetest"
	"github.com/gracelab/gracelab/k8s"
)

func testOptions() Options {
	return Options{
		Manifests:      scenarioFS(),
		RolloutTimeout: 5 * time.Second,
		DeleteTimeout:  5 * time.Second,
		PollInterval:   5 * time.Millisecond,
	}
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newTestCluster(t *testing.T, cs *fake.Clientset, opts Options) *Cluster {
	t.Helper()
	c, err := New(cs, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Down(context.Background()) })
	return c
}

func kinds(events []cluster.Event, pod string) []cluster.EventKind {
	var out []cluster.EventKind
	for _, e := range events {
		if e.Pod == pod {
			out = append(out, e.Kind)
		}
	}
	return out
}

func hasEvent(events []cluster.Event, match func(cluster.Event) bool) bool {
	for _, e := range events {
		if match(e) {
			return true
		}
	}
	return false
}

// The whole drill on a fake cluster: Up creates and labels a namespace, applies the manifests
// and waits for both Deployments; Restart patches like kubectl; WaitSettled returns only once
// no old pod is left; the events tell the story; Down deletes the namespace.
func TestDrillOnFakeCluster(t *testing.T) {
	cs := kubetest.NewClientset()
	kubetest.Start(t, cs)
	ctx := testContext(t)
	opts := testOptions()
	opts.Images = map[string]string{"upstream": "registry.example/upstream:v9"}
	c := newTestCluster(t, cs, opts)

	if err := c.Up(ctx); err != nil {
		t.Fatalf("Up: %v", err)
	}
	ns := c.Namespace()
	if !strings.HasPrefix(ns, "gracelab-") {
		t.Fatalf("namespace %q, want a generated gracelab- name", ns)
	}
	nsObj, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil || nsObj.Labels[managedByLabel] != managedByValue {
		t.Fatalf("namespace %v labels %v, want %s=%s", err, nsObj.Labels, managedByLabel, managedByValue)
	}

	// Applied server-side by field manager gracelab, labelled, image overridden.
	up, err := cs.AppsV1().Deployments(ns).Get(ctx, "upstream", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if up.Labels[managedByLabel] != managedByValue || up.Spec.Template.Labels[managedByLabel] != managedByValue {
		t.Errorf("upstream labels %v, template labels %v: want managed-by on both", up.Labels, up.Spec.Template.Labels)
	}
	if got := up.Spec.Template.Spec.Containers[0].Image; got != "registry.example/upstream:v9" {
		t.Errorf("upstream image %q, want the override", got)
	}
	down, _ := cs.AppsV1().Deployments(ns).Get(ctx, "downstream", metav1.GetOptions{})
	if got := down.Spec.Template.Spec.Containers[0].Image; got != "downstream:dev" {
		t.Errorf("downstream image %q, want the manifest's", got)
	}
	if !managedBy(up.ManagedFields, "gracelab", metav1.ManagedFieldsOperationApply) {
		t.Errorf("upstream managed fields %+v: want an Apply entry of manager gracelab", up.ManagedFields)
	}
	svc, err := cs.CoreV1().Services(ns).Get(ctx, "downstream", metav1.GetOptions{})
	if err != nil || svc.Labels[managedByLabel] != managedByValue {
		t.Fatalf("downstream Service %v labels %v", err, svc.Labels)
	}

	// Before the restart: every pod was created, started and became ready, and endpoints added.
	events := c.Events()
	for _, kind := range []cluster.EventKind{cluster.PodCreated, cluster.PodStarted, cluster.PodReady, cluster.EndpointAdded} {
		if !hasEvent(events, func(e cluster.Event) bool { return e.Kind == kind && e.Deployment == "upstream" }) {
			t.Errorf("no %s event for upstream after Up: %+v", kind, events)
		}
	}
	oldPods := podNames(t, cs, ns, "app=upstream")

	if err := c.Restart(ctx, "upstream"); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if err := c.WaitSettled(ctx, "upstream"); err != nil {
		t.Fatalf("WaitSettled: %v", err)
	}
	// Settled means: no pod of the old revision left, terminating or not.
	for _, p := range podNames(t, cs, ns, "app=upstream") {
		for _, old := range oldPods {
			if p == old {
				t.Errorf("old pod %s still exists after WaitSettled", p)
			}
		}
	}
	events = c.Events()
	restart := indexOf(events, func(e cluster.Event) bool { return e.Kind == cluster.RestartTriggered })
	complete := indexOf(events, func(e cluster.Event) bool { return e.Kind == cluster.RolloutComplete })
	if restart < 0 || complete < restart {
		t.Fatalf("restart at %d, rollout complete at %d: want both, in that order", restart, complete)
	}
	if events[restart].Source != cluster.SourceDrill || !strings.Contains(events[restart].Detail, restartedAtAnnotation) {
		t.Errorf("restart event %+v", events[restart])
	}
	// Each old pod: terminating, exited, deleted; its endpoint: terminating, removed. Pods and
	// EndpointSlices are separate watches, so only the order within each is certain.
	for _, old := range oldPods {
		got := kinds(events[restart:], old)
		for _, want := range [][]cluster.EventKind{
			{cluster.PodTerminating, cluster.PodExited, cluster.PodDeleted},
			{cluster.EndpointTerminating, cluster.EndpointRemoved},
		} {
			if !subsequence(got, want) {
				t.Errorf("old pod %s events %v, want in order %v", old, got, want)
			}
		}
	}
	for i, e := range events {
		if e.Source != cluster.SourceAPI && e.Source != cluster.SourceDrill {
			t.Errorf("event %d has source %q", i, e.Source)
		}
		if i > 0 && e.Time.Before(events[i-1].Time) {
			t.Errorf("event %d at %v is before event %d", i, e.Time, i-1)
		}
		if e.Kind == cluster.PreStopStarted || e.Kind == cluster.SIGTERMSent || e.Kind == cluster.PodNetworkRemoved {
			t.Errorf("embedded-only event %s produced from the API", e.Kind)
		}
	}

	if err := c.Down(ctx); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s after Down: %v, want it deleted", ns, err)
	}
	if err := c.Down(ctx); err != nil {
		t.Errorf("second Down: %v", err)
	}
}

func managedBy(fields []metav1.ManagedFieldsEntry, manager string, op metav1.ManagedFieldsOperationType) bool {
	for _, f := range fields {
		if f.Manager == manager && f.Operation == op {
			return true
		}
	}
	return false
}

func podNames(t *testing.T, cs *fake.Clientset, ns, selector string) []string {
	t.Helper()
	pods, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pods.Items {
		names = append(names, p.Name)
	}
	return names
}

func indexOf(events []cluster.Event, match func(cluster.Event) bool) int {
	for i, e := range events {
		if match(e) {
			return i
		}
	}
	return -1
}

// subsequence reports whether want appears in got in order (other kinds may come between).
func subsequence(got, want []cluster.EventKind) bool {
	i := 0
	for _, k := range got {
		if i < len(want) && k == want[i] {
			i++
		}
	}
	return i == len(want)
}

func TestTargetDerivedFromServiceWhenNotGiven(t *testing.T) {
	cs := kubetest.NewClientset()
	kubetest.Start(t, cs)
	c := newTestCluster(t, cs, testOptions())
	ctx := testContext(t)
	if err := c.Up(ctx); err != nil {
		t.Fatalf("Up: %v", err)
	}
	svc, err := cs.CoreV1().Services(c.Namespace()).Get(ctx, "downstream", metav1.GetOptions{})
	if err != nil || svc.Spec.ClusterIP == "" {
		t.Fatalf("downstream Service %v, ClusterIP %q", err, svc.Spec.ClusterIP)
	}
	if got, want := c.Target(), "http://"+svc.Spec.ClusterIP+":8000/"; got != want {
		t.Errorf("Target() = %q, want %q", got, want)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings %v for a derived target", w)
	}
}

func TestPortForwardTargetIsWarned(t *testing.T) {
	cs := kubetest.NewClientset()
	kubetest.Start(t, cs)
	opts := testOptions()
	opts.Target = "http://localhost:8080/"
	c := newTestCluster(t, cs, opts)
	if err := c.Up(testContext(t)); err != nil {
		t.Fatalf("Up: %v", err)
	}
	w := c.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "port-forward pins one pod and bypasses the Service") {
		t.Fatalf("warnings %q, want the port-forward warning", w)
	}
	if c.Target() != opts.Target {
		t.Errorf("Target() = %q, want the given %q", c.Target(), opts.Target)
	}
}

func TestKeepLeavesNamespace(t *testing.T) {
	cs := kubetest.NewClientset()
	kubetest.Start(t, cs)
	opts := testOptions()
	opts.Keep = true
	c := newTestCluster(t, cs, opts)
	ctx := testContext(t)
	if err := c.Up(ctx); err != nil {
		t.Fatalf("Up: %v", err)
	}
	if err := c.Down(ctx); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, c.Namespace(), metav1.GetOptions{}); err != nil {
		t.Errorf("namespace after Down with Keep: %v, want it kept", err)
	}
	if _, err := cs.AppsV1().Deployments(c.Namespace()).Get(ctx, "upstream", metav1.GetOptions{}); err != nil {
		t.Errorf("deployment after Down with Keep: %v, want it kept", err)
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() == "delete" && (a.GetResource().Resource == "namespaces" || a.GetResource().Resource == "deployments") {
			t.Errorf("Down with Keep sent %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}

// In a namespace that exists and is not ours, Down deletes only the objects it labelled and
// never the namespace; a foreign object in it is left alone.
func TestExistingNamespaceIsNeverDeleted(t *testing.T) {
	foreignNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}
	foreignDep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "billing", Namespace: "team-a"}}
	cs := kubetest.NewClientset(foreignNS, foreignDep)
	kubetest.Start(t, cs)
	opts := testOptions()
	opts.Namespace = "team-a"
	c := newTestCluster(t, cs, opts)
	ctx := testContext(t)
	if err := c.Up(ctx); err != nil {
		t.Fatalf("Up: %v", err)
	}
	if err := c.Down(ctx); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "team-a", metav1.GetOptions{}); err != nil {
		t.Errorf("namespace team-a after Down: %v, want it kept", err)
	}
	if _, err := cs.AppsV1().Deployments("team-a").Get(ctx, "billing", metav1.GetOptions{}); err != nil {
		t.Errorf("foreign deployment after Down: %v, want it kept", err)
	}
	for _, name := range []string{"upstream", "downstream"} {
		if _, err := cs.AppsV1().Deployments("team-a").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("our deployment %s after Down: %v, want it deleted", name, err)
		}
		if _, err := cs.CoreV1().Services("team-a").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("our service %s after Down: %v, want it deleted", name, err)
		}
	}
	if pods := podNames(t, cs, "team-a", ownedSelector()); len(pods) != 0 {
		t.Errorf("pods left after Down: %v", pods)
	}
}

// An upstream Deployment or Service that exists without our label is refused, untouched, and
// the clean-up after the refusal leaves it in place.
func TestForeignObjectsAreRefused(t *testing.T) {
	for _, foreign := range []runtime.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "upstream", Namespace: "shared", Labels: map[string]string{"app": "theirs"}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "downstream", Namespace: "shared"}},
	} {
		t.Run(foreign.GetObjectKind().GroupVersionKind().Kind+fmtType(foreign), func(t *testing.T) {
			cs := kubetest.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shared"}}, foreign)
			opts := testOptions()
			opts.Namespace = "shared"
			c := newTestCluster(t, cs, opts)
			err := c.Up(testContext(t))
			if err == nil || !strings.Contains(err.Error(), "not managed by gracelab") || !strings.Contains(err.Error(), "omit --namespace") {
				t.Fatalf("Up error %v, want a refusal that says what to do", err)
			}
			for _, a := range cs.Actions() {
				if a.GetVerb() == "delete" {
					t.Errorf("clean-up deleted %s %s", a.GetResource().Resource, a.(k8stesting.DeleteAction).GetName())
				}
				if p, ok := a.(k8stesting.PatchAction); ok && p.GetName() == nameOf(foreign) && a.GetResource().Resource == resourceOf(foreign) {
					t.Errorf("the foreign %s was patched", nameOf(foreign))
				}
			}
			if _, err := cs.CoreV1().Namespaces().Get(context.Background(), "shared", metav1.GetOptions{}); err != nil {
				t.Errorf("namespace shared: %v", err)
			}
		})
	}
}

func fmtType(o runtime.Object) string {
	switch o.(type) {
	case *appsv1.Deployment:
		return "Deployment"
	default:
		return "Service"
	}
}

func nameOf(o runtime.Object) string {
	m, _ := o.(metav1.Object)
	return m.GetName()
}

func resourceOf(o runtime.Object) string {
	if _, ok := o.(*appsv1.Deployment); ok {
		return "deployments"
	}
	return "services"
}

// Our own objects from an earlier run are applied over with force.
func TestOwnedObjectsAreReappliedWithForce(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "mine"}}
	cs := kubetest.NewClientset(ns)
	kubetest.Start(t, cs)
	ctx := testContext(t)
	opts := testOptions()
	opts.Namespace = "mine"
	opts.Keep = true
	first := newTestCluster(t, cs, opts)
	if err := first.Up(ctx); err != nil {
		t.Fatalf("first Up: %v", err)
	}
	if err := first.Down(ctx); err != nil {
		t.Fatal(err)
	}
	cs.ClearActions()
	opts.Images = map[string]string{"downstream": "downstream:v2"}
	second := newTestCluster(t, cs, opts)
	if err := second.Up(ctx); err != nil {
		t.Fatalf("second Up over our own objects: %v", err)
	}
	forced := 0
	for _, a := range cs.Actions() {
		if p, ok := a.(k8stesting.PatchActionImpl); ok && p.GetPatchType() == "application/apply-patch+yaml" {
			if p.PatchOptions.Force == nil || !*p.PatchOptions.Force || p.PatchOptions.FieldManager != fieldManager {
				t.Errorf("apply of %s/%s: force %v manager %q, want forced by %q", p.GetResource().Resource, p.GetName(), p.PatchOptions.Force, p.PatchOptions.FieldManager, fieldManager)
			}
			forced++
		}
	}
	if forced != 4 {
		t.Errorf("%d forced applies, want 4 (2 Deployments, 2 Services)", forced)
	}
	d, _ := cs.AppsV1().Deployments("mine").Get(ctx, "downstream", metav1.GetOptions{})
	if got := d.Spec.Template.Spec.Containers[0].Image; got != "downstream:v2" {
		t.Errorf("downstream image %q after re-apply, want downstream:v2", got)
	}
}

// A denied apply is an error naming the verb and resource, and Up removes the namespace it made.
func TestForbiddenApplyCleansUp(t *testing.T) {
	cs := kubetest.NewClientset()
	cs.PrependReactor("patch", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"},
			a.(k8stesting.PatchAction).GetName(), errFake("user cannot patch"))
	})
	c := newTestCluster(t, cs, testOptions())
	ctx := testContext(t)
	err := c.Up(ctx)
	if err == nil || !apierrors.IsForbidden(err) {
		t.Fatalf("Up error %v, want Forbidden", err)
	}
	for _, want := range []string{"permission denied", `"patch"`, "deployments.apps", "RBAC"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, gerr := cs.CoreV1().Namespaces().Get(ctx, c.Namespace(), metav1.GetOptions{}); !apierrors.IsNotFound(gerr) {
		t.Errorf("namespace %s after failed Up: %v, want it deleted", c.Namespace(), gerr)
	}
}

func TestForbiddenNamespaceCreate(t *testing.T) {
	cs := kubetest.NewClientset()
	cs.PrependReactor("create", "namespaces", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "", errFake("no"))
	})
	c := newTestCluster(t, cs, testOptions())
	err := c.Up(testContext(t))
	if err == nil || !strings.Contains(err.Error(), `may not create namespaces cluster-wide`) {
		t.Fatalf("Up error %v, want a Forbidden message naming create namespaces", err)
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() == "delete" {
			t.Errorf("nothing was created, yet clean-up sent delete %s", a.GetResource().Resource)
		}
	}
}

func TestForbiddenWatchIsAnError(t *testing.T) {
	t.Run("watch", func(t *testing.T) {
		cs := kubetest.NewClientset()
		cs.PrependWatchReactor("pods", func(a k8stesting.Action) (bool, watch.Interface, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errFake("no"))
		})
		c := newTestCluster(t, cs, testOptions())
		err := c.Up(testContext(t))
		if err == nil || !strings.Contains(err.Error(), "may not watch pods") {
			t.Fatalf("Up error %v, want a Forbidden message naming watch pods", err)
		}
	})

	cs := kubetest.NewClientset()
	cs.PrependReactor("list", "endpointslices", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}, "", errFake("no"))
	})
	c := newTestCluster(t, cs, testOptions())
	err := c.Up(testContext(t))
	if err == nil || !strings.Contains(err.Error(), "list endpointslices.discovery.k8s.io") {
		t.Fatalf("Up error %v, want a Forbidden message naming list endpointslices", err)
	}
	if _, gerr := cs.CoreV1().Namespaces().Get(context.Background(), c.Namespace(), metav1.GetOptions{}); !apierrors.IsNotFound(gerr) {
		t.Errorf("namespace after failed Up: %v, want it deleted", gerr)
	}
}

type errFake string

func (e errFake) Error() string { return string(e) }

// A pod whose image cannot be pulled fails Up at once, naming the image and how to load it,
// and the namespace is cleaned up.
func TestImagePullBackOffFailsUpWithHowToLoad(t *testing.T) {
	for _, reason := range []string{"ImagePullBackOff", "ErrImageNeverPull"} {
		t.Run(reason, func(t *testing.T) {
			cs := kubetest.NewClientset()
			kubetest.Start(t, cs).FailPulls(reason, "upstream:dev")
			opts := testOptions()
			opts.RolloutTimeout = time.Minute // the failure must come from the pod, not a timeout
			c := newTestCluster(t, cs, opts)
			ctx := testContext(t)
			start := time.Now()
			err := c.Up(ctx)
			if err == nil {
				t.Fatal("Up succeeded with images that cannot be pulled")
			}
			for _, want := range []string{reason, `"upstream:dev"`, "kind load docker-image upstream:dev", "minikube image load upstream:dev", "--image-upstream"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %s", err, want)
				}
			}
			if time.Since(start) > 30*time.Second {
				t.Errorf("took %v: the pull failure should end the wait", time.Since(start))
			}
			if _, gerr := cs.CoreV1().Namespaces().Get(ctx, c.Namespace(), metav1.GetOptions{}); !apierrors.IsNotFound(gerr) {
				t.Errorf("namespace after failed Up: %v, want it deleted", gerr)
			}
		})
	}
}

// A rollout that stops making progress fails after RolloutTimeout with the Deployment's
// conditions; one whose Progressing condition reports the deadline fails at once.
func TestStalledRolloutHitsDeadline(t *testing.T) {
	cs := kubetest.NewClientset()
	fc := kubetest.Start(t, cs)
	opts := testOptions()
	// Up must finish within it too: 2 s, so a loaded machine's fake controllers make it.
	opts.RolloutTimeout = 2 * time.Second
	c := newTestCluster(t, cs, opts)
	ctx := testContext(t)
	if err := c.Up(ctx); err != nil {
		t.Fatalf("Up: %v", err)
	}
	fc.StallRevision("2") // the restart's pods never become ready
	if err := c.Restart(ctx, "upstream"); err != nil {
		t.Fatal(err)
	}
	err := c.WaitSettled(ctx, "upstream")
	if err == nil {
		t.Fatal("WaitSettled succeeded on a stalled rollout")
	}
	for _, want := range []string{"made no progress for 2s", "1 out of 2 new replicas have been updated", "Progressing=True", "Available=True", "kubectl -n " + c.Namespace() + " describe deployment upstream"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if hasEvent(c.Events(), func(e cluster.Event) bool { return e.Kind == cluster.RolloutComplete }) {
		t.Error("rollout_complete recorded for a stalled rollout")
	}

	fc.ExceedDeadline()
	opts.RolloutTimeout = time.Minute
	c.opts.RolloutTimeout = time.Minute
	waitFor(t, "the deadline condition", func() bool {
		d, _ := cs.AppsV1().Deployments(c.Namespace()).Get(ctx, "upstream", metav1.GetOptions{})
		cond := deploymentCondition(d, appsv1.DeploymentProgressing)
		return cond != nil && cond.Reason == timedOutReason
	})
	start := time.Now()
	err = c.WaitSettled(ctx, "upstream")
	if err == nil || !strings.Contains(err.Error(), "exceeded its progress deadline") || !strings.Contains(err.Error(), timedOutReason) {
		t.Fatalf("WaitSettled error %v, want the progress deadline with conditions", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("took %v: ProgressDeadlineExceeded should end the wait at once", time.Since(start))
	}
}

func TestRestartAndWaitBeforeUp(t *testing.T) {
	c, err := New(kubetest.NewClientset(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(context.Background(), "upstream"); err == nil {
		t.Error("Restart before Up succeeded")
	}
	if err := c.WaitSettled(context.Background(), "upstream"); err == nil {
		t.Error("WaitSettled before Up succeeded")
	}
	if err := c.Down(context.Background()); err != nil {
		t.Errorf("Down before Up: %v", err)
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"no manifests", func(o *Options) { o.Manifests = nil }, "no manifests"},
		{"bad target", func(o *Options) { o.Target = "localhost:8000" }, "http:// or https://"},
		{"unknown image key", func(o *Options) { o.Images = map[string]string{"upstrem": "x:1"} }, "upstrem matches no container"},
		{"empty image", func(o *Options) { o.Images = map[string]string{"upstream": ""} }, "is empty"},
		{"no such target service", func(o *Options) { o.TargetService = "frontend" }, `no Service "frontend"`},
		{"negative timeout", func(o *Options) { o.RolloutTimeout = -time.Second }, "negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions()
			tc.change(&opts)
			cs := kubetest.NewClientset()
			_, err := New(cs, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error %v, want one containing %q", err, tc.want)
			}
			if n := len(cs.Actions()); n != 0 {
				t.Errorf("New sent %d requests on bad input", n)
			}
		})
	}
}

func TestUpWaitsForServiceEndpoints(t *testing.T) {
	cs := kubetest.NewClientset()
	kubetest.Start(t, cs).StopEndpoints()
	opts := testOptions()
	// Long enough for the fake controllers to roll the Deployments out on a loaded machine;
	// only the endpoints never come.
	opts.RolloutTimeout = 2 * time.Second
	c := newTestCluster(t, cs, opts)
	err := c.Up(testContext(t))
	if err == nil || !strings.Contains(err.Error(), "lists 0 ready endpoints for 1 ready pods") || !strings.Contains(err.Error(), "get endpointslices") {
		t.Fatalf("Up error %v, want a Service without endpoints", err)
	}
	if _, gerr := cs.CoreV1().Namespaces().Get(context.Background(), c.Namespace(), metav1.GetOptions{}); !apierrors.IsNotFound(gerr) {
		t.Errorf("namespace after failed Up: %v, want it deleted", gerr)
	}
}

// A user whose Role covers only their namespace may not read the namespace object: the run
// goes on in it, and it is never deleted.
func TestNamespaceNotReadableIsUsedAsExisting(t *testing.T) {
	cs := kubetest.NewClientset()
	cs.PrependReactor("get", "namespaces", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "team", errFake("no"))
	})
	cs.PrependReactor("delete", "namespaces", func(a k8stesting.Action) (bool, runtime.Object, error) {
		t.Errorf("namespace %s deleted", a.(k8stesting.DeleteAction).GetName())
		return true, nil, nil
	})
	kubetest.Start(t, cs)
	opts := testOptions()
	opts.Namespace = "team"
	c := newTestCluster(t, cs, opts)
	ctx := testContext(t)
	if err := c.Up(ctx); err != nil {
		t.Fatalf("Up: %v", err)
	}
	if err := c.Down(ctx); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if _, err := cs.AppsV1().Deployments("team").Get(ctx, "upstream", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("our deployment after Down: %v, want it deleted", err)
	}
}

// The project's own manifests (k8s/) load strictly and run the whole drill on the fake cluster,
// with the image flags' keys.
func TestProjectManifestsOnFakeCluster(t *testing.T) {
	for _, dir := range k8s.Scenarios {
		t.Run(dir, func(t *testing.T) {
			sub, err := fs.Sub(k8s.FS, dir)
			if err != nil {
				t.Fatal(err)
			}
			cs := kubetest.NewClientset()
			kubetest.Start(t, cs)
			opts := testOptions()
			opts.Manifests = sub
			opts.Images = map[string]string{"upstream": "registry.test/upstream:1", "downstream": "registry.test/downstream:1"}
			c := newTestCluster(t, cs, opts)
			ctx := testContext(t)
			if err := c.Up(ctx); err != nil {
				t.Fatalf("Up: %v", err)
			}
			if !strings.HasPrefix(c.Target(), "http://127.2.0.") {
				t.Errorf("Target() = %q, want the downstream ClusterIP (the fake has no LoadBalancer)", c.Target())
			}
			if err := c.Restart(ctx, "upstream"); err != nil {
				t.Fatal(err)
			}
			if err := c.WaitSettled(ctx, "upstream"); err != nil {
				t.Fatal(err)
			}
			if err := c.Down(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
