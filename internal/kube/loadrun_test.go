package kube

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gracelab/gracelab/internal/kube/kubetest"
	"github.com/gracelab/gracelab/internal/load"
)

// A whole in-cluster load: the Job is created, the start announced ahead, the logs merged;
// Stop suspends the Job (its controller SIGTERMs the pods); a pod whose stream ends without
// a summary died: its open requests are lost and the load is incomplete; the Job is deleted.
func TestClusterLoadPodDiesMidRun(t *testing.T) {
	ctx := testContext(t)
	opts := LoadJobOptions{Namespace: "shop", Name: "gracelab-load-1", Pods: 2,
		Load: load.Config{URL: "http://checkout.shop/", Model: load.Open, Rate: 20, Duration: time.Minute}}
	job, err := LoadJob(opts)
	if err != nil {
		t.Fatal(err)
	}
	dead := corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: "load",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}}
	cs := kubetest.NewClientset(loadPod(job, "load-a", runningStatus()), loadPod(job, "load-b", runningStatus()))
	var suspended []string
	cs.PrependReactor("patch", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
		suspended = append(suspended, string(a.(k8stesting.PatchAction).GetPatch()))
		return false, nil, nil
	})
	cs.PrependReactor("delete", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
		for _, p := range []string{"load-a", "load-b"} {
			_ = cs.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), "shop", p)
		}
		return false, nil, nil
	})
	stopped := make(chan struct{})
	line := func(seq, sec, ok int, open string, summary bool) string {
		s := fmt.Sprintf(`{"v":1,"seq":%d,"time":"2026-12-01T12:00:0%dZ","start":"2026-12-01T12:00:00Z","seconds":[{"second":%d,"requests":%d,"counts":{"ok":%d}}]%s`, seq, sec+1, sec, ok, ok, open)
		if summary {
			s += `,"summary":{"result":{"send_end":"2026-12-01T12:00:02Z","end":"2026-12-01T12:00:02Z"}}`
		}
		return s + "}\n"
	}
	openLog := func(ctx context.Context, pod string) (io.ReadCloser, error) {
		if pod == "load-b" {
			// It dies with 4 requests of second 1 in flight; then its status says so.
			p, _ := cs.CoreV1().Pods("shop").Get(ctx, pod, metav1.GetOptions{})
			p.Status = dead
			if _, err := cs.CoreV1().Pods("shop").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
				return nil, err
			}
			return io.NopCloser(strings.NewReader(line(1, 0, 10, `,"open":{"1":4}`, false))), nil
		}
		<-stopped // load-a streams until the stop
		return io.NopCloser(strings.NewReader(line(1, 0, 10, "", false) + line(2, 1, 10, "", true))), nil
	}
	before := time.Now()
	l, err := StartClusterLoad(ctx, cs, ClusterLoadOptions{Job: opts, StartLead: 2 * time.Second, Poll: 5 * time.Millisecond, openLog: openLog})
	if err != nil {
		t.Fatal(err)
	}
	if l.Start().Before(before.Add(2 * time.Second)) {
		t.Errorf("common start %s is not announced 2s ahead of %s", l.Start(), before)
	}
	if p := l.Progress(); p.Elapsed >= 0 {
		t.Errorf("elapsed %s before the common start, want negative", p.Elapsed)
	}
	for _, name := range []string{"load-a"} {
		p, _ := cs.CoreV1().Pods("shop").Get(ctx, name, metav1.GetOptions{})
		if p.Annotations[startAtAnnotation] != l.Start().UTC().Format(time.RFC3339Nano) {
			t.Errorf("pod %s start annotation %q, want %s", name, p.Annotations[startAtAnnotation], l.Start())
		}
	}
	l.Stop()
	l.Stop() // twice is fine
	close(stopped)
	if len(suspended) != 1 || !strings.Contains(suspended[0], `"suspend":true`) {
		t.Errorf("stop patched the job %q, want one suspend", suspended)
	}
	select {
	case <-l.Done():
	case <-ctx.Done():
		t.Fatal("the load never finished")
	}
	m := l.Merged()
	if !m.Incomplete || m.Result.Requests != 34 || m.Result.ErrorsByKind[load.Lost] != 4 {
		t.Errorf("merged: incomplete %v, %d requests, %d lost; want incomplete, 34 requests, 4 lost (%v)", m.Incomplete, m.Result.Requests, m.Result.ErrorsByKind[load.Lost], m.Problems)
	}
	if err := l.Err(); err != nil {
		t.Errorf("err %v", err)
	}
	if _, err := cs.BatchV1().Jobs("shop").Get(ctx, job.Name, metav1.GetOptions{}); err == nil {
		t.Error("the load job is left after the run")
	}
}

// A pod that cannot start: the error names it, and the Job is deleted before returning.
func TestClusterLoadCannotStartCleansUp(t *testing.T) {
	ctx := testContext(t)
	opts := LoadJobOptions{Namespace: "shop", Name: "gracelab-load-1", Pods: 1,
		Load: load.Config{URL: "http://checkout.shop/", Model: load.Open, Rate: 20, Duration: time.Minute}}
	job, _ := LoadJob(opts)
	pull := corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: "load", Image: DefaultLoadImage,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "not found"}}}}}
	cs := kubetest.NewClientset(loadPod(job, "load-a", pull))
	cs.PrependReactor("delete", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
		_ = cs.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), "shop", "load-a")
		return false, nil, nil
	})
	_, err := StartClusterLoad(ctx, cs, ClusterLoadOptions{Job: opts, Poll: 5 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "load-a cannot get image") {
		t.Fatalf("err %v, want the image problem", err)
	}
	if _, err := cs.BatchV1().Jobs("shop").Get(ctx, job.Name, metav1.GetOptions{}); err == nil {
		t.Error("the job of a load that could not start is left")
	}
}
