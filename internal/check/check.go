// Package check owns gracelab's static checker: rules that read Kubernetes objects (workloads,
// the Services, PodDisruptionBudgets and Ingresses around them) and say, before a rollout, what
// the drills measure during one. Each rule is a small pure function over typed objects returning
// findings; renderers (text, JSON, SARIF) turn one findings list into output.
package check

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
)

// Severity orders findings: Info < Warning < Error.
type Severity int

const (
	Info Severity = iota + 1
	Warning
	Error
)

func (s Severity) String() string {
	switch s {
	case Info:
		return "info"
	case Warning:
		return "warning"
	case Error:
		return "error"
	}
	return "none"
}

// MarshalText writes the severity's name, so JSON carries "warning", not 2.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ParseSeverity reads "info", "warning" or "error"; "none" is 0 (nothing is at or above it
// when used as a threshold, see Result.Fails).
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "info":
		return Info, nil
	case "warning":
		return Warning, nil
	case "error":
		return Error, nil
	case "none":
		return 0, nil
	}
	return 0, fmt.Errorf("unknown severity %q: want error, warning, info or none", s)
}

// Source is where an object was written: a file and the line its document starts on. A live
// object read from a cluster has no file.
type Source struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
}

func (s Source) String() string {
	switch {
	case s.File == "":
		return ""
	case s.Line > 0:
		return fmt.Sprintf("%s:%d", s.File, s.Line)
	}
	return s.File
}

// Object is one decoded Kubernetes object and where it came from. Kinds the rules read:
// *appsv1.Deployment, *appsv1.StatefulSet, *appsv1.DaemonSet, *corev1.Service,
// *policyv1.PodDisruptionBudget, *networkingv1.Ingress; anything else is ignored.
type Object struct {
	Source Source
	Object runtime.Object
	// Warnings are what the reader let through, such as unknown fields (a field the object's
	// type does not have, decoded without it).
	Warnings []string
}

// Ref names the object a finding is about.
type Ref struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Source
}

func (r Ref) String() string {
	if r.Namespace != "" {
		return r.Kind + " " + r.Namespace + "/" + r.Name
	}
	return r.Kind + " " + r.Name
}

// Finding is one rule's verdict on one object (and container, where it applies).
type Finding struct {
	Rule      string   `json:"rule"`
	Severity  Severity `json:"severity"`
	Object    Ref      `json:"object"`
	Container string   `json:"container,omitempty"`
	// Message is one sentence on what will happen, with the measured number where there is one.
	Message string `json:"message"`
	// Fix is a YAML snippet to merge into the object.
	Fix string `json:"fix,omitempty"`
}

// Options tune the rules; the zero value takes the defaults.
type Options struct {
	// Propagation is how long an endpoint removal takes to reach every proxy and load balancer
	// in front of the pods: the shortest preStop delay that passes (default 5 s).
	Propagation time.Duration
	// Drain is the time a container needs after SIGTERM to finish its requests (default 10 s).
	Drain time.Duration
	// KubeMinor is the cluster's Kubernetes 1.x minor version (34 for v1.34), 0 when unknown.
	KubeMinor int
	// Ignore lists rule IDs not to report (they are counted as suppressed).
	Ignore []string
}

// Default budgets, from the drills (docs/check.md says why).
const (
	DefaultPropagation = 5 * time.Second
	DefaultDrain       = 10 * time.Second
)

func (o Options) withDefaults() Options {
	if o.Propagation <= 0 {
		o.Propagation = DefaultPropagation
	}
	if o.Drain <= 0 {
		o.Drain = DefaultDrain
	}
	return o
}

// Annotation keys gracelab reads.
const (
	// IgnoreAnnotation on an object lists rule IDs not to report for it: "no-pdb,prestop-short".
	IgnoreAnnotation = "gracelab.io/check-ignore"
	// PrestopDelayAnnotation on a pod template declares how long its httpGet preStop hook takes
	// ("5s", or seconds: "5"); without it that length is unknown.
	PrestopDelayAnnotation = "gracelab.io/prestop-delay"
)

// Result is the outcome of one check.
type Result struct {
	Findings []Finding `json:"findings"`
	// Suppressed counts findings left out by annotation or --ignore, per rule.
	Suppressed map[string]int `json:"suppressed,omitempty"`
	// Objects is how many objects were read; Workloads how many of them were checked.
	Objects   int `json:"objects"`
	Workloads int `json:"workloads"`
}

// SuppressedTotal is the number of findings left out.
func (r Result) SuppressedTotal() int {
	n := 0
	for _, c := range r.Suppressed {
		n += c
	}
	return n
}

// Count returns how many findings have severity s.
func (r Result) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Fails reports whether a finding at or above threshold exists (threshold 0: never).
func (r Result) Fails(threshold Severity) bool {
	if threshold == 0 {
		return false
	}
	for _, f := range r.Findings {
		if f.Severity >= threshold {
			return true
		}
	}
	return false
}

// Run checks objs with every rule and returns the findings grouped by object in the order read,
// then by severity, rule and container. Suppressed findings are counted, not returned.
func Run(objs []Object, opts Options) Result {
	opts = opts.withDefaults()
	s := index(objs)
	res := Result{Objects: len(objs), Workloads: len(s.workloads)}
	var all []Finding
	for _, o := range objs {
		all = append(all, unknownFields(o)...)
	}
	for _, w := range s.workloads {
		for _, r := range Rules {
			if r.check != nil {
				all = append(all, r.check(w, opts)...)
			}
		}
	}
	ignored := map[string]bool{}
	for _, id := range opts.Ignore {
		ignored[id] = true
	}
	seen := map[string]bool{}
	for _, f := range all {
		key := f.Rule + "\x00" + f.Object.String() + "\x00" + f.Container + "\x00" + f.Message
		if seen[key] {
			continue // a PDB or Service read through two workloads
		}
		seen[key] = true
		if ignored[f.Rule] || slices.Contains(s.ignores[f.Object.String()], f.Rule) {
			if res.Suppressed == nil {
				res.Suppressed = map[string]int{}
			}
			res.Suppressed[f.Rule]++
			continue
		}
		res.Findings = append(res.Findings, f)
	}
	// Objects in the order they were read; within one, the worst first.
	order := map[Ref]int{}
	for i, o := range objs {
		if ref, ok := refOf(o); ok {
			order[ref] = i
		}
	}
	sort.SliceStable(res.Findings, func(i, j int) bool {
		a, b := res.Findings[i], res.Findings[j]
		if oa, ob := order[a.Object], order[b.Object]; oa != ob {
			return oa < ob
		}
		if a.Severity != b.Severity {
			return a.Severity > b.Severity
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return a.Container < b.Container
	})
	if res.Findings == nil {
		res.Findings = []Finding{}
	}
	return res
}

// unknownFields turns the reader's warnings into findings: a typo such as
// `terminationGracePeriodSecond` silently leaves the default in place.
func unknownFields(o Object) []Finding {
	if len(o.Warnings) == 0 {
		return nil
	}
	ref, ok := refOf(o)
	if !ok {
		return nil
	}
	var out []Finding
	for _, w := range o.Warnings {
		out = append(out, Finding{
			Rule: RuleUnknownField, Severity: Warning, Object: ref,
			Message: w + ": it is ignored, so the setting it was meant to be does not apply (check its spelling and the API version)",
			Fix:     "# correct the field's name or path, or remove it\n",
		})
	}
	return out
}
