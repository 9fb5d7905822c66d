package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/kube/kubetest"
	"github.com/gracelab/gracelab/internal/load"
)

func settledDeployment(replicas, available int32) *appsv1.Deployment {
	d := existingDeployment("shop")
	d.Spec.Replicas = &replicas
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: replicas, UpdatedReplicas: replicas, ReadyReplicas: available, AvailableReplicas: available}
	return d
}

func TestPlanDrillRefusals(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: "shop"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "upstream"}}}
	other := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "billing", Namespace: "shop"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "billing"}}}
	paused := settledDeployment(3, 3)
	paused.Spec.Paused = true
	rolling := settledDeployment(3, 3)
	rolling.Status.UpdatedReplicas = 1
	cases := []struct {
		name string
		d    *appsv1.Deployment
		want []string // refusals, by a word each
	}{
		{"healthy", settledDeployment(3, 3), nil},
		{"paused", paused, []string{"paused"}},
		{"rolling", rolling, []string{"already in progress"}},
		{"one replica", settledDeployment(1, 1), []string{"only 1 available"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cs := kubetest.NewClientset(tc.d, svc, other)
			p, err := PlanDrill(context.Background(), cs, "shop", "upstream", 2, "gracelab-load-upstream-1")
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Refusals) != len(tc.want) {
				t.Fatalf("refusals %q, want %q", p.Refusals, tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(p.Refusals[i], w) {
					t.Errorf("refusal %q does not say %q", p.Refusals[i], w)
				}
			}
			if err := p.Refused(false); (err != nil) != (len(tc.want) > 0) {
				t.Errorf("Refused(false) = %v", err)
			}
			if err := p.Refused(true); err != nil {
				t.Errorf("--force still refused: %v", err)
			}
			if !slices.Equal(p.Services, []string{"checkout"}) {
				t.Errorf("services %v, want the one selecting the pods", p.Services)
			}
			text := p.String()
			for _, w := range []string{"create   job/gracelab-load-upstream-1: 2 load pods", "restart  deployment/upstream", "delete   job/gracelab-load-upstream-1"} {
				if !strings.Contains(text, w) {
					t.Errorf("plan does not say %q:\n%s", w, text)
				}
			}
		})
	}
	if _, err := PlanDrill(context.Background(), kubetest.NewClientset(), "shop", "nope", 1, "j"); err == nil || !strings.Contains(err.Error(), `deployment "nope" not found in namespace "shop"`) {
		t.Errorf("missing deployment: %v", err)
	}
}

