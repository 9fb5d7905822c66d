package kube

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// apply server-side applies the PodDisruptionBudgets, the Services, then the Deployments, as field manager "gracelab".
// It first looks at every object: one that exists without our label is refused before
// anything is applied, since it belongs to someone else. One with our label is applied with
// force, so fields another manager took (a kubectl edit, say) return to the manifest's values;
// a new one is applied without force.
func (c *Cluster) apply(ctx context.Context) error {
	ns := c.namespace
	services, deployments := c.client.CoreV1().Services(ns), c.client.AppsV1().Deployments(ns)
	forceSvc := make([]bool, len(c.manifests.services))
	for i, s := range c.manifests.services {
		var labels map[string]string
		obj, err := services.Get(ctx, *s.Name, metav1.GetOptions{})
		if err == nil {
			labels = obj.Labels
		}
		if forceSvc[i], err = c.mayApply("service", *s.Name, labels, err, "services"); err != nil {
			return err
		}
	}
	forceDep := make([]bool, len(c.manifests.deployments))
	for i, d := range c.manifests.deployments {
		var labels map[string]string
		obj, err := deployments.Get(ctx, *d.Name, metav1.GetOptions{})
		if err == nil {
			labels = obj.Labels
		}
		if forceDep[i], err = c.mayApply("deployment", *d.Name, labels, err, "deployments.apps"); err != nil {
			return err
		}
	}
	budgets := c.client.PolicyV1().PodDisruptionBudgets(ns)
	forceBudget := make([]bool, len(c.manifests.budgets))
	for i, b := range c.manifests.budgets {
		var labels map[string]string
		obj, err := budgets.Get(ctx, *b.Name, metav1.GetOptions{})
		if err == nil {
			labels = obj.Labels
		}
		if forceBudget[i], err = c.mayApply("poddisruptionbudget", *b.Name, labels, err, "poddisruptionbudgets.policy"); err != nil {
			return err
		}
	}
	c.touched = true
	for i, b := range c.manifests.budgets {
		if _, err := budgets.Apply(ctx, b, metav1.ApplyOptions{FieldManager: fieldManager, Force: forceBudget[i]}); err != nil {
			return apiError(err, "patch", "poddisruptionbudgets.policy", ns)
		}
		c.opts.Logger.Info("applied", "namespace", ns, "poddisruptionbudget", *b.Name)
	}
	for i, s := range c.manifests.services {
		if _, err := services.Apply(ctx, s, metav1.ApplyOptions{FieldManager: fieldManager, Force: forceSvc[i]}); err != nil {
			return apiError(err, "patch", "services", ns)
		}
		c.opts.Logger.Info("applied", "namespace", ns, "service", *s.Name)
	}
	for i, d := range c.manifests.deployments {
		applied, err := deployments.Apply(ctx, d, metav1.ApplyOptions{FieldManager: fieldManager, Force: forceDep[i]})
		if err != nil {
			return apiError(err, "patch", "deployments.apps", ns)
		}
		c.wrote(applied)
		c.opts.Logger.Info("applied", "namespace", ns, "deployment", *d.Name)
	}
	return nil
}

// mayApply looks the object up: absent = apply without force, ours = apply with force, anyone
// else's = a refusal that says what to do.
func (c *Cluster) mayApply(kind, name string, labels map[string]string, err error, resource string) (force bool, _ error) {
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, apiError(err, "get", resource, c.namespace)
	}
	if labels[managedByLabel] != managedByValue {
		return false, fmt.Errorf("%s %q already exists in namespace %q and is not managed by gracelab (no label %s=%s); gracelab will not change it: "+
			"run in a namespace of its own (omit --namespace), or delete that %s yourself",
			kind, name, c.namespace, managedByLabel, managedByValue, kind)
	}
	return true, nil
}
