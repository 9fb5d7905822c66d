package kube

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/yaml"
)

// manifests is one scenario's objects, ready to be applied: the apply configurations carry
// exactly the fields the YAML sets (plus our label and image overrides), so server-side apply
// owns nothing the author did not write.
type manifests struct {
	deployments []*appsv1ac.DeploymentApplyConfiguration
	services    []*corev1ac.ServiceApplyConfiguration
}

// loadManifests reads every *.yaml / *.yml / *.json file at the top of fsys. Only Deployments
// and Services are accepted: that is all a scenario needs, and anything else would be applied
// without the checks below.
func loadManifests(fsys fs.FS) (*manifests, error) {
	if fsys == nil {
		return nil, errors.New("no manifests given")
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	var names []string
	for _, e := range entries {
		ext := strings.ToLower(path.Ext(e.Name()))
		if !e.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, errors.New("manifests: no .yaml, .yml or .json file found")
	}
	m := &manifests{}
	seen := map[string]string{} // kind/name -> file, to catch duplicates
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read manifest %s: %w", name, err)
		}
		reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for doc := 1; ; doc++ {
			raw, err := reader.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("manifest %s document %d: %w", name, doc, err)
			}
			if len(bytes.TrimSpace(raw)) == 0 || isOnlyComments(raw) {
				continue
			}
			kind, objName, err := m.add(raw)
			if err != nil {
				return nil, fmt.Errorf("manifest %s document %d: %w", name, doc, err)
			}
			key := kind + "/" + objName
			if prev, dup := seen[key]; dup {
				return nil, fmt.Errorf("manifest %s: %s %q is also defined in %s", name, kind, objName, prev)
			}
			seen[key] = name
		}
	}
	if len(m.deployments) == 0 {
		return nil, errors.New("manifests: no Deployment found")
	}
	return m, nil
}

func isOnlyComments(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return true
}

// add validates one YAML document strictly against the typed API object, then keeps it as an
// apply configuration.
func (m *manifests) add(raw []byte) (kind, name string, err error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(raw, &head); err != nil {
		return "", "", fmt.Errorf("not valid YAML: %w", err)
	}
	jsonDoc, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return "", "", fmt.Errorf("not valid YAML: %w", err)
	}
	switch {
	case head.Kind == "Deployment" && head.APIVersion == "apps/v1":
		var typed appsv1.Deployment
		if err := yaml.UnmarshalStrict(raw, &typed); err != nil {
			return "", "", fmt.Errorf("invalid Deployment: %w", err)
		}
		if typed.Name == "" {
			return "", "", errors.New("Deployment without metadata.name")
		}
		if len(typed.Spec.Template.Spec.Containers) == 0 {
			return "", "", fmt.Errorf("Deployment %q has no container", typed.Name)
		}
		ac := &appsv1ac.DeploymentApplyConfiguration{}
		if err := json.Unmarshal(jsonDoc, ac); err != nil {
			return "", "", fmt.Errorf("Deployment %q: %w", typed.Name, err)
		}
		m.deployments = append(m.deployments, ac)
		return head.Kind, typed.Name, nil
	case head.Kind == "Service" && head.APIVersion == "v1":
		var typed corev1.Service
		if err := yaml.UnmarshalStrict(raw, &typed); err != nil {
			return "", "", fmt.Errorf("invalid Service: %w", err)
		}
		if typed.Name == "" {
			return "", "", errors.New("Service without metadata.name")
		}
		ac := &corev1ac.ServiceApplyConfiguration{}
		if err := json.Unmarshal(jsonDoc, ac); err != nil {
			return "", "", fmt.Errorf("Service %q: %w", typed.Name, err)
		}
		m.services = append(m.services, ac)
		return head.Kind, typed.Name, nil
	default:
		return "", "", fmt.Errorf("unsupported object %s %q: a scenario holds only apps/v1 Deployments and v1 Services", head.APIVersion, head.Kind)
	}
}

// prepare sets the namespace, our ownership label (on objects and pod templates, so pods can be
// found and waited for too) and the image overrides. Every override must match a container
// (by container name, or by Deployment name when it has one container): a typo in
// --image-upstream must not silently test the manifest's image.
func (m *manifests) prepare(namespace string, images map[string]string) error {
	used := map[string]bool{}
	for _, d := range m.deployments {
		d.WithNamespace(namespace).WithLabels(ownedLabels())
		if d.Spec == nil || d.Spec.Template == nil {
			return fmt.Errorf("Deployment %q has no pod template", *d.Name)
		}
		d.Spec.Template.WithLabels(ownedLabels())
		containers := d.Spec.Template.Spec.Containers
		for i := range containers {
			c := &containers[i]
			img, ok := images[deref(c.Name)]
			if ok {
				used[deref(c.Name)] = true
			} else if len(containers) == 1 {
				img, ok = images[*d.Name]
				if ok {
					used[*d.Name] = true
				}
			}
			if ok {
				c.WithImage(img)
			}
		}
	}
	for _, s := range m.services {
		s.WithNamespace(namespace).WithLabels(ownedLabels())
	}
	var unused []string
	for k := range images {
		if !used[k] {
			unused = append(unused, k)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		return fmt.Errorf("image override for %s matches no container or Deployment in the manifests (have: %s)",
			strings.Join(unused, ", "), strings.Join(m.containerNames(), ", "))
	}
	return nil
}

func (m *manifests) containerNames() []string {
	var names []string
	for _, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			names = append(names, *d.Name+"/"+deref(c.Name))
		}
	}
	return names
}

// images lists the image of every container, for the "image cannot be pulled" message.
func (m *manifests) images() map[string]string {
	out := map[string]string{}
	for _, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			out[*d.Name+"/"+deref(c.Name)] = deref(c.Image)
		}
	}
	return out
}

func (m *manifests) deploymentNames() []string {
	var names []string
	for _, d := range m.deployments {
		names = append(names, *d.Name)
	}
	return names
}

func (m *manifests) serviceNames() []string {
	var names []string
	for _, s := range m.services {
		names = append(names, *s.Name)
	}
	return names
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
