package kube

// NetworkPolicies that may keep the load pods from their target: warned before a run, named
// when no request got through.

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// NetworkPolicyWarnings names the NetworkPolicies of the namespace that select the load pods
// and restrict their egress: those may block the load, which would look like an outage.
func NetworkPolicyWarnings(ctx context.Context, client kubernetes.Interface, job *batchv1.Job) ([]string, error) {
	list, err := client.NetworkingV1().NetworkPolicies(job.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, apiError(err, "list", "networkpolicies.networking.k8s.io", job.Namespace)
	}
	podLabels := labels.Set(job.Spec.Template.Labels)
	var out []string
	for _, np := range list.Items {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(podLabels) {
			continue
		}
		for _, t := range np.Spec.PolicyTypes {
			if t == "Egress" {
				out = append(out, fmt.Sprintf("NetworkPolicy %s selects the load pods and restricts their egress (%d rules): if it does not allow the target, every request fails; see kubectl -n %s describe networkpolicy %s",
					np.Name, len(np.Spec.Egress), job.Namespace, np.Name))
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// BlockingPolicies names the NetworkPolicies that may keep the load pods from the target: one
// selecting the load pods that restricts their egress, or one selecting the pods behind the
// target's Service (by its cluster DNS name or ClusterIP) that restricts their ingress. It is
// asked when no request of the load got through.
func BlockingPolicies(ctx context.Context, client kubernetes.Interface, job *batchv1.Job, target string) ([]string, error) {
	out, err := NetworkPolicyWarnings(ctx, client, job)
	if err != nil {
		return nil, err
	}
	svc, err := targetService(ctx, client, job.Namespace, target)
	if err != nil || svc == nil || len(svc.Spec.Selector) == 0 {
		return out, err
	}
	pods, err := client.CoreV1().Pods(svc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String()})
	if err != nil {
		return out, apiError(err, "list", "pods", svc.Namespace)
	}
	policies, err := client.NetworkingV1().NetworkPolicies(svc.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return out, apiError(err, "list", "networkpolicies.networking.k8s.io", svc.Namespace)
	}
	for _, np := range policies.Items {
		ingress := len(np.Spec.PolicyTypes) == 0 // no types: Ingress
		for _, t := range np.Spec.PolicyTypes {
			ingress = ingress || t == "Ingress"
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if !ingress || err != nil {
			continue
		}
		for _, p := range pods.Items {
			if sel.Matches(labels.Set(p.Labels)) {
				out = append(out, fmt.Sprintf("NetworkPolicy %s in namespace %s selects the pods of Service %s and restricts their ingress (%d rules): if it does not admit the load pods (label %s=%s in namespace %s), no request gets through; see kubectl -n %s describe networkpolicy %s",
					np.Name, svc.Namespace, svc.Name, len(np.Spec.Ingress), loadJobLabel, job.Name, job.Namespace, svc.Namespace, np.Name))
				break
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// targetService finds the Service a target URL names: name, name.ns, name.ns.svc[.cluster.local]
// (ns defaults to the load pods'), or a ClusterIP in the load pods' namespace. nil when none.
func targetService(ctx context.Context, client kubernetes.Interface, namespace, target string) (*corev1.Service, error) {
	host, _, err := parseTarget(target)
	if err != nil {
		return nil, nil
	}
	if net.ParseIP(host) != nil {
		list, err := client.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, apiError(err, "list", "services", namespace)
		}
		for i := range list.Items {
			if sameHost(list.Items[i].Spec.ClusterIP, host) {
				return &list.Items[i], nil
			}
		}
		return nil, nil
	}
	parts := strings.Split(strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(host, "."), ".cluster.local"), ".svc"), ".")
	if len(parts) > 2 {
		return nil, nil
	}
	if len(parts) == 2 {
		namespace = parts[1]
	}
	svc, err := client.CoreV1().Services(namespace).Get(ctx, parts[0], metav1.GetOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
		return nil, nil
	}
	if err != nil {
		return nil, apiError(err, "get", "services", namespace)
	}
	return svc, nil
}
