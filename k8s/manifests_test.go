package k8s

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gracelab/gracelab/internal/downstream"
	"github.com/gracelab/gracelab/internal/lifecycle"
	"github.com/gracelab/gracelab/internal/manifest"
	"github.com/gracelab/gracelab/internal/service"
	"github.com/gracelab/gracelab/internal/upstream"
)

// app is one manifest file decoded: its Deployment and its Service.
type app struct {
	deploy *appsv1.Deployment
	svc    *corev1.Service
}

// decode reads every YAML document of data strictly (unknown fields are errors) with package
// manifest, as gracelab does; anything but one Deployment and one Service is an error.
func decode(data []byte) (app, error) {
	var a app
	docs, err := manifest.Read(fstest.MapFS{"manifest.yaml": {Data: data}})
	if err != nil {
		return a, err
	}
	for _, doc := range docs {
		switch o := doc.Object.(type) {
		case *appsv1.Deployment:
			if a.deploy != nil {
				return a, errors.New("two Deployments")
			}
			a.deploy = o
		case *corev1.Service:
			if a.svc != nil {
				return a, errors.New("two Services")
			}
			a.svc = o
		default:
			return a, fmt.Errorf("unexpected %T", doc.Object)
		}
	}
	if a.deploy == nil || a.svc == nil {
		return a, errors.New("want one Deployment and one Service")
	}
	return a, nil
}

