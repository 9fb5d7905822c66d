package cli

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gracelab/gracelab/internal/cluster"
)

// --disruption kill on a real cluster without the opt-in, or the opt-in where it means
// nothing, is one line and exit 2 before the API server is contacted.
func TestKillOnAClusterNeedsTheOptIn(t *testing.T) {
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, status(403, "Forbidden", "no"))
	})
	t.Setenv("KUBECONFIG", writeKubeconfig(t, srv.URL, "lab", "lab"))
	target := "--target=http://checkout.shop:8080/"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"drill", "--cluster", "checkout", target, "--disruption", "kill"},
			"--disruption kill on a real cluster needs the opt-in --kill-helper IMAGE (gracelab's image): gracelab then runs a pod on the target pod's node with the host's PID namespace"},
		{[]string{"demo", "--cluster", "--disruption", "kill"}, "needs the opt-in --kill-helper IMAGE"},
		{[]string{"demo", "--cluster", "--disruption", "all", "--node", "n1", "--yes"}, "needs the opt-in --kill-helper IMAGE"},
		{[]string{"demo", "--disruption", "kill", "--kill-helper", "img"}, "--kill-helper is for --disruption kill with --cluster"},
		{[]string{"drill", "--cluster", "checkout", target, "--disruption", "delete", "--kill-helper", "img"}, "--kill-helper is for --disruption kill"},
		{[]string{"drill", "--cluster", "checkout", target, "--disruption", "kill", "--kill-helper", " "}, "--kill-helper needs an image"},
	} {
		code, stdout, stderr := runMain(append(tc.args, "--quiet", "--out", filepath.Join(t.TempDir(), "r"))...)
		if code != ExitBadArgs || stdout != "" || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and one line containing %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
	if reqs := srv.seen(); len(reqs) != 0 {
		t.Errorf("bad input contacted the API server: %+v", reqs)
	}
}

// With the opt-in, drill --cluster checks before anything starts that the user may create and
// delete pods and that admission lets the helper in (a dry run); a namespace whose Pod Security
// level forbids it stops the drill with the reason and what to do.
func TestDrillClusterKillHelperPreflight(t *testing.T) {
	srv := killHelperAPI(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, status(403, "Forbidden",
			`pods "gracelab-kill-x" is forbidden: violates PodSecurity "restricted:latest": host namespaces (hostPID=true), runAsNonRoot != true`))
	})
	kc := kubeconfigWithNamespace(t, writeKubeconfig(t, srv.URL, "lab", "lab"), "shop")
	code, _, stderr := runMain("drill", "--cluster", "--kubeconfig", kc, "deployment/checkout", "--target", "http://checkout.shop:8080/",
		"--disruption", "kill", "--kill-helper", "gracelab/gracelab:dev", "--quiet", "--out", filepath.Join(t.TempDir(), "r"))
	if code != ExitFailed || !strings.Contains(stderr, `violates PodSecurity "restricted:latest": host namespaces (hostPID=true)`) ||
		!strings.Contains(stderr, "pod-security.kubernetes.io/enforce=privileged") {
		t.Fatalf("exit %d, stderr %q: want exit 1 with the admission's reason and what to do", code, stderr)
	}
	// The reviews are protobuf: each names its verb and resource as plain strings.
	var reviews []string
	for _, r := range srv.seen() {
		if strings.HasSuffix(r.path, "/selfsubjectaccessreviews") && strings.Contains(r.body, "pods") && !strings.Contains(r.body, "log") {
			reviews = append(reviews, r.body)
		}
	}
	for _, verb := range []string{"create", "delete", "get", "list"} {
		if !slices.ContainsFunc(reviews, func(b string) bool { return strings.Contains(b, verb) }) {
			t.Errorf("no review of %s pods", verb)
		}
	}
	for _, r := range srv.seen() {
		if r.method == http.MethodPost && r.path == "/api/v1/namespaces/shop/pods" && !strings.Contains(r.query, "dryRun=All") {
			t.Errorf("a helper pod was created for real before the drill: %s?%s", r.path, r.query)
		}
		if r.method == http.MethodPatch || r.method == http.MethodDelete {
			t.Errorf("the preflight changed something: %s %s", r.method, r.path)
		}
	}
}

