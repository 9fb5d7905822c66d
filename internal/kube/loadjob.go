package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/gracelab/gracelab/internal/load"
)

// The load Job: N pods running `gracelab load --stream` against a target only the cluster can
// reach. They wait for a common start instant, which gracelab writes into an annotation once
// all of them run; the kubelet hands it to them through a downward-API file. Each pod streams
// JSON lines on stdout; gracelab follows the logs and merges them (load.Merger).

const (
	// DefaultLoadImage is the image of the Dockerfile's gracelab target.
	DefaultLoadImage  = "gracelab/gracelab:dev"
	loadJobLabel      = "gracelab.dev/load-job"
	startAtAnnotation = "gracelab.dev/start-at"
	startAtDir        = "/etc/gracelab"
	startAtFile       = "start-at"
	// requestDir holds the request Secret's files: headers may carry credentials and a body may
	// be large, so neither is written into the pods' arguments.
	requestDir = "/etc/gracelab-request"
	// MaxRequestBytes bounds the headers and body shipped in the Secret (a Secret holds 1 MiB).
	MaxRequestBytes = 900 << 10
	// loadStartAllowance bounds how long the pods may take to start before the deadline counts.
	loadStartAllowance = 5 * time.Minute
	// LoadJobTTL: a finished Job (and its pods) is deleted by the cluster after this even when
	// gracelab was killed before its clean-up.
	LoadJobTTL = 10 * time.Minute
)

// LoadJobOptions describe the load Job.
type LoadJobOptions struct {
	Namespace, Name string
	Image           string      // default DefaultLoadImage
	Pods            int         // at least 1
	Load            load.Config // the whole run's load; split evenly over the pods
	// CPURequest, MemoryRequest and MemoryLimit default to 500m, 128Mi and 512Mi. There is no
	// CPU limit on purpose: CFS throttling would show up as latency.
	CPURequest, MemoryRequest, MemoryLimit string
}

// LoadJob renders the Job; bad options are an error before anything is sent.
func LoadJob(o LoadJobOptions) (*batchv1.Job, error) {
	if o.Name == "" || o.Namespace == "" {
		return nil, errors.New("kube: the load Job needs a name and a namespace")
	}
	if o.Load.Duration <= 0 {
		return nil, errors.New("load pods need a positive duration")
	}
	cfgs, err := load.Split(o.Load, o.Pods)
	if err != nil {
		return nil, err
	}
	for _, c := range cfgs[1:] {
		if c.VUs != cfgs[0].VUs {
			return nil, fmt.Errorf("%d VUs do not split evenly over %d load pods: use a multiple of %d VUs", o.Load.VUs, o.Pods, o.Pods)
		}
	}
	image := o.Image
	if image == "" {
		image = DefaultLoadImage
	}
	res := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for _, q := range []struct {
		value, def string
		list       corev1.ResourceList
		name       corev1.ResourceName
	}{{o.CPURequest, "500m", res.Requests, corev1.ResourceCPU}, {o.MemoryRequest, "128Mi", res.Requests, corev1.ResourceMemory}, {o.MemoryLimit, "512Mi", res.Limits, corev1.ResourceMemory}} {
		v := q.value
		if v == "" {
			v = q.def
		}
		parsed, err := resource.ParseQuantity(v)
		if err != nil {
			return nil, fmt.Errorf("load pod %s %q: %v", q.name, v, err)
		}
		q.list[q.name] = parsed
	}
	args := loadArgs(cfgs[0])
	var mounts []corev1.VolumeMount
	var volumes []corev1.Volume
	if sec, err := RequestSecret(o); err != nil {
		return nil, err
	} else if sec != nil {
		if _, ok := sec.Data[requestHeadersKey]; ok {
			args = append(args, "--header", "@"+requestDir+"/"+requestHeadersKey)
		}
		if _, ok := sec.Data[requestBodyKey]; ok {
			args = append(args, "--body", "@"+requestDir+"/"+requestBodyKey)
		}
		mounts = append(mounts, corev1.VolumeMount{Name: "request", MountPath: requestDir, ReadOnly: true})
		volumes = append(volumes, corev1.Volume{Name: "request", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: sec.Name}}})
	}
	pods := int32(o.Pods)
	deadline := int64((loadStartAllowance + o.Load.Duration + 2*maxDuration(o.Load.Timeout, load.DefaultTimeout)).Seconds())
	ttl := int32(LoadJobTTL.Seconds())
	backoff := int32(0)
	yes, no := true, false
	user := int64(65532)
	podLabels := map[string]string{managedByLabel: managedByValue, loadJobLabel: o.Name}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, Labels: podLabels},
		Spec: batchv1.JobSpec{
			Parallelism: &pods, Completions: &pods, BackoffLimit: &backoff,
			ActiveDeadlineSeconds: &deadline, TTLSecondsAfterFinished: &ttl,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: map[string]string{
					// A mesh sidecar would sit between the load and the service and retry for it.
					"sidecar.istio.io/inject": "false",
					"linkerd.io/inject":       "disabled",
				}},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					AutomountServiceAccountToken: &no,
					EnableServiceLinks:           &no,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot: &yes, RunAsUser: &user, RunAsGroup: &user,
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
							Weight: 100,
							PodAffinityTerm: corev1.PodAffinityTerm{
								TopologyKey:   corev1.LabelHostname,
								LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{loadJobLabel: o.Name}},
							},
						}},
					}},
					Containers: []corev1.Container{{
						Name: "load", Image: image, ImagePullPolicy: corev1.PullIfNotPresent,
						Args:      args,
						Resources: res,
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes, RunAsNonRoot: &yes,
							Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: append([]corev1.VolumeMount{{Name: "start", MountPath: startAtDir, ReadOnly: true}}, mounts...),
					}},
					Volumes: append([]corev1.Volume{{Name: "start", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
						Items: []corev1.DownwardAPIVolumeFile{{Path: startAtFile, FieldRef: &corev1.ObjectFieldSelector{
							FieldPath: "metadata.annotations['" + startAtAnnotation + "']"}}},
					}}}}, volumes...),
				},
			},
		},
	}, nil
}

