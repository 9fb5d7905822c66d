package kube

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/gracelab/gracelab/internal/manifest"
)

// manifests is one scenario's objects, ready to be applied: the apply configurations carry
// exactly the fields the YAML sets (plus our label and image overrides), so server-side apply
// owns nothing the author did not write.
type manifests struct {
	deployments []*appsv1ac.DeploymentApplyConfiguration
	services    []*corev1ac.ServiceApplyConfiguration
	budgets     []*policyv1ac.PodDisruptionBudgetApplyConfiguration
}

// loadManifests reads the manifest directory with package manifest: every *.yaml / *.yml /
// *.json file at the top of fsys, strictly decoded, Deployments, Services and PodDisruptionBudgets only (that is all
// a scenario needs, and anything else would be applied without the checks here), each
// kind/name once. It then keeps each document as an apply configuration built from the YAML
// itself, so server-side apply owns only the fields the author wrote.
func loadManifests(fsys fs.FS) (*manifests, error) {
	if fsys == nil {
		return nil, errors.New("no manifests given")
	}
	docs, err := manifest.Read(fsys)
	if err != nil {
		return nil, manifestError(err)
	}
	m := &manifests{}
	for _, doc := range docs {
		if err := m.add(doc); err != nil {
			return nil, fmt.Errorf("manifest %s document %d: %w", doc.File, doc.Index, err)
		}
	}
	if len(m.deployments) == 0 {
		return nil, errors.New("manifests: no Deployment found")
	}
	return m, nil
}

// manifestError words a manifest.Read error as this package always has:
// "manifest FILE document N: problem".
func manifestError(err error) error {
	if errors.Is(err, manifest.ErrNoObjects) {
		return errors.New("manifests: no .yaml, .yml or .json file with a Deployment or Service found")
	}
	var me *manifest.Error
	if !errors.As(err, &me) {
		return fmt.Errorf("read manifests: %w", err)
	}
	var dup *manifest.DuplicateError
	if errors.As(me.Err, &dup) {
		return fmt.Errorf("manifest %s: %s %q is also defined in %s", me.File, dup.Kind, dup.Name, dup.File)
	}
	msg := me.Err.Error()
	if len(me.UnknownFields) > 0 {
		var parts []string
		for _, p := range me.UnknownFields {
			parts = append(parts, fmt.Sprintf("unknown field %q at %s", p[strings.LastIndex(p, ".")+1:], p))
		}
		msg = strings.Join(parts, ", ")
	}
	if me.Kind != "" && !strings.HasPrefix(msg, me.Kind+" ") {
		msg = "invalid " + me.Kind + ": " + msg
	}
	return fmt.Errorf("manifest %s document %d: %s", me.File, me.Index, msg)
}

// add keeps one strictly decoded document as an apply configuration.
func (m *manifests) add(doc manifest.Document) error {
	jsonDoc, err := yaml.YAMLToJSON(doc.Raw)
	if err != nil {
		return fmt.Errorf("not valid YAML: %w", err)
	}
	switch typed := doc.Object.(type) {
	case *appsv1.Deployment:
		if len(typed.Spec.Template.Spec.Containers) == 0 {
			return fmt.Errorf("Deployment %q has no container", typed.Name)
		}
		ac := &appsv1ac.DeploymentApplyConfiguration{}
		if err := json.Unmarshal(jsonDoc, ac); err != nil {
			return fmt.Errorf("Deployment %q: %w", typed.Name, err)
		}
		m.deployments = append(m.deployments, ac)
	case *corev1.Service:
		ac := &corev1ac.ServiceApplyConfiguration{}
		if err := json.Unmarshal(jsonDoc, ac); err != nil {
			return fmt.Errorf("Service %q: %w", typed.Name, err)
		}
		m.services = append(m.services, ac)
	case *policyv1.PodDisruptionBudget:
		ac := &policyv1ac.PodDisruptionBudgetApplyConfiguration{}
		if err := json.Unmarshal(jsonDoc, ac); err != nil {
			return fmt.Errorf("PodDisruptionBudget %q: %w", typed.Name, err)
		}
		m.budgets = append(m.budgets, ac)
	default:
		return fmt.Errorf("unexpected object %T", doc.Object)
	}
	return nil
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
	for _, b := range m.budgets {
		b.WithNamespace(namespace).WithLabels(ownedLabels())
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
