package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCheckMain(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(args, Streams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	return code, out.String(), errOut.String()
}

const (
	v1Dir = "../../k8s/v1-no-graceful"
	v2Dir = "../../k8s/v2-graceful"
	v3Dir = "../../k8s/v3-graceful-retry"
)

func TestCheckExitCodes(t *testing.T) {
	v1, _ := os.ReadFile(filepath.Join(v1Dir, "upstream.yaml"))
	notYAML := filepath.Join(t.TempDir(), "broken.yaml")
	os.WriteFile(notYAML, []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n---\nkind: [Service\n"), 0o644)
	for _, tc := range []struct {
		name   string
		stdin  string
		args   []string
		code   int
		out    string // in stdout
		errOut string // in stderr
	}{
		{name: "v1 fails", args: []string{"check", "-f", v1Dir}, code: 1, out: "no-prestop"},
		{name: "v2 passes", args: []string{"check", "-f", v2Dir}, code: 0, out: "0 errors, 0 warnings"},
		{name: "v3 passes", args: []string{"check", "-f", v3Dir}, code: 0},
		{name: "v1 under --fail-on error", args: []string{"check", "-f", v1Dir, "--fail-on", "error"}, code: 0},
		{name: "v2 under --fail-on info", args: []string{"check", "-f", v2Dir, "--fail-on", "info"}, code: 1},
		{name: "v1 ignoring its rules", args: []string{"check", "-f", v1Dir, "--ignore", "no-prestop,no-readiness"}, code: 0, out: "4 suppressed (no-prestop 2, no-readiness 2)"},
		{name: "stdin", stdin: string(v1), args: []string{"check", "-f", "-"}, code: 1, out: "<stdin>:3  Deployment upstream"},
		{name: "not YAML", args: []string{"check", "-f", notYAML}, code: 2, errOut: "broken.yaml: document 2: line 6: "},
		{name: "missing file", args: []string{"check", "-f", "/nonexistent/x.yaml"}, code: 2, errOut: "/nonexistent/x.yaml"},
		{name: "no input", args: []string{"check"}, code: 2, errOut: "-f FILE|DIR|- or"},
		{name: "bad output", args: []string{"check", "-f", v2Dir, "-o", "xml"}, code: 2, errOut: `-o "xml"`},
		{name: "bad severity", args: []string{"check", "-f", v2Dir, "--fail-on", "fatal"}, code: 2, errOut: "--fail-on"},
		{name: "unknown rule", args: []string{"check", "-f", v2Dir, "--ignore", "no-such-rule"}, code: 2, errOut: "no-such-rule"},
		{name: "bad kube version", args: []string{"check", "-f", v2Dir, "--kube-version", "2.0"}, code: 2, errOut: "--kube-version"},
		{name: "namespace without --cluster", args: []string{"check", "-f", v2Dir, "--namespace", "x"}, code: 2, errOut: "--cluster"},
		{name: "both -f and --cluster", args: []string{"check", "-f", v2Dir, "--cluster"}, code: 2, errOut: "one of the two"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCheckMain(t, tc.stdin, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.errOut) {
				t.Errorf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			if code == 2 && out != "" {
				t.Errorf("bad input printed findings:\n%s", out)
			}
			if code == 2 && strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("bad input: want one line, got:\n%s", errOut)
			}
		})
	}
}

func TestCheckOutputs(t *testing.T) {
	code, out, _ := runCheckMain(t, "", "check", "-f", v1Dir, "-o", "json")
	var res struct {
		Findings []struct {
			Rule   string
			Object struct {
				File string
				Line int
			}
		}
		Summary map[string]int
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 {
		t.Fatalf("-o json: exit %d, %v:\n%s", code, err, out)
	}
	if res.Summary["warning"] < 4 || res.Findings[0].Object.Line < 1 || !strings.HasSuffix(res.Findings[0].Object.File, ".yaml") {
		t.Errorf("-o json: %+v", res)
	}
	code, out, _ = runCheckMain(t, "", "check", "-f", v1Dir, "-o", "sarif")
	var log struct {
		Version string
		Runs    []struct{ Results []json.RawMessage }
	}
	if err := json.Unmarshal([]byte(out), &log); err != nil || code != 1 || log.Version != "2.1.0" || len(log.Runs[0].Results) != len(res.Findings) {
		t.Errorf("-o sarif: exit %d, %v: %s", code, err, out)
	}
	// Not a terminal: no colour codes.
	_, out, _ = runCheckMain(t, "", "check", "-f", v1Dir)
	if strings.Contains(out, "\x1b[") {
		t.Error("colour codes in output that is not a terminal")
	}
}

// TestCheckClusterReadsOnly runs `check --cluster` against a fake API server on loopback: it
// lists the namespace's objects with GETs only, reads the server version, and checks them.
func TestCheckClusterReadsOnly(t *testing.T) {
	deployment := map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "shop"},
		"spec": map[string]any{
			"replicas": 2,
			"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
				"spec": map[string]any{"containers": []any{map[string]any{
					"name": "web", "image": "example/web:1",
					"lifecycle":      map[string]any{"preStop": map[string]any{"sleep": map[string]any{"seconds": 5}}},
					"readinessProbe": map[string]any{"httpGet": map[string]any{"path": "/ready", "port": 8080}},
				}}},
			},
		},
	}
	svc := map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": "web", "namespace": "shop"},
		"spec":     map[string]any{"selector": map[string]any{"app": "web"}, "ports": []any{map[string]any{"port": 80}}},
	}
	list := func(apiVersion, kind string, items ...any) map[string]any {
		return map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{}, "items": append([]any{}, items...)}
	}
	s := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/version":
			writeJSON(w, 200, map[string]any{"major": "1", "minor": "29", "gitVersion": "v1.29.9"})
		case strings.HasSuffix(r.URL.Path, "/deployments"):
			writeJSON(w, 200, list("apps/v1", "DeploymentList", deployment))
		case strings.HasSuffix(r.URL.Path, "/services"):
			writeJSON(w, 200, list("v1", "ServiceList", svc))
		case strings.HasSuffix(r.URL.Path, "/statefulsets"):
			writeJSON(w, 200, list("apps/v1", "StatefulSetList"))
		case strings.HasSuffix(r.URL.Path, "/daemonsets"):
			writeJSON(w, 200, list("apps/v1", "DaemonSetList"))
		case strings.HasSuffix(r.URL.Path, "/poddisruptionbudgets"):
			writeJSON(w, 200, list("policy/v1", "PodDisruptionBudgetList"))
		case strings.HasSuffix(r.URL.Path, "/ingresses"):
			writeJSON(w, 200, list("networking.k8s.io/v1", "IngressList"))
		default:
			writeJSON(w, 404, status(404, "NotFound", r.URL.Path))
		}
	})
	kc := writeKubeconfig(t, s.URL, "lab", "lab")
	// 1.29 has no native sleep by default: the server's version makes the hook an error.
	code, out, errOut := runCheckMain(t, "", "check", "--cluster", "--kubeconfig", kc, "--namespace", "shop")
	if code != 1 || !strings.Contains(out, "sleep-unsupported") || !strings.Contains(out, "Deployment shop/web") {
		t.Errorf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, r := range s.seen() {
		if r.method != http.MethodGet {
			t.Errorf("--cluster sent %s %s", r.method, r.path)
		}
		if strings.Contains(r.path, "/namespaces/") && !strings.Contains(r.path, "/namespaces/shop/") {
			t.Errorf("read outside namespace shop: %s", r.path)
		}
	}
	if len(s.seen()) < 7 {
		t.Errorf("want 6 lists and the version, saw %d requests", len(s.seen()))
	}
	// --kube-version wins over the server's.
	code, out, _ = runCheckMain(t, "", "check", "--cluster", "--kubeconfig", kc, "--namespace", "shop", "--kube-version", "1.34")
	if code != 0 || strings.Contains(out, "sleep-unsupported") {
		t.Errorf("--kube-version 1.34: exit %d\n%s", code, out)
	}
}
