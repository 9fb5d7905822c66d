package kube

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// Drilling a Deployment that already runs (a team's service in its namespace): gracelab applies
// nothing to it, restarts it as `kubectl rollout restart` does, watches it, and creates only
// its load Job, which it deletes afterwards.

// Permission is one verb on one resource in a namespace, or of the cluster.
type Permission struct {
	Verb, Group, Resource, Subresource string
	Cluster                            bool // a cluster-scoped resource (namespaces)
}

func (p Permission) String() string {
	r := p.Resource
	if p.Group != "" {
		r += "." + p.Group
	}
	if p.Subresource != "" {
		r += "/" + p.Subresource
	}
	return p.Verb + " " + r
}

// Needs says what a drill does besides restarting and watching a Deployment.
type Needs struct {
	LoadPods      bool // a Job of load pods
	RequestSecret bool // their request headers or body in a Secret
	Apply         bool // -f: a namespace of its own, the manifests applied into it
}

// DrillPermissions is everything a drill of a Deployment does in its namespace; with load
// pods, also what running and following them needs; with -f, what deploying the manifests
// into a namespace of its own needs.
func DrillPermissions(n Needs) []Permission {
	ps := []Permission{
		{Verb: "get", Group: "apps", Resource: "deployments"},
		{Verb: "patch", Group: "apps", Resource: "deployments"},
	}
	for _, r := range []struct{ group, resource string }{{"apps", "deployments"}, {"apps", "replicasets"}, {"", "pods"}, {"discovery.k8s.io", "endpointslices"}} {
		ps = append(ps, Permission{Verb: "list", Group: r.group, Resource: r.resource}, Permission{Verb: "watch", Group: r.group, Resource: r.resource})
	}
	ps = append(ps, Permission{Verb: "list", Resource: "services"})
	if n.Apply {
		ps = append(ps, Permission{Verb: "create", Resource: "namespaces", Cluster: true}, Permission{Verb: "delete", Resource: "namespaces", Cluster: true},
			Permission{Verb: "get", Resource: "namespaces", Cluster: true})
		for _, r := range []struct{ group, resource string }{{"apps", "deployments"}, {"", "services"}, {"policy", "poddisruptionbudgets"}} {
			ps = append(ps, Permission{Verb: "create", Group: r.group, Resource: r.resource})
			if r.resource != "deployments" {
				ps = append(ps, Permission{Verb: "get", Group: r.group, Resource: r.resource}, Permission{Verb: "patch", Group: r.group, Resource: r.resource})
			}
		}
	}
	if n.LoadPods {
		ps = append(ps,
			Permission{Verb: "create", Group: "batch", Resource: "jobs"},
			Permission{Verb: "delete", Group: "batch", Resource: "jobs"},
			Permission{Verb: "patch", Group: "batch", Resource: "jobs"},
			Permission{Verb: "get", Group: "batch", Resource: "jobs"},
			Permission{Verb: "patch", Resource: "pods"},
			Permission{Verb: "get", Resource: "pods", Subresource: "log"},
			Permission{Verb: "list", Resource: "events"},
			Permission{Verb: "list", Group: "networking.k8s.io", Resource: "networkpolicies"},
		)
	}
	if n.LoadPods && n.RequestSecret {
		ps = append(ps, Permission{Verb: "create", Resource: "secrets"}, Permission{Verb: "patch", Resource: "secrets"}, Permission{Verb: "delete", Resource: "secrets"})
	}
	return ps
}

// CheckPermissions asks the API server, one SelfSubjectAccessReview per permission, whether the
// current user may do each in namespace, and lists every missing one in a single error.
func CheckPermissions(ctx context.Context, client kubernetes.Interface, namespace string, needed []Permission) error {
	var missing []string
	for _, p := range needed {
		review := &authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authv1.ResourceAttributes{Namespace: scopeOf(p, namespace), Verb: p.Verb, Group: p.Group, Resource: p.Resource, Subresource: p.Subresource},
		}}
		got, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return apiError(err, "create", "selfsubjectaccessreviews.authorization.k8s.io", "")
		}
		if !got.Status.Allowed {
			missing = append(missing, p.String())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("permission denied in namespace %q: the current user may not %s; ask for a Role granting these (see docs/cluster-drill.md)",
			namespace, strings.Join(missing, ", "))
	}
	return nil
}

func scopeOf(p Permission, namespace string) string {
	if p.Cluster {
		return ""
	}
	return namespace
}

