package localkube

import (
	"errors"
	"fmt"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// PodDisruptionBudgets as the disruption controller (pkg/controller/disruption) computes their
// status and the Eviction API (pkg/registry/core/pod/storage/eviction.go) reads it:
//
//	integer minAvailable      desiredHealthy = minAvailable, expectedPods = the selected pods
//	percentage minAvailable   expectedPods = the replicas of their controllers (Deployments),
//	                          desiredHealthy = that percentage of it, rounded up
//	maxUnavailable            expectedPods as above, desiredHealthy = expectedPods minus
//	                          maxUnavailable (a percentage rounded up), at least 0
//	currentHealthy            selected pods that are ready and not being deleted
//	disruptionsAllowed        currentHealthy - desiredHealthy, at least 0
//
// A nil selector selects no pod, an empty one every pod of the namespace.

type pdbSpec struct {
	file           string
	name           string
	namespace      string
	selector       labels.Selector // labels.Nothing() for a nil selector
	minAvailable   *intstr.IntOrString
	maxUnavailable *intstr.IntOrString
	alwaysAllow    bool // unhealthyPodEvictionPolicy: AlwaysAllow
}

// validatePDB checks what the API server's validation checks and resolves the selector.
func validatePDB(p *policyv1.PodDisruptionBudget) (*pdbSpec, error) {
	s := &pdbSpec{name: p.Name, namespace: orDefault(p.Namespace, defaultNamespace),
		minAvailable: p.Spec.MinAvailable, maxUnavailable: p.Spec.MaxUnavailable}
	if s.minAvailable != nil && s.maxUnavailable != nil {
		return nil, errors.New("spec.minAvailable and spec.maxUnavailable cannot both be set")
	}
	for _, f := range []struct {
		name string
		v    *intstr.IntOrString
	}{{"minAvailable", s.minAvailable}, {"maxUnavailable", s.maxUnavailable}} {
		if f.v == nil {
			continue
		}
		if f.v.Type == intstr.Int && f.v.IntVal < 0 {
			return nil, fmt.Errorf("spec.%s must not be negative (got %d)", f.name, f.v.IntVal)
		}
		if f.v.Type == intstr.String {
			if _, err := intstr.GetScaledValueFromIntOrPercent(f.v, 100, true); err != nil {
				return nil, fmt.Errorf("spec.%s: %w", f.name, err)
			}
			if v, _ := intstr.GetScaledValueFromIntOrPercent(f.v, 100, true); v < 0 || v > 100 {
				return nil, fmt.Errorf("spec.%s must be between 0%% and 100%% (got %s)", f.name, f.v.StrVal)
			}
		}
	}
	switch pol := p.Spec.UnhealthyPodEvictionPolicy; {
	case pol == nil || *pol == policyv1.IfHealthyBudget:
	case *pol == policyv1.AlwaysAllow:
		s.alwaysAllow = true
	default:
		return nil, fmt.Errorf("spec.unhealthyPodEvictionPolicy %q is not IfHealthyBudget or AlwaysAllow", *pol)
	}
	s.selector = labels.Nothing()
	if p.Spec.Selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil {
			return nil, fmt.Errorf("spec.selector: %w", err)
		}
		s.selector = sel
	}
	return s, nil
}

// budgetPod is what the budget arithmetic needs of one selected pod.
type budgetPod struct {
	ready, terminating bool
	controller         string // the Deployment that owns it
	scale              int32  // that Deployment's replicas
}

// pdbStatus is a budget's status as the disruption controller would write it.
type pdbStatus struct {
	expectedPods, desiredHealthy, currentHealthy, disruptionsAllowed int32
}

// status computes the budget's status over the pods it selects.
func (s *pdbSpec) status(pods []budgetPod) pdbStatus {
	var st pdbStatus
	for _, p := range pods {
		if p.ready && !p.terminating {
			st.currentHealthy++
		}
	}
	controllersScale := func() int32 {
		seen := map[string]bool{}
		var n int32
		for _, p := range pods {
			if !seen[p.controller] {
				seen[p.controller] = true
				n += p.scale
			}
		}
		return n
	}
	switch {
	case s.maxUnavailable != nil:
		st.expectedPods = controllersScale()
		mu, _ := intstr.GetScaledValueFromIntOrPercent(s.maxUnavailable, int(st.expectedPods), true)
		st.desiredHealthy = max(st.expectedPods-int32(mu), 0)
	case s.minAvailable != nil && s.minAvailable.Type == intstr.Int:
		st.expectedPods = int32(len(pods))
		st.desiredHealthy = s.minAvailable.IntVal
	case s.minAvailable != nil:
		st.expectedPods = controllersScale()
		ma, _ := intstr.GetScaledValueFromIntOrPercent(s.minAvailable, int(st.expectedPods), true)
		st.desiredHealthy = int32(ma)
	default:
		st.expectedPods = int32(len(pods))
	}
	st.disruptionsAllowed = max(st.currentHealthy-st.desiredHealthy, 0)
	return st
}

// evictionVerdict is the Eviction API's decision for a running pod covered by this budget:
// "" when it may go, else the 429's message.
func (s *pdbSpec) evictionVerdict(st pdbStatus, podReady bool) string {
	if !podReady {
		// Running but not ready: AlwaysAllow evicts it; IfHealthyBudget only while the
		// application is not disrupted.
		if s.alwaysAllow || (st.currentHealthy >= st.desiredHealthy && st.desiredHealthy > 0) {
			return ""
		}
	}
	if st.disruptionsAllowed > 0 {
		return ""
	}
	return fmt.Sprintf("Cannot evict pod as it would violate the pod's disruption budget. The disruption budget %s needs %d healthy pods and has %d currently",
		s.name, st.desiredHealthy, st.currentHealthy)
}
