package localkube

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gracelab/gracelab/internal/image"
	"github.com/gracelab/gracelab/internal/manifest"
	"github.com/gracelab/gracelab/internal/podenv"
)

// deploySpec is a validated Deployment with everything the controller and kubelet need resolved.
type deploySpec struct {
	file           string
	name           string
	namespace      string
	replicas       int32
	recreate       bool
	maxSurge       int32 // resolved against replicas, Kubernetes rounding
	maxUnavailable int32
	surge, unavail *intstr.IntOrString // as written, re-resolved on a scale
	minReady       time.Duration
	selector       labels.Selector
	template       corev1.PodTemplateSpec
	args           [][]string // from Options.Images: one per container
	initArgs       [][]string // one per init container
}

// serviceSpec is a validated Service.
type serviceSpec struct {
	file         string
	name         string
	namespace    string
	loadBalancer bool
	selector     labels.Selector
	ports        []corev1.ServicePort
}

type manifestSet struct {
	deployments []*deploySpec
	services    []*serviceSpec
	pdbs        []*pdbSpec
	sources     *podenv.Sources // ConfigMaps and Secrets, for pods' environment
}

// defaultNamespace is where objects without metadata.namespace live, as with kubectl.
const defaultNamespace = "default"

// readManifests reads the manifest directory with package manifest (strict decoding, only
// Deployments and Services, no duplicates).
func readManifests(fsys fs.FS) ([]manifest.Document, error) {
	if fsys == nil {
		return nil, errors.New("no manifests: Options.Manifests is nil")
	}
	docs, err := manifest.Read(fsys)
	if err != nil {
		var me *manifest.Error
		var ue *manifest.UnsupportedError
		if errors.As(err, &me) && errors.As(err, &ue) {
			return nil, fmt.Errorf("%s: document %d: %s %s is not supported by the embedded cluster (only apps/v1 Deployment, v1 Service and policy/v1 PodDisruptionBudget)", me.File, me.Index, ue.APIVersion, ue.Kind)
		}
		return nil, err
	}
	return docs, nil
}