// DrillPlan is what a drill of an existing Deployment will do, found before anything changes.
type DrillPlan struct {
	Namespace, Deployment string
	Replicas, Available   int32
	Services              []string // the Services that route to its pods
	LoadJob               string   // the Job that will be created and deleted; "" with load from here
	LoadPods              int
	Request               string   // the load pods' request headers and body, named not shown (RequestSummary)
	Refusals              []string // why the drill should not run now; Force overrides

	// With -f, the manifests deployed first.
	Files        string   // as given to -f; "" for a Deployment that already runs
	NewNamespace bool     // Namespace is created (and deleted); Namespace "" = a generated name
	Apply        []string // the objects applied, "Deployment web"
	Skipped      []string // the objects not applied
}

// PlanApply is the plan of a drill that first deploys manifests (-f) into namespace: a new one
// when it does not exist (or namespace is "": a generated name), else the existing one, where
// only what gracelab applied is deleted afterwards.
func PlanApply(ctx context.Context, client kubernetes.Interface, namespace, deployment, files string, apply, skipped []string, loadPods int, loadJob string) (*DrillPlan, error) {
	p := &DrillPlan{Namespace: namespace, Deployment: deployment, Files: files, Apply: apply, Skipped: skipped, LoadPods: loadPods, NewNamespace: true}
	if loadPods > 0 {
		p.LoadJob = loadJob
	}
	if namespace != "" {
		_, err := client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
		switch {
		case err == nil, apierrors.IsForbidden(err):
			p.NewNamespace = false // as Up takes it
		case !apierrors.IsNotFound(err):
			return nil, apiError(err, "get", "namespaces", "")
		}
	}
	return p, nil
}

// PlanDrill reads the Deployment and the Services selecting its pods and lists the refusals: a
// paused Deployment, one already rolling out, fewer than 2 available replicas (one pod cannot
// roll without a gap: the drill would only measure that).
func PlanDrill(ctx context.Context, client kubernetes.Interface, namespace, deployment string, loadPods int, loadJob string) (*DrillPlan, error) {
	d, err := client.AppsV1().Deployments(namespace).Get(ctx, deployment, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("deployment %q not found in namespace %q; check -n/--namespace (kubectl -n %s get deployments)", deployment, namespace, namespace)
	}
	if err != nil {
		return nil, apiError(err, "get", "deployments.apps", namespace)
	}
	p := &DrillPlan{Namespace: namespace, Deployment: deployment, Available: d.Status.AvailableReplicas, LoadPods: loadPods}
	if loadPods > 0 {
		p.LoadJob = loadJob
	}
	p.Replicas = 1
	if d.Spec.Replicas != nil {
		p.Replicas = *d.Spec.Replicas
	}
	if p.Services, err = servicesSelecting(ctx, client, d); err != nil {
		return nil, err
	}
	if d.Spec.Paused {
		p.Refusals = append(p.Refusals, "the deployment is paused (kubectl rollout resume first)")
	}
	if msg, done, err := RolloutStatus(d); err != nil || !done {
		if err != nil {
			msg = err.Error()
		}
		p.Refusals = append(p.Refusals, "a rollout is already in progress ("+msg+"); wait for it to finish")
	}
	if p.Available < 2 {
		p.Refusals = append(p.Refusals, fmt.Sprintf("only %d available replicas: a rolling restart of fewer than 2 always has a gap; scale it to 2 or more", p.Available))
	}
	return p, nil
}

// servicesSelecting names the Services of the namespace whose selector matches the
// Deployment's pod template: their EndpointSlices are the timeline's.
func servicesSelecting(ctx context.Context, client kubernetes.Interface, d *appsv1.Deployment) ([]string, error) {
	list, err := client.CoreV1().Services(d.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, apiError(err, "list", "services", d.Namespace)
	}
	var out []string
	for _, s := range list.Items {
		if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			out = append(out, s.Name)
		}
	}
	return out, nil
}

// Refused is the refusals as one error, nil when there are none or force is set.
func (p *DrillPlan) Refused(force bool) error {
	if force || len(p.Refusals) == 0 {
		return nil
	}
	return fmt.Errorf("not drilling deployment %q in namespace %q: %s (--force drills anyway)", p.Deployment, p.Namespace, strings.Join(p.Refusals, "; "))
}

