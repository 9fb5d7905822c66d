package check

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// FromCluster lists the objects the rules read in namespace ("" for all namespaces), with list
// calls only: nothing is created or changed.
func FromCluster(ctx context.Context, client kubernetes.Interface, namespace string) ([]Object, error) {
	var objs []Object
	opts := metav1.ListOptions{}
	fail := func(what string, err error) error {
		where := "namespace " + namespace
		if namespace == "" {
			where = "all namespaces"
		}
		return fmt.Errorf("listing %s in %s: %w", what, where, err)
	}
	deps, err := client.AppsV1().Deployments(namespace).List(ctx, opts)
	if err != nil {
		return nil, fail("Deployments", err)
	}
	for i := range deps.Items {
		objs = append(objs, Object{Object: &deps.Items[i]})
	}
	sts, err := client.AppsV1().StatefulSets(namespace).List(ctx, opts)
	if err != nil {
		return nil, fail("StatefulSets", err)
	}
	for i := range sts.Items {
		objs = append(objs, Object{Object: &sts.Items[i]})
	}
	dss, err := client.AppsV1().DaemonSets(namespace).List(ctx, opts)
	if err != nil {
		return nil, fail("DaemonSets", err)
	}
	for i := range dss.Items {
		objs = append(objs, Object{Object: &dss.Items[i]})
	}
	svcs, err := client.CoreV1().Services(namespace).List(ctx, opts)
	if err != nil {
		return nil, fail("Services", err)
	}
	for i := range svcs.Items {
		objs = append(objs, Object{Object: &svcs.Items[i]})
	}
	pdbs, err := client.PolicyV1().PodDisruptionBudgets(namespace).List(ctx, opts)
	if err != nil {
		return nil, fail("PodDisruptionBudgets", err)
	}
	for i := range pdbs.Items {
		objs = append(objs, Object{Object: &pdbs.Items[i]})
	}
	ings, err := client.NetworkingV1().Ingresses(namespace).List(ctx, opts)
	if err != nil {
		return nil, fail("Ingresses", err)
	}
	for i := range ings.Items {
		objs = append(objs, Object{Object: &ings.Items[i]})
	}
	return objs, nil
}

// ServerMinor asks the API server its version and returns the 1.x minor (34 for v1.34.4).
func ServerMinor(client kubernetes.Interface) (int, error) {
	v, err := client.Discovery().ServerVersion()
	if err != nil {
		return 0, fmt.Errorf("reading the server version: %w", err)
	}
	if v.Major != "1" {
		return 0, fmt.Errorf("server version %s.%s: want 1.x", v.Major, v.Minor)
	}
	return ParseMinor(v.Major + "." + v.Minor)
}

// ParseMinor reads a Kubernetes version ("1.34", "v1.34.4", "1.30+") into its minor number.
func ParseMinor(v string) (int, error) {
	s := strings.TrimPrefix(strings.TrimSpace(v), "v")
	major, rest, ok := strings.Cut(s, ".")
	if !ok || major != "1" {
		return 0, fmt.Errorf("kubernetes version %q: want 1.N, such as 1.34", v)
	}
	minor, _, _ := strings.Cut(rest, ".")
	minor = strings.TrimRight(minor, "+")
	n, err := strconv.Atoi(minor)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("kubernetes version %q: want 1.N, such as 1.34", v)
	}
	return n, nil
}