func load(t *testing.T, dir, name string) app {
	t.Helper()
	data, err := fs.ReadFile(FS, dir+"/"+name+".yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := decode(data)
	if err != nil {
		t.Fatalf("%s/%s.yaml: %v", dir, name, err)
	}
	return a
}

func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	data, err := fs.ReadFile(FS, "v2-graceful/upstream.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(data, []byte("  replicas: 2\n"), []byte("  replicas: 2\n  replcas: 3\n"), 1)
	if _, err := decode(bad); err == nil || !strings.Contains(err.Error(), "replcas") {
		t.Fatalf("a misspelled field must fail strict decoding, got %v", err)
	}
	if _, err := decode(append(data, []byte("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")...)); err == nil {
		t.Fatal("an unexpected kind must be an error")
	}
}

func TestEveryScenarioHasBothManifestsAndNothingElse(t *testing.T) {
	dirs, err := fs.ReadDir(FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range dirs {
		names = append(names, d.Name())
	}
	if !slices.Equal(names, Scenarios) {
		t.Fatalf("embedded dirs %v, want %v", names, Scenarios)
	}
	for _, dir := range Scenarios {
		files, err := fs.ReadDir(FS, dir)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range files {
			got = append(got, f.Name())
		}
		want := []string{"downstream.yaml", "upstream.yaml"}
		if withBudget[dir] {
			want = []string{"downstream.yaml", "upstream-pdb.yaml", "upstream.yaml"}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s holds %v, want %v", dir, got, want)
		}
	}
}

// ports of the two services, in the manifests and the code.
var ports = map[string]int32{"upstream": upstream.DefaultPort, "downstream": downstream.DefaultPort}

// TestCommonShape checks what every version shares: names, replicas, labels, images, ports,
// resources, security context, and that the env parses with the service's own config reader.
func TestCommonShape(t *testing.T) {
	for _, dir := range Scenarios {
		for _, name := range []string{"upstream", "downstream"} {
			t.Run(dir+"/"+name, func(t *testing.T) {
				a := load(t, dir, name)
				d, s := a.deploy, a.svc
				port := ports[name]
				if d.Name != name || s.Name != name {
					t.Fatalf("Deployment %q and Service %q, want both named %q", d.Name, s.Name, name)
				}
				if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
					t.Fatalf("replicas %v, want 2", d.Spec.Replicas)
				}
				tmpl := d.Spec.Template
				for _, l := range []map[string]string{d.Labels, tmpl.Labels, s.Labels} {
					if l["app.kubernetes.io/name"] != name || l["app.kubernetes.io/part-of"] != "gracelab" {
						t.Fatalf("labels %v lack app.kubernetes.io/name=%s and part-of=gracelab", l, name)
					}
				}
				sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
				if err != nil || sel.Empty() || !sel.Matches(labels.Set(tmpl.Labels)) {
					t.Fatalf("selector %v does not match the template's labels %v", d.Spec.Selector, tmpl.Labels)
				}
				if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(tmpl.Labels)) {
					t.Fatalf("Service selector %v does not select the pods %v", s.Spec.Selector, tmpl.Labels)
				}
				if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != port || s.Spec.Ports[0].TargetPort != intstr.FromInt32(port) {
					t.Fatalf("Service ports %+v, want %d -> %d", s.Spec.Ports, port, port)
				}
				wantType := corev1.ServiceType("")
				if name == "downstream" {
					wantType = corev1.ServiceTypeLoadBalancer
				}
				if s.Spec.Type != wantType {
					t.Fatalf("Service type %q, want %q", s.Spec.Type, wantType)
				}

				spec := tmpl.Spec
				if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
					t.Fatalf("want exactly one container")
				}
				c := spec.Containers[0]
				if c.Image != "gracelab/"+name+":dev" || c.ImagePullPolicy != corev1.PullIfNotPresent {
					t.Fatalf("image %q pull %q, want gracelab/%s:dev IfNotPresent", c.Image, c.ImagePullPolicy, name)
				}
				if len(c.Ports) != 1 || c.Ports[0].ContainerPort != port {
					t.Fatalf("container ports %+v, want %d", c.Ports, port)
				}
				psc := spec.SecurityContext
				if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
					psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Fatalf("pod securityContext %+v: want non-root 65532 with RuntimeDefault seccomp", psc)
				}
				csc := c.SecurityContext
				if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
					csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
					csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
					t.Fatalf("container securityContext %+v: want read-only root, no escalation, drop ALL", csc)
				}
				req, lim := c.Resources.Requests, c.Resources.Limits
				if req.Cpu().Cmp(resource.MustParse("50m")) != 0 || req.Memory().Cmp(resource.MustParse("32Mi")) != 0 {
					t.Fatalf("requests %v, want cpu 50m memory 32Mi", req)
				}
				if lim.Memory().Cmp(resource.MustParse("64Mi")) != 0 || !lim.Cpu().IsZero() {
					t.Fatalf("limits %v, want memory 64Mi and no CPU limit", lim)
				}
				for _, e := range c.Env {
					if e.ValueFrom != nil {
						t.Fatalf("env %s uses valueFrom: keep literal values (the embedded cluster reads them as-is)", e.Name)
					}
				}
				env := envOf(c)
				var err2 error
				if name == "upstream" {
					_, err2 = upstream.ParseConfig(env)
				} else {
					var cfg downstream.Config
					cfg, err2 = downstream.ParseConfig(env)
					if err2 == nil && cfg.UpstreamURL.String() != "http://upstream:7000" {
						t.Fatalf("UPSTREAM_URL %s, want http://upstream:7000", cfg.UpstreamURL)
					}
				}
				if err2 != nil {
					t.Fatalf("the manifest's env does not start the service: %v", err2)
				}
			})
		}
	}
}

func envOf(c corev1.Container) func(string) string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return func(k string) string { return m[k] }
}

