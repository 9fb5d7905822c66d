package experiment

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/kube"
	"github.com/gracelab/gracelab/internal/kube/kubetest"
	"github.com/gracelab/gracelab/internal/load"
	"github.com/gracelab/gracelab/internal/report"
	"github.com/gracelab/gracelab/k8s"
)

// embeddedOnly are the kinds only the embedded cluster can observe (it owns the kubelet and
// the proxy); a real cluster's timeline must never claim them.
var embeddedOnly = []cluster.EventKind{cluster.PreStopStarted, cluster.PreStopFinished, cluster.SIGTERMSent, cluster.SIGKILLSent, cluster.PodNetworkRemoved}

// assertDrillShape is the scenario test both cluster implementations must pass: the drill
// completed with real load, the timeline is in time order and tells the rollout of the
// restarted Deployment (restart, a new pod created and ready, an old pod terminating and
// deleted, endpoints added and removed, rollout complete, in that order where the order is
// certain), and every event but the drill's own comes from the cluster's kind of observer.
func assertDrillShape(t *testing.T, s report.Scenario, source cluster.Source, deployment string) {
	t.Helper()
	if s.Failure != "" {
		t.Fatalf("%s failed: %s", s.Scenario, s.Failure)
	}
	if s.Result == nil || s.Requests == 0 || s.Requests != s.OK+s.Errors {
		t.Fatalf("%s: result %+v, want requests, each with one outcome", s.Scenario, s.Result)
	}
	if s.RestartAt.IsZero() || s.RolloutSeconds <= 0 {
		t.Errorf("%s: restart_at %v, rollout %.3fs: want both", s.Scenario, s.RestartAt, s.RolloutSeconds)
	}
	evs := s.Events
	restart := -1
	for i, e := range evs {
		if i > 0 && e.Time.Before(evs[i-1].Time) {
			t.Errorf("event %d (%s at %v) is before event %d", i, e.Kind, e.Time, i-1)
		}
		if slices.Contains(embeddedOnly, e.Kind) && source != cluster.SourceEmbedded {
			t.Errorf("embedded-only event %s in a %s timeline", e.Kind, source)
		}
		switch {
		case e.Kind == cluster.RestartTriggered:
			if restart >= 0 {
				t.Errorf("a second restart_triggered at %d", i)
			}
			restart = i
			// kube records the restart as the drill's act, localkube as its controller's.
			if (e.Source != cluster.SourceDrill && e.Source != source) || e.Deployment != deployment {
				t.Errorf("restart event %+v, want source drill or %s, deployment %s", e, source, deployment)
			}
		case e.Source != source:
			t.Errorf("event %d %+v has source %q, want %q", i, e, e.Source, source)
		}
	}
	if restart < 0 {
		t.Fatalf("no restart_triggered in %v", eventKinds(evs))
	}
	if evs[restart].Time.Before(s.RestartAt.Add(-time.Second)) {
		t.Errorf("restart event at %v, drill restarted at %v", evs[restart].Time, s.RestartAt)
	}
	// After the restart, per pod of the restarted Deployment: which kinds, in order.
	after := map[string][]cluster.EventKind{}
	complete := false
	for _, e := range evs[restart+1:] {
		if e.Kind == cluster.RolloutComplete && e.Deployment == deployment {
			complete = true
		}
		if e.Pod != "" && strings.HasPrefix(e.Pod, deployment+"-") {
			after[e.Pod] = append(after[e.Pod], e.Kind)
		}
	}
	if !complete {
		t.Errorf("no rollout_complete of %s after the restart: %v", deployment, eventKinds(evs[restart:]))
	}
	var newPods, oldPods int
	for pod, kinds := range after {
		switch {
		case kindsInOrder(kinds, cluster.PodCreated, cluster.PodReady) && slices.Contains(kinds, cluster.EndpointAdded):
			newPods++
		case kindsInOrder(kinds, cluster.PodTerminating, cluster.PodDeleted) && slices.Contains(kinds, cluster.EndpointRemoved):
			oldPods++
		default:
			t.Errorf("pod %s after the restart: %v, want a new pod's or an old pod's story", pod, kinds)
		}
	}
	if newPods == 0 || oldPods == 0 {
		t.Errorf("after the restart %d new and %d old pods of %s told their story, want both: %v", newPods, oldPods, deployment, after)
	}
}

// kindsInOrder reports whether want appears in got in order (other kinds may come between).
func kindsInOrder(got []cluster.EventKind, want ...cluster.EventKind) bool {
	i := 0
	for _, k := range got {
		if i < len(want) && k == want[i] {
			i++
		}
	}
	return i == len(want)
}

// kubeScenario is the project's v2 scenario.
func kubeScenario(t *testing.T) Scenario {
	t.Helper()
	catalog, err := Catalog(k8s.FS, "k8s")
	if err != nil {
		t.Fatal(err)
	}
	scs, err := Select(catalog, []string{"v2"})
	if err != nil {
		t.Fatal(err)
	}
	return scs[0]
}

