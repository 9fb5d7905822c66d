// Package kube is the real-cluster back end of the drill: it runs a scenario's manifests on a
// Kubernetes cluster through client-go and implements cluster.Cluster there. It owns the
// namespace it creates and the objects it labels (app.kubernetes.io/managed-by=gracelab),
// server-side apply of the manifests, the `kubectl rollout restart` patch, the `kubectl rollout
// status` judgement, the pod and endpoint timeline from watches, the check of --target against
// the Service, and clean-up. Apart from RolloutRestart, which like kubectl restarts whatever
// Deployment it is pointed at, it never changes or deletes an object it did not label.
package kube

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/gracelab/gracelab/internal/cluster"
)

const (
	fieldManager   = "gracelab"
	managedByLabel = "app.kubernetes.io/managed-by"
	managedByValue = "gracelab"
)

// Defaults for the zero values of Options.
const (
	DefaultRolloutTimeout = 3 * time.Minute
	DefaultDeleteTimeout  = 3 * time.Minute
	DefaultPollInterval   = 250 * time.Millisecond
	DefaultTargetService  = "downstream"
)

// Options configure one scenario on a real cluster.
type Options struct {
	// Kubeconfig and Context select the cluster for Open (kubectl's rules when empty:
	// $KUBECONFIG, ~/.kube/config, the current context). New uses the client it is given.
	Kubeconfig, Context string
	// Namespace to deploy into. "" creates a dedicated namespace (generateName "gracelab-"),
	// labelled as ours and deleted by Down unless Keep. A named namespace that does not exist is
	// created and counts as ours; one that exists is used but never deleted.
	Namespace string
	// Keep leaves everything in place after Down (namespace and objects).
	Keep bool
	// Manifests is the scenario's directory: Deployments and Services only.
	Manifests fs.FS
	// Images overrides a container's image, keyed by container name (or Deployment name when it
	// has one container): --image-upstream, --image-downstream.
	Images map[string]string
	// Target is the URL the load will use (--target). "" = the target Service's LoadBalancer
	// ingress, else its ClusterIP. A Target that reaches none of the Service's addresses gives a
	// warning (see TargetWarning).
	Target string
	// TargetService is the Service the load must go through; default "downstream".
	TargetService string
	// RolloutTimeout: a rollout that makes no progress for this long fails with the
	// Deployment's conditions. Default 3m.
	RolloutTimeout time.Duration
	// DeleteTimeout bounds Down's wait for what it deleted to be gone. Default 3m.
	DeleteTimeout time.Duration
	// PollInterval of rollout and clean-up waits. Default 250ms.
	PollInterval time.Duration
	Logger       *slog.Logger
}

// Cluster is one scenario on a real cluster. It implements cluster.Cluster.
type Cluster struct {
	client    kubernetes.Interface
	opts      Options
	manifests *manifests

	namespace string
	createdNS bool // we created the namespace: Down may delete it
	touched   bool // we applied something into a namespace that is not ours
	up        bool
	target    string
	warnings  []string

	stop     chan struct{}
	stopOnce sync.Once
	watch    *watcher

	existing *appsv1.Deployment // Attach: the Deployment drilled as it runs

	mu          sync.Mutex
	events      []cluster.Event
	generations map[string]int64 // Deployment -> generation of our last write
	killImage   string           // the kill helper's image: set once the user opted in
	killHelpers map[string]bool  // helper pods created and not yet seen deleted
}

var _ cluster.Cluster = (*Cluster)(nil)

// Open builds the client from Options.Kubeconfig and Options.Context (see
// NewClientFromKubeconfig), then calls New.
func Open(opts Options) (*Cluster, error) {
	client, _, err := NewClientFromKubeconfig(opts.Kubeconfig, opts.Context)
	if err != nil {
		return nil, err
	}
	return New(client, opts)
}

