package cli

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/gracelab/gracelab/internal/experiment"
	"github.com/gracelab/gracelab/internal/load"
)

// drill --cluster's bad input is one line, exit 2, before the API server is contacted.
func TestDrillClusterBadInput(t *testing.T) {
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, status(403, "Forbidden", "no"))
	})
	kc := writeKubeconfig(t, srv.URL, "lab", "lab")
	t.Setenv("KUBECONFIG", kc)
	out := filepath.Join(t.TempDir(), "r")
	target := "--target=http://checkout.shop:8080/"
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"deployment/checkout", target}, "add --cluster"},
		{[]string{"-f", "x.yaml", "--run", "a=b", target, "-n", "shop"}, "--namespace works only with --cluster"},
		{[]string{"-f", "x.yaml", "--run", "a=b", target, "--load-pods", "2"}, "--load-pods works only with --cluster"},
		{[]string{"--cluster", "deployment/checkout", target, "--run", "acme/api=./api"}, "--run is not for --cluster"},
		{[]string{"--cluster", "deployment/checkout", target, "--path", "/a=./a"}, "--path is not for --cluster"},
		{[]string{"--cluster", target}, "name the Deployment to drill"},
		{[]string{"--cluster", "-f", "../../k8s/v1-no-graceful", "--target", "http://downstream.elsewhere:8000/", "-n", "dcl-x"}, "names namespace elsewhere, but -f deploys into namespace dcl-x"},
		{[]string{"--cluster", "-f", "../../k8s/v1-no-graceful", "--target", "http://nosuch:8000/"}, `no Service "nosuch" in the manifests`},
		{[]string{"--cluster", "-f", "../../k8s/v1-no-graceful", "--target", "http://127.0.0.1:8000/"}, "name the Service by its cluster DNS name"},
		{[]string{"--cluster", "checkout", target, "--body", "@/nonexistent/body"}, "--body: body @/nonexistent/body"},
		{[]string{"--cluster", "statefulset/db", target}, "not a Deployment"},
		{[]string{"--cluster", "deployment/checkout"}, "--target is required"},
		{[]string{"--cluster", "checkout", "--target", "ftp://x/"}, "want an http URL"},
		{[]string{"--cluster", "checkout", target, "--load-from", "moon"}, "--load-from \"moon\""},
		{[]string{"--cluster", "checkout", target, "--load-pods", "0"}, "--load-pods 0 is out of range"},
		{[]string{"--cluster", "checkout", target, "--load-from", "here", "--load-pods", "2"}, "--load-pods is for load pods"},
		{[]string{"--cluster", "checkout", target, "-H", "X-A"}, "want 'Key: Value'"},
		{[]string{"--cluster", "checkout", "-f", "x.yaml", target}, "with -f the Deployment comes from the manifests"},
		{[]string{"--cluster", "-f", "testdata/none.yaml", target}, "none.yaml"},
		{[]string{"--cluster", "checkout", target, "--deployment", "api"}, "--deployment is for -f"},
		{[]string{"--cluster", "checkout", target, "-n", ""}, "--namespace is empty"},
		{[]string{"--cluster", "checkout", target, "--vus", "3", "--load-pods", "2"}, "do not split evenly"},
		{[]string{"--cluster", "checkout", target, "--context", "nope"}, `kubeconfig context "nope" not found`},
		{[]string{"--cluster", "checkout", target, "--duration", "0s"}, "--duration must be positive"},
	}
	for _, tc := range cases {
		code, stdout, stderr := runMain(append(append([]string{"drill"}, tc.args...), "--quiet", "--out", out)...)
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

// --dry-run reads the Deployment and its Services, prints the plan with the context's
// namespace (as kubectl), and changes nothing.
func TestDrillClusterDryRun(t *testing.T) {
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/apis/apps/v1/namespaces/shop/deployments/checkout":
			writeJSON(w, 200, checkoutDeployment(3))
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/namespaces/shop/services":
			writeJSON(w, 200, map[string]any{"apiVersion": "v1", "kind": "ServiceList", "items": []any{
				map[string]any{"metadata": map[string]any{"name": "checkout", "namespace": "shop"}, "spec": map[string]any{"selector": map[string]any{"app": "checkout"}}},
				map[string]any{"metadata": map[string]any{"name": "other", "namespace": "shop"}, "spec": map[string]any{"selector": map[string]any{"app": "other"}}},
			}})
		default:
			writeJSON(w, http.StatusNotFound, status(404, "NotFound", "no"))
		}
	})
	kc := kubeconfigWithNamespace(t, writeKubeconfig(t, srv.URL, "lab", "lab"), "shop")
	code, stdout, stderr := runMain("drill", "--cluster", "--kubeconfig", kc, "deployment/checkout", "--target", "http://checkout.shop:8080/",
		"--load-pods", "3", "--rate", "600", "--dry-run", "--quiet", "--out", filepath.Join(t.TempDir(), "r"))
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	for _, want := range []string{"deployment/checkout in namespace shop (3 replicas, 3 available; services: checkout)",
		"create   job/gracelab-load-checkout-", "3 load pods", "restart  deployment/checkout", "delete   job/gracelab-load-checkout-",
		"load     http://checkout.shop:8080/ from cluster (image gracelab/gracelab:dev)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plan lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "refused") {
		t.Errorf("a healthy deployment was refused:\n%s", stdout)
	}
	for _, r := range srv.seen() {
		if r.method != http.MethodGet {
			t.Errorf("--dry-run sent %s %s", r.method, r.path)
		}
	}
}

