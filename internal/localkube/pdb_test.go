package localkube

import (
	"strings"
	"testing"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func pdbOf(t *testing.T, spec policyv1.PodDisruptionBudgetSpec) *pdbSpec {
	t.Helper()
	if spec.Selector == nil {
		spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	}
	s, err := validatePDB(&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// healthy pods of one Deployment scaled to replicas: ready ones first, then not ready ones.
func budgetPods(replicas int32, ready, notReady, terminating int) []budgetPod {
	var out []budgetPod
	add := func(n int, p budgetPod) {
		for range n {
			p.controller, p.scale = "default/web", replicas
			out = append(out, p)
		}
	}
	add(ready, budgetPod{ready: true})
	add(notReady, budgetPod{})
	add(terminating, budgetPod{ready: true, terminating: true})
	return out
}

func ptr[T any](v T) *T { return &v }

// The cases are the examples of "Specifying a Disruption Budget for your Application"
// (kubernetes.io, rounding: "if you have 7 Pods and you set minAvailable to 50%, the number of
// Pods that must be available is 4") and the disruption controller's arithmetic.
func TestPDBStatusAsTheDisruptionController(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec policyv1.PodDisruptionBudgetSpec
		pods []budgetPod
		want pdbStatus
	}{
		{"minAvailable 50% of 7 rounds up to 4", policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr(intstr.FromString("50%"))},
			budgetPods(7, 7, 0, 0), pdbStatus{expectedPods: 7, desiredHealthy: 4, currentHealthy: 7, disruptionsAllowed: 3}},
		{"maxUnavailable 50% of 7 rounds up to 4 unavailable", policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr(intstr.FromString("50%"))},
			budgetPods(7, 7, 0, 0), pdbStatus{expectedPods: 7, desiredHealthy: 3, currentHealthy: 7, disruptionsAllowed: 4}},
		{"integer minAvailable counts the pods, not the replicas", policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr(intstr.FromInt32(2))},
			budgetPods(3, 2, 0, 1), pdbStatus{expectedPods: 3, desiredHealthy: 2, currentHealthy: 2, disruptionsAllowed: 0}},
		{"minAvailable 1 of 2 ready: one disruption", policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr(intstr.FromInt32(1))},
			budgetPods(2, 2, 0, 0), pdbStatus{expectedPods: 2, desiredHealthy: 1, currentHealthy: 2, disruptionsAllowed: 1}},
		{"maxUnavailable 1 with one pod not ready: none", policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr(intstr.FromInt32(1))},
			budgetPods(3, 2, 1, 0), pdbStatus{expectedPods: 3, desiredHealthy: 2, currentHealthy: 2, disruptionsAllowed: 0}},
		{"maxUnavailable 0 allows no voluntary eviction", policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr(intstr.FromInt32(0))},
			budgetPods(3, 3, 0, 0), pdbStatus{expectedPods: 3, desiredHealthy: 3, currentHealthy: 3, disruptionsAllowed: 0}},
		{"minAvailable 100% allows no voluntary eviction", policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr(intstr.FromString("100%"))},
			budgetPods(3, 3, 0, 0), pdbStatus{expectedPods: 3, desiredHealthy: 3, currentHealthy: 3, disruptionsAllowed: 0}},
		{"a terminating pod is not healthy", policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr(intstr.FromInt32(1))},
			budgetPods(2, 1, 0, 1), pdbStatus{expectedPods: 2, desiredHealthy: 1, currentHealthy: 1, disruptionsAllowed: 0}},
		{"maxUnavailable larger than the replicas: desired 0", policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr(intstr.FromInt32(5))},
			budgetPods(2, 2, 0, 0), pdbStatus{expectedPods: 2, desiredHealthy: 0, currentHealthy: 2, disruptionsAllowed: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pdbOf(t, tc.spec).status(tc.pods); got != tc.want {
				t.Fatalf("status %+v, want %+v", got, tc.want)
			}
		})
	}
}

// unhealthyPodEvictionPolicy, as the API reference states it: IfHealthyBudget evicts a running
// but not ready pod only while currentHealthy >= desiredHealthy; AlwaysAllow always; a ready
// pod is always subject to disruptionsAllowed.
func TestPDBEvictionVerdict(t *testing.T) {
	min2 := policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr(intstr.FromInt32(2))}
	always := min2
	always.UnhealthyPodEvictionPolicy = ptr(policyv1.AlwaysAllow)
	for _, tc := range []struct {
		name     string
		spec     policyv1.PodDisruptionBudgetSpec
		pods     []budgetPod
		ready    bool
		allowed  bool
		mentions string
	}{
		{"ready pod, budget has room", min2, budgetPods(3, 3, 0, 0), true, true, ""},
		{"ready pod, budget exhausted", min2, budgetPods(3, 2, 1, 0), true, false, "needs 2 healthy pods and has 2 currently"},
		{"unready pod, application not disrupted", min2, budgetPods(3, 2, 1, 0), false, true, ""},
		{"unready pod, application disrupted, IfHealthyBudget", min2, budgetPods(3, 1, 2, 0), false, false, "needs 2 healthy pods and has 1 currently"},
		{"unready pod, application disrupted, AlwaysAllow", always, budgetPods(3, 1, 2, 0), false, true, ""},
		{"ready pod, application disrupted, AlwaysAllow", always, budgetPods(3, 1, 2, 0), true, false, "Cannot evict pod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := pdbOf(t, tc.spec)
			why := b.evictionVerdict(b.status(tc.pods), tc.ready)
			if (why == "") != tc.allowed || !strings.Contains(why, tc.mentions) {
				t.Fatalf("verdict %q, want allowed=%v mentioning %q", why, tc.allowed, tc.mentions)
			}
		})
	}
}

func TestPDBValidation(t *testing.T) {
	bad := ptr(policyv1.UnhealthyPodEvictionPolicyType("Sometimes"))
	for _, tc := range []struct {
		spec policyv1.PodDisruptionBudgetSpec
		want string
	}{
		{policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr(intstr.FromInt32(1)), MaxUnavailable: ptr(intstr.FromInt32(1))}, "cannot both be set"},
		{policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr(intstr.FromInt32(-1))}, "must not be negative"},
		{policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr(intstr.FromString("150%"))}, "between 0% and 100%"},
		{policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr(intstr.FromString("half"))}, "spec.maxUnavailable"},
		{policyv1.PodDisruptionBudgetSpec{UnhealthyPodEvictionPolicy: bad}, "unhealthyPodEvictionPolicy"},
	} {
		_, err := validatePDB(&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: tc.spec})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", tc.spec, err, tc.want)
		}
	}
	// A nil selector selects nothing; an empty one everything in the namespace.
	s, _ := validatePDB(&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "p"}})
	if s.selector.Matches(labelSet(map[string]string{"app": "web"})) {
		t.Error("a nil selector matched a pod")
	}
	s, _ = validatePDB(&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{}}})
	if !s.selector.Matches(labelSet(map[string]string{"app": "web"})) {
		t.Error("an empty selector did not match a pod")
	}
}