func maxDuration(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// loadArgs are the arguments of `gracelab load` for one pod's share of the load.
func loadArgs(c load.Config) []string {
	args := []string{"load", "--stream", "--quiet", "--start-at-file", startAtDir + "/" + startAtFile,
		"--url", c.URL, "--duration", c.Duration.String()}
	if c.Method != "" {
		args = append(args, "--method", c.Method)
	}
	if c.Timeout > 0 {
		args = append(args, "--timeout", c.Timeout.String())
	}
	if c.Connections != "" {
		args = append(args, "--connections", c.Connections)
	}
	// What counts as ok is not secret; headers and body are (RequestSecret).
	if c.Expect.Status != "" {
		args = append(args, "--expect-status", c.Expect.Status)
	}
	if c.Expect.Body != "" {
		args = append(args, "--expect-body", c.Expect.Body)
	}
	if c.Model == load.Open {
		args = append(args, "--rate", strconv.FormatFloat(c.Rate, 'f', -1, 64))
		if c.MaxInFlight > 0 {
			args = append(args, "--max-in-flight", strconv.Itoa(c.MaxInFlight))
		}
		return args
	}
	return append(args, "--vus", strconv.Itoa(c.VUs), "--think", c.Think.String())
}

const (
	requestHeadersKey = "headers"
	requestBodyKey    = "body"
)

// RequestSecretName is the name of the Secret of a load Job's request headers and body.
func RequestSecretName(job string) string { return job + "-request" }

// RequestSecret renders the Secret that ships the load's request headers (one "Key: Value" a
// line) and body to the load pods, mounted as files; nil when the load has neither. Headers may
// carry credentials: a Secret keeps them out of the Job's arguments, its events and the plan.
func RequestSecret(o LoadJobOptions) (*corev1.Secret, error) {
	c := o.Load
	if len(c.Header) == 0 && len(c.Body) == 0 {
		return nil, nil
	}
	data := map[string][]byte{}
	if len(c.Header) > 0 {
		var b strings.Builder
		keys := make([]string, 0, len(c.Header))
		for k := range c.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			for _, v := range c.Header[k] {
				b.WriteString(k + ": " + v + "\n")
			}
		}
		data[requestHeadersKey] = []byte(b.String())
	}
	if len(c.Body) > 0 {
		data[requestBodyKey] = c.Body
	}
	if n := len(data[requestHeadersKey]) + len(data[requestBodyKey]); n > MaxRequestBytes {
		return nil, fmt.Errorf("the request headers and body are %d KiB: load pods get them in a Secret, which holds at most %d KiB; send a smaller body", n>>10, MaxRequestBytes>>10)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: RequestSecretName(o.Name), Namespace: o.Namespace,
			Labels: map[string]string{managedByLabel: managedByValue, loadJobLabel: o.Name}},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}, nil
}

