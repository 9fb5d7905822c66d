package cli

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/report"
)

// These tests run the commands in-process against a kubeconfig that points at a small HTTP
// API server on 127.0.0.1, so client-go's whole stack (kubeconfig, REST, HTTP) is real.

const restartedAt = "kubectl.kubernetes.io/restartedAt"

func deploymentJSON(ns, name string) map[string]any {
	return map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name, "namespace": ns, "generation": 1, "uid": "d-1"},
		"spec": map[string]any{
			"replicas": 2,
			"selector": map[string]any{"matchLabels": map[string]string{"app": name}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]string{"app": name}},
				"spec":     map[string]any{"containers": []map[string]any{{"name": name, "image": name + ":dev"}}},
			},
		},
	}
}

// restartAPI answers for deployment upstream in the namespaces holders, and lists the
// gracelab-labelled namespaces given.
func restartAPI(t *testing.T, holders []string, labelled ...string) *apiServer {
	return newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/namespaces":
			if r.URL.Query().Get("labelSelector") != "app.kubernetes.io/managed-by=gracelab" {
				writeJSON(w, http.StatusBadRequest, status(400, "BadRequest", "want the gracelab label selector"))
				return
			}
			var items []map[string]any
			for _, n := range labelled {
				items = append(items, map[string]any{"metadata": map[string]any{"name": n,
					"labels": map[string]string{"app.kubernetes.io/managed-by": "gracelab"}}})
			}
			writeJSON(w, http.StatusOK, map[string]any{"apiVersion": "v1", "kind": "NamespaceList", "metadata": map[string]any{}, "items": items})
		case r.Method == http.MethodGet || r.Method == http.MethodPatch:
			for _, ns := range holders {
				if r.URL.Path == "/apis/apps/v1/namespaces/"+ns+"/deployments/upstream" {
					writeJSON(w, http.StatusOK, deploymentJSON(ns, "upstream"))
					return
				}
			}
			writeJSON(w, http.StatusNotFound, status(404, "NotFound", "not found: "+r.URL.Path))
		default:
			writeJSON(w, http.StatusNotFound, status(404, "NotFound", "not found: "+r.URL.Path))
		}
	})
}

// checkRestartPatch asserts that reqs end with kubectl's restart: GET the Deployment, then a
// strategic merge patch that sets only the restartedAt template annotation.
func checkRestartPatch(t *testing.T, reqs []apiRequest, ns string) {
	t.Helper()
	path := "/apis/apps/v1/namespaces/" + ns + "/deployments/upstream"
	n := len(reqs)
	if n < 2 || reqs[n-2].method != http.MethodGet || reqs[n-2].path != path || reqs[n-1].method != http.MethodPatch || reqs[n-1].path != path {
		t.Fatalf("requests %+v, want GET then PATCH of %s", reqs, path)
	}
	p := reqs[n-1]
	if p.contentType != "application/strategic-merge-patch+json" {
		t.Errorf("patch content type %q, want a strategic merge patch", p.contentType)
	}
	var body struct {
		Spec struct {
			Template struct {
				Metadata struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"metadata"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(p.body), &body); err != nil {
		t.Fatalf("patch body %s: %v", p.body, err)
	}
	ann := body.Spec.Template.Metadata.Annotations
	stamp, err := time.Parse(time.RFC3339, ann[restartedAt])
	if len(ann) != 1 || err != nil || time.Since(stamp) > time.Minute || time.Until(stamp) > time.Minute {
		t.Errorf("patch body %s: want only %s set to now (RFC 3339)", p.body, restartedAt)
	}
	want := `{"spec":{"template":{"metadata":{"annotations":{"` + restartedAt + `":"` + ann[restartedAt] + `"}}}}}`
	if p.body != want {
		t.Errorf("patch body %s, want %s", p.body, want)
	}
}

func TestIntegrationRestartClusterSendsTheKubectlPatch(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	t.Setenv("GRACELAB_RUNTIME_DIR", t.TempDir()) // never the embedded cluster's control endpoint

	t.Run("namespace given", func(t *testing.T) {
		srv := restartAPI(t, []string{"work"})
		kc := writeKubeconfig(t, srv.URL, "lab", "lab")
		code, stdout, stderr := runMain("restart", "deployment", "upstream", "--cluster", "--kubeconfig", kc, "--namespace", "work")
		if code != ExitOK || stderr != "" || stdout != "deployment upstream restarted in namespace work\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		reqs := srv.seen()
		if len(reqs) != 2 {
			t.Errorf("requests %+v, want only GET and PATCH", reqs)
		}
		checkRestartPatch(t, reqs, "work")
	})

	t.Run("namespace found by label", func(t *testing.T) {
		srv := restartAPI(t, []string{"gracelab-x7k2p", "work"}, "gracelab-x7k2p", "gracelab-other")
		kc := writeKubeconfig(t, srv.URL, "", "lab", "other")
		code, stdout, stderr := runMain("restart", "deploy", "upstream", "--cluster", "--kubeconfig", kc, "--context", "other")
		if code != ExitOK || stderr != "" || stdout != "deployment upstream restarted in namespace gracelab-x7k2p\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		checkRestartPatch(t, srv.seen(), "gracelab-x7k2p")
	})

	t.Run("KUBECONFIG", func(t *testing.T) {
		srv := restartAPI(t, []string{"work"})
		t.Setenv("KUBECONFIG", writeKubeconfig(t, srv.URL, "lab", "lab"))
		code, stdout, stderr := runMain("restart", "deployment", "upstream", "--cluster", "--namespace", "work")
		if code != ExitOK || stdout != "deployment upstream restarted in namespace work\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		checkRestartPatch(t, srv.seen(), "work")
	})

	for _, tc := range []struct {
		name     string
		holders  []string
		labelled []string
		args     []string
		want     string
	}{
		{"unknown deployment", []string{"work"}, nil, []string{"nope", "--namespace", "work"}, `deployment "nope" not found in namespace "work"; check --namespace`},
		{"no gracelab namespace", []string{"work"}, []string{"gracelab-other"}, []string{"upstream"}, `no gracelab namespace holds deployment "upstream"; pass --namespace`},
		{"two gracelab namespaces", []string{"gracelab-a", "gracelab-b"}, []string{"gracelab-a", "gracelab-b"}, []string{"upstream"}, "exists in several gracelab namespaces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := restartAPI(t, tc.holders, tc.labelled...)
			kc := writeKubeconfig(t, srv.URL, "lab", "lab")
			args := append([]string{"restart", "deployment"}, tc.args...)
			code, stdout, stderr := runMain(append(args, "--cluster", "--kubeconfig", kc)...)
			if code != ExitFailed || stdout != "" || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and one line containing %q", code, stdout, stderr, tc.want)
			}
			for _, r := range srv.seen() {
				if r.method == http.MethodPatch {
					t.Errorf("patched although the command failed: %+v", r)
				}
			}
		})
	}
}

