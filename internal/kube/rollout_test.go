package kube

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/kube/kubetest"
)

func TestRolloutStatus(t *testing.T) {
	three := int32(3)
	available := appsv1.DeploymentCondition{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"}
	progressing := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "ReplicaSetUpdated"}
	deadline := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: timedOutReason}
	cases := []struct {
		name                         string
		generation, observed         int64
		replicas, updated, available int32
		conditions                   []appsv1.DeploymentCondition
		wantDone                     bool
		wantErr, wantMsg             string
	}{
		{name: "complete", generation: 2, observed: 2, replicas: 3, updated: 3, available: 3,
			conditions: []appsv1.DeploymentCondition{available}, wantDone: true, wantMsg: "successfully rolled out"},
		{name: "spec change not yet observed", generation: 3, observed: 2, replicas: 3, updated: 3, available: 3,
			conditions: []appsv1.DeploymentCondition{available}, wantMsg: "spec update to be observed"},
		{name: "new replicas still being created", generation: 2, observed: 2, replicas: 4, updated: 1, available: 3,
			conditions: []appsv1.DeploymentCondition{available, progressing}, wantMsg: "1 out of 3 new replicas have been updated"},
		// Mid-rollout Available is true and every replica may be updated, yet old ones remain.
		{name: "available but old replicas present", generation: 2, observed: 2, replicas: 4, updated: 3, available: 4,
			conditions: []appsv1.DeploymentCondition{available, progressing}, wantMsg: "1 old replicas are pending termination"},
		{name: "updated but not yet available", generation: 2, observed: 2, replicas: 3, updated: 3, available: 2,
			conditions: []appsv1.DeploymentCondition{available, progressing}, wantMsg: "2 of 3 updated replicas are available"},
		{name: "progress deadline exceeded", generation: 2, observed: 2, replicas: 4, updated: 1, available: 3,
			conditions: []appsv1.DeploymentCondition{available, deadline}, wantErr: "exceeded its progress deadline"},
		{name: "deadline of an older generation is not judged", generation: 3, observed: 2, replicas: 4, updated: 1, available: 3,
			conditions: []appsv1.DeploymentCondition{available, deadline}, wantMsg: "spec update to be observed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: "upstream", Generation: tc.generation},
				Spec:       appsv1.DeploymentSpec{Replicas: &three},
				Status: appsv1.DeploymentStatus{ObservedGeneration: tc.observed, Replicas: tc.replicas,
					UpdatedReplicas: tc.updated, AvailableReplicas: tc.available, ReadyReplicas: tc.available, Conditions: tc.conditions},
			}
			msg, done, err := RolloutStatus(d)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if done != tc.wantDone || !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("RolloutStatus = %q, %v; want %q, %v", msg, done, tc.wantMsg, tc.wantDone)
			}
		})
	}
}

func existingDeployment(ns string) *appsv1.Deployment {
	two := int32(2)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "upstream", Namespace: ns, Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas: &two,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "upstream"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "upstream"}, Annotations: map[string]string{"keep": "me"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "upstream", Image: "upstream:dev"}}},
			},
		},
	}
}