// shutdownOf is the lifecycle configuration the container will run with.
func shutdownOf(t *testing.T, c corev1.Container) service.Config {
	t.Helper()
	cfg, _, err := service.ParseConfig(envOf(c), 0)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestV1HasNoProtection(t *testing.T) {
	for _, name := range []string{"upstream", "downstream"} {
		a := load(t, "v1-no-graceful", name)
		c := a.deploy.Spec.Template.Spec.Containers[0]
		if shutdownOf(t, c).Mode != lifecycle.Immediate {
			t.Errorf("v1 %s: SHUTDOWN must be immediate", name)
		}
		if c.Lifecycle != nil || c.ReadinessProbe != nil || c.LivenessProbe != nil || c.StartupProbe != nil {
			t.Errorf("v1 %s: no preStop and no probes", name)
		}
		if !reflect.DeepEqual(a.deploy.Spec.Strategy, appsv1.DeploymentStrategy{}) {
			t.Errorf("v1 %s: no strategy block, got %+v", name, a.deploy.Spec.Strategy)
		}
		if a.deploy.Spec.Template.Spec.TerminationGracePeriodSeconds != nil {
			t.Errorf("v1 %s: the default grace period, as the original", name)
		}
	}
	cfg, err := downstream.ParseConfig(envOf(load(t, "v1-no-graceful", "downstream").deploy.Spec.Template.Spec.Containers[0]))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Client != downstream.PerRequest || cfg.RetryAttempts != 1 {
		t.Errorf("v1 downstream: CLIENT=per-request without retry, got %s with %d attempts", cfg.Client, cfg.RetryAttempts)
	}
}

// checkGraceful is what v2 and v3 share for both services.
func checkGraceful(t *testing.T, dir, name string) {
	t.Helper()
	a := load(t, dir, name)
	spec := a.deploy.Spec.Template.Spec
	c := spec.Containers[0]
	port := intstr.FromInt32(ports[name])
	sd := shutdownOf(t, c)
	if sd.Mode != lifecycle.Graceful {
		t.Errorf("%s %s: SHUTDOWN must be graceful", dir, name)
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.HTTPGet == nil ||
		c.Lifecycle.PreStop.HTTPGet.Path != "/prestop" || c.Lifecycle.PreStop.HTTPGet.Port != port {
		t.Errorf("%s %s: preStop must be httpGet /prestop on %s", dir, name, port.String())
	}
	r, l := c.ReadinessProbe, c.LivenessProbe
	for what, p := range map[string]*corev1.Probe{"readiness": r, "liveness": l} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/health" || p.HTTPGet.Port != port {
			t.Fatalf("%s %s: %s probe must be httpGet /health on %s", dir, name, what, port.String())
		}
	}
	if r.PeriodSeconds < 1 || r.PeriodSeconds > 2 {
		t.Errorf("%s %s: readiness period %ds; 1-2s keeps a 2-replica rollout to a few seconds", dir, name, r.PeriodSeconds)
	}
	if r == l || reflect.DeepEqual(r, l) {
		t.Errorf("%s %s: liveness must be its own probe, more lenient than readiness", dir, name)
	}
	if l.PeriodSeconds*l.FailureThreshold < 10 {
		t.Errorf("%s %s: liveness gives up after %ds; a busy pod must not be restarted", dir, name, l.PeriodSeconds*l.FailureThreshold)
	}
	ru := a.deploy.Spec.Strategy.RollingUpdate
	if a.deploy.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil ||
		ru.MaxUnavailable == nil || *ru.MaxUnavailable != intstr.FromInt32(0) ||
		ru.MaxSurge == nil || *ru.MaxSurge != intstr.FromInt32(1) {
		t.Errorf("%s %s: strategy must be RollingUpdate maxUnavailable 0, maxSurge 1", dir, name)
	}
	if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds != 30 {
		t.Fatalf("%s %s: terminationGracePeriodSeconds must be 30", dir, name)
	}
	grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	if need := sd.PrestopDelay + sd.ShutdownDelay + sd.DrainTimeout; need >= grace {
		t.Errorf("%s %s: preStop %v + delay %v + drain %v must fit inside the %v grace period",
			dir, name, sd.PrestopDelay, sd.ShutdownDelay, sd.DrainTimeout, grace)
	}
}

func TestV2IsGraceful(t *testing.T) {
	for _, name := range []string{"upstream", "downstream"} {
		checkGraceful(t, "v2-graceful", name)
	}
	cfg, err := downstream.ParseConfig(envOf(load(t, "v2-graceful", "downstream").deploy.Spec.Template.Spec.Containers[0]))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Client != downstream.PerRequest || cfg.RetryAttempts != 1 {
		t.Errorf("v2 downstream: CLIENT=per-request without retry, got %s with %d attempts", cfg.Client, cfg.RetryAttempts)
	}
}

