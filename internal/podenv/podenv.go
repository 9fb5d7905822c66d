// Package podenv computes a container's environment, command and args as the kubelet does:
// envFrom and env[].valueFrom from ConfigMaps and Secrets, the downward API, and $(VAR)
// expansion. Secret values are tracked so that output can be redacted (Redactor).
package podenv

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
)

// DefaultNamespace is where objects without metadata.namespace live, as with kubectl.
const DefaultNamespace = "default"

// Pod is what the downward API tells a pod about itself.
type Pod struct {
	Name, Namespace, UID string
	Labels, Annotations  map[string]string
	NodeName             string
	ServiceAccountName   string
	PodIPs, HostIPs      []string // first is status.podIP / status.hostIP
}

// Sources are the ConfigMaps and Secrets pods can refer to.
type Sources struct {
	configMaps map[string]*corev1.ConfigMap // "namespace/name"
	secrets    map[string]*corev1.Secret
}

// NewSources keeps the ConfigMaps and Secrets among objs (other objects are ignored), such as
// the Object of every manifest.Document.
func NewSources(objs ...runtime.Object) *Sources {
	s := &Sources{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.ConfigMap:
			s.configMaps[key(o.Namespace, o.Name)] = o
		case *corev1.Secret:
			s.secrets[key(o.Namespace, o.Name)] = o
		}
	}
	return s
}

func key(namespace, name string) string {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	return namespace + "/" + name
}

// secretData is a Secret's data as the API server stores it: stringData merged into data,
// stringData winning.
func secretData(s *corev1.Secret) map[string][]byte {
	out := make(map[string][]byte, len(s.Data)+len(s.StringData))
	for k, v := range s.Data {
		out[k] = v
	}
	for k, v := range s.StringData {
		out[k] = []byte(v)
	}
	return out
}

// SecretValues lists every value of every Secret, for a Redactor.
func (s *Sources) SecretValues() []string {
	var out []string
	for _, sec := range s.secrets {
		for _, v := range secretData(sec) {
			out = append(out, string(v))
		}
	}
	return out
}

// Var is one environment variable; Secret marks a value taken from a Secret, or expanded from one.
type Var struct {
	Name, Value string
	Secret      bool
}

// Env is a container's environment in a stable order: envFrom sources, then env entries, a
// later definition of a name replacing the earlier one in place.
type Env []Var

// Environ is the environment as os/exec wants it ("NAME=value").
func (e Env) Environ() []string {
	out := make([]string, len(e))
	for i, v := range e {
		out[i] = v.Name + "=" + v.Value
	}
	return out
}

// Map is the environment by name.
func (e Env) Map() map[string]string {
	m := make(map[string]string, len(e))
	for _, v := range e {
		m[v.Name] = v.Value
	}
	return m
}

// String lists the environment for people: secret values show as <redacted>.
func (e Env) String() string {
	parts := make([]string, len(e))
	for i, v := range e {
		val := v.Value
		if v.Secret {
			val = Redacted
		}
		parts[i] = v.Name + "=" + val
	}
	return strings.Join(parts, " ")
}

type builder struct {
	env   Env
	index map[string]int
}

func (b *builder) set(v Var) {
	if i, ok := b.index[v.Name]; ok {
		b.env[i] = v
		return
	}
	b.index[v.Name] = len(b.env)
	b.env = append(b.env, v)
}

