package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/kube/kubetest"
)

// apiServer is kubetest.APIServer with the handler and request shape these tests use.
type apiServer struct{ *kubetest.APIServer }

type apiRequest struct {
	method, path, query, contentType, body string
}

func newAPIServer(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) *apiServer {
	t.Helper()
	return &apiServer{kubetest.NewAPIServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) { handle(w, r) })}
}

func (s *apiServer) seen() []apiRequest {
	var out []apiRequest
	for _, r := range s.Seen() {
		out = append(out, apiRequest{r.Method, r.Path, r.Query, r.ContentType, r.Body})
	}
	return out
}

// writeJSON answers with an API object or Status.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// status is a metav1.Status as the API server sends it.
func status(code int, reason, message string) map[string]any {
	return map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message}
}

var writeKubeconfig = kubetest.WriteKubeconfig

// Bad cluster flags and unusable kubeconfigs are usage errors: exit 2, one line, and the API
// server is never contacted.
func TestClusterFlagsBadInput(t *testing.T) {
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, status(403, "Forbidden", "no"))
	})
	kc := writeKubeconfig(t, srv.URL, "lab", "lab")
	noCurrent := writeKubeconfig(t, srv.URL, "", "lab", "other")
	// The default kubeconfig is this test's, never the user's.
	t.Setenv("KUBECONFIG", kc)
	out := filepath.Join(t.TempDir(), "r")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"demo", "--kubeconfig", kc}, "--kubeconfig works only with --cluster"},
		{[]string{"demo", "--context", "lab"}, "--context works only with --cluster"},
		{[]string{"demo", "--namespace", "work"}, "--namespace works only with --cluster"},
		{[]string{"demo", "--keep"}, "--keep works only with --cluster"},
		{[]string{"demo", "--target", "http://localhost:8000/"}, "--target works only with --cluster"},
		{[]string{"demo", "--image-upstream", "u:1"}, "--image-upstream works only with --cluster"},
		{[]string{"demo", "--image-downstream", "d:1"}, "--image-downstream works only with --cluster"},
		{[]string{"demo", "--cluster", "--port", "8080"}, "--port is for the embedded cluster"},
		{[]string{"demo", "--cluster", "--endpoint-lag", "2s"}, "--endpoint-lag is for the embedded cluster"},
		{[]string{"demo", "--cluster", "--image-upstream", ""}, "--image-upstream is empty"},
		{[]string{"demo", "--cluster", "--namespace", " "}, "--namespace is empty"},
		{[]string{"demo", "--cluster", "--target", "ftp://host/"}, `target "ftp://host/" must start with http:// or https://`},
		{[]string{"demo", "--cluster", "--target", "http://:8000/"}, "has no host"},
		{[]string{"demo", "--cluster", "--duration", "0s"}, "--duration must be positive"},
		{[]string{"demo", "--cluster", "--kubeconfig", "/nonexistent/kubeconfig"}, "pass an existing file with --kubeconfig"},
		{[]string{"demo", "--cluster", "--context", "nope"}, `kubeconfig context "nope" not found`},
		{[]string{"demo", "--cluster", "--kubeconfig", noCurrent}, "has no current context; pass --context (available: lab, other)"},
		{[]string{"restart", "deployment", "upstream", "--namespace", "work"}, "--namespace works only with --cluster"},
		{[]string{"restart", "deployment", "upstream", "--context", "lab"}, "--context works only with --cluster"},
		{[]string{"restart", "deployment", "upstream", "--cluster", "--context", "nope"}, `kubeconfig context "nope" not found`},
		{[]string{"restart", "deployment", "upstream", "--cluster", "--kubeconfig", "/nonexistent/kubeconfig"}, "pass an existing file with --kubeconfig"},
		{[]string{"restart", "deployment", "upstream", "--cluster", "--namespace", ""}, "--namespace is empty"},
	}
	for _, tc := range cases {
		args := tc.args
		if args[0] == "demo" {
			args = append(append([]string{}, args...), "--quiet", "--out", out)
		}
		code, stdout, stderr := runMain(args...)
		if code != ExitBadArgs || stdout != "" || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and one line containing %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
	if reqs := srv.seen(); len(reqs) != 0 {
		t.Errorf("bad input contacted the API server: %+v", reqs)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("bad input created the report directory")
	}
}

// --cluster with valid flags builds the plan without contacting the cluster: the context is
// named, the timeouts suit a real cluster, the port is not checked, images are overridden.
func TestDemoClusterPlan(t *testing.T) {
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, status(403, "Forbidden", "no"))
	})
	kc := writeKubeconfig(t, srv.URL, "lab", "lab", "other")
	o := &drillOptions{}
	cmd := newDemoCommandFor(o, Streams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard})
	err := cmd.ParseFlags([]string{"--cluster", "--kubeconfig", kc, "--context", "other", "--namespace", "work", "--keep",
		"--target", "http://localhost:8000/", "--image-upstream", "reg/up:1", "--scenarios", "v2,v3",
		"--out", filepath.Join(t.TempDir(), "r")})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := o.plan(cmd, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kp := plan.kube
	if kp == nil || kp.context != "other" || kp.client == nil {
		t.Fatalf("kube plan %+v, want context other and a client", kp)
	}
	if kp.opts.Namespace != "work" || !kp.opts.Keep || kp.opts.Target != "http://localhost:8000/" ||
		len(kp.opts.Images) != 1 || kp.opts.Images["upstream"] != "reg/up:1" {
		t.Errorf("kube options %+v", kp.opts)
	}
	if plan.exp.UpTimeout < 3*time.Minute || plan.exp.DownTimeout < 3*time.Minute {
		t.Errorf("up %s, down %s: a real cluster needs minutes", plan.exp.UpTimeout, plan.exp.DownTimeout)
	}
	if plan.settings.Target != "http://localhost:8000/" || plan.settings.EndpointLag != 0 {
		t.Errorf("settings target %q, endpoint lag %v", plan.settings.Target, plan.settings.EndpointLag)
	}
	if reqs := srv.seen(); len(reqs) != 0 {
		t.Errorf("planning contacted the API server: %+v", reqs)
	}
}