func TestV3IsV2PlusPooledRetry(t *testing.T) {
	for _, name := range []string{"upstream", "downstream"} {
		checkGraceful(t, "v3-graceful-retry", name)
	}
	if v2, v3 := load(t, "v2-graceful", "upstream"), load(t, "v3-graceful-retry", "upstream"); !reflect.DeepEqual(v2, v3) {
		t.Error("the v3 upstream must be the v2 upstream: only the downstream changes")
	}
	v2 := load(t, "v2-graceful", "downstream").deploy.Spec.Template.Spec.Containers[0]
	v3 := load(t, "v3-graceful-retry", "downstream").deploy.Spec.Template.Spec.Containers[0]
	cfg, err := downstream.ParseConfig(envOf(v3))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Client != downstream.Pooled || cfg.RetryAttempts != 3 {
		t.Errorf("v3 downstream: CLIENT=pooled with 3 attempts, got %s with %d", cfg.Client, cfg.RetryAttempts)
	}
	// Apart from the env, the v3 downstream container is the v2 one.
	v2.Env, v3.Env = nil, nil
	if !reflect.DeepEqual(v2, v3) {
		t.Error("the v3 downstream container differs from v2 beyond its environment")
	}
	// The worst case of a v3 call stays below the load generator's 10s timeout and the drain.
	if cfg.RequestDeadline >= 10*time.Second || cfg.RequestDeadline >= cfg.Serve.DrainTimeout {
		t.Errorf("REQUEST_DEADLINE %v must stay below 10s and DRAIN_TIMEOUT %v", cfg.RequestDeadline, cfg.Serve.DrainTimeout)
	}
}

// The pooled-POST pair of docs/keepalive.md: v2 with a pooled POST client; the unfixed one
// differs from the fixed one only in RETIRE_KEEPALIVE and the pool's idle timeout.
func TestPooledPairDiffersOnlyInTheFix(t *testing.T) {
	for _, dir := range []string{"v2pooled-post", "v2race-post-unfixed"} {
		for _, name := range []string{"upstream", "downstream"} {
			checkGraceful(t, dir, name)
		}
	}
	up := shutdownOf(t, load(t, "v2pooled-post", "upstream").deploy.Spec.Template.Spec.Containers[0])
	fixed, err := downstream.ParseConfig(envOf(load(t, "v2pooled-post", "downstream").deploy.Spec.Template.Spec.Containers[0]))
	if err != nil {
		t.Fatal(err)
	}
	unfixed, err := downstream.ParseConfig(envOf(load(t, "v2race-post-unfixed", "downstream").deploy.Spec.Template.Spec.Containers[0]))
	if err != nil {
		t.Fatal(err)
	}
	if fixed.Client != downstream.Pooled || fixed.UpstreamMethod != "POST" || fixed.RetryAttempts != 1 {
		t.Errorf("fixed downstream: want CLIENT=pooled, UPSTREAM_METHOD=POST, no retry; got %+v", fixed)
	}
	if !up.RetireKeepAlive || !fixed.Serve.RetireKeepAlive {
		t.Error("v2pooled must retire keep-alive connections (RETIRE_KEEPALIVE=true)")
	}
	// Every connection idle through the upstream's preStop window is closed by the pool first.
	if fixed.IdleConnTimeout >= up.PrestopDelay {
		t.Errorf("UPSTREAM_IDLE_TIMEOUT %v must be below the upstream's PRESTOP_DELAY %v", fixed.IdleConnTimeout, up.PrestopDelay)
	}
	if unfixed.Serve.RetireKeepAlive || shutdownOf(t, load(t, "v2race-post-unfixed", "upstream").deploy.Spec.Template.Spec.Containers[0]).RetireKeepAlive {
		t.Error("v2race must run unfixed (RETIRE_KEEPALIVE=false)")
	}
	for _, name := range []string{"upstream", "downstream"} {
		f := load(t, "v2pooled-post", name).deploy.Spec.Template.Spec.Containers[0]
		u := load(t, "v2race-post-unfixed", name).deploy.Spec.Template.Spec.Containers[0]
		var diff []string
		for i := range f.Env {
			if f.Env[i] != u.Env[i] {
				diff = append(diff, f.Env[i].Name)
			}
		}
		f.Env, u.Env = nil, nil
		if !reflect.DeepEqual(f, u) || len(diff) > 2 {
			t.Errorf("%s: the pair differs beyond RETIRE_KEEPALIVE and UPSTREAM_IDLE_TIMEOUT: %v", name, diff)
		}
	}
}