// New checks the options and the manifests (nothing is sent to the cluster yet).
func New(client kubernetes.Interface, opts Options) (*Cluster, error) {
	m, err := loadManifests(opts.Manifests)
	if err != nil {
		return nil, err
	}
	c, err := newCluster(client, opts, m)
	if err != nil {
		return nil, err
	}
	for name, image := range c.opts.Images {
		if image == "" {
			return nil, fmt.Errorf("image override for %s is empty", name)
		}
	}
	// Validate overrides and the target Service now, with a placeholder namespace: bad input
	// must fail before anything is created.
	if err := m.prepare("placeholder", c.opts.Images); err != nil {
		return nil, err
	}
	found := false
	for _, s := range m.serviceNames() {
		found = found || s == c.opts.TargetService
	}
	if !found {
		return nil, fmt.Errorf("the manifests have no Service %q to send load to (have: %v)", c.opts.TargetService, m.serviceNames())
	}
	return c, nil
}

// newCluster checks and completes the options shared by New and Attach.
func newCluster(client kubernetes.Interface, opts Options, m *manifests) (*Cluster, error) {
	if client == nil {
		return nil, errors.New("kube: no Kubernetes client")
	}
	if opts.RolloutTimeout < 0 || opts.DeleteTimeout < 0 || opts.PollInterval < 0 {
		return nil, errors.New("kube: timeouts and intervals must not be negative")
	}
	if opts.RolloutTimeout == 0 {
		opts.RolloutTimeout = DefaultRolloutTimeout
	}
	if opts.DeleteTimeout == 0 {
		opts.DeleteTimeout = DefaultDeleteTimeout
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.TargetService == "" {
		opts.TargetService = DefaultTargetService
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Target != "" {
		if _, _, err := parseTarget(opts.Target); err != nil {
			return nil, err
		}
	}
	return &Cluster{client: client, opts: opts, manifests: m, namespace: opts.Namespace, target: opts.Target, stop: make(chan struct{})}, nil
}

// Namespace is the namespace in use (known after Up when a dedicated one is created).
func (c *Cluster) Namespace() string { return c.namespace }

// Target is the URL load should go to: Options.Target, or after Up the address derived from the
// target Service.
func (c *Cluster) Target() string { return c.target }

// Warnings are the problems found that do not stop the run (a --target that bypasses the
// Service); the report must show them.
func (c *Cluster) Warnings() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.warnings...)
}

// Events returns a copy of the timeline so far, in delivery order.
func (c *Cluster) Events() []cluster.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]cluster.Event(nil), c.events...)
}

func (c *Cluster) record(e cluster.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.appendLocked(e)
}

// appendLocked stamps e and appends it. The time is read under the lock, so the timeline is in
// time order although the informers' handlers run concurrently.
func (c *Cluster) appendLocked(e cluster.Event) {
	e.Time = time.Now()
	c.events = append(c.events, e)
}

// Up creates or checks the namespace, starts the watches, applies the manifests with
// server-side apply and waits until every Deployment is rolled out with no old pod left. On
// any error it cleans up what it did before returning.
func (c *Cluster) Up(ctx context.Context) (err error) {
	if c.up {
		return errors.New("kube: Up called twice")
	}
	c.up = true
	if c.existing != nil {
		return c.upExisting(ctx)
	}
	defer func() {
		if err != nil {
			cleanCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.DeleteTimeout)
			defer cancel()
			if derr := c.Down(cleanCtx); derr != nil {
				err = fmt.Errorf("%w (and clean-up failed: %v)", err, derr)
			}
		}
	}()
	if err := c.ensureNamespace(ctx); err != nil {
		return err
	}
	if err := c.manifests.prepare(c.namespace, c.opts.Images); err != nil {
		return err
	}
	if err := c.startWatches(ctx, labels.SelectorFromSet(ownedLabels()), c.manifests.serviceNames()); err != nil {
		return err
	}
	if err := c.apply(ctx); err != nil {
		return err
	}
	for _, name := range c.manifests.deploymentNames() {
		c.opts.Logger.Info("waiting for deployment", "namespace", c.namespace, "deployment", name)
		if err := c.waitSettled(ctx, name, false); err != nil {
			return err
		}
	}
	if err := c.waitEndpoints(ctx); err != nil {
		return err
	}
	return c.resolveTarget(ctx)
}