// Every permission is asked for; all the denied ones are named in one error.
func TestCheckPermissionsListsAllMissing(t *testing.T) {
	cs := kubetest.NewClientset()
	var asked []string
	cs.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authv1.SelfSubjectAccessReview)
		ra := r.Spec.ResourceAttributes
		asked = append(asked, ra.Verb+" "+ra.Resource+"/"+ra.Subresource+" in "+ra.Namespace)
		r.Status.Allowed = !(ra.Verb == "patch" && ra.Resource == "deployments" || ra.Verb == "create" && ra.Resource == "jobs" || ra.Subresource == "log")
		return true, r, nil
	})
	err := CheckPermissions(context.Background(), cs, "shop", DrillPermissions(Needs{LoadPods: true}))
	if err == nil {
		t.Fatal("denials not reported")
	}
	for _, w := range []string{"patch deployments.apps", "create jobs.batch", "get pods/log", `namespace "shop"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
	if len(asked) != len(DrillPermissions(Needs{LoadPods: true})) || !strings.HasSuffix(asked[0], "in shop") {
		t.Errorf("asked %v", asked)
	}
	asked = nil
	if err := CheckPermissions(context.Background(), cs, "shop", DrillPermissions(Needs{})[2:]); err != nil {
		t.Errorf("only allowed permissions: %v", err)
	}
}

func TestLoadJobSpec(t *testing.T) {
	cfg := load.Config{URL: "http://checkout.shop:8080/", Model: load.Open, Rate: 600, Duration: 30 * time.Second, Timeout: 5 * time.Second}
	job, err := LoadJob(LoadJobOptions{Namespace: "shop", Name: "gracelab-load-1", Pods: 3, Load: cfg, Image: "registry.example/gracelab:1"})
	if err != nil {
		t.Fatal(err)
	}
	s := job.Spec
	if *s.Parallelism != 3 || *s.Completions != 3 || *s.BackoffLimit != 0 || s.ActiveDeadlineSeconds == nil || *s.TTLSecondsAfterFinished <= 0 {
		t.Errorf("job spec %+v", s)
	}
	if *s.ActiveDeadlineSeconds < 30 {
		t.Errorf("deadline %ds is shorter than the run", *s.ActiveDeadlineSeconds)
	}
	pod := s.Template.Spec
	c := pod.Containers[0]
	args := strings.Join(c.Args, " ")
	for _, w := range []string{"load --stream", "--start-at-file /etc/gracelab/start-at", "--url http://checkout.shop:8080/", "--rate 200", "--duration 30s", "--timeout 5s"} {
		if !strings.Contains(args, w) {
			t.Errorf("args %q lack %q", args, w)
		}
	}
	if c.Image != "registry.example/gracelab:1" {
		t.Errorf("image %s", c.Image)
	}
	if _, cpuLimit := c.Resources.Limits[corev1.ResourceCPU]; cpuLimit || c.Resources.Limits.Memory().IsZero() ||
		c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("resources %+v: want CPU and memory requests, a memory limit, no CPU limit", c.Resources)
	}
	// The restricted Pod Security Standard.
	sc, psc := c.SecurityContext, pod.SecurityContext
	if !*psc.RunAsNonRoot || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault || *sc.AllowPrivilegeEscalation ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("security contexts %+v %+v", psc, sc)
	}
	ann := s.Template.Annotations
	if ann["sidecar.istio.io/inject"] != "false" || ann["linkerd.io/inject"] != "disabled" {
		t.Errorf("annotations %v: want sidecar injection off", ann)
	}
	aff := pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
	if len(aff) != 1 || aff[0].PodAffinityTerm.TopologyKey != corev1.LabelHostname || pod.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		t.Errorf("anti-affinity %+v: want soft, across nodes", pod.Affinity)
	}
	if pod.Volumes[0].DownwardAPI.Items[0].FieldRef.FieldPath != "metadata.annotations['gracelab.dev/start-at']" {
		t.Errorf("volumes %+v", pod.Volumes)
	}

	closed := load.Config{URL: "http://checkout.shop:8080/", Model: load.Closed, VUs: 10, Think: 100 * time.Millisecond, Duration: time.Minute}
	if job, err := LoadJob(LoadJobOptions{Namespace: "shop", Name: "j", Pods: 2, Load: closed}); err != nil || !strings.Contains(strings.Join(job.Spec.Template.Spec.Containers[0].Args, " "), "--vus 5") {
		t.Errorf("closed split: %v", err)
	}
	for _, bad := range []LoadJobOptions{
		{Namespace: "shop", Name: "j", Pods: 3, Load: closed},
		{Namespace: "shop", Name: "j", Pods: 0, Load: closed},
		{Namespace: "shop", Name: "j", Pods: 1, Load: closed, MemoryLimit: "lots"},
	} {
		if _, err := LoadJob(bad); err == nil {
			t.Errorf("LoadJob(%+v) accepted", bad)
		}
	}
}

func loadPod(job *batchv1.Job, name string, status corev1.PodStatus) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: job.Namespace, Labels: job.Spec.Template.Labels}, Status: status}
}

func runningStatus() corev1.PodStatus {
	return corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "load", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}
}

func testJob(t *testing.T, pods int) *batchv1.Job {
	t.Helper()
	job, err := LoadJob(LoadJobOptions{Namespace: "shop", Name: "gracelab-load-1", Pods: pods,
		Load: load.Config{URL: "http://checkout.shop/", Model: load.Open, Rate: 10, Duration: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// A load pod that cannot start stops the run with its reason and what to do.
func TestLoadPodThatCannotStart(t *testing.T) {
	ctx := testContext(t)
	job := testJob(t, 2)
	pull := corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: "load", Image: DefaultLoadImage,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull", Message: "image not present"}}}}}
	cs := kubetest.NewClientset(loadPod(job, "load-a", runningStatus()), loadPod(job, "load-b", pull))
	run, err := StartLoadJob(ctx, cs, job, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = run.WaitRunning(ctx, 5*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "load-b cannot get image") || !strings.Contains(err.Error(), "--load-image") {
		t.Errorf("WaitRunning: %v", err)
	}

	// Admission or quota: the Job controller creates no pod and says why in an event.
	cs = kubetest.NewClientset(&corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1", Namespace: "shop"},
		InvolvedObject: corev1.ObjectReference{Kind: "Job", Name: job.Name}, Reason: "FailedCreate",
		Message: `pods "x" is forbidden: exceeded quota: compute, requested: cpu=500m`})
	run, err = StartLoadJob(ctx, cs, job, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := run.WaitRunning(ctx, 5*time.Millisecond); err == nil || !strings.Contains(err.Error(), "exceeded quota") {
		t.Errorf("WaitRunning under quota: %v", err)
	}
}

// All pods running: the start instant is announced on each; the logs are followed and a
// dropped stream is read again without double counting; Delete leaves nothing.
func TestLoadRunAnnounceFollowDelete(t *testing.T) {
	ctx := testContext(t)
	job := testJob(t, 2)
	cs := kubetest.NewClientset(loadPod(job, "load-a", runningStatus()), loadPod(job, "load-b", runningStatus()),
		loadPod(job, "other", runningStatus()))
	// The fake has no garbage collector: deleting the Job deletes its pods here.
	cs.PrependReactor("delete", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
		for _, p := range []string{"load-a", "load-b"} {
			_ = cs.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), "shop", p)
		}
		return false, nil, nil
	})
	other, _ := cs.CoreV1().Pods("shop").Get(ctx, "other", metav1.GetOptions{})
	other.Labels = map[string]string{"app": "other"}
	if _, err := cs.CoreV1().Pods("shop").Update(ctx, other, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	run, err := StartLoadJob(ctx, cs, job, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := run.WaitRunning(ctx, 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(run.Pods(), []string{"load-a", "load-b"}) {
		t.Fatalf("pods %v", run.Pods())
	}
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if err := run.Announce(ctx, at); err != nil {
		t.Fatal(err)
	}
	for _, name := range run.Pods() {
		p, _ := cs.CoreV1().Pods("shop").Get(ctx, name, metav1.GetOptions{})
		if p.Annotations[startAtAnnotation] != "2026-12-01T12:00:00Z" {
			t.Errorf("pod %s annotations %v", name, p.Annotations)
		}
	}
	line := func(seq int, sec, ok int, summary bool) string {
		s := fmt.Sprintf(`{"v":1,"seq":%d,"time":"2026-12-01T12:00:0%dZ","start":"2026-12-01T12:00:00Z","seconds":[{"second":%d,"requests":%d,"counts":{"ok":%d}}]`, seq, sec+1, sec, ok, ok)
		if summary {
			s += `,"summary":{"result":{"send_end":"2026-12-01T12:00:02Z","end":"2026-12-01T12:00:02Z"}}`
		}
		return s + "}\n"
	}
	stream := line(1, 0, 10, false) + line(2, 1, 10, true)
	opened := map[string]int{}
	run.openLog = func(_ context.Context, pod string) (io.ReadCloser, error) {
		opened[pod]++
		if pod == "load-a" && opened[pod] == 1 {
			return io.NopCloser(io.MultiReader(strings.NewReader(line(1, 0, 10, false)), errReader{})), nil // the stream drops
		}
		return io.NopCloser(strings.NewReader(stream)), nil
	}
	m := load.NewMerger(at, load.Config{Model: load.Open, Rate: 20})
	run.openLog = serialized(run.openLog)
	if err := run.Follow(ctx, m, 2); err != nil {
		t.Fatal(err)
	}
	got := m.Merge()
	if got.Incomplete || got.Result.Requests != 40 || len(got.Pods) != 2 {
		t.Errorf("merged %d requests from %d pods (incomplete %v %v), want 40 from 2", got.Result.Requests, len(got.Pods), got.Incomplete, got.Problems)
	}
	if err := run.Delete(ctx, 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	left, _ := cs.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(job.Spec.Template.Labels).String()})
	if _, err := cs.BatchV1().Jobs("shop").Get(ctx, job.Name, metav1.GetOptions{}); err == nil || len(left.Items) != 0 {
		t.Errorf("after Delete: job %v, %d pods left", err, len(left.Items))
	}
	if _, err := cs.CoreV1().Pods("shop").Get(ctx, "other", metav1.GetOptions{}); err != nil {
		t.Errorf("a pod that is not a load pod was deleted: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("stream reset by peer") }

// serialized guards the test's map: Follow opens the pods' logs concurrently.
func serialized(open func(context.Context, string) (io.ReadCloser, error)) func(context.Context, string) (io.ReadCloser, error) {
	ch := make(chan struct{}, 1)
	return func(ctx context.Context, pod string) (io.ReadCloser, error) {
		ch <- struct{}{}
		defer func() { <-ch }()
		return open(ctx, pod)
	}
}

func TestNetworkPolicyWarnings(t *testing.T) {
	job := testJob(t, 1)
	egress := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "deny-egress", Namespace: "shop"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}}}
	ingressOnly := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "ingress", Namespace: "shop"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}
	elsewhere := egress.DeepCopy()
	elsewhere.Name, elsewhere.Spec.PodSelector = "db-only", metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}
	got, err := NetworkPolicyWarnings(context.Background(), kubetest.NewClientset(egress, ingressOnly, elsewhere), job)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !strings.Contains(got[0], "NetworkPolicy deny-egress selects the load pods") {
		t.Errorf("warnings %q", got)
	}
}

// Attach drills a Deployment that gracelab did not create: its pods (not labelled as ours)
// make the timeline, Restart and WaitSettled work, Down deletes nothing.
func TestAttachDrillsAnExistingDeployment(t *testing.T) {
	ctx := testContext(t)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: "shop"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "upstream"}, ClusterIP: "10.0.0.7",
			Ports: []corev1.ServicePort{{Port: 8080}}}}
	d := existingDeployment("shop")
	cs := kubetest.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, d, svc)
	kubetest.Start(t, cs)
	// The Deployment runs before the drill: its pods are ready first.
	for ready := 0; ready < int(*d.Spec.Replicas); {
		list, err := cs.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{})
		if err != nil || ctx.Err() != nil {
			t.Fatalf("waiting for the existing pods: %v %v", err, ctx.Err())
		}
		ready = 0
		for i := range list.Items {
			if podReady(&list.Items[i]) {
				ready++
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond): // the poll's interval; ctx is the deadline
		}
	}
	opts := testOptions()
	opts.Namespace, opts.Manifests = "shop", nil
	c, err := Attach(ctx, cs, opts, "upstream")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Target() != "http://10.0.0.7:8080/" {
		t.Errorf("target %q, want the Service's ClusterIP", c.Target())
	}
	if err := c.Restart(ctx, "upstream"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitSettled(ctx, "upstream"); err != nil {
		t.Fatal(err)
	}
	if err := c.Down(ctx); err != nil {
		t.Fatal(err)
	}
	events := c.Events()
	for _, k := range []cluster.EventKind{cluster.RestartTriggered, cluster.PodCreated, cluster.PodTerminating, cluster.EndpointAdded, cluster.RolloutComplete} {
		if !hasEvent(events, func(e cluster.Event) bool { return e.Kind == k }) {
			t.Errorf("no %s event in %d events", k, len(events))
		}
	}
	// The pods that ran before the drill come first, so the report takes their revision as
	// the old one.
	first := slices.IndexFunc(events, func(e cluster.Event) bool { return e.Kind == cluster.PodReady || e.Kind == cluster.PodCreated })
	if first < 0 || events[first].Kind != cluster.PodReady || events[first].Detail != "already ready when the drill began" {
		t.Errorf("the first pod event is %+v, want the running pods' snapshot", events[max(first, 0)])
	}
	if _, err := cs.AppsV1().Deployments("shop").Get(ctx, "upstream", metav1.GetOptions{}); err != nil {
		t.Errorf("Down deleted the team's Deployment: %v", err)
	}
	if _, err := cs.CoreV1().Services("shop").Get(ctx, "checkout", metav1.GetOptions{}); err != nil {
		t.Errorf("Down deleted the team's Service: %v", err)
	}
}