// String renders the plan for --dry-run.
func (p *DrillPlan) String() string {
	var b strings.Builder
	ns := p.Namespace
	if ns == "" {
		ns = "gracelab-<generated>"
	}
	if p.Files != "" {
		state := "new"
		if !p.NewNamespace {
			state = "exists: only what gracelab applies is deleted afterwards"
		}
		fmt.Fprintf(&b, "plan for deployment/%s from -f %s in namespace %s (%s)\n", p.Deployment, p.Files, ns, state)
		if p.NewNamespace {
			fmt.Fprintf(&b, "  create   namespace/%s (labelled %s=%s)\n", ns, managedByLabel, managedByValue)
		}
		fmt.Fprintf(&b, "  apply    %s (server-side apply, field manager %s; waited for until rolled out)\n", strings.Join(p.Apply, ", "), fieldManager)
		if len(p.Skipped) > 0 {
			fmt.Fprintf(&b, "  skip     %s (not applied: gracelab applies Deployments, Services and PodDisruptionBudgets only)\n", strings.Join(p.Skipped, ", "))
		}
	} else {
		fmt.Fprintf(&b, "plan for deployment/%s in namespace %s (%d replicas, %d available; services: %s)\n",
			p.Deployment, ns, p.Replicas, p.Available, orNone(p.Services))
	}
	if p.LoadJob != "" && p.Request != "" {
		fmt.Fprintf(&b, "  create   secret/%s: the load's %s (values not shown; deleted with the Job)\n", RequestSecretName(p.LoadJob), p.Request)
	}
	if p.LoadJob != "" {
		fmt.Fprintf(&b, "  create   job/%s: %d load pods (deleted at the end, or by its TTL)\n", p.LoadJob, p.LoadPods)
	}
	fmt.Fprintf(&b, "  restart  deployment/%s (as kubectl rollout restart: the %s annotation)\n", p.Deployment, restartedAtAnnotation)
	fmt.Fprintf(&b, "  watch    its replicasets, pods and endpointslices; nothing else is changed\n")
	if p.LoadJob != "" {
		fmt.Fprintf(&b, "  delete   job/%s and its pods\n", p.LoadJob)
	}
	switch {
	case p.Files != "" && p.NewNamespace:
		fmt.Fprintf(&b, "  delete   namespace/%s and everything in it (also after a failure or Ctrl-C)\n", ns)
	case p.Files != "":
		fmt.Fprintf(&b, "  delete   the objects applied, in namespace %s (also after a failure or Ctrl-C)\n", ns)
	}
	for _, r := range p.Refusals {
		fmt.Fprintf(&b, "  refused: %s\n", r)
	}
	return b.String()
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// Attach is a Cluster on a Deployment that already runs: Up only checks it and starts the
// watches (its pods and the Services selecting them make the timeline), Restart and
// WaitSettled work as for applied manifests, Down stops the watches and deletes nothing.
func Attach(ctx context.Context, client kubernetes.Interface, opts Options, deployment string) (*Cluster, error) {
	if opts.Namespace == "" {
		return nil, fmt.Errorf("kube: Attach needs a namespace")
	}
	opts.Keep = true // nothing of the workload is ours to delete
	c, err := newCluster(client, opts, &manifests{})
	if err != nil {
		return nil, err
	}
	d, err := client.AppsV1().Deployments(opts.Namespace).Get(ctx, deployment, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("deployment %q not found in namespace %q", deployment, opts.Namespace)
	}
	if err != nil {
		return nil, apiError(err, "get", "deployments.apps", opts.Namespace)
	}
	c.existing = d
	return c, nil
}

// upExisting starts the watches on an existing Deployment and waits for it to be settled.
func (c *Cluster) upExisting(ctx context.Context) error {
	d := c.existing
	selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return fmt.Errorf("deployment %q has an invalid selector: %w", d.Name, err)
	}
	services, err := servicesSelecting(ctx, c.client, d)
	if err != nil {
		return err
	}
	if err := c.startWatches(ctx, selector, services); err != nil {
		return err
	}
	if c.target == "" && len(services) > 0 {
		svc, err := c.client.CoreV1().Services(c.namespace).Get(ctx, services[0], metav1.GetOptions{})
		if err != nil {
			return apiError(err, "get", "services", c.namespace)
		}
		if c.target, err = defaultTarget(svc); err != nil {
			return err
		}
	}
	return c.waitSettled(ctx, d.Name, false)
}