// ensureNamespace creates a dedicated namespace, or checks the named one (creating it, as ours,
// when it does not exist).
func (c *Cluster) ensureNamespace(ctx context.Context) error {
	nsClient := c.client.CoreV1().Namespaces()
	if c.namespace != "" {
		_, err := nsClient.Get(ctx, c.namespace, metav1.GetOptions{})
		switch {
		case err == nil:
			c.opts.Logger.Info("using existing namespace (it will not be deleted)", "namespace", c.namespace)
			return nil
		case apierrors.IsForbidden(err):
			// Users with a Role in their own namespace may not read the namespace object;
			// take it as existing (never ours) and let the next calls show what is allowed.
			c.opts.Logger.Info("may not read namespace; using it as an existing one", "namespace", c.namespace)
			return nil
		case !apierrors.IsNotFound(err):
			return apiError(err, "get", "namespaces", "")
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.namespace, Labels: ownedLabels()}}
	if c.namespace == "" {
		ns.GenerateName = "gracelab-"
	}
	created, err := nsClient.Create(ctx, ns, metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil {
		return apiError(err, "create", "namespaces", "")
	}
	if created.Name == "" {
		return errors.New("the API server returned the new namespace without a name")
	}
	c.namespace, c.createdNS = created.Name, true
	c.opts.Logger.Info("created namespace", "namespace", c.namespace)
	return nil
}

// resolveTarget derives the target when none was given and checks a given one against the
// Service.
func (c *Cluster) resolveTarget(ctx context.Context) error {
	svc, err := c.client.CoreV1().Services(c.namespace).Get(ctx, c.opts.TargetService, metav1.GetOptions{})
	if err != nil {
		return apiError(err, "get", "services", c.namespace)
	}
	if c.opts.Target == "" {
		c.target, err = defaultTarget(svc)
		if err != nil {
			return err
		}
		c.opts.Logger.Info("target derived from the Service", "service", svc.Name, "target", c.target)
		return nil
	}
	if w := TargetWarning(c.opts.Target, svc); w != "" {
		c.mu.Lock()
		c.warnings = append(c.warnings, w)
		c.mu.Unlock()
		c.opts.Logger.Warn(w)
	}
	return nil
}

// Restart triggers a rolling restart as `kubectl rollout restart` does and records it.
func (c *Cluster) Restart(ctx context.Context, deployment string) error {
	if c.namespace == "" {
		return errors.New("kube: Restart before Up")
	}
	d, stamp, err := rolloutRestart(ctx, c.client, c.namespace, deployment)
	if err != nil {
		return err
	}
	c.wrote(d)
	c.record(cluster.Event{Kind: cluster.RestartTriggered, Deployment: deployment, Source: cluster.SourceDrill,
		Detail: fmt.Sprintf("%s=%s generation %d", restartedAtAnnotation, stamp, d.Generation)})
	return nil
}

// WaitSettled waits until the rollout is complete as `kubectl rollout status` judges it and no
// pod of an old ReplicaSet is left, terminating ones included.
func (c *Cluster) WaitSettled(ctx context.Context, deployment string) error {
	if c.namespace == "" {
		return errors.New("kube: WaitSettled before Up")
	}
	return c.waitSettled(ctx, deployment, true)
}

// Down stops the watches and removes what Up made: the namespace if we created it, else only
// the Deployments and Services labelled as ours; then it waits, bounded by DeleteTimeout, until
// they and their pods are gone. With Keep it removes nothing. Safe after a failed Up, and twice.
func (c *Cluster) Down(ctx context.Context) error {
	c.stopWatches()
	if c.namespace == "" {
		return nil // nothing was created
	}
	if c.opts.Keep {
		c.opts.Logger.Info("keeping namespace and objects", "namespace", c.namespace)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.DeleteTimeout)
	defer cancel()
	switch {
	case c.createdNS:
		return c.deleteNamespace(ctx)
	case c.touched:
		return c.deleteOwnedObjects(ctx)
	}
	return nil
}

func (c *Cluster) deleteNamespace(ctx context.Context) error {
	nsClient := c.client.CoreV1().Namespaces()
	ns, err := nsClient.Get(ctx, c.namespace, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return apiError(err, "get", "namespaces", "")
	}
	if ns.Labels[managedByLabel] != managedByValue {
		return fmt.Errorf("namespace %q is not labelled %s=%s; not deleting it", c.namespace, managedByLabel, managedByValue)
	}
	// Preconditions: delete exactly the namespace we created, not a namesake made since.
	err = nsClient.Delete(ctx, c.namespace, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &ns.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		return apiError(err, "delete", "namespaces", "")
	}
	c.opts.Logger.Info("deleting namespace", "namespace", c.namespace)
	return c.poll(ctx, fmt.Sprintf("namespace %q to be deleted", c.namespace), func() (bool, error) {
		_, err := nsClient.Get(ctx, c.namespace, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, apiError(err, "get", "namespaces", "")
	})
}

// deleteOwnedObjects deletes, in a namespace that is not ours, only what carries our label.
func (c *Cluster) deleteOwnedObjects(ctx context.Context) error {
	ns := c.namespace
	sel := metav1.ListOptions{LabelSelector: ownedSelector()}
	background := metav1.DeletePropagationBackground
	deps, err := c.client.AppsV1().Deployments(ns).List(ctx, sel)
	if err != nil {
		return apiError(err, "list", "deployments.apps", ns)
	}
	for _, d := range deps.Items {
		err := c.client.AppsV1().Deployments(ns).Delete(ctx, d.Name, metav1.DeleteOptions{PropagationPolicy: &background})
		if err != nil && !apierrors.IsNotFound(err) {
			return apiError(err, "delete", "deployments.apps", ns)
		}
	}
	svcs, err := c.client.CoreV1().Services(ns).List(ctx, sel)
	if err != nil {
		return apiError(err, "list", "services", ns)
	}
	for _, s := range svcs.Items {
		err := c.client.CoreV1().Services(ns).Delete(ctx, s.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return apiError(err, "delete", "services", ns)
		}
	}
	budgets, err := c.client.PolicyV1().PodDisruptionBudgets(ns).List(ctx, sel)
	if err != nil {
		return apiError(err, "list", "poddisruptionbudgets.policy", ns)
	}
	for _, b := range budgets.Items {
		err := c.client.PolicyV1().PodDisruptionBudgets(ns).Delete(ctx, b.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return apiError(err, "delete", "poddisruptionbudgets.policy", ns)
		}
	}
	// Our pods carry the label through the pod template: wait for the last one to go.
	return c.poll(ctx, fmt.Sprintf("pods of gracelab in namespace %q to be deleted", ns), func() (bool, error) {
		pods, err := c.client.CoreV1().Pods(ns).List(ctx, sel)
		if err != nil {
			return false, apiError(err, "list", "pods", ns)
		}
		return len(pods.Items) == 0, nil
	})
}

// poll calls check every PollInterval until it is done, fails, or ctx ends.
func (c *Cluster) poll(ctx context.Context, what string, check func() (bool, error)) error {
	ticker := time.NewTicker(c.opts.PollInterval)
	defer ticker.Stop()
	for {
		done, err := check()
		if done {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting for %s: %w", what, ctx.Err())
		case <-ticker.C:
		}
	}
}

func ownedLabels() map[string]string { return map[string]string{managedByLabel: managedByValue} }

func ownedSelector() string { return managedByLabel + "=" + managedByValue }