// Resolve computes container c's environment in pod as the kubelet does (Kubernetes 1.34):
// envFrom first (ConfigMap data, Secret data and stringData, with prefix; a missing optional
// source is skipped), then env in order: values with $(VAR) expanded against what is defined
// so far and then serviceEnv, or valueFrom (configMapKeyRef, secretKeyRef, fieldRef,
// resourceFieldRef). serviceEnv (the Service link variables) fills names nothing else set.
// spec is the pod's spec, for resourceFieldRef's containerName. Errors are one line naming the
// container and the variable; they never contain a secret value.
func Resolve(pod Pod, spec *corev1.PodSpec, c *corev1.Container, src *Sources, serviceEnv map[string]string) (Env, error) {
	if src == nil {
		src = NewSources()
	}
	ns := pod.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	fail := func(format string, a ...any) error {
		return fmt.Errorf("container %q: %s", c.Name, fmt.Sprintf(format, a...))
	}
	b := &builder{index: map[string]int{}}
	for i, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm, ok := src.configMaps[key(ns, ef.ConfigMapRef.Name)]
			if !ok {
				if isOptional(ef.ConfigMapRef.Optional) {
					continue
				}
				return nil, fail("envFrom[%d]: ConfigMap %q not found in namespace %s: add it to the manifests, or mark the reference optional: true", i, ef.ConfigMapRef.Name, ns)
			}
			for _, k := range sortedKeys(cm.Data) {
				if name := ef.Prefix + k; settable(name) {
					b.set(Var{Name: name, Value: cm.Data[k]})
				}
			}
		case ef.SecretRef != nil:
			s, ok := src.secrets[key(ns, ef.SecretRef.Name)]
			if !ok {
				if isOptional(ef.SecretRef.Optional) {
					continue
				}
				return nil, fail("envFrom[%d]: Secret %q not found in namespace %s: add it to the manifests, or mark the reference optional: true", i, ef.SecretRef.Name, ns)
			}
			data := secretData(s)
			for _, k := range sortedKeys(data) {
				if name := ef.Prefix + k; settable(name) {
					b.set(Var{Name: name, Value: string(data[k]), Secret: true})
				}
			}
		default:
			return nil, fail("envFrom[%d]: neither configMapRef nor secretRef is set", i)
		}
	}
	for _, e := range c.Env {
		v := Var{Name: e.Name, Value: e.Value}
		switch {
		case e.Value != "":
			defined := b.env.Map()
			v.Value = Expand(e.Value, MappingFuncFor(defined, serviceEnv))
			v.Secret = refersToSecret(e.Value, b)
		case e.ValueFrom == nil:
		case e.ValueFrom.FieldRef != nil:
			val, err := fieldRef(e.ValueFrom.FieldRef, pod, ns)
			if err != nil {
				return nil, fail("env %s: %v", e.Name, err)
			}
			v.Value = val
		case e.ValueFrom.ResourceFieldRef != nil:
			val, err := resourceFieldRef(e.ValueFrom.ResourceFieldRef, spec, c)
			if err != nil {
				return nil, fail("env %s: %v", e.Name, err)
			}
			v.Value = val
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, ok := src.configMaps[key(ns, ref.Name)]
			if !ok {
				if isOptional(ref.Optional) {
					continue
				}
				return nil, fail("env %s: ConfigMap %q not found in namespace %s: add it to the manifests, or mark the reference optional: true", e.Name, ref.Name, ns)
			}
			val, ok := cm.Data[ref.Key]
			if !ok {
				if isOptional(ref.Optional) {
					continue
				}
				if _, bin := cm.BinaryData[ref.Key]; bin {
					return nil, fail("env %s: key %q of ConfigMap %q is in binaryData, which Kubernetes does not put into environment variables", e.Name, ref.Key, ref.Name)
				}
				return nil, fail("env %s: ConfigMap %q has no key %q (keys: %s)", e.Name, ref.Name, ref.Key, strings.Join(sortedKeys(cm.Data), ", "))
			}
			v.Value = val
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s, ok := src.secrets[key(ns, ref.Name)]
			if !ok {
				if isOptional(ref.Optional) {
					continue
				}
				return nil, fail("env %s: Secret %q not found in namespace %s: add it to the manifests, or mark the reference optional: true", e.Name, ref.Name, ns)
			}
			data := secretData(s)
			val, ok := data[ref.Key]
			if !ok {
				if isOptional(ref.Optional) {
					continue
				}
				return nil, fail("env %s: Secret %q has no key %q (keys: %s)", e.Name, ref.Name, ref.Key, strings.Join(sortedKeys(data), ", "))
			}
			v.Value, v.Secret = string(val), true
		default:
			return nil, fail("env %s: valueFrom %s cannot be honoured here (configMapKeyRef, secretKeyRef, fieldRef and resourceFieldRef can)", e.Name, valueFromKind(e.ValueFrom))
		}
		b.set(v)
	}
	for _, k := range sortedKeys(serviceEnv) {
		if _, ok := b.index[k]; !ok {
			b.set(Var{Name: k, Value: serviceEnv[k]})
		}
	}
	return b.env, nil
}

// settable reports whether a name can be put into a process environment at all. Kubernetes
// 1.34 passes every ConfigMap and Secret key through (the API already limits keys to
// [-._a-zA-Z0-9]+); a prefix could still bring '=' or NUL, which execve cannot carry.
func settable(name string) bool {
	return name != "" && !strings.ContainsAny(name, "=\x00")
}

func valueFromKind(v *corev1.EnvVarSource) string {
	if v.FileKeyRef != nil {
		return "fileKeyRef"
	}
	return "(empty)"
}

// refersToSecret reports whether a value expands a variable that holds a secret.
func refersToSecret(value string, b *builder) bool {
	secret := false
	Expand(value, func(name string) string {
		if i, ok := b.index[name]; ok && b.env[i].Secret {
			secret = true
		}
		return ""
	})
	return secret
}

func isOptional(p *bool) bool { return p != nil && *p }

