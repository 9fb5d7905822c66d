package experiment

import (
	"context"
	"encoding/json"
	"maps"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/kube/kubetest"
	"github.com/gracelab/gracelab/internal/load"
	"github.com/gracelab/gracelab/internal/localkube"
	"github.com/gracelab/gracelab/internal/report"
)

// The same scenario (v2) through the same drill on both implementations of cluster.Cluster:
// the embedded cluster running the real gracelab binary, and the Kubernetes back end on the
// fake clientset. Both pass the same scenario test, and their reports have the same shape:
// the same JSON fields and the same kinds of events for the rollout, each from its own
// observer.
func TestIntegrationSameScenarioOnBothClusters(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	if runtime.GOOS == "windows" {
		t.Skip("the embedded cluster runs pods as local processes on Unix only")
	}
	bin := filepath.Join(t.TempDir(), "gracelab")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/gracelab/gracelab/cmd/gracelab").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sc := kubeScenario(t)
	base := Config{
		Scenarios: []Scenario{sc},
		Load:      load.Config{VUs: 4, Think: 50 * time.Millisecond, Timeout: 10 * time.Second},
		Duration:  2 * time.Second, RestartAt: 500 * time.Millisecond, SettleTail: 500 * time.Millisecond,
		UpTimeout: time.Minute, RolloutTimeout: time.Minute, DownTimeout: time.Minute,
		ProgressEvery: 100 * time.Millisecond,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	embedded := base
	embedded.Factory = func(sc Scenario) (cluster.Cluster, error) {
		c, err := localkube.New(localkube.Options{Manifests: sc.FS, Executable: bin, EndpointLag: 200 * time.Millisecond})
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	out, err := Run(ctx, embedded)
	if err != nil || len(out) != 1 {
		t.Fatalf("embedded: %v, %d scenarios", err, len(out))
	}
	emb := out[0]
	assertDrillShape(t, emb, cluster.SourceEmbedded, DefaultDeployment)
	if emb.Errors != 0 {
		t.Errorf("embedded v2 lost %d of %d requests: %v", emb.Errors, emb.Requests, emb.ErrorsByKind)
	}

	cs := kubetest.NewClientset()
	kubetest.Start(t, cs)
	srv, _ := okServer(t)
	onKube := base
	onKube.Factory = kubeFactory(cs, srv.URL+"/")
	if out, err = Run(ctx, onKube); err != nil || len(out) != 1 {
		t.Fatalf("kube: %v, %d scenarios", err, len(out))
	}
	kub := out[0]
	assertDrillShape(t, kub, cluster.SourceAPI, DefaultDeployment)

	if a, b := jsonKeys(t, emb), jsonKeys(t, kub); !slices.Equal(a, b) {
		// Fields that may differ: warnings (only the fake run's target bypasses a Service) and
		// how the embedded cluster ran its pods (sandbox, sandbox_fallback), which Kubernetes
		// leaves to its runtime.
		onlyOne := func(k string) bool { return k == "warnings" || k == "sandbox" || k == "sandbox_fallback" }
		a = slices.DeleteFunc(a, onlyOne)
		b = slices.DeleteFunc(b, onlyOne)
		if !slices.Equal(a, b) {
			t.Errorf("report fields differ:\n embedded %v\n kube     %v", a, b)
		}
	}
	// The kinds both observers can see appear in both timelines.
	shared := []cluster.EventKind{cluster.RestartTriggered, cluster.RolloutComplete, cluster.PodCreated, cluster.PodReady,
		cluster.PodTerminating, cluster.PodDeleted, cluster.EndpointAdded, cluster.EndpointRemoved}
	for _, k := range shared {
		if !slices.Contains(eventKinds(emb.Events), k) || !slices.Contains(eventKinds(kub.Events), k) {
			t.Errorf("%s: in embedded %v, in kube %v; want in both", k,
				slices.Contains(eventKinds(emb.Events), k), slices.Contains(eventKinds(kub.Events), k))
		}
	}
	// What only the embedded cluster sees, it does report for v2 (preStop, SIGTERM).
	for _, k := range []cluster.EventKind{cluster.PreStopStarted, cluster.SIGTERMSent} {
		if !slices.Contains(eventKinds(emb.Events), k) {
			t.Errorf("embedded timeline lacks %s: %v", k, eventKinds(emb.Events))
		}
	}
}

// jsonKeys are the top-level fields of a scenario in report.json.
func jsonKeys(t *testing.T, s report.Scenario) []string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(maps.Keys(m))
}
