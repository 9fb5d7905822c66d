package check

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Workload is a Deployment, StatefulSet or DaemonSet with the objects around it that the rules
// read: the Services that select its pods, the PDBs that cover them, the Ingresses in front of
// those Services.
type Workload struct {
	Ref      Ref
	Template *corev1.PodTemplateSpec
	// Replicas is the desired count (1 when unset); -1 for a DaemonSet (one per node).
	Replicas int32

	Deployment  *appsv1.Deployment
	StatefulSet *appsv1.StatefulSet
	DaemonSet   *appsv1.DaemonSet

	Services  []ServiceRef
	PDBs      []PDBRef
	Ingresses []IngressRef

	set *set // every workload read, for rules that follow a client to its server
}

// ServiceRef is a Service selecting a workload's pods.
type ServiceRef struct {
	Ref     Ref
	Service *corev1.Service
}

// PDBRef is a PodDisruptionBudget whose selector matches a workload's pods.
type PDBRef struct {
	Ref Ref
	PDB *policyv1.PodDisruptionBudget
}

// IngressRef is an Ingress with a backend that is one of a workload's Services.
type IngressRef struct {
	Ref     Ref
	Ingress *networkingv1.Ingress
}

type set struct {
	workloads []*Workload
	ignores   map[string][]string // Ref.String() -> rule IDs from IgnoreAnnotation
}

// namespaceOf treats an unset namespace as "default", as kubectl apply does without -n.
func namespaceOf(m metav1.Object) string {
	if m.GetNamespace() == "" {
		return "default"
	}
	return m.GetNamespace()
}

// refOf names a known object; false for kinds the checker ignores.
func refOf(o Object) (Ref, bool) {
	kind := ""
	switch o.Object.(type) {
	case *appsv1.Deployment:
		kind = "Deployment"
	case *appsv1.StatefulSet:
		kind = "StatefulSet"
	case *appsv1.DaemonSet:
		kind = "DaemonSet"
	case *corev1.Service:
		kind = "Service"
	case *policyv1.PodDisruptionBudget:
		kind = "PodDisruptionBudget"
	case *networkingv1.Ingress:
		kind = "Ingress"
	default:
		return Ref{}, false
	}
	m := o.Object.(metav1.Object)
	return Ref{Kind: kind, Namespace: m.GetNamespace(), Name: m.GetName(), Source: o.Source}, true
}

// index links workloads to the Services, PDBs and Ingresses around them.
func index(objs []Object) *set {
	s := &set{ignores: map[string][]string{}}
	var svcs []ServiceRef
	var pdbs []PDBRef
	var ings []IngressRef
	for _, o := range objs {
		ref, ok := refOf(o)
		if !ok {
			continue
		}
		if v := o.Object.(metav1.Object).GetAnnotations()[IgnoreAnnotation]; v != "" {
			for _, id := range strings.Split(v, ",") {
				if id = strings.TrimSpace(id); id != "" {
					s.ignores[ref.String()] = append(s.ignores[ref.String()], id)
				}
			}
		}
		w := &Workload{Ref: ref, Replicas: 1}
		switch x := o.Object.(type) {
		case *appsv1.Deployment:
			w.Deployment, w.Template = x, &x.Spec.Template
			if x.Spec.Replicas != nil {
				w.Replicas = *x.Spec.Replicas
			}
		case *appsv1.StatefulSet:
			w.StatefulSet, w.Template = x, &x.Spec.Template
			if x.Spec.Replicas != nil {
				w.Replicas = *x.Spec.Replicas
			}
		case *appsv1.DaemonSet:
			w.DaemonSet, w.Template, w.Replicas = x, &x.Spec.Template, -1
		case *corev1.Service:
			svcs = append(svcs, ServiceRef{Ref: ref, Service: x})
			continue
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, PDBRef{Ref: ref, PDB: x})
			continue
		case *networkingv1.Ingress:
			ings = append(ings, IngressRef{Ref: ref, Ingress: x})
			continue
		}
		w.set = s
		s.workloads = append(s.workloads, w)
	}
	// Selectors are parsed once: a chart of hundreds of objects matches each against each.
	svcSel := make([]labels.Selector, len(svcs))
	for i, sv := range svcs {
		if len(sv.Service.Spec.Selector) > 0 { // without one its endpoints are hand-made
			svcSel[i] = labels.SelectorFromValidatedSet(sv.Service.Spec.Selector)
		}
	}
	pdbSel := make([]labels.Selector, len(pdbs))
	for i, p := range pdbs {
		if p.PDB.Spec.Selector == nil {
			continue
		}
		if sel, err := metav1.LabelSelectorAsSelector(p.PDB.Spec.Selector); err == nil && !sel.Empty() {
			pdbSel[i] = sel
		}
	}
	for _, w := range s.workloads {
		ns := namespaceOfRef(w.Ref)
		podLabels := labels.Set(w.Template.Labels)
		for i, sv := range svcs {
			if svcSel[i] != nil && namespaceOf(sv.Service) == ns && svcSel[i].Matches(podLabels) {
				w.Services = append(w.Services, sv)
			}
		}
		for i, p := range pdbs {
			if pdbSel[i] != nil && namespaceOf(p.PDB) == ns && pdbSel[i].Matches(podLabels) {
				w.PDBs = append(w.PDBs, p)
			}
		}
		for _, in := range ings {
			if namespaceOf(in.Ingress) != ns {
				continue
			}
			for _, name := range ingressBackends(in.Ingress) {
				if slicesContainsService(w.Services, name) {
					w.Ingresses = append(w.Ingresses, in)
					break
				}
			}
		}
	}
	return s
}

// namespaceOfRef is the object's namespace, "default" when unset.
func namespaceOfRef(r Ref) string {
	if r.Namespace != "" {
		return r.Namespace
	}
	return "default"
}

func slicesContainsService(svcs []ServiceRef, name string) bool {
	for _, s := range svcs {
		if s.Service.Name == name {
			return true
		}
	}
	return false
}

// ingressBackends lists the Service names an Ingress routes to.
func ingressBackends(in *networkingv1.Ingress) []string {
	var names []string
	add := func(b *networkingv1.IngressBackend) {
		if b != nil && b.Service != nil {
			names = append(names, b.Service.Name)
		}
	}
	add(in.Spec.DefaultBackend)
	for _, r := range in.Spec.Rules {
		if r.HTTP == nil {
			continue
		}
		for i := range r.HTTP.Paths {
			add(&r.HTTP.Paths[i].Backend)
		}
	}
	return names
}
