package kube

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gracelab/gracelab/internal/cluster"
)

// killFixture: pod upstream-a running on node-a, and a "kubelet" that sets the status of each
// helper pod as it is created (the fake clientset runs no pods).
type killFixture struct {
	cs *fake.Clientset
	c  *Cluster

	mu      sync.Mutex
	n       int
	kubelet func(*corev1.Pod) // sets the created helper's status; nil leaves it pending
	created chan string       // each helper's name, once stored
}

func newKillFixture(t *testing.T, objs ...runtime.Object) *killFixture {
	t.Helper()
	target := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "upstream-a", Namespace: "lab", Labels: map[string]string{"app": "upstream"}},
		Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "upstream"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "upstream", ContainerID: "containerd://" + testCID, RestartCount: 2,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
		}}},
	}
	f := &killFixture{cs: fake.NewClientset(append(objs, target)...), created: make(chan string, 10)}
	f.cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ca := a.(k8stesting.CreateActionImpl)
		p := ca.GetObject().(*corev1.Pod)
		if slices.Contains(ca.CreateOptions.DryRun, metav1.DryRunAll) {
			return true, p, nil // admitted, not stored
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if p.Name == "" {
			f.n++
			p.Name = p.GenerateName + strconv.Itoa(f.n) // the fake does not generate names
		}
		if f.kubelet != nil {
			f.kubelet(p)
		}
		if err := f.cs.Tracker().Create(corev1.SchemeGroupVersion.WithResource("pods"), p, "lab"); err != nil {
			return true, nil, err
		}
		f.created <- p.Name
		return true, p, nil
	})
	f.c = &Cluster{client: f.cs, namespace: "lab", opts: Options{PollInterval: time.Millisecond, Logger: slog.New(slog.DiscardHandler)}}
	f.c.EnableKillHelper("gracelab/gracelab:test")
	return f
}

func succeeded(p *corev1.Pod) { succeededAt(p, time.Now()) }

// succeededAt is the helper's end after a kill at the instant at (as `kill-container` says it).
func succeededAt(p *corev1.Pod, at time.Time) {
	p.Status.Phase = corev1.PodSucceeded
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "kill", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		Message: "killed pid 612 (upstream, pid 1 in the container, 1 processes) of container containerd://" + testCID + KilledAtSeparator + at.UTC().Format(time.RFC3339Nano)}}}}
}

