package manifest

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
)

// Class is what the drill does with an object.
type Class int

const (
	// Honoured objects are run or applied as Kubernetes would.
	Honoured Class = iota + 1
	// Skipped objects do not change how traffic reaches pods during a rollout: the drill
	// ignores them and lists them once.
	Skipped
	// Refused objects would change shutdown or traffic behaviour in a way the drill cannot
	// reproduce: the drill stops before anything starts.
	Refused
	// Unknown is a kind of a built-in API group that this Kubernetes version does not have
	// (a typo, or an API removed long ago): the caller decides.
	Unknown
)

func (c Class) String() string {
	switch c {
	case Honoured:
		return "honoured"
	case Skipped:
		return "skipped"
	case Refused:
		return "refused"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// Verdict is the class of one object and why.
type Verdict struct {
	Class Class
	// Field is what a Refused verdict is about ("kind", "apiVersion"); empty otherwise.
	Field string
	// Reason says why an object is skipped or refused; Remedy, for a refused one, what to do.
	Reason, Remedy string
}

// rule is one row of the drill's table (docs/manifests.md shows the same table).
type rule struct {
	group, kind string // kind "*": every kind of the group
	verdict     Verdict
}

var (
	runDeployment = Verdict{Class: Refused, Field: "kind", Reason: "the drill runs and restarts Deployments only; this workload's pods would be missing behind their Services",
		Remedy: "run it as an apps/v1 Deployment, or leave its file out of -f"}
	handEndpoints = Verdict{Class: Refused, Field: "kind", Reason: "endpoints are computed from Service selectors here; a hand-written list would change which addresses get traffic during the rollout",
		Remedy: "give the Service a selector, or leave the object out of -f"}
	rbac = Verdict{Class: Skipped, Reason: "access control: the drill's pods do not call a Kubernetes API"}
)

var rules = []rule{
	{"apps", "Deployment", Verdict{Class: Honoured}},
	{"", "Service", Verdict{Class: Honoured}},
	{"", "ConfigMap", Verdict{Class: Honoured}},
	{"", "Secret", Verdict{Class: Honoured}},

	{"apps", "StatefulSet", runDeployment},
	{"apps", "DaemonSet", runDeployment},
	{"apps", "ReplicaSet", runDeployment},
	{"", "Pod", runDeployment},
	{"", "ReplicationController", runDeployment},
	{"", "Endpoints", handEndpoints},
	{"discovery.k8s.io", "EndpointSlice", handEndpoints},

	{"", "ServiceAccount", rbac},
	{"rbac.authorization.k8s.io", "*", rbac},
	{"autoscaling", "*", Verdict{Class: Skipped, Reason: "autoscaling: the drill keeps spec.replicas"}},
	{"networking.k8s.io", "NetworkPolicy", Verdict{Class: Skipped, Reason: "not enforced: every pod reaches every other"}},
	{"networking.k8s.io", "*", Verdict{Class: Skipped, Reason: "ingress: traffic enters through --target, not an ingress controller"}},
	{"gateway.networking.k8s.io", "*", Verdict{Class: Skipped, Reason: "gateway: traffic enters through --target, not a gateway"}},
	{"policy", "PodDisruptionBudget", Verdict{Class: Honoured}},
	{"", "Namespace", Verdict{Class: Skipped, Reason: "namespaces exist as soon as an object names them"}},
	{"", "LimitRange", Verdict{Class: Skipped, Reason: "admission policy: resources are not enforced locally"}},
	{"", "ResourceQuota", Verdict{Class: Skipped, Reason: "admission policy: resources are not enforced locally"}},
	{"", "PersistentVolumeClaim", Verdict{Class: Skipped, Reason: "storage: programs run on this machine's file system"}},
	{"", "PersistentVolume", Verdict{Class: Skipped, Reason: "storage: programs run on this machine's file system"}},
	{"storage.k8s.io", "*", Verdict{Class: Skipped, Reason: "storage: programs run on this machine's file system"}},
	{"scheduling.k8s.io", "*", Verdict{Class: Skipped, Reason: "scheduling: every pod runs on this machine"}},
	{"batch", "*", Verdict{Class: Skipped, Reason: "batch work: not behind a Service, not restarted by the drill"}},
	{"monitoring.coreos.com", "*", Verdict{Class: Skipped, Reason: "monitoring: no Prometheus operator here; the drill measures the requests itself"}},
	{"admissionregistration.k8s.io", "*", Verdict{Class: Skipped, Reason: "admission webhooks and policies are not run"}},
	{"apiextensions.k8s.io", "*", Verdict{Class: Skipped, Reason: "custom resource definition: no controller for it here"}},
	{"certificates.k8s.io", "*", Verdict{Class: Skipped, Reason: "certificates: traffic under test is plain HTTP"}},
	{"cert-manager.io", "*", Verdict{Class: Skipped, Reason: "certificates: traffic under test is plain HTTP"}},
}

// Classify says what the drill does with the object (the table of docs/manifests.md).
// Deployments, Services, ConfigMaps and Secrets are honoured (their fields are checked where
// they are run), in apps/v1 and v1 only. Workloads other than Deployments and hand-written
// endpoints are refused. Other built-in kinds and custom resources are skipped. A kind that a
// built-in API group does not have is Unknown.
func Classify(d Document) Verdict {
	gvk := d.GVK
	group := gvk.Group
	if group == "extensions" {
		group = "apps" // where its Deployments, DaemonSets and ReplicaSets moved
	}
	for _, r := range rules {
		if r.group != group || (r.kind != "*" && r.kind != gvk.Kind) {
			continue
		}
		v := r.verdict
		if want := (schema.GroupVersion{Group: r.group, Version: "v1"}); v.Class == Honoured && gvk.GroupVersion() != want {
			return Verdict{Class: Refused, Field: "apiVersion",
				Reason: fmt.Sprintf("the drill reads %s %s, not %s", want, gvk.Kind, gvk.GroupVersion()),
				Remedy: "use apiVersion: " + want.String()}
		}
		return v
	}
	if d.Known {
		return Verdict{Class: Skipped, Reason: "does not change how traffic reaches pods during a rollout"}
	}
	if gvk.Group == "" || scheme.Scheme.IsGroupRegistered(gvk.Group) {
		return Verdict{Class: Unknown, Reason: fmt.Sprintf("Kubernetes has no %s %s (a typo, or an API that was removed)", gvk.GroupVersion(), gvk.Kind)}
	}
	return Verdict{Class: Skipped, Reason: "custom resource: no controller for it here"}
}

// RefusedError is an object, or one field of it, that the drill cannot honour: one line naming
// the object, the field, the problem and what to do.
type RefusedError struct {
	Where  string // "FILE:LINE"
	Object string // "Deployment web"
	Field  string // "kind", "spec.template.spec.containers[1]"
	Reason string
	Remedy string
}

func (e *RefusedError) Error() string {
	msg := fmt.Sprintf("%s: %s: %s: %s", e.Where, e.Object, e.Field, e.Reason)
	if e.Remedy != "" {
		msg += "; " + e.Remedy
	}
	return msg
}

// Refusal is the *RefusedError for a Refused verdict on d.
func Refusal(d Document, v Verdict) *RefusedError {
	return &RefusedError{Where: d.Where(), Object: d.String(), Field: v.Field, Reason: v.Reason, Remedy: v.Remedy}
}

// Skip is an object the drill leaves out, and why.
type Skip struct {
	Document Document
	Reason   string
}

// Triage splits documents for the drill: honoured ones to run, skipped ones to list once. The
// first refused object, or the first kind Kubernetes does not have (unless unknownSkipped),
// is an error: a *RefusedError, one line.
func Triage(docs []Document, unknownSkipped bool) (honoured []Document, skipped []Skip, err error) {
	for _, d := range docs {
		v := Classify(d)
		switch v.Class {
		case Honoured:
			honoured = append(honoured, d)
		case Skipped:
			skipped = append(skipped, Skip{Document: d, Reason: v.Reason})
		case Unknown:
			if unknownSkipped {
				skipped = append(skipped, Skip{Document: d, Reason: v.Reason})
				continue
			}
			return nil, nil, &RefusedError{Where: d.Where(), Object: d.String(), Field: "kind", Reason: v.Reason,
				Remedy: "correct apiVersion and kind, or leave the object out of -f"}
		default:
			return nil, nil, Refusal(d, v)
		}
	}
	return honoured, skipped, nil
}

// SkippedLine lists skipped objects on one line, for the drill's output and report:
// "skipped 3 objects that do not change how traffic reaches pods during a rollout:
// ServiceAccount api, HorizontalPodAutoscaler api, ServiceMonitor api".
func SkippedLine(skipped []Skip) string {
	if len(skipped) == 0 {
		return ""
	}
	names := make([]string, len(skipped))
	for i, s := range skipped {
		names[i] = s.Document.String()
	}
	noun := "objects"
	if len(skipped) == 1 {
		noun = "object"
	}
	return fmt.Sprintf("skipped %d %s that do not change how traffic reaches pods during a rollout: %s (see docs/manifests.md)",
		len(skipped), noun, strings.Join(names, ", "))
}
