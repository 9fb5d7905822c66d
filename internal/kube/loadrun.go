package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/gracelab/gracelab/internal/load"
)

// ClusterLoad is a whole load run sent by a Job of load pods: started, announced, followed,
// stopped and deleted. It has the methods of a local load.Run that a drill uses (Progress,
// Stop, Done, Result), so the drill runs the same either way.
type ClusterLoad struct {
	run      *LoadRun
	merger   *load.Merger
	start    time.Time
	warnings []string

	stopOnce  sync.Once
	stopErr   error
	cancel    context.CancelFunc // ends the following, after the stop's grace
	done      chan struct{}
	merged    *load.Merged
	unreached error
	follow    error
	deleted   error
}

// ClusterLoadOptions say how the Job is run.
type ClusterLoadOptions struct {
	Job LoadJobOptions
	// StartLead is how far ahead of its announcement the common start is: long enough for the
	// kubelet to hand the annotation to every pod. Default 5s.
	StartLead time.Duration
	// StartTimeout bounds the wait for every pod to run. Default loadStartAllowance.
	StartTimeout time.Duration
	Poll         time.Duration // default 500ms
	// LogRetries is how often a pod's broken log stream is opened again. Default 5.
	LogRetries int
	openLog    func(ctx context.Context, pod string) (io.ReadCloser, error) // tests replace the pods' logs
}

// StartClusterLoad creates the Job, waits until all its pods run, announces the common start
// and follows the pods' logs. A pod that cannot start stops it with the pod's reason; the Job
// is deleted before it returns an error.
func StartClusterLoad(ctx context.Context, client kubernetes.Interface, o ClusterLoadOptions) (*ClusterLoad, error) {
	if o.StartLead <= 0 {
		o.StartLead = 5 * time.Second
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = loadStartAllowance
	}
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.LogRetries <= 0 {
		o.LogRetries = 5
	}
	job, err := LoadJob(o.Job)
	if err != nil {
		return nil, err
	}
	// Long enough for the in-flight requests after the SIGTERM of the stop.
	grace := int64((maxDuration(o.Job.Load.Timeout, load.DefaultTimeout) + 15*time.Second).Seconds())
	job.Spec.Template.Spec.TerminationGracePeriodSeconds = &grace
	warnings, err := NetworkPolicyWarnings(ctx, client, job)
	if err != nil {
		return nil, err
	}
	secret, err := RequestSecret(o.Job)
	if err != nil {
		return nil, err
	}
	run, err := StartLoadJob(ctx, client, job, secret)
	if run != nil && err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = run.Delete(dctx, o.Poll)
	}
	if err != nil {
		return nil, err
	}
	if o.openLog != nil {
		run.openLog = o.openLog
	}
	cleanUp := func(cause error) error {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := run.Delete(dctx, o.Poll); err != nil {
			return fmt.Errorf("%w; deleting load job %s: %v", cause, job.Name, err)
		}
		return cause
	}
	wctx, wcancel := context.WithTimeout(ctx, o.StartTimeout)
	err = run.WaitRunning(wctx, o.Poll)
	wcancel()
	if err != nil {
		return nil, cleanUp(err)
	}
	at := time.Now().Add(o.StartLead)
	merger := load.NewMerger(at, o.Job.Load)
	announced := time.Now()
	if err := run.Announce(ctx, at); err != nil {
		return nil, cleanUp(err)
	}
	merger.Announced(announced)
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &ClusterLoad{run: run, merger: merger, start: at, warnings: warnings, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.follow = run.Follow(fctx, merger, o.LogRetries)
		cancel()
		l.merged = merger.Merge()
		dctx, dcancel := context.WithTimeout(context.Background(), time.Minute)
		defer dcancel()
		l.unreached = unreached(dctx, client, run.job, o.Job.Load.URL, l.merged.Result)
		l.deleted = run.Delete(dctx, o.Poll)
	}()
	return l, nil
}

// Start is the common start instant, by this machine's clock when it was announced.
func (l *ClusterLoad) Start() time.Time { return l.start }

// Job is the load Job's name.
func (l *ClusterLoad) Job() string { return l.run.job.Name }

// Pods are the load pods.
func (l *ClusterLoad) Pods() []string { return l.run.Pods() }

// Progress is what the pods reported so far; Elapsed is negative before the common start.
func (l *ClusterLoad) Progress() load.Progress {
	requests, errs := l.merger.Progress()
	return load.Progress{Elapsed: time.Since(l.start), Requests: requests, Errors: errs}
}