// helpers lists the kill helper pods in the namespace.
func (f *killFixture) helpers(t *testing.T) []string {
	t.Helper()
	list, err := f.cs.CoreV1().Pods("lab").List(context.Background(), metav1.ListOptions{LabelSelector: killHelperSelector()})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range list.Items {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return names
}

func (f *killFixture) events(kind cluster.EventKind) []cluster.Event {
	var out []cluster.Event
	for _, e := range f.c.Events() {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func TestKillHelperPodSpec(t *testing.T) {
	p := KillHelperPod("lab", "gracelab/gracelab:dev", "node-a", "upstream-a", "upstream", "containerd://"+testCID)
	s := p.Spec
	c := s.Containers[0]
	sc := c.SecurityContext
	switch {
	case p.Namespace != "lab" || p.GenerateName != "gracelab-kill-":
		t.Errorf("namespace %q, generateName %q", p.Namespace, p.GenerateName)
	case p.Labels[managedByLabel] != managedByValue || p.Labels[componentLabel] != killHelperComponent:
		t.Errorf("labels %v: want gracelab's kill-helper labels, which stale helpers are found by", p.Labels)
	case p.Annotations[killTargetAnnotation] != "upstream-a/upstream" || p.Annotations["sidecar.istio.io/inject"] != "false":
		t.Errorf("annotations %v", p.Annotations)
	case s.NodeName != "node-a" || !s.HostPID:
		t.Errorf("nodeName %q hostPID %v: want the target's node and its PID namespace", s.NodeName, s.HostPID)
	case s.RestartPolicy != corev1.RestartPolicyNever || s.ActiveDeadlineSeconds == nil || *s.ActiveDeadlineSeconds != 60:
		t.Errorf("restartPolicy %s, activeDeadlineSeconds %v: want Never and 60", s.RestartPolicy, s.ActiveDeadlineSeconds)
	case s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken:
		t.Error("the helper needs no service-account token")
	case len(s.Tolerations) != 1 || s.Tolerations[0].Operator != corev1.TolerationOpExists || s.Tolerations[0].Key != "":
		t.Errorf("tolerations %v: want one that tolerates every taint", s.Tolerations)
	case c.Image != "gracelab/gracelab:dev" || !slices.Equal(c.Args, []string{"kill-container", "--container-id", "containerd://" + testCID}):
		t.Errorf("image %q args %q", c.Image, c.Args)
	case sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 0 || sc.Privileged != nil:
		t.Errorf("security context %+v: want root, not privileged", sc)
	case !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || !slices.Equal(sc.Capabilities.Add, []corev1.Capability{"KILL"}):
		t.Errorf("capabilities %+v: want all dropped but KILL", sc.Capabilities)
	case *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem:
		t.Error("want no privilege escalation and a read-only root")
	}
}

func TestKillContainerNeedsTheOptIn(t *testing.T) {
	f := newKillFixture(t)
	f.c.EnableKillHelper("")
	err := f.c.KillContainer(context.Background(), "upstream-a")
	if err == nil || !strings.Contains(err.Error(), "--kill-helper IMAGE") {
		t.Fatalf("err = %v, want the opt-in named", err)
	}
	for _, a := range f.cs.Actions() {
		if a.GetVerb() == "create" {
			t.Errorf("%s %s without the opt-in", a.GetVerb(), a.GetResource().Resource)
		}
	}
}

func TestKillContainerRunsTheHelperOnTheNodeAndRemovesIt(t *testing.T) {
	f := newKillFixture(t)
	var helper *corev1.Pod
	var killed time.Time
	f.kubelet = func(p *corev1.Pod) {
		helper, killed = p.DeepCopy(), time.Now()
		succeededAt(p, killed)
		// The watch sees the container die before the helper's end is read.
		f.c.record(cluster.Event{Kind: cluster.PodExited, Pod: "upstream-a"})
	}
	if err := f.c.KillContainer(context.Background(), "upstream-a"); err != nil {
		t.Fatal(err)
	}
	if helper == nil || helper.Spec.NodeName != "node-a" || helper.Spec.Containers[0].Args[2] != "containerd://"+testCID {
		t.Fatalf("helper %+v: want one on node-a for the target's container", helper)
	}
	if got := f.helpers(t); len(got) != 0 {
		t.Errorf("helpers left: %v", got)
	}
	var graceZero bool
	for _, a := range f.cs.Actions() {
		if d, ok := a.(k8stesting.DeleteActionImpl); ok && d.Name == helper.Name {
			graceZero = d.DeleteOptions.GracePeriodSeconds != nil && *d.DeleteOptions.GracePeriodSeconds == 0
		}
	}
	if !graceZero {
		t.Error("the helper was not deleted with grace period 0")
	}
	ev := f.events(cluster.SIGKILLSent)
	if len(ev) != 1 || ev[0].Pod != "upstream-a" || ev[0].Node != "node-a" || ev[0].Source != cluster.SourceDrill ||
		!strings.Contains(ev[0].Detail, "killed pid 612") || !strings.Contains(ev[0].Detail, "gracelab-kill-1") || strings.Contains(ev[0].Detail, " at 20") {
		t.Errorf("sigkill events %+v: want one for upstream-a with the helper's message", ev)
	}
	if len(ev) == 1 && !ev[0].Time.Equal(killed) {
		t.Errorf("sigkill at %s, want the helper's instant %s", ev[0].Time, killed)
	}
	all := f.c.Events()
	if !slices.IsSortedFunc(all, func(a, b cluster.Event) int { return a.Time.Compare(b.Time) }) {
		t.Errorf("the timeline is out of order: %+v", all)
	}
}

func TestKillContainerRemovesAFailedHelper(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kubelet func(*corev1.Pod)
		want    string
	}{
		{"the helper found no process", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodFailed
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "kill", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 1, Message: "no running process of container 3b2499e342a2 under /proc"}}}}
		}, "failed: exit code 1: no running process of container 3b2499e342a2"},
		{"the image cannot be pulled", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "kill", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
				Reason: "ErrImagePull", Message: "pull access denied"}}}}
		}, "cannot start: ErrImagePull: pull access denied"},
		{"the deadline passed", func(p *corev1.Pod) {
			p.Status.Phase, p.Status.Reason, p.Status.Message = corev1.PodFailed, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"
		}, "failed: DeadlineExceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newKillFixture(t)
			f.kubelet = tc.kubelet
			err := f.c.KillContainer(context.Background(), "upstream-a")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "on node node-a") {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
			if got := f.helpers(t); len(got) != 0 {
				t.Errorf("helpers left after a failure: %v", got)
			}
			if ev := f.events(cluster.SIGKILLSent); len(ev) != 0 {
				t.Errorf("sigkill recorded though the kill failed: %+v", ev)
			}
		})
	}
}

func TestKillContainerCancelledRemovesTheHelper(t *testing.T) {
	f := newKillFixture(t) // no kubelet: the helper stays pending
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-f.created
		cancel() // Ctrl-C while the helper is on its way
	}()
	err := f.c.KillContainer(ctx, "upstream-a")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want it cancelled", err)
	}
	if got := f.helpers(t); len(got) != 0 {
		t.Errorf("helpers left after the cancel: %v", got)
	}
}