// RequestSummary describes the shipped request without its values, for the plan: "2 headers
// (X-Api-Key, Host), body 1.2 KiB".
func RequestSummary(c load.Config) string {
	var parts []string
	if len(c.Header) > 0 {
		keys := make([]string, 0, len(c.Header))
		for k := range c.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts = append(parts, fmt.Sprintf("headers %s", strings.Join(keys, ", ")))
	}
	if len(c.Body) > 0 {
		parts = append(parts, fmt.Sprintf("a body of %d bytes", len(c.Body)))
	}
	return strings.Join(parts, " and ")
}

// LoadRun is a load Job in the cluster.
type LoadRun struct {
	client kubernetes.Interface
	job    *batchv1.Job
	secret string // the request Secret; "" when none
	pods   []string
	// openLog opens a pod's log from its beginning, following it (tests replace it).
	openLog func(ctx context.Context, pod string) (io.ReadCloser, error)
}

// StartLoadJob creates the Job, and first its request Secret when there is one (the pods
// mount it). The Secret is then owned by the Job, so the Job's TTL deletes it too.
func StartLoadJob(ctx context.Context, client kubernetes.Interface, job *batchv1.Job, secret *corev1.Secret) (*LoadRun, error) {
	ns := job.Namespace
	if secret != nil {
		if _, err := client.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
			return nil, apiError(err, "create", "secrets", ns)
		}
	}
	created, err := client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil {
		if secret != nil {
			_ = client.CoreV1().Secrets(ns).Delete(context.WithoutCancel(ctx), secret.Name, metav1.DeleteOptions{})
		}
		return nil, apiError(err, "create", "jobs.batch", ns)
	}
	r := &LoadRun{client: client, job: created}
	if secret != nil {
		r.secret = secret.Name
		owner := fmt.Appendf(nil, `{"metadata":{"ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":%q,"uid":%q}]}}`, created.Name, created.UID)
		if _, err := client.CoreV1().Secrets(ns).Patch(ctx, secret.Name, types.MergePatchType, owner, metav1.PatchOptions{FieldManager: fieldManager}); err != nil {
			return r, apiError(err, "patch", "secrets", ns) // the caller deletes the Job and the Secret
		}
	}
	r.openLog = func(ctx context.Context, pod string) (io.ReadCloser, error) {
		return client.CoreV1().Pods(job.Namespace).GetLogs(pod, &corev1.PodLogOptions{Follow: true}).Stream(ctx)
	}
	return r, nil
}

// Pods are the load pods found running by WaitRunning.
func (r *LoadRun) Pods() []string { return append([]string(nil), r.pods...) }

// WaitRunning waits until every load pod runs. A pod that cannot start (image, quota,
// admission, a crash) stops the wait with its reason and what to do.
func (r *LoadRun) WaitRunning(ctx context.Context, poll time.Duration) error {
	ns, want := r.job.Namespace, int(*r.job.Spec.Parallelism)
	sel := labels.SelectorFromSet(map[string]string{loadJobLabel: r.job.Name}).String()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		list, err := r.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return apiError(err, "list", "pods", ns)
		}
		var up []string
		for i := range list.Items {
			p := &list.Items[i]
			if err := loadPodProblem(p); err != nil {
				return err
			}
			if p.Status.Phase == corev1.PodRunning && running(p) {
				up = append(up, p.Name)
			}
		}
		if len(up) >= want {
			sort.Strings(up)
			r.pods = up[:want]
			return nil
		}
		if len(list.Items) < want {
			if err := r.jobProblem(ctx); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d load pods running when the wait ended (%w); see kubectl -n %s describe job %s", len(up), want, ctx.Err(), ns, r.job.Name)
		case <-tick.C:
		}
	}
}

// loadPodProblem is a load pod that will not run by waiting.
func loadPodProblem(p *corev1.Pod) error {
	if p.Status.Phase == corev1.PodFailed {
		return fmt.Errorf("load pod %s failed before the start (%s: %s); see kubectl -n %s logs %s", p.Name, p.Status.Reason, oneLine(p.Status.Message), p.Namespace, p.Name)
	}
	for _, s := range p.Status.ContainerStatuses {
		w := s.State.Waiting
		if w == nil {
			continue
		}
		switch w.Reason {
		case "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName":
			return fmt.Errorf("load pod %s cannot get image %q (%s: %s); build the Dockerfile's gracelab target and push it where the cluster pulls from, or load it into the cluster, and pass --load-image (see docs/cluster-drill.md)",
				p.Name, s.Image, w.Reason, oneLine(w.Message))
		case "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "CrashLoopBackOff":
			return fmt.Errorf("load pod %s cannot start (%s: %s); see kubectl -n %s describe pod %s", p.Name, w.Reason, oneLine(w.Message), p.Namespace, p.Name)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return fmt.Errorf("load pod %s cannot be scheduled: %s; lower --load-pods or the load pods' requests", p.Name, oneLine(c.Message))
		}
	}
	return nil
}