// Stop suspends the Job: its controller deletes the pods, each gets SIGTERM, stops sending,
// waits for its requests in flight and writes its summary. Safe to call more than once.
func (l *ClusterLoad) Stop() {
	l.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ns := l.run.job.Namespace
		_, err := l.run.client.BatchV1().Jobs(ns).Patch(ctx, l.run.job.Name, types.MergePatchType,
			[]byte(`{"spec":{"suspend":true}}`), metav1.PatchOptions{FieldManager: fieldManager})
		if err != nil && !apierrors.IsNotFound(err) {
			l.stopErr = apiError(err, "patch", "jobs.batch", ns)
			// Without the Job controller, SIGTERM the pods by deleting them.
			for _, pod := range l.run.pods {
				_ = l.run.client.CoreV1().Pods(ns).Delete(ctx, pod, metav1.DeleteOptions{})
			}
		}
	})
}

// Done is closed once every pod's stream ended and the Job is deleted.
func (l *ClusterLoad) Done() <-chan struct{} { return l.done }

// Result is the merged result; nil before Done.
func (l *ClusterLoad) Result() *load.Result {
	if m := l.Merged(); m != nil {
		return m.Result
	}
	return nil
}

// Merged is the merge with every pod's own result; nil before Done.
func (l *ClusterLoad) Merged() *load.Merged {
	select {
	case <-l.done:
		return l.merged
	default:
		return nil
	}
}

// Unreached says why no request reached the target, when none got an answer: the
// NetworkPolicies that may be in the way; nil before Done or when some got through.
func (l *ClusterLoad) Unreached() error {
	select {
	case <-l.done:
		return l.unreached
	default:
		return nil
	}
}

// unreached is the error of a load that got no answer at all from the target (every request
// refused, reset or timed out), naming the NetworkPolicies that may block it.
func unreached(ctx context.Context, client kubernetes.Interface, job *batchv1.Job, target string, r *load.Result) error {
	if r == nil || r.Requests == 0 || r.OK > 0 || r.ErrorsByKind[load.HTTP5xx]+r.ErrorsByKind[load.HTTP4xx]+r.ErrorsByKind[load.BodyNotOK] > 0 {
		return nil
	}
	var classes []string
	for _, c := range load.ErrorClasses {
		if n := r.ErrorsByKind[c]; n > 0 {
			classes = append(classes, fmt.Sprintf("%d %s", n, c))
		}
	}
	why := fmt.Sprintf("no request of the load pods got an answer from %s (%s)", target, strings.Join(classes, ", "))
	policies, err := BlockingPolicies(ctx, client, job, target)
	switch {
	case err != nil:
		return fmt.Errorf("%s; the NetworkPolicies in the way could not be read: %v", why, err)
	case len(policies) > 0:
		return fmt.Errorf("%s: blocked by a NetworkPolicy? %s", why, strings.Join(policies, "; "))
	}
	return fmt.Errorf("%s; no NetworkPolicy selects the load pods or the target's pods: check --target as the load pods see it", why)
}

// Span is what the pods reported of the requests sent in [from, to) (load.Merger.Span).
func (l *ClusterLoad) Span(from, to time.Time) load.Span { return l.merger.Span(from, to) }

// Warnings are the NetworkPolicies that may block the load.
func (l *ClusterLoad) Warnings() []string { return append([]string(nil), l.warnings...) }

// Err is what went wrong stopping, following or deleting; nil before Done.
func (l *ClusterLoad) Err() error {
	select {
	case <-l.done:
	default:
		return nil
	}
	var errs []error
	if l.stopErr != nil {
		errs = append(errs, fmt.Errorf("stopping the load pods: %w", l.stopErr))
	}
	if l.follow != nil {
		errs = append(errs, l.follow)
	}
	if l.deleted != nil {
		errs = append(errs, fmt.Errorf("deleting load job %s: %w", l.run.job.Name, l.deleted))
	}
	return errors.Join(errs...)
}

// Abort stops following at once and deletes the Job (gracelab is exiting); it returns when
// the Job and its pods are gone or ctx ends.
func (l *ClusterLoad) Abort(ctx context.Context) error {
	l.cancel()
	select {
	case <-l.done:
		return l.deleted
	case <-ctx.Done():
		return fmt.Errorf("load job %s may be left: kubectl -n %s delete job %s (%w)", l.run.job.Name, l.run.job.Namespace, l.run.job.Name, ctx.Err())
	}
}

// podEnded says whether a load pod's container has exited (or the pod is gone): a log stream
// that ends then is the pod's whole log; otherwise it dropped and is opened again.
func (r *LoadRun) podEnded(ctx context.Context, pod string) bool {
	p, err := r.client.CoreV1().Pods(r.job.Namespace).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		return apierrors.IsNotFound(err) || ctx.Err() != nil
	}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return true
	}
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Terminated != nil {
			return true
		}
	}
	return false
}