// fieldRef resolves a downward API field as the kubelet does.
func fieldRef(f *corev1.ObjectFieldSelector, pod Pod, ns string) (string, error) {
	if f.APIVersion != "" && f.APIVersion != "v1" {
		return "", fmt.Errorf("fieldRef apiVersion %q: only v1", f.APIVersion)
	}
	first := func(ips []string) string {
		if len(ips) == 0 {
			return ""
		}
		return ips[0]
	}
	path := f.FieldPath
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return ns, nil
	case "metadata.uid":
		return pod.UID, nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.NodeName, nil
	case "spec.serviceAccountName":
		return pod.ServiceAccountName, nil
	case "status.podIP":
		return first(pod.PodIPs), nil
	case "status.podIPs":
		return strings.Join(pod.PodIPs, ","), nil
	case "status.hostIP":
		return first(pod.HostIPs), nil
	case "status.hostIPs":
		return strings.Join(pod.HostIPs, ","), nil
	}
	if base, sub, ok := splitSubscript(path); ok {
		switch base {
		case "metadata.labels":
			if errs := validation.IsQualifiedName(sub); len(errs) > 0 {
				return "", fmt.Errorf("invalid key subscript in %s: %s", path, strings.Join(errs, "; "))
			}
			return pod.Labels[sub], nil
		case "metadata.annotations":
			if errs := validation.IsQualifiedName(strings.ToLower(sub)); len(errs) > 0 {
				return "", fmt.Errorf("invalid key subscript in %s: %s", path, strings.Join(errs, "; "))
			}
			return pod.Annotations[sub], nil
		}
		return "", fmt.Errorf("fieldPath %q does not support a subscript", path)
	}
	return "", fmt.Errorf("fieldRef %q is not supported (metadata.name, metadata.namespace, metadata.uid, metadata.labels['k'], metadata.annotations['k'], spec.nodeName, spec.serviceAccountName, status.podIP, status.podIPs, status.hostIP, status.hostIPs)", path)
}

// splitSubscript splits "metadata.labels['k']" into "metadata.labels" and "k".
func splitSubscript(path string) (string, string, bool) {
	s, ok := strings.CutSuffix(path, "']")
	if !ok {
		return "", "", false
	}
	base, sub, ok := strings.Cut(s, "['")
	return base, sub, ok && base != ""
}

// formatMap is the downward API's rendering of all labels or annotations: sorted key="value" lines.
func formatMap(m map[string]string) string {
	lines := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		lines = append(lines, k+"="+strconv.Quote(m[k]))
	}
	return strings.Join(lines, "\n")
}

// resourceFieldRef resolves limits.* and requests.* of a container as the kubelet does
// (rounded up to whole divisors). Where Kubernetes would fall back to the node's allocatable
// capacity, there is no node here: an unset value is an error.
func resourceFieldRef(f *corev1.ResourceFieldSelector, spec *corev1.PodSpec, c *corev1.Container) (string, error) {
	target := c
	if f.ContainerName != "" && f.ContainerName != c.Name {
		target = nil
		if spec != nil {
			for i := range spec.Containers {
				if spec.Containers[i].Name == f.ContainerName {
					target = &spec.Containers[i]
				}
			}
		}
		if target == nil {
			return "", fmt.Errorf("resourceFieldRef: no container %q in the pod", f.ContainerName)
		}
	}
	kind, name, ok := strings.Cut(f.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("resourceFieldRef %q is not supported (limits.cpu, limits.memory, limits.ephemeral-storage, requests.*)", f.Resource)
	}
	q, set := target.Resources.Limits[corev1.ResourceName(name)]
	if kind == "requests" {
		if r, ok := target.Resources.Requests[corev1.ResourceName(name)]; ok {
			q, set = r, true // else requests default to limits, as the API server does
		}
	}
	if !set {
		return "", fmt.Errorf("resourceFieldRef %s: container %q sets no resources.%s.%s (Kubernetes would use the node's capacity; there is no node here): set it in the manifest", f.Resource, target.Name, kind, name)
	}
	divisor := f.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	switch corev1.ResourceName(name) {
	case corev1.ResourceCPU:
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	case corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
		return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
	}
	if strings.HasPrefix(name, corev1.ResourceHugePagesPrefix) {
		return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
	}
	return "", fmt.Errorf("resourceFieldRef %q is not supported (cpu, memory, ephemeral-storage, hugepages-*)", f.Resource)
}

// ExpandCommand expands $(VAR) in the container's command and args against env, as the
// kubelet does before starting it.
func ExpandCommand(c *corev1.Container, env Env) (command, args []string) {
	mapping := MappingFuncFor(env.Map())
	for _, s := range c.Command {
		command = append(command, Expand(s, mapping))
	}
	for _, s := range c.Args {
		args = append(args, Expand(s, mapping))
	}
	return command, args
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
