package kube

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gracelab/gracelab/internal/kube/kubetest"
	"github.com/gracelab/gracelab/internal/load"
)

// A load that got no answer at all names the NetworkPolicy that selects the target's pods
// (found through the target's Service) or the load pods; a load that got any answer, even a
// 5xx, reached the target and is not blamed on a policy.
func TestUnreachedNamesTheBlockingPolicy(t *testing.T) {
	ctx := testContext(t)
	job := testJob(t, 1) // namespace shop, target http://checkout.shop/
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: "shop"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "checkout"}, ClusterIP: "100.96.0.7"}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "checkout-1", Namespace: "shop", Labels: map[string]string{"app": "checkout", "tier": "web"}}}
	deny := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "deny-all", Namespace: "shop"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}
	other := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "db-only", Namespace: "shop"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}}
	refused := &load.Result{Requests: 40, Errors: 40, ErrorsByKind: map[load.Outcome]int64{load.Refused: 10, load.Timeout: 30}}

	cs := kubetest.NewClientset(svc, pod, deny, other)
	for _, target := range []string{"http://checkout.shop/", "http://checkout/", "http://checkout.shop.svc.cluster.local:80/", "http://100.96.0.7/"} {
		err := unreached(ctx, cs, job, target, refused)
		if err == nil || !strings.Contains(err.Error(), "NetworkPolicy deny-all in namespace shop selects the pods of Service checkout") ||
			!strings.Contains(err.Error(), "30 timeout") || strings.Contains(err.Error(), "db-only") {
			t.Errorf("%s: %v", target, err)
		}
	}
	for _, r := range []*load.Result{
		{Requests: 40, OK: 1, Errors: 39, ErrorsByKind: map[load.Outcome]int64{load.Refused: 39}},
		{Requests: 40, Errors: 40, ErrorsByKind: map[load.Outcome]int64{load.HTTP5xx: 1, load.Refused: 39}},
		{},
	} {
		if err := unreached(ctx, cs, job, "http://checkout.shop/", r); err != nil {
			t.Errorf("%+v: %v; the target answered (or nothing was sent)", r, err)
		}
	}
	// No policy in the way: said so, with what to check instead.
	cs = kubetest.NewClientset(svc, pod, other)
	if err := unreached(ctx, cs, job, "http://checkout.shop/", refused); err == nil || !strings.Contains(err.Error(), "no NetworkPolicy selects") {
		t.Errorf("without a policy: %v", err)
	}
}