// validate turns decoded objects into specs, rejecting anything the embedded cluster cannot
// honour, and checks every container's environment against the ConfigMaps and Secrets.
// Duplicates were rejected by package manifest.
func validate(docs []manifest.Document, images map[string][]string, programs *image.Table) (*manifestSet, error) {
	set := &manifestSet{}
	var svcs []*corev1.Service
	files := map[any]string{}
	var sources []runtime.Object
	for _, doc := range docs {
		files[doc.Object] = doc.Where()
		switch o := doc.Object.(type) {
		case *appsv1.Deployment:
			spec, err := validateDeployment(o, images, programs)
			if err != nil {
				return nil, fmt.Errorf("%s: Deployment %q: %w", doc.Where(), o.Name, err)
			}
			spec.file = doc.File
			set.deployments = append(set.deployments, spec)
		case *corev1.Service:
			svcs = append(svcs, o)
		case *corev1.ConfigMap, *corev1.Secret:
			sources = append(sources, o)
		case *policyv1.PodDisruptionBudget:
			spec, err := validatePDB(o)
			if err != nil {
				return nil, fmt.Errorf("%s: PodDisruptionBudget %q: %w", doc.Where(), o.Name, err)
			}
			spec.file = doc.File
			set.pdbs = append(set.pdbs, spec)
		default:
			return nil, fmt.Errorf("%s: %s is not supported by the embedded cluster (Deployments, Services, ConfigMaps, Secrets and PodDisruptionBudgets)", doc.Where(), doc)
		}
	}
	set.sources = podenv.NewSources(sources...)
	if programs != nil {
		var uses []image.Use
		for _, d := range set.deployments {
			for _, cs := range [][]corev1.Container{d.template.Spec.InitContainers, d.template.Spec.Containers} {
				for _, ct := range cs {
					uses = append(uses, image.Use{Image: ct.Image, Object: "Deployment " + d.name + ", container " + ct.Name})
				}
			}
		}
		if err := programs.Check(uses); err != nil {
			return nil, err
		}
	}
	// Every environment resolves before anything starts (a missing ConfigMap key is an error now,
	// not a pod that never starts).
	for _, d := range set.deployments {
		probe := podenv.Pod{Name: d.name + "-0", Namespace: d.namespace, Labels: d.template.Labels, Annotations: d.template.Annotations,
			NodeName: nodeName, ServiceAccountName: d.template.Spec.ServiceAccountName, PodIPs: []string{"127.0.0.1"}, HostIPs: []string{hostIP}}
		spec := &d.template.Spec
		for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
			for i := range cs {
				if _, err := podenv.Resolve(probe, spec, &cs[i], set.sources, nil); err != nil {
					return nil, fmt.Errorf("%s: Deployment %q: %w", d.file, d.name, err)
				}
			}
		}
	}
	lb := ""
	for _, s := range svcs {
		spec, err := validateService(s)
		if err != nil {
			return nil, fmt.Errorf("%s: Service %q: %w", files[s], s.Name, err)
		}
		spec.file = files[s]
		if spec.loadBalancer {
			if lb != "" {
				return nil, fmt.Errorf("%s: Service %q: only one LoadBalancer Service is supported (%q is one already)", files[s], s.Name, lb)
			}
			lb = spec.name
		}
		// A named targetPort must exist in every Deployment the Service selects.
		for _, d := range set.deployments {
			if d.namespace != spec.namespace || !spec.selector.Matches(labels.Set(d.template.Labels)) {
				continue
			}
			served := corev1.Container{Ports: templatePorts(&d.template.Spec)}
			for _, p := range spec.ports {
				if _, err := resolvePort(p.TargetPort, served); err != nil {
					return nil, fmt.Errorf("%s: Service %q port %d: targetPort in Deployment %q: %w", files[s], s.Name, p.Port, d.name, err)
				}
			}
		}
		set.services = append(set.services, spec)
	}
	sort.SliceStable(set.deployments, func(i, j int) bool { return set.deployments[i].name < set.deployments[j].name })
	return set, nil
}