// checkoutDeployment is deployment/checkout in namespace shop as the API server returns it,
// rolled out with every one of its replicas ready.
func checkoutDeployment(replicas int) map[string]any {
	return map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "checkout", "namespace": "shop", "generation": 1},
		"spec": map[string]any{"replicas": replicas, "selector": map[string]any{"matchLabels": map[string]any{"app": "checkout"}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "checkout"}}}},
		"status": map[string]any{"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas}}
}

// kubeconfigWithNamespace sets the namespace of every context of the kubeconfig at path.
func kubeconfigWithNamespace(t *testing.T, path, ns string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "    cluster: ", "    namespace: "+ns+"\n    cluster: ")
	if text == string(b) {
		t.Fatalf("no context in kubeconfig:\n%s", b)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// With -f, --dry-run reads the manifests and asks only whether the namespace exists: the plan
// names the namespace to create and delete, what is applied and skipped, the Job and the
// request Secret by the headers' names, never their values.
func TestDrillClusterFilesDryRun(t *testing.T) {
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, status(404, "NotFound", "no"))
	})
	t.Setenv("KUBECONFIG", writeKubeconfig(t, srv.URL, "lab", "lab"))
	dir := t.TempDir()
	var manifests []byte
	for _, f := range []string{"downstream.yaml", "upstream.yaml"} {
		b, err := os.ReadFile(filepath.Join("../../k8s/v1-no-graceful", f))
		if err != nil {
			t.Fatal(err)
		}
		manifests = append(append(manifests, "---\n"...), b...)
	}
	extra := "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n"
	if err := os.WriteFile(filepath.Join(dir, "app.yaml"), append(manifests, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runMain("drill", "--cluster", "-f", dir, "-n", "dcl-new", "--target", "http://downstream.dcl-new:8000/",
		"--deployment", "upstream", "--load-pods", "2", "-H", "Authorization: Bearer s3cret", "--body", "secret-body",
		"--dry-run", "--quiet", "--out", filepath.Join(t.TempDir(), "r"))
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	for _, want := range []string{"deployment/upstream from -f " + dir + " in namespace dcl-new (new)", "create   namespace/dcl-new",
		"apply    Deployment downstream, Service downstream, Deployment upstream, Service upstream", "skip     ConfigMap settings",
		"create   secret/gracelab-load-upstream-", "headers Authorization and a body of 11 bytes (values not shown",
		"create   job/gracelab-load-upstream-", "2 load pods", "restart  deployment/upstream", "delete   namespace/dcl-new and everything in it",
		"load     http://downstream.dcl-new:8000/ from cluster"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plan lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "s3cret") || strings.Contains(stdout, "secret-body") {
		t.Errorf("the plan shows the request's values:\n%s", stdout)
	}
	for _, r := range srv.seen() {
		if r.method != http.MethodGet || r.path != "/api/v1/namespaces/dcl-new" {
			t.Errorf("--dry-run sent %s %s", r.method, r.path)
		}
	}
}

// With --rollouts above 1, the load pods' seconds are attributed to each rollout's window
// (a second to the window its middle falls in), merged over the pods: counts add, the
// latency quantiles come from the merged histograms, the longest disruption from each
// failure's own times; a dead pod's open requests count as lost in their window.
func TestDrillClusterRolloutsFromPods(t *testing.T) {
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	m := load.NewMerger(start, load.Config{Model: load.Open, Rate: 20})
	at := func(sec int, ms int) string {
		return start.Add(time.Duration(sec)*time.Second + time.Duration(ms)*time.Millisecond).Format(time.RFC3339Nano)
	}
	// Pod a: 10 requests a second for 10 s; in second 2, two refused 300 ms apart; summary.
	// Pod b: the same; in second 7, three 5xx; it dies with 4 requests of second 9 open.
	var a, b strings.Builder
	for sec := range 10 {
		failA, failB := "", ""
		countsA, countsB := `{"ok":10}`, `{"ok":10}`
		if sec == 2 {
			countsA = `{"ok":8,"refused":2}`
			failA = fmt.Sprintf(`,"failures":[{"sent":%q,"end":%q,"class":"refused"},{"sent":%q,"end":%q,"class":"refused"}]`, at(2, 100), at(2, 110), at(2, 400), at(2, 410))
		}
		if sec == 7 {
			countsB = `{"ok":7,"http_5xx":3},"kinds":{"upstream_refused":2,"upstream_eof":1}`
			failB = fmt.Sprintf(`,"failures":[{"sent":%q,"end":%q,"class":"http_5xx","kind":"upstream_refused"},{"sent":%q,"end":%q,"class":"http_5xx","kind":"upstream_refused"},{"sent":%q,"end":%q,"class":"http_5xx","kind":"upstream_eof"}]`,
				at(7, 0), at(7, 50), at(7, 200), at(7, 250), at(7, 900), at(7, 950))
		}
		// Pod b's latencies are 10x pod a's: the quantiles must come from both.
		fmt.Fprintf(&a, `{"v":1,"seq":%d,"time":%q,"start":%q,"seconds":[{"second":%d,"requests":10,"counts":%s,"latency":{"counts":[%d,10]}%s}]}`+"\n", sec+1, at(sec+1, 0), at(0, 0), sec, countsA, latencyBucket(t, 10*time.Millisecond), failA)
		if sec < 9 {
			fmt.Fprintf(&b, `{"v":1,"seq":%d,"time":%q,"start":%q,"seconds":[{"second":%d,"requests":10,"counts":%s,"latency":{"counts":[%d,10]}%s}],"open":{"%d":4}}`+"\n", sec+1, at(sec+1, 0), at(0, 0), sec, countsB, latencyBucket(t, 100*time.Millisecond), failB, sec+1)
		}
	}
	fmt.Fprintf(&a, `{"v":1,"seq":11,"time":%q,"start":%q,"summary":{"result":{"send_end":%q,"end":%q}}}`+"\n", at(10, 0), at(0, 0), at(10, 0), at(10, 0))
	for pod, stream := range map[string]string{"a": a.String(), "b": b.String()} {
		if err := m.Read(pod, strings.NewReader(stream)); err != nil {
			t.Fatal(err)
		}
	}
	windows := []experiment.Window{{Index: 1, Start: start.Add(1600 * time.Millisecond), End: start.Add(5 * time.Second)},
		{Index: 2, Start: start.Add(6 * time.Second), End: start.Add(10 * time.Second)}}
	got := rolloutsOf(m, windows)
	// Window 1: seconds 2, 3, 4 of both pods (the middle of second 1 is before its start).
	r1, r2 := got[0], got[1]
	if r1.Requests != 60 || r1.Errors != 2 || r1.OK != 58 || r1.ErrorsByKind["refused"] != 2 {
		t.Errorf("rollout 1: %+v", r1)
	}
	if d := r1.LongestDisruption; d != 310*time.Millisecond {
		t.Errorf("rollout 1 longest disruption %s, want 310ms (first sent to last ended)", d)
	}
	if r1.Latency.P50 < 9*time.Millisecond || r1.Latency.P50 > 11*time.Millisecond || r1.Latency.P99 < 99*time.Millisecond || r1.LatencyMax > 101*time.Millisecond {
		t.Errorf("rollout 1 latency %+v max %s: want p50 from pod a, p99 and max from pod b", r1.Latency, r1.LatencyMax)
	}
	// Window 2: seconds 6 to 9; pod b died with second 9's 4 requests open: lost.
	if r2.Requests != 20+20+20+10+4 || r2.Errors != 3+4 || r2.ErrorsByKind["http_5xx"] != 3 || r2.ErrorsByKind["lost"] != 4 ||
		r2.UpstreamKinds["upstream_refused"] != 2 || r2.UpstreamKinds["upstream_eof"] != 1 {
		t.Errorf("rollout 2: %+v", r2)
	}
	if d := r2.LongestDisruption; d != 950*time.Millisecond {
		t.Errorf("rollout 2 longest disruption %s, want 950ms", d)
	}
}

// latencyBucket is the index of the HDR bucket (the load's histograms) that holds d.
func latencyBucket(t *testing.T, d time.Duration) int {
	t.Helper()
	h := hdrhistogram.New(1, load.MaxTimeout.Microseconds(), 3)
	if err := h.RecordValue(d.Microseconds()); err != nil {
		t.Fatal(err)
	}
	for i, n := range h.Export().Counts {
		if n > 0 {
			return i
		}
	}
	t.Fatal("nothing recorded")
	return 0
}