// blockingKiller is a Disrupter whose kill waits until its context ends (a helper on its way).
type blockingKiller struct {
	cluster.Disrupter
	started chan struct{}
}

func (b *blockingKiller) DeploymentPods(context.Context, string) ([]cluster.Pod, error) {
	return []cluster.Pod{{Name: "upstream-a"}}, nil
}

func (b *blockingKiller) KillContainer(ctx context.Context, _ string) error {
	close(b.started)
	<-ctx.Done()
	return ctx.Err()
}

// A second Ctrl-C returns before the kill does: the helpers' removal is held before the kill
// starts, so restoreAll runs it.
func TestKillHelpersRemovedOnASecondInterrupt(t *testing.T) {
	plan := &disruptionPlan{}
	removed := make(chan struct{}, 2)
	k := &blockingKiller{started: make(chan struct{})}
	dc := &disruptedCluster{d: k, spec: cluster.Disruption{Kind: cluster.DisruptKill}, plan: plan, scenario: "v2", out: &strings.Builder{},
		always: func(context.Context) error { removed <- struct{}{}; return nil }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dc.Restart(ctx, "upstream") }()
	<-k.started
	plan.restoreAll(&strings.Builder{}) // the second Ctrl-C, mid-kill
	select {
	case <-removed:
	default:
		t.Fatal("restoreAll did not remove the kill helpers while the kill was in flight")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Restart = %v, want cancelled", err)
	}
}

// drill --cluster plans its disruption for the Deployment it drills (the planned built-in
// scenario is replaced by it): without that the drill would restart instead of killing.
func TestDrillClusterAppliesTheDisruptionToTheDeployment(t *testing.T) {
	srv := killHelperAPI(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.RawQuery, "dryRun=All") {
			writeJSON(w, http.StatusNotFound, status(404, "NotFound", "no"))
			return
		}
		writeJSON(w, 201, map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "gracelab-kill-x", "namespace": "shop"}})
	})
	kc := kubeconfigWithNamespace(t, writeKubeconfig(t, srv.URL, "lab", "lab"), "shop")
	plan := func(args ...string) (*runPlan, error) {
		o := &drillOptions{}
		cmd := newDrillCommandFor(o, Streams{})
		args = append([]string{"--cluster", "--kubeconfig", kc, "--target", "http://checkout.shop:8080/", "--load-from", "here", "--out", t.TempDir()}, args...)
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		return o.planCluster(cmd, []string{"deployment/checkout"}, Streams{})
	}
	p, err := plan("--disruption", "kill", "--kill-helper", "img")
	if err != nil {
		t.Fatal(err)
	}
	if k := p.disrupt.kinds["checkout"]; k != cluster.DisruptKill || p.exp.Scenarios[0].Disruption != cluster.DisruptKill || len(p.disrupt.kinds) != 1 {
		t.Errorf("kinds %v, scenario disruption %q: want kill for checkout", p.disrupt.kinds, p.exp.Scenarios[0].Disruption)
	}
	if p.disrupt.killHelperImage() != "img" {
		t.Errorf("kill helper image %q", p.disrupt.killHelperImage())
	}
	_, err = plan("--disruption", "all", "--node", "n1", "--yes", "--kill-helper", "img")
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != ExitBadArgs || !strings.Contains(err.Error(), "drill --cluster applies one disruption at a time") {
		t.Errorf("--disruption all: err = %v, want a usage error", err)
	}
}

// killHelperAPI is an API server with a ready deployment/checkout (2 replicas) in namespace
// shop, no Services and every access review allowed; pods answers the creation of pods there.
func killHelperAPI(t *testing.T, pods http.HandlerFunc) *apiServer {
	return newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/apis/apps/v1/namespaces/shop/deployments/checkout":
			writeJSON(w, 200, checkoutDeployment(2))
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/namespaces/shop/services":
			writeJSON(w, 200, map[string]any{"apiVersion": "v1", "kind": "ServiceList", "items": []any{}})
		case r.Method == http.MethodPost && r.URL.Path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
			writeJSON(w, 201, map[string]any{"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "status": map[string]any{"allowed": true}})
		case r.Method == http.MethodPost && r.URL.Path == "/api/v1/namespaces/shop/pods":
			pods(w, r)
		default:
			writeJSON(w, http.StatusNotFound, status(404, "NotFound", "no"))
		}
	})
}