func validateDeployment(d *appsv1.Deployment, images map[string][]string, programs *image.Table) (*deploySpec, error) {
	spec := &deploySpec{name: d.Name, namespace: orDefault(d.Namespace, defaultNamespace), replicas: 1}
	if d.Spec.Replicas != nil {
		spec.replicas = *d.Spec.Replicas
	}
	if spec.replicas < 0 {
		return nil, fmt.Errorf("spec.replicas must not be negative (got %d)", spec.replicas)
	}
	if d.Spec.Selector == nil || (len(d.Spec.Selector.MatchLabels) == 0 && len(d.Spec.Selector.MatchExpressions) == 0) {
		return nil, errors.New("spec.selector is required (apps/v1)")
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("spec.selector: %w", err)
	}
	if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		return nil, errors.New("spec.selector does not match spec.template.metadata.labels")
	}
	spec.selector = sel
	if d.Spec.MinReadySeconds < 0 {
		return nil, errors.New("spec.minReadySeconds must not be negative")
	}
	spec.minReady = time.Duration(d.Spec.MinReadySeconds) * time.Second

	switch d.Spec.Strategy.Type {
	case "", appsv1.RollingUpdateDeploymentStrategyType:
		var surge, unavail *intstr.IntOrString
		if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
			surge, unavail = ru.MaxSurge, ru.MaxUnavailable
		}
		spec.surge, spec.unavail = surge, unavail
		spec.maxSurge, spec.maxUnavailable, err = resolveRollingUpdate(spec.replicas, surge, unavail)
		if err != nil {
			return nil, err
		}
	case appsv1.RecreateDeploymentStrategyType:
		if d.Spec.Strategy.RollingUpdate != nil {
			return nil, errors.New("spec.strategy.rollingUpdate may not be set when strategy type is Recreate")
		}
		spec.recreate = true
	default:
		return nil, fmt.Errorf("spec.strategy.type %q is not RollingUpdate or Recreate", d.Spec.Strategy.Type)
	}

	ps := &d.Spec.Template.Spec
	if len(ps.Containers) == 0 {
		return nil, errors.New("the pod template has no containers")
	}
	if len(ps.EphemeralContainers) > 0 {
		return nil, errors.New("ephemeral containers are not supported by the embedded cluster")
	}
	if ps.RestartPolicy != "" && ps.RestartPolicy != corev1.RestartPolicyAlways {
		return nil, fmt.Errorf("spec.template.spec.restartPolicy must be Always for a Deployment (got %s)", ps.RestartPolicy)
	}
	if ps.TerminationGracePeriodSeconds != nil && *ps.TerminationGracePeriodSeconds < 0 {
		return nil, errors.New("terminationGracePeriodSeconds must not be negative")
	}
	names := map[string]bool{}
	check := func(what string, c corev1.Container, serving bool) ([]string, error) {
		if c.Name != "" && names[c.Name] {
			return nil, fmt.Errorf("%s: the name is used by another container of the pod", what)
		}
		names[c.Name] = true
		args, err := validateContainer(c, images, programs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if err := validateServing(c, serving); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if err := validateMounts(c, ps.Volumes); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return args, nil
	}
	for _, ic := range ps.InitContainers {
		sidecar := ic.RestartPolicy != nil && *ic.RestartPolicy == corev1.ContainerRestartPolicyAlways
		if ic.RestartPolicy != nil && !sidecar {
			return nil, fmt.Errorf("init container %q: restartPolicy may only be Always (a sidecar), got %s", ic.Name, *ic.RestartPolicy)
		}
		what := fmt.Sprintf("init container %q", ic.Name)
		if !sidecar {
			if ic.Lifecycle != nil || ic.ReadinessProbe != nil || ic.LivenessProbe != nil || ic.StartupProbe != nil {
				return nil, fmt.Errorf("%s: lifecycle and probes are only allowed on a sidecar (restartPolicy: Always), as Kubernetes says", what)
			}
		}
		args, err := check(what, ic, sidecar)
		if err != nil {
			return nil, err
		}
		spec.initArgs = append(spec.initArgs, args)
	}
	for _, c := range ps.Containers {
		if c.RestartPolicy != nil {
			return nil, fmt.Errorf("container %q: restartPolicy is for init containers only", c.Name)
		}
		args, err := check(fmt.Sprintf("container %q", c.Name), c, true)
		if err != nil {
			return nil, err
		}
		spec.args = append(spec.args, args)
	}
	spec.template = *d.Spec.Template.DeepCopy()
	return spec, nil
}

func validateService(s *corev1.Service) (*serviceSpec, error) {
	spec := &serviceSpec{name: s.Name, namespace: orDefault(s.Namespace, defaultNamespace)}
	switch s.Spec.Type {
	case "", corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
	case corev1.ServiceTypeLoadBalancer:
		spec.loadBalancer = true
	default:
		return nil, fmt.Errorf("type %s is not supported by the embedded cluster (ClusterIP, NodePort, LoadBalancer)", s.Spec.Type)
	}
	if s.Spec.ClusterIP == corev1.ClusterIPNone {
		return nil, errors.New("headless Services (clusterIP: None) are not supported by the embedded cluster")
	}
	if len(s.Spec.Selector) == 0 {
		return nil, errors.New("spec.selector is required (Services without a selector are not supported by the embedded cluster)")
	}
	spec.selector = labels.SelectorFromSet(s.Spec.Selector)
	if len(s.Spec.Ports) == 0 {
		return nil, errors.New("spec.ports is empty")
	}
	seen := map[int32]bool{}
	for _, p := range s.Spec.Ports {
		if p.Port < 1 || p.Port > 65535 {
			return nil, fmt.Errorf("port %d is out of range", p.Port)
		}
		if seen[p.Port] {
			return nil, fmt.Errorf("port %d is listed twice", p.Port)
		}
		seen[p.Port] = true
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			return nil, fmt.Errorf("port %d: protocol %s is not supported (TCP only)", p.Port, p.Protocol)
		}
		if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == 0 {
			p.TargetPort = intstr.FromInt32(p.Port) // Kubernetes' default
		}
		spec.ports = append(spec.ports, p)
	}
	return spec, nil
}