func TestKillContainerRemovesStaleHelpersOnly(t *testing.T) {
	helper := func(name string, phase corev1.PodPhase, age time.Duration) *corev1.Pod {
		p := KillHelperPod("lab", "img", "node-a", "x", "y", "containerd://"+testCID)
		p.Name, p.CreationTimestamp, p.Status.Phase = name, metav1.NewTime(time.Now().Add(-age)), phase
		return p
	}
	stranger := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "gracelab-kill-lookalike", Namespace: "lab", Labels: map[string]string{"app": "x"}},
		Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}
	f := newKillFixture(t,
		helper("gracelab-kill-done", corev1.PodSucceeded, 10*time.Second), // an earlier run's, ended
		helper("gracelab-kill-old", corev1.PodRunning, 5*time.Minute),     // past its deadline
		helper("gracelab-kill-busy", corev1.PodRunning, 5*time.Second),    // maybe another run's, at work
		stranger)
	f.kubelet = succeeded
	if err := f.c.KillContainer(context.Background(), "upstream-a"); err != nil {
		t.Fatal(err)
	}
	if got := f.helpers(t); !slices.Equal(got, []string{"gracelab-kill-busy"}) {
		t.Errorf("helpers left: %v, want only the young running one", got)
	}
	if _, err := f.cs.CoreV1().Pods("lab").Get(context.Background(), stranger.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("a pod without the helper labels was touched: %v", err)
	}
	w := strings.Join(f.c.Warnings(), "\n")
	if !strings.Contains(w, "removed kill helper pod gracelab-kill-done left by an earlier run (Succeeded)") ||
		!strings.Contains(w, "removed kill helper pod gracelab-kill-old left by an earlier run (Running)") || strings.Contains(w, "busy") {
		t.Errorf("warnings %q: want both stale removals named, the busy one not", w)
	}
}

func TestKillContainerRefusedByPodSecurity(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "gracelab-kill-x",
		errors.New(`violates PodSecurity "baseline:latest": host namespaces (hostPID=true)`))
	f := newKillFixture(t)
	f.cs.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, forbidden })
	for name, err := range map[string]error{
		"KillContainer":   f.c.KillContainer(context.Background(), "upstream-a"),
		"CheckKillHelper": CheckKillHelper(context.Background(), f.cs, "lab", "img"),
	} {
		if err == nil || !strings.Contains(err.Error(), `violates PodSecurity "baseline:latest": host namespaces (hostPID=true)`) ||
			!strings.Contains(err.Error(), "pod-security.kubernetes.io/enforce=privileged") {
			t.Errorf("%s: err = %v, want the admission's reason and what to do", name, err)
		}
	}
}

func TestCheckKillHelperIsADryRun(t *testing.T) {
	f := newKillFixture(t)
	if err := CheckKillHelper(context.Background(), f.cs, "lab", "img"); err != nil {
		t.Fatal(err)
	}
	var dry bool
	for _, a := range f.cs.Actions() {
		if c, ok := a.(k8stesting.CreateActionImpl); ok && a.GetResource().Resource == "pods" {
			dry = slices.Equal(c.CreateOptions.DryRun, []string{metav1.DryRunAll})
		}
	}
	if !dry || len(f.helpers(t)) != 0 {
		t.Errorf("dry run %v, helpers %v: want a dry-run create and nothing stored", dry, f.helpers(t))
	}
}

func TestRemoveKillHelpersAfterAFailedDelete(t *testing.T) {
	f := newKillFixture(t)
	f.kubelet = succeeded
	fail := true
	f.cs.PrependReactor("delete", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if fail {
			fail = false
			return true, nil, apierrors.NewServiceUnavailable("etcd is slow")
		}
		return false, nil, nil
	})
	err := f.c.KillContainer(context.Background(), "upstream-a")
	if err == nil || !strings.Contains(err.Error(), "kubectl -n lab delete pod gracelab-kill-1") {
		t.Fatalf("err = %v, want the failed removal and how to do it by hand", err)
	}
	if got := f.helpers(t); len(got) != 1 {
		t.Fatalf("helpers %v: the fixture's delete should have failed", got)
	}
	if err := f.c.RemoveKillHelpers(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.helpers(t); len(got) != 0 {
		t.Errorf("helpers left after RemoveKillHelpers: %v", got)
	}
}

func TestKillContainerNeedsARunningContainer(t *testing.T) {
	f := newKillFixture(t)
	p, _ := f.cs.CoreV1().Pods("lab").Get(context.Background(), "upstream-a", metav1.GetOptions{})
	p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
	if _, err := f.cs.CoreV1().Pods("lab").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := f.c.KillContainer(context.Background(), "upstream-a")
	if err == nil || !strings.Contains(err.Error(), "container upstream is not running") {
		t.Fatalf("err = %v", err)
	}
	if len(f.created) != 0 {
		t.Error("a helper was created for a container that does not run")
	}
}

func TestKilledAtClampsTheNodesClock(t *testing.T) {
	created := time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)
	seen := created.Add(3 * time.Second)
	msg := "killed pid 9 (x, pid 1 in the container, 1 processes) of container containerd://" + testCID
	for _, tc := range []struct {
		name string
		in   string
		want time.Time
	}{
		{"in the window", msg + " at 2026-12-01T22:00:01.25Z", created.Add(1250 * time.Millisecond)},
		{"node clock behind", msg + " at 2026-12-01T21:59:00Z", created},
		{"node clock ahead", msg + " at 2026-12-01T22:01:00Z", seen},
		{"no instant", msg, seen},
	} {
		got, at := killedAt(tc.in, created, seen)
		if got != msg || !at.Equal(tc.want) {
			t.Errorf("%s: killedAt = %q, %s; want %q, %s", tc.name, got, at, msg, tc.want)
		}
	}
}