// demo --cluster drives the kube back end: an RBAC denial fails the scenario with a message
// that says what is missing, the report says it ran on Kubernetes with the given target, and
// nothing but the namespace creation was attempted.
func TestIntegrationDemoClusterForbidden(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, status(403, "Forbidden",
			`namespaces is forbidden: User "dev" cannot create resource "namespaces" in API group "" at the cluster scope`))
	})
	kc := writeKubeconfig(t, srv.URL, "lab", "lab")
	out := filepath.Join(t.TempDir(), "r")
	code, stdout, stderr := runMain("demo", "--cluster", "--kubeconfig", kc, "--scenarios", "v1", "--quiet",
		"--target", "http://localhost:8000/", "--out", out)
	if code != ExitFailed || !strings.Contains(stderr, "the run failed for v1") {
		t.Fatalf("exit %d, stderr %q; want exit 1, the run failed for v1", code, stderr)
	}
	// A failed scenario's reason comes first, on stderr (no table when nothing was measured).
	for _, want := range []string{"v1 failed: the cluster did not come up", "permission denied", `User "dev" cannot create resource "namespaces"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s\nstdout:\n%s", want, stderr, stdout)
		}
	}
	if !strings.Contains(stderr, "Running on Kubernetes, context lab") {
		t.Errorf("stderr %q does not name the context", stderr)
	}
	reqs := srv.seen()
	if len(reqs) != 1 || reqs[0].method != http.MethodPost || reqs[0].path != "/api/v1/namespaces" {
		t.Errorf("requests %+v, want only the namespace creation", reqs)
	}
	rep, err := report.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Cluster != "kubernetes (lab)" || rep.Settings.Target != "http://localhost:8000/" || rep.Settings.EndpointLag != 0 {
		t.Errorf("report cluster %q, target %q, endpoint lag %v", rep.Cluster, rep.Settings.Target, rep.Settings.EndpointLag)
	}
	if len(rep.Scenarios) != 1 || !strings.Contains(rep.Scenarios[0].Failure, "permission denied") {
		t.Errorf("report scenarios %+v, want v1 failed with permission denied", rep.Scenarios)
	}
	if _, err := os.Stat(filepath.Join(out, "logs", "v1", "cluster.log")); err != nil {
		t.Errorf("no cluster log: %v", err)
	}
}