// resolveRollingUpdate returns maxSurge and maxUnavailable as pod counts, as the Deployment
// controller resolves them: absent values default to 25%, surge rounds up, unavailable rounds
// down, both explicitly zero is invalid, and if both resolve to zero unavailable becomes 1.
func resolveRollingUpdate(replicas int32, surge, unavailable *intstr.IntOrString) (int32, int32, error) {
	def := intstr.FromString("25%")
	surge = intstr.ValueOrDefault(surge, def)
	unavailable = intstr.ValueOrDefault(unavailable, def)
	for _, f := range []struct {
		name string
		v    *intstr.IntOrString
	}{{"maxSurge", surge}, {"maxUnavailable", unavailable}} {
		switch f.v.Type {
		case intstr.Int:
			if f.v.IntVal < 0 {
				return 0, 0, fmt.Errorf("spec.strategy.rollingUpdate.%s must not be negative (got %d)", f.name, f.v.IntVal)
			}
		case intstr.String:
			if !percentRE.MatchString(f.v.StrVal) {
				return 0, 0, fmt.Errorf("spec.strategy.rollingUpdate.%s must be an integer or a percentage such as '25%%' (got %q)", f.name, f.v.StrVal)
			}
		}
	}
	if unavailable.Type == intstr.String && percentValue(unavailable.StrVal) > 100 {
		return 0, 0, fmt.Errorf("spec.strategy.rollingUpdate.maxUnavailable must not be greater than 100%% (got %s)", unavailable.StrVal)
	}
	if rawValue(surge) == 0 && rawValue(unavailable) == 0 {
		return 0, 0, errors.New("spec.strategy.rollingUpdate: maxSurge and maxUnavailable may not both be 0")
	}
	s, err := intstr.GetScaledValueFromIntOrPercent(surge, int(replicas), true)
	if err != nil {
		return 0, 0, fmt.Errorf("spec.strategy.rollingUpdate.maxSurge: %w", err)
	}
	u, err := intstr.GetScaledValueFromIntOrPercent(unavailable, int(replicas), false)
	if err != nil {
		return 0, 0, fmt.Errorf("spec.strategy.rollingUpdate.maxUnavailable: %w", err)
	}
	if s == 0 && u == 0 {
		u = 1 // rounding made both zero: the controller allows one unavailable pod
	}
	if u > int(replicas) {
		u = int(replicas)
	}
	return int32(s), int32(u), nil
}

var percentRE = regexp.MustCompile(`^[0-9]+%$`)

func percentValue(s string) int {
	n := 0
	for _, r := range strings.TrimSuffix(s, "%") {
		n = n*10 + int(r-'0')
	}
	return n
}

func rawValue(v *intstr.IntOrString) int {
	if v.Type == intstr.Int {
		return int(v.IntVal)
	}
	return percentValue(v.StrVal)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ports lists every port the manifests bind: container ports and Service ports.
func (m *manifestSet) ports() []int32 {
	seen := map[int32]bool{}
	var out []int32
	add := func(p int32) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, d := range m.deployments {
		for _, p := range templatePorts(&d.template.Spec) {
			add(p.ContainerPort)
		}
	}
	for _, s := range m.services {
		for _, p := range s.ports {
			add(p.Port)
		}
	}
	return out
}

// templatePorts are the ports a pod of the template serves: its containers', then its
// sidecars', in the order the endpoints controller looks a port name up.
func templatePorts(ps *corev1.PodSpec) []corev1.ContainerPort {
	var out []corev1.ContainerPort
	for _, c := range ps.Containers {
		out = append(out, c.Ports...)
	}
	for _, c := range ps.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			out = append(out, c.Ports...)
		}
	}
	return out
}
