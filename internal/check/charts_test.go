package check

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gracelab/gracelab/internal/manifest"
)

// readFiles reads manifests as `gracelab check -f` does: leniently, unknown fields as warnings.
func readFiles(t testing.TB, paths ...string) []Object {
	t.Helper()
	files, err := manifest.Collect(paths, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := manifest.Decode(files, manifest.Options{Lenient: true})
	if err != nil {
		t.Fatal(err)
	}
	return FromDocuments(docs)
}

// TestCharts checks manifests in the style of common Helm charts' output and compares every
// finding (rule, object, container) with what a reviewer would say of them.
func TestCharts(t *testing.T) {
	want := map[string][]string{
		// helm create's default chart: no preStop, liveness identical to readiness, 1 replica.
		"helm-create.yaml": {
			"no-prestop Deployment release-name-mychart mychart",
			"liveness-as-readiness Deployment release-name-mychart mychart",
			"single-replica Deployment release-name-mychart ",
		},
		// ingress-nginx: its /wait-shutdown hook has no visible length; a PDB of minAvailable 1
		// over one replica blocks every drain.
		"ingress-nginx.yaml": {
			"prestop-unknown Deployment ingress-nginx/ingress-nginx-controller controller",
			"single-replica Deployment ingress-nginx/ingress-nginx-controller ",
			"pdb-blocks-drain PodDisruptionBudget ingress-nginx/ingress-nginx-controller ",
		},
		// A Redis StatefulSet in a v1 List: one replica (deleted before its replacement starts),
		// the exporter's multi-line script without exec, the exporter beside Redis. The headless
		// Service's publishNotReadyAddresses is for peer discovery: no finding.
		"redis.yaml": {
			"no-prestop StatefulSet redis-master redis",
			"single-replica StatefulSet redis-master ",
			"shell-pid1 StatefulSet redis-master metrics",
			"sidecar-not-native StatefulSet redis-master metrics",
		},
		// Recreate behind an ALB whose deregistration (30 s) outlasts the 10 s preStop, migrate &&
		// gunicorn without exec, a Cloud SQL proxy as a regular container.
		"webapp.yaml": {
			"rollout-no-capacity Deployment shop/webapp ",
			"prestop-short Deployment shop/webapp web",
			"shell-pid1 Deployment shop/webapp web",
			"sidecar-not-native Deployment shop/webapp cloud-sql-proxy",
		},
		// distroless with `sleep` in an exec hook, a grace period shorter than 5 + 10 s, and a
		// liveness probe that restarts on one slow answer.
		"go-api.yaml": {
			"prestop-no-shell Deployment orders orders",
			"grace-short Deployment orders orders",
			"liveness-restarts-busy Deployment orders orders",
		},
		// A DaemonSet behind a Service; a field this Kubernetes does not know.
		"node-exporter.yaml": {
			"unknown-field DaemonSet monitoring/node-exporter ",
			"no-prestop DaemonSet monitoring/node-exporter node-exporter",
			"liveness-as-readiness DaemonSet monitoring/node-exporter node-exporter",
		},
	}
	entries, err := os.ReadDir("testdata/charts")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want) {
		t.Fatalf("%d files in testdata/charts, %d expected", len(entries), len(want))
	}
	for _, e := range entries {
		t.Run(e.Name(), func(t *testing.T) {
			path := filepath.Join("testdata/charts", e.Name())
			res := Run(readFiles(t, path), Options{})
			var got []string
			for _, f := range res.Findings {
				got = append(got, f.Rule+" "+f.Object.String()+" "+f.Container)
				if f.Object.File != path || f.Object.Line < 1 {
					t.Errorf("%s: position %s:%d, want %s and a line", f.Rule, f.Object.File, f.Object.Line, path)
				}
			}
			slices.Sort(got)
			exp := slices.Clone(want[e.Name()])
			slices.Sort(exp)
			if !slices.Equal(got, exp) {
				t.Errorf("findings:\n  got  %q\n  want %q", got, exp)
			}
		})
	}
}

// BenchmarkCheckFiles1000Objects reads and checks one stream of 1,002 objects (334 copies of
// go-api.yaml, each in its own namespace): decoding included, as `gracelab check -f` runs.
func BenchmarkCheckFiles1000Objects(b *testing.B) {
	raw, err := os.ReadFile("testdata/charts/go-api.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var data []byte
	for i := range 334 {
		doc := strings.ReplaceAll(string(raw), "\nmetadata:\n", fmt.Sprintf("\nmetadata:\n  namespace: ns-%d\n", i))
		data = append(data, "\n---\n"+doc...)
	}
	path := filepath.Join(b.TempDir(), "all.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	if n := len(readFiles(b, path)); n != 1002 {
		b.Fatalf("%d objects", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		files, err := manifest.Collect([]string{path}, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		docs, err := manifest.Decode(files, manifest.Options{Lenient: true})
		if err != nil {
			b.Fatal(err)
		}
		if res := Run(FromDocuments(docs), Options{}); res.Workloads != 334 {
			b.Fatal(res.Workloads)
		}
	}
}