// jobProblem reports why the Job controller cannot create the pods (quota, admission such as a
// Pod Security level), from the Job's conditions and events.
func (r *LoadRun) jobProblem(ctx context.Context) error {
	ns := r.job.Namespace
	job, err := r.client.BatchV1().Jobs(ns).Get(ctx, r.job.Name, metav1.GetOptions{})
	if err != nil {
		return apiError(err, "get", "jobs.batch", ns)
	}
	for _, c := range job.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return fmt.Errorf("load job %s failed (%s: %s)", job.Name, c.Reason, oneLine(c.Message))
		}
	}
	events, err := r.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Job,involvedObject.name=" + job.Name})
	if err != nil {
		return nil // events are a help, not a need
	}
	for _, e := range events.Items {
		if e.Reason == "FailedCreate" && e.InvolvedObject.Name == job.Name {
			return fmt.Errorf("the cluster refuses the load pods: %s; ask for quota or an exemption, or lower --load-pods", oneLine(e.Message))
		}
	}
	return nil
}

// Announce writes the common start instant into every load pod's annotation; the kubelet
// updates their downward-API file and the pods start sending at that instant.
func (r *LoadRun) Announce(ctx context.Context, at time.Time) error {
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, startAtAnnotation, at.UTC().Format(time.RFC3339Nano))
	for _, pod := range r.pods {
		if _, err := r.client.CoreV1().Pods(r.job.Namespace).Patch(ctx, pod, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager}); err != nil {
			return apiError(err, "patch", "pods", r.job.Namespace)
		}
	}
	return nil
}

// Follow reads every load pod's stream into m until the pods are done. A log stream that
// breaks is opened again from the beginning (m skips the records it has), at most retries
// times per pod.
func (r *LoadRun) Follow(ctx context.Context, m *load.Merger, retries int) error {
	errc := make(chan error, len(r.pods))
	for _, pod := range r.pods {
		m.Pod(pod)
		go func() { errc <- r.follow(ctx, m, pod, retries) }()
	}
	var errs []error
	for range r.pods {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *LoadRun) follow(ctx context.Context, m *load.Merger, pod string, retries int) error {
	var last error
	for attempt := 0; attempt <= retries; attempt++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rc, err := r.openLog(ctx, pod)
		if err != nil {
			last = err
			continue
		}
		err = m.Read(pod, rc)
		rc.Close()
		if err == nil && (m.Finished(pod) || r.awaitEnded(ctx, pod)) {
			return nil // the log ended: the container exited
		}
		if err == nil {
			err = errors.New("the log stream ended while the pod still runs")
		}
		last = err
	}
	return fmt.Errorf("following the log of load pod %s: %w", pod, last)
}

// awaitEnded polls, for a few seconds, whether the pod's container has exited: its status
// follows the end of its log by a moment.
func (r *LoadRun) awaitEnded(ctx context.Context, pod string) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if r.podEnded(ctx, pod) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// Delete removes the Job and its pods and waits, bounded by ctx, until the pods are gone.
func (r *LoadRun) Delete(ctx context.Context, poll time.Duration) error {
	ns := r.job.Namespace
	background := metav1.DeletePropagationBackground
	err := r.client.BatchV1().Jobs(ns).Delete(ctx, r.job.Name, metav1.DeleteOptions{PropagationPolicy: &background})
	if err != nil && !apierrors.IsNotFound(err) {
		return apiError(err, "delete", "jobs.batch", ns)
	}
	if r.secret != "" {
		err := r.client.CoreV1().Secrets(ns).Delete(ctx, r.secret, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return apiError(err, "delete", "secrets", ns)
		}
	}
	sel := labels.SelectorFromSet(map[string]string{loadJobLabel: r.job.Name}).String()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		list, err := r.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err == nil && len(list.Items) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("load pods of job %s still present: %w", r.job.Name, ctx.Err())
		case <-tick.C:
		}
	}
}

// LoadJobName is a name for a run's load Job, unique enough per run.
func LoadJobName(deployment string, now time.Time) string {
	name := "gracelab-load-" + strings.ToLower(deployment)
	if len(name) > 40 {
		name = name[:40]
	}
	return strings.TrimRight(name, "-") + "-" + strconv.FormatInt(now.Unix()%100000, 10)
}