// kubeFactory makes fake-backed kube.Clusters whose load goes to target, as --target would.
func kubeFactory(cs *fake.Clientset, target string) Factory {
	return func(sc Scenario) (cluster.Cluster, error) {
		c, err := kube.New(cs, kube.Options{
			Manifests: sc.FS, Target: target,
			RolloutTimeout: 20 * time.Second, DeleteTimeout: 10 * time.Second, PollInterval: 10 * time.Millisecond,
		})
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// okServer stands in for the downstream Service: the fake cluster's addresses are never
// dialled, so the load goes to a real server on 127.0.0.1, as a --target would.
func okServer(t *testing.T) (*httptest.Server, func() int) {
	t.Helper()
	var n = make(chan struct{}, 1<<16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case n <- struct{}{}:
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"ok","retries":0}`)
	}))
	t.Cleanup(srv.Close)
	return srv, func() int { return len(n) }
}

// The drill on the fake-backed Kubernetes cluster: the same scenario test as the embedded
// cluster's, with API-sourced events, the target warning in the report, and nothing left on
// the cluster afterwards.
func TestRunOnFakeKubernetes(t *testing.T) {
	t.Parallel() // each drill has its own servers and cluster; they wait, not compute
	cs := kubetest.NewClientset()
	kubetest.Start(t, cs)
	srv, served := okServer(t)
	sc := kubeScenario(t)
	cfg := Config{
		Scenarios: []Scenario{sc},
		Factory:   kubeFactory(cs, srv.URL+"/"),
		Load:      load.Config{VUs: 3, Think: 20 * time.Millisecond, Timeout: 10 * time.Second},
		Duration:  1500 * time.Millisecond, RestartAt: 300 * time.Millisecond, SettleTail: 200 * time.Millisecond,
		UpTimeout: 20 * time.Second, RolloutTimeout: 20 * time.Second, DownTimeout: 20 * time.Second,
		ProgressEvery: 50 * time.Millisecond,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	out, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 {
		t.Fatalf("got %d scenarios, want 1", len(out))
	}
	s := out[0]
	assertDrillShape(t, s, cluster.SourceAPI, DefaultDeployment)
	if s.Errors != 0 || int64(served()) < s.Requests {
		t.Errorf("errors %d, server saw %d of %d requests: the load must have reached the target", s.Errors, served(), s.Requests)
	}
	if s.Config.URL != srv.URL+"/" {
		t.Errorf("load went to %s, want the target %s/", s.Config.URL, srv.URL)
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "matches no address of Service downstream") || !strings.Contains(s.Warnings[0], "port-forward") {
		t.Errorf("warnings %q, want the one saying the target bypasses the Service", s.Warnings)
	}
	for _, e := range s.Events {
		if e.Kind == cluster.RestartTriggered && e.Source != cluster.SourceDrill {
			t.Errorf("restart event %+v: kube records the restart as the drill's", e)
		}
	}
	// The fake cluster cannot see inside pods: no prestop or SIGTERM, but the API's terminating
	// endpoints, which the embedded cluster may report too.
	if !slices.Contains(eventKinds(s.Events), cluster.EndpointTerminating) {
		t.Errorf("no endpoint_terminating from the EndpointSlice watch: %v", eventKinds(s.Events))
	}
	// Down deleted the namespace it created.
	nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=gracelab"})
	if err != nil || len(nss.Items) != 0 {
		t.Errorf("namespaces left after the drill: %v, %v", nss, err)
	}
}

// A rollout that never completes on Kubernetes fails the scenario with the Deployment's
// state, and the namespace is still cleaned up.
func TestRunOnFakeKubernetesStalledRollout(t *testing.T) {
	t.Parallel() // each drill has its own servers and cluster; they wait, not compute
	cs := kubetest.NewClientset()
	kubetest.Start(t, cs).StallRevision("2")
	srv, _ := okServer(t)
	cfg := Config{
		Scenarios: []Scenario{kubeScenario(t)},
		Factory:   kubeFactory(cs, srv.URL+"/"),
		Load:      load.Config{VUs: 2, Think: 20 * time.Millisecond, Timeout: 10 * time.Second},
		Duration:  time.Second, RestartAt: 200 * time.Millisecond,
		UpTimeout: 20 * time.Second, RolloutTimeout: 1500 * time.Millisecond, DownTimeout: 20 * time.Second,
		ProgressEvery: 50 * time.Millisecond,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	out, err := Run(ctx, cfg)
	if err != nil || len(out) != 1 {
		t.Fatalf("Run: %v, %d scenarios", err, len(out))
	}
	s := out[0]
	if !strings.Contains(s.Failure, "the rollout of upstream did not settle within 1.5s") {
		t.Errorf("failure %q, want the rollout deadline", s.Failure)
	}
	if s.Result == nil || s.Requests == 0 {
		t.Errorf("result %+v: the load that ran must still be reported", s.Result)
	}
	nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=gracelab"})
	if err != nil || len(nss.Items) != 0 {
		t.Errorf("namespaces left after the failed drill: %v, %v", nss, err)
	}
}