// RolloutRestart sends what `kubectl rollout restart` sends: a strategic merge patch of the
// restartedAt template annotation, which changes the template (a new generation) and keeps
// the other annotations.
func TestRolloutRestartPatch(t *testing.T) {
	cs := kubetest.NewClientset(existingDeployment("work"))
	before := time.Now().Truncate(time.Second)
	if err := RolloutRestart(context.Background(), cs, "work", "upstream"); err != nil {
		t.Fatal(err)
	}
	var patch k8stesting.PatchAction
	for _, a := range cs.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok {
			patch = p
		}
	}
	if patch == nil {
		t.Fatal("no patch sent")
	}
	if patch.GetPatchType() != types.StrategicMergePatchType || patch.GetName() != "upstream" || patch.GetNamespace() != "work" {
		t.Errorf("patch %s of %s/%s, want a strategic merge patch of work/upstream", patch.GetPatchType(), patch.GetNamespace(), patch.GetName())
	}
	var body struct {
		Spec struct {
			Template struct {
				Metadata struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"metadata"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(patch.GetPatch(), &body); err != nil {
		t.Fatalf("patch body %s: %v", patch.GetPatch(), err)
	}
	stamp := body.Spec.Template.Metadata.Annotations[restartedAtAnnotation]
	at, err := time.Parse(time.RFC3339, stamp)
	if err != nil || at.Before(before) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("restartedAt %q (%v): want the current time in RFC 3339", stamp, err)
	}
	d, _ := cs.AppsV1().Deployments("work").Get(context.Background(), "upstream", metav1.GetOptions{})
	if d.Spec.Template.Annotations[restartedAtAnnotation] != stamp || d.Spec.Template.Annotations["keep"] != "me" {
		t.Errorf("template annotations %v, want restartedAt added and keep kept", d.Spec.Template.Annotations)
	}
	if d.Generation != 2 {
		t.Errorf("generation %d, want 2: the template changed", d.Generation)
	}

	// A second restart in the same second still makes a new revision.
	if err := RolloutRestart(context.Background(), cs, "work", "upstream"); err != nil {
		t.Fatal(err)
	}
	d2, _ := cs.AppsV1().Deployments("work").Get(context.Background(), "upstream", metav1.GetOptions{})
	if d2.Spec.Template.Annotations[restartedAtAnnotation] == stamp || d2.Generation != 3 {
		t.Errorf("second restart: annotation %q generation %d, want a new value and generation 3",
			d2.Spec.Template.Annotations[restartedAtAnnotation], d2.Generation)
	}
}

func TestRolloutRestartErrors(t *testing.T) {
	paused := existingDeployment("work")
	paused.Spec.Paused = true
	cases := []struct {
		name  string
		objs  []runtime.Object
		react k8stesting.ReactionFunc
		want  []string
	}{
		{name: "not found", want: []string{`deployment "upstream" not found in namespace "work"`, "--namespace"}},
		{name: "paused", objs: []runtime.Object{paused}, want: []string{"paused", "rollout resume"}},
		{name: "forbidden", objs: []runtime.Object{existingDeployment("work")},
			react: func(a k8stesting.Action) (bool, runtime.Object, error) {
				if a.GetVerb() != "patch" {
					return false, nil, nil
				}
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, "upstream", errFake("denied"))
			},
			want: []string{"permission denied", `may not patch deployments.apps in namespace "work"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cs := kubetest.NewClientset(tc.objs...)
			if tc.react != nil {
				cs.PrependReactor("*", "deployments", tc.react)
			}
			err := RolloutRestart(context.Background(), cs, "work", "upstream")
			if err == nil {
				t.Fatal("RolloutRestart succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestFindNamespace(t *testing.T) {
	ours := func(name string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: ownedLabels()}}
	}
	theirs := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "prod"}}
	ctx := context.Background()

	cs := kubetest.NewClientset(ours("gracelab-a"), ours("gracelab-b"), theirs, existingDeployment("gracelab-b"), existingDeployment("prod"))
	if ns, err := FindNamespace(ctx, cs, "upstream"); err != nil || ns != "gracelab-b" {
		t.Errorf("FindNamespace = %q, %v; want gracelab-b (prod is not ours)", ns, err)
	}
	cs = kubetest.NewClientset(ours("gracelab-a"), ours("gracelab-b"), existingDeployment("gracelab-a"), existingDeployment("gracelab-b"))
	if _, err := FindNamespace(ctx, cs, "upstream"); err == nil || !strings.Contains(err.Error(), "gracelab-a, gracelab-b") {
		t.Errorf("FindNamespace with two matches: %v, want both named", err)
	}
	cs = kubetest.NewClientset(theirs, existingDeployment("prod"))
	if _, err := FindNamespace(ctx, cs, "upstream"); err == nil || !strings.Contains(err.Error(), "pass --namespace") {
		t.Errorf("FindNamespace with no match: %v", err)
	}
}

func TestOldPodsAreNotSettled(t *testing.T) {
	d := existingDeployment("work")
	d.Annotations = map[string]string{revisionAnnotation: "2"}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}
	rs := func(name, rev string) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "work",
			Labels:          map[string]string{"app": "upstream"},
			Annotations:     map[string]string{revisionAnnotation: rev},
			OwnerReferences: []metav1.OwnerReference{controllerRef("apps/v1", "Deployment", "upstream", "")}}}
	}
	pod := func(name, owner string, terminating bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "work", Labels: map[string]string{"app": "upstream"},
			OwnerReferences: []metav1.OwnerReference{controllerRef("apps/v1", "ReplicaSet", owner, "")}}}
		if terminating {
			now := metav1.Now()
			p.DeletionTimestamp = &now
		}
		return p
	}
	cs := kubetest.NewClientset(d, rs("upstream-old", "1"), rs("upstream-new", "2"),
		pod("new-1", "upstream-new", false), pod("new-2", "upstream-new", false), pod("old-1", "upstream-old", true))
	opts := testOptions()
	opts.Namespace = "work"
	opts.RolloutTimeout = time.Hour // only a delivery can wake waitSettled before ctx ends
	c, err := New(cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	c.namespace = "work"
	if err := c.startWatches(context.Background(), labels.Everything(), nil); err != nil {
		t.Fatal(err)
	}
	defer c.stopWatches()
	st, err := c.observe("upstream")
	if err != nil {
		t.Fatal(err)
	}
	if !st.done || len(st.oldPods) != 1 || st.oldPods[0] != "old-1" {
		t.Fatalf("observe: done %v old pods %v; want done by rollout status but old-1 still terminating", st.done, st.oldPods)
	}
	// waitSettled wakes on the watch's delivery of the deletion, not on a timer.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	settled := make(chan error, 1)
	go func() { settled <- c.waitSettled(ctx, "upstream", true) }()
	// rollout_complete is recorded on the first look, which still finds old-1.
	waitFor(t, "the first look of waitSettled", func() bool {
		return hasEvent(c.Events(), func(e cluster.Event) bool { return e.Kind == cluster.RolloutComplete })
	})
	if err := cs.CoreV1().Pods("work").Delete(context.Background(), "old-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := <-settled; err != nil {
		t.Fatalf("waitSettled once the old pod is gone: %v", err)
	}
}
