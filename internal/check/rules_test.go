package check

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// good is a container that passes every rule: preStop sleep 5 s, readiness and a lenient,
// separate liveness probe.
func good() corev1.Container {
	return corev1.Container{
		Name:  "web",
		Image: "example/web:1",
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
			Sleep: &corev1.SleepAction{Seconds: 5},
		}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: httpGet("/ready"), PeriodSeconds: 2, FailureThreshold: 2},
		LivenessProbe:  &corev1.Probe{ProbeHandler: httpGet("/live"), PeriodSeconds: 10, FailureThreshold: 3},
	}
}

func httpGet(p string) corev1.ProbeHandler {
	return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: p, Port: intstr.FromString("http")}}
}

func ptr[T any](v T) *T { return &v }

var webLabels = map[string]string{"app": "web"}

// deployment is a compliant Deployment of containers (good() when none given), 2 replicas.
func deployment(mut func(*appsv1.Deployment), cs ...corev1.Container) *appsv1.Deployment {
	if len(cs) == 0 {
		cs = []corev1.Container{good()}
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: webLabels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxUnavailable: ptr(intstr.FromInt32(0)), MaxSurge: ptr(intstr.FromInt32(1)),
			}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: webLabels},
				Spec:       corev1.PodSpec{Containers: cs},
			},
		},
	}
	if mut != nil {
		mut(d)
	}
	return d
}

func service(mut func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: webLabels, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
		}},
	}
	if mut != nil {
		mut(s)
	}
	return s
}

func pdb(mut func(*policyv1.PodDisruptionBudget)) *policyv1.PodDisruptionBudget {
	p := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: webLabels}, MaxUnavailable: ptr(intstr.FromInt32(1)),
		},
	}
	if mut != nil {
		mut(p)
	}
	return p
}

// objects wraps typed objects with made-up sources (file o.yaml, line = position).
func objects(objs ...runtime.Object) []Object {
	var out []Object
	for i, o := range objs {
		out = append(out, Object{Source: Source{File: "o.yaml", Line: i*10 + 1}, Object: o.DeepCopyObject()})
	}
	return out
}

// fired runs the checker and returns the findings of one rule.
func fired(t *testing.T, objs []Object, opts Options, rule string) []Finding {
	t.Helper()
	var out []Finding
	for _, f := range Run(objs, opts).Findings {
		if f.Rule == rule {
			out = append(out, f)
			// Every finding carries a sentence, an object and a fix that is YAML.
			if f.Message == "" || f.Object.Name == "" || f.Object.Kind == "" {
				t.Errorf("finding lacks message or object: %+v", f)
			}
			var v any
			if err := yaml.Unmarshal([]byte(f.Fix), &v); f.Fix == "" || err != nil {
				t.Errorf("%s: fix is not YAML (%v):\n%s", f.Rule, err, f.Fix)
			}
		}
	}
	return out
}

// baseline is a compliant set: the Deployment, its Service and its PDB.
func baseline() (*appsv1.Deployment, *corev1.Service, *policyv1.PodDisruptionBudget) {
	return deployment(nil), service(nil), pdb(nil)
}

func TestBaselineHasNoFindings(t *testing.T) {
	d, s, p := baseline()
	res := Run(objects(d, s, p), Options{})
	if len(res.Findings) != 0 {
		t.Fatalf("compliant objects gave findings: %+v", res.Findings)
	}
	if res.Objects != 3 || res.Workloads != 1 {
		t.Errorf("objects %d workloads %d, want 3 and 1", res.Objects, res.Workloads)
	}
}

// ruleCase is one fire/not-fire case: objects and the number of findings of rule expected.
type ruleCase struct {
	name string
	objs []Object
	opts Options
	want int
	// in, if set, must appear in the first finding's message.
	in string
}

func runCases(t *testing.T, rule string, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := fired(t, tc.objs, tc.opts, rule)
			if len(got) != tc.want {
				t.Fatalf("%s: got %d findings, want %d: %+v", rule, len(got), tc.want, got)
			}
			if tc.in != "" && !strings.Contains(got[0].Message, tc.in) {
				t.Errorf("message %q lacks %q", got[0].Message, tc.in)
			}
		})
	}
}

func withContainer(mut func(*corev1.Container)) *appsv1.Deployment {
	c := good()
	mut(&c)
	return deployment(nil, c)
}

func TestNoPrestop(t *testing.T) {
	noHook := withContainer(func(c *corev1.Container) { c.Lifecycle = nil })
	runCases(t, RuleNoPrestop, []ruleCase{
		{name: "behind a Service", objs: objects(noHook, service(nil), pdb(nil)), want: 1, in: "1.48 s"},
		{name: "no Service", objs: objects(noHook, pdb(nil)), want: 0},
		{name: "Service selects other pods", objs: objects(noHook, service(func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "other"} })), want: 0},
		{name: "Service in another namespace", objs: objects(noHook, service(func(s *corev1.Service) { s.Namespace = "other" })), want: 0},
		{name: "sleep hook", objs: objects(deployment(nil), service(nil)), want: 0},
		{name: "exec hook", objs: objects(withContainer(func(c *corev1.Container) {
			c.Lifecycle.PreStop = &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sleep", "5"}}}
		}), service(nil)), want: 0},
		{name: "AWS load balancer", objs: objects(noHook, service(func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeLoadBalancer
			s.Annotations = map[string]string{"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}
		})), want: 1, in: "AWS load balancer"},
	})
}

func TestPrestopShortAndUnknown(t *testing.T) {
	sleep := func(n int64) *appsv1.Deployment {
		return withContainer(func(c *corev1.Container) { c.Lifecycle.PreStop.Sleep.Seconds = n })
	}
	execHook := func(argv ...string) *appsv1.Deployment {
		return withContainer(func(c *corev1.Container) {
			c.Lifecycle.PreStop = &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: argv}}
		})
	}
	httpHook := func(annotation string) *appsv1.Deployment {
		d := withContainer(func(c *corev1.Container) {
			c.Lifecycle.PreStop = &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/prestop", Port: intstr.FromString("http")}}
		})
		if annotation != "" {
			d.Spec.Template.Annotations = map[string]string{PrestopDelayAnnotation: annotation}
		}
		return d
	}
	albIngress := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{
			"alb.ingress.kubernetes.io/target-group-attributes": "deregistration_delay.timeout_seconds=30",
		}},
		Spec: networkingv1.IngressSpec{IngressClassName: ptr("alb"), DefaultBackend: &networkingv1.IngressBackend{
			Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Name: "http"}},
		}},
	}
	gceIngress := albIngress.DeepCopy()
	gceIngress.Annotations = nil
	gceIngress.Spec.IngressClassName = ptr("gce")
	runCases(t, RulePrestopShort, []ruleCase{
		{name: "sleep 2 < 5", objs: objects(sleep(2), service(nil)), want: 1, in: "(2 s)"},
		{name: "sleep 5 = 5", objs: objects(sleep(5), service(nil)), want: 0},
		{name: "sleep 5 < --propagation 8s", objs: objects(sleep(5), service(nil)), opts: Options{Propagation: 8 * time.Second}, want: 1},
		{name: "exec sleep 3", objs: objects(execHook("/bin/sleep", "3"), service(nil)), want: 1, in: "(3 s)"},
		{name: "exec sh -c sleep 2", objs: objects(execHook("sh", "-c", "sleep 2 && nginx -s quit"), service(nil)), want: 1},
		{name: "exec sh -c sleep 10", objs: objects(execHook("/bin/sh", "-c", "sleep 10"), service(nil)), want: 0},
		{name: "http declared 2s", objs: objects(httpHook("2s"), service(nil)), want: 1},
		{name: "http declared 5", objs: objects(httpHook("5"), service(nil)), want: 0},
		{name: "ALB deregistration 30 s", objs: objects(sleep(10), service(nil), albIngress), want: 1, in: "shorter than the 30 s deregistration time declared for the AWS load balancer of Ingress web"},
		{name: "ALB, sleep 30", objs: objects(sleep(30), service(nil), albIngress), want: 0},
		{name: "no Service", objs: objects(sleep(1)), want: 0},
	})
	runCases(t, RulePrestopShort, []ruleCase{
		{name: "GCP budget named", objs: objects(sleep(1), service(nil), gceIngress), want: 1, in: "GCP load balancer of Ingress web"},
	})
	runCases(t, RulePrestopUnknown, []ruleCase{
		{name: "http without annotation", objs: objects(httpHook(""), service(nil)), want: 1, in: "httpGet"},
		{name: "http with a bad annotation", objs: objects(httpHook("soon"), service(nil)), want: 1},
		{name: "http declared", objs: objects(httpHook("5s"), service(nil)), want: 0},
		{name: "exec script without sleep", objs: objects(execHook("sh", "-c", "nginx -s quit"), service(nil)), want: 1},
		{name: "sleep", objs: objects(sleep(5), service(nil)), want: 0},
	})
	// An unknown length is an info, never a pass and never a warning.
	res := Run(objects(httpHook(""), service(nil), pdb(nil)), Options{})
	if res.Fails(Warning) || !res.Fails(Info) {
		t.Errorf("unknown hook length: want an info only, got %+v", res.Findings)
	}
}

func TestGraceShort(t *testing.T) {
	grace := func(g int64, pre int64) *appsv1.Deployment {
		d := withContainer(func(c *corev1.Container) { c.Lifecycle.PreStop.Sleep.Seconds = pre })
		d.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr(g)
		return d
	}
	runCases(t, RuleGraceShort, []ruleCase{
		{name: "default 30 covers 5+10", objs: objects(deployment(nil), service(nil)), want: 0},
		{name: "15 = 5+10", objs: objects(grace(15, 5), service(nil)), want: 0},
		{name: "14 < 5+10", objs: objects(grace(14, 5), service(nil)), want: 1, in: "9 s into its drain"},
		{name: "10 < 20+10, killed in preStop", objs: objects(grace(10, 20), service(nil)), want: 1, in: "before its preStop delay ends"},
		{name: "drain 30s", objs: objects(grace(30, 5), service(nil)), opts: Options{Drain: 30 * time.Second}, want: 1},
		{name: "no Service still counts", objs: objects(grace(5, 0)), want: 1},
	})
}

func TestPrestopNoShell(t *testing.T) {
	hook := func(image string, argv ...string) *appsv1.Deployment {
		return withContainer(func(c *corev1.Container) {
			c.Image = image
			c.Lifecycle.PreStop = &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: argv}}
		})
	}
	runCases(t, RulePrestopNoShell, []ruleCase{
		{name: "distroless sleep", objs: objects(hook("gcr.io/distroless/static-debian12:nonroot", "sleep", "5"), service(nil)), want: 1, in: "FailedPreStopHook"},
		{name: "chainguard static sh", objs: objects(hook("cgr.dev/chainguard/static:latest", "/bin/sh", "-c", "sleep 5")), want: 1},
		{name: "gracelab scratch image", objs: objects(hook("gracelab/upstream:dev", "sleep", "5")), want: 1},
		{name: "distroless debug has busybox", objs: objects(hook("gcr.io/distroless/base:debug", "sleep", "5")), want: 0},
		{name: "alpine has sleep", objs: objects(hook("alpine:3.20", "sleep", "5")), want: 0},
		{name: "the program's own binary", objs: objects(hook("gcr.io/distroless/static", "/app/server", "drain")), want: 0},
	})
	// The fix is the native sleep action, unless the cluster is older than 1.30.
	f := fired(t, objects(hook("gcr.io/distroless/static", "sleep", "7")), Options{}, RulePrestopNoShell)
	if len(f) != 1 || !strings.Contains(f[0].Fix, "sleep:\n") || !strings.Contains(f[0].Fix, "seconds: 7") {
		t.Errorf("fix should be sleep 7: %+v", f)
	}
	f = fired(t, objects(hook("gcr.io/distroless/static", "sleep", "7")), Options{KubeMinor: 28}, RulePrestopNoShell)
	if len(f) != 1 || !strings.Contains(f[0].Fix, "httpGet") {
		t.Errorf("on 1.28 the fix should be an httpGet hook: %+v", f)
	}
}

func TestSleepUnsupported(t *testing.T) {
	runCases(t, RuleSleepUnsupported, []ruleCase{
		{name: "1.29", objs: objects(deployment(nil)), opts: Options{KubeMinor: 29}, want: 1, in: "1.29"},
		{name: "1.30", objs: objects(deployment(nil)), opts: Options{KubeMinor: 30}, want: 0},
		{name: "unknown version", objs: objects(deployment(nil)), want: 0},
	})
}

func TestShellPID1(t *testing.T) {
	cmd := func(command []string, args ...string) *appsv1.Deployment {
		return withContainer(func(c *corev1.Container) { c.Command, c.Args = command, args })
	}
	runCases(t, RuleShellPID1, []ruleCase{
		{name: "migrate && serve", objs: objects(cmd([]string{"sh", "-c", "migrate && serve"})), want: 1, in: "30 s grace period"},
		{name: "command sh -c, script in args", objs: objects(cmd([]string{"/bin/bash", "-ec"}, "cd /app; ./server")), want: 1},
		{name: "exec before the last", objs: objects(cmd([]string{"sh", "-c", "migrate && exec serve"})), want: 0},
		{name: "single command", objs: objects(cmd([]string{"sh", "-c", "serve --port 8080"})), want: 0},
		{name: "trap handles signals", objs: objects(cmd([]string{"sh", "-c", "trap 'kill $pid' TERM; serve & pid=$!; wait"})), want: 0},
		{name: "tini in front", objs: objects(cmd([]string{"tini", "--", "sh", "-c", "a && b"})), want: 0},
		{name: "no shell", objs: objects(cmd([]string{"/server"}, "--port", "8080")), want: 0},
		{name: "image entrypoint", objs: objects(cmd(nil, "-c", "a && b")), want: 0},
	})
	f := fired(t, objects(cmd([]string{"sh", "-c", "migrate && serve"})), Options{}, RuleShellPID1)
	if !strings.Contains(f[0].Fix, `"migrate && exec serve"`) {
		t.Errorf("fix should add exec before the last command:\n%s", f[0].Fix)
	}
}

func TestNoReadiness(t *testing.T) {
	none := withContainer(func(c *corev1.Container) { c.ReadinessProbe = nil })
	runCases(t, RuleNoReadiness, []ruleCase{
		{name: "behind a Service", objs: objects(none, service(nil)), want: 1},
		{name: "no Service", objs: objects(none), want: 0},
		{name: "probed", objs: objects(deployment(nil), service(nil)), want: 0},
	})
}

func TestLivenessAsReadiness(t *testing.T) {
	same := func(lPeriod, lFail int32) *appsv1.Deployment {
		return withContainer(func(c *corev1.Container) {
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: httpGet("/health")} // 10 s x 3
			c.LivenessProbe = &corev1.Probe{ProbeHandler: httpGet("/health"), PeriodSeconds: lPeriod, FailureThreshold: lFail}
		})
	}
	runCases(t, RuleLivenessAsReadiness, []ruleCase{
		{name: "defaults on both (helm create)", objs: objects(same(0, 0)), want: 1, in: "after 30 s, no later than readiness (30 s)"},
		{name: "liveness faster", objs: objects(same(5, 2)), want: 1},
		{name: "liveness later", objs: objects(same(10, 6)), want: 0},
		{name: "other handler", objs: objects(deployment(nil)), want: 0},
	})
}

func TestLivenessRestartsBusy(t *testing.T) {
	live := func(timeout, fail int32) *appsv1.Deployment {
		return withContainer(func(c *corev1.Container) {
			c.LivenessProbe.TimeoutSeconds, c.LivenessProbe.FailureThreshold = timeout, fail
		})
	}
	runCases(t, RuleLivenessRestartsBusy, []ruleCase{
		{name: "timeout 1, failure 1", objs: objects(live(1, 1)), want: 1, in: "later than 1 s"},
		{name: "default timeout, failure 1", objs: objects(live(0, 1)), want: 1},
		{name: "failure 3", objs: objects(live(1, 3)), want: 0},
	})
}

func TestRolloutNoCapacity(t *testing.T) {
	strat := func(mu intstr.IntOrString, replicas int32) *appsv1.Deployment {
		return deployment(func(d *appsv1.Deployment) {
			d.Spec.Replicas = &replicas
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = &mu
		})
	}
	recreate := deployment(func(d *appsv1.Deployment) {
		d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	})
	runCases(t, RuleRolloutNoCapacity, []ruleCase{
		{name: "Recreate", objs: objects(recreate, service(nil)), want: 1, in: "Recreate"},
		{name: "Recreate without Service", objs: objects(recreate), want: 0},
		{name: "100%", objs: objects(strat(intstr.FromString("100%"), 4), service(nil)), want: 1, in: "4 of 4"},
		{name: "2 of 2", objs: objects(strat(intstr.FromInt32(2), 2), service(nil)), want: 1},
		{name: "50% of 3 rounds down to 1", objs: objects(strat(intstr.FromString("50%"), 3), service(nil)), want: 0},
		{name: "default 25% of 1 is 0", objs: objects(deployment(func(d *appsv1.Deployment) {
			d.Spec.Replicas = ptr(int32(1))
			d.Spec.Strategy = appsv1.DeploymentStrategy{}
		}), service(nil)), want: 0},
		{name: "StatefulSet maxUnavailable 100%", objs: objects(statefulSet(3, ptr(intstr.FromString("100%"))), service(nil)), want: 1},
	})
}

func statefulSet(replicas int32, maxUnavailable *intstr.IntOrString) *appsv1.StatefulSet {
	d := deployment(nil)
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       appsv1.StatefulSetSpec{Replicas: &replicas, Selector: d.Spec.Selector, Template: d.Spec.Template},
	}
	if maxUnavailable != nil {
		s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{MaxUnavailable: maxUnavailable}
	}
	return s
}

func TestSingleReplica(t *testing.T) {
	one := deployment(func(d *appsv1.Deployment) { d.Spec.Replicas = ptr(int32(1)) })
	unset := deployment(func(d *appsv1.Deployment) { d.Spec.Replicas = nil })
	runCases(t, RuleSingleReplica, []ruleCase{
		{name: "Deployment, 1", objs: objects(one, service(nil)), want: 1, in: "node drain"},
		{name: "Deployment, unset means 1", objs: objects(unset, service(nil)), want: 1},
		{name: "Deployment, 2", objs: objects(deployment(nil), service(nil)), want: 0},
		{name: "no Service", objs: objects(one), want: 0},
		{name: "StatefulSet, 1", objs: objects(statefulSet(1, nil), service(nil)), want: 1, in: "deletes the pod before"},
	})
	if f := fired(t, objects(statefulSet(1, nil), service(nil)), Options{}, RuleSingleReplica); f[0].Severity != Warning {
		t.Errorf("a StatefulSet's single replica is a warning, got %v", f[0].Severity)
	}
	if f := fired(t, objects(one, service(nil)), Options{}, RuleSingleReplica); f[0].Severity != Info {
		t.Errorf("a Deployment's single replica is an info, got %v", f[0].Severity)
	}
}

func TestNoPDB(t *testing.T) {
	other := pdb(func(p *policyv1.PodDisruptionBudget) { p.Spec.Selector.MatchLabels = map[string]string{"app": "other"} })
	runCases(t, RuleNoPDB, []ruleCase{
		{name: "2 replicas, no PDB", objs: objects(deployment(nil)), want: 1, in: "2 replicas"},
		{name: "PDB for other pods", objs: objects(deployment(nil), other), want: 1},
		{name: "covered", objs: objects(deployment(nil), pdb(nil)), want: 0},
		{name: "1 replica", objs: objects(deployment(func(d *appsv1.Deployment) { d.Spec.Replicas = ptr(int32(1)) })), want: 0},
	})
}

func TestPDBBlocksDrain(t *testing.T) {
	minAvail := func(v intstr.IntOrString) *policyv1.PodDisruptionBudget {
		return pdb(func(p *policyv1.PodDisruptionBudget) { p.Spec.MaxUnavailable, p.Spec.MinAvailable = nil, &v })
	}
	maxUnavail := func(v intstr.IntOrString) *policyv1.PodDisruptionBudget {
		return pdb(func(p *policyv1.PodDisruptionBudget) { p.Spec.MaxUnavailable = &v })
	}
	runCases(t, RulePDBBlocksDrain, []ruleCase{
		{name: "maxUnavailable 0", objs: objects(deployment(nil), maxUnavail(intstr.FromInt32(0))), want: 1, in: "maxUnavailable 0"},
		{name: "maxUnavailable 0%", objs: objects(deployment(nil), maxUnavail(intstr.FromString("0%"))), want: 1},
		{name: "minAvailable 2 of 2", objs: objects(deployment(nil), minAvail(intstr.FromInt32(2))), want: 1},
		{name: "minAvailable 100%", objs: objects(deployment(nil), minAvail(intstr.FromString("100%"))), want: 1},
		{name: "minAvailable 1 of 2", objs: objects(deployment(nil), minAvail(intstr.FromInt32(1))), want: 0},
		{name: "maxUnavailable 1", objs: objects(deployment(nil), pdb(nil)), want: 0},
	})
	f := fired(t, objects(deployment(nil), maxUnavail(intstr.FromInt32(0))), Options{}, RulePDBBlocksDrain)
	if f[0].Object.Kind != "PodDisruptionBudget" {
		t.Errorf("reported on %v, want the PDB", f[0].Object)
	}
}

func TestSidecarNotNative(t *testing.T) {
	proxy := corev1.Container{Name: "envoy", Image: "envoyproxy/envoy:v1.31"}
	worker := corev1.Container{Name: "worker", Image: "example/worker:1"}
	runCases(t, RuleSidecarNotNative, []ruleCase{
		{name: "proxy beside the app", objs: objects(deployment(nil, good(), proxy), service(nil)), want: 1, in: "envoy runs beside web"},
		{name: "single container", objs: objects(deployment(nil), service(nil)), want: 0},
		{name: "native sidecar", objs: objects(deployment(func(d *appsv1.Deployment) {
			p := proxy
			p.RestartPolicy = ptr(corev1.ContainerRestartPolicyAlways)
			d.Spec.Template.Spec.InitContainers = []corev1.Container{p}
		}), service(nil)), want: 1 - 1},
	})
	if f := fired(t, objects(deployment(nil, good(), proxy), service(nil)), Options{}, RuleSidecarNotNative); f[0].Severity != Warning || f[0].Container != "envoy" {
		t.Errorf("a proxy is a warning on the proxy: %+v", f[0])
	}
	if f := fired(t, objects(deployment(nil, good(), worker), service(nil)), Options{}, RuleSidecarNotNative); len(f) != 1 || f[0].Severity != Info {
		t.Errorf("a second container that is no proxy is an info: %+v", f)
	}
}

func TestPublishNotReady(t *testing.T) {
	pub := service(func(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = true })
	runCases(t, RulePublishNotReady, []ruleCase{
		{name: "readiness and publishNotReady", objs: objects(deployment(nil), pub), want: 1},
		{name: "no readiness probe", objs: objects(withContainer(func(c *corev1.Container) { c.ReadinessProbe = nil }), pub), want: 0},
		{name: "not published", objs: objects(deployment(nil), service(nil)), want: 0},
		{name: "headless, for peer discovery", objs: objects(deployment(nil), service(func(s *corev1.Service) {
			s.Spec.PublishNotReadyAddresses, s.Spec.ClusterIP = true, corev1.ClusterIPNone
		})), want: 0},
	})
}

func TestPooledClientWindow(t *testing.T) {
	client := func(env ...string) *appsv1.Deployment {
		d := deployment(func(d *appsv1.Deployment) {
			d.Name = "front"
			d.Spec.Template.Labels = map[string]string{"app": "front"}
		})
		c := &d.Spec.Template.Spec.Containers[0]
		c.Env = []corev1.EnvVar{{Name: "UPSTREAM_URL", Value: "http://web:80"}}
		for i := 0; i < len(env); i += 2 {
			c.Env = append(c.Env, corev1.EnvVar{Name: env[i], Value: env[i+1]})
		}
		return d
	}
	upstream := func(retire string) *appsv1.Deployment { // preStop 5 s
		return withContainer(func(c *corev1.Container) {
			if retire != "" {
				c.Env = []corev1.EnvVar{{Name: "RETIRE_KEEPALIVE", Value: retire}}
			}
		})
	}
	httpUpstream := withContainer(func(c *corev1.Container) {
		c.Lifecycle.PreStop = &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/prestop", Port: intstr.FromString("http")}}
	})
	post := []string{"CLIENT", "pooled", "UPSTREAM_METHOD", "POST"}
	runCases(t, RulePooledClientWindow, []ruleCase{
		{name: "idle 30 s >= window 5 s", objs: objects(client(append(post, "UPSTREAM_IDLE_TIMEOUT", "30s")...), upstream(""), service(nil)), want: 1, in: "idle timeout (30 s) is not shorter than the preStop window of Deployment web (5 s)"},
		{name: "not retired (unfixed)", objs: objects(client(post...), upstream("false"), service(nil)), want: 1, in: "RETIRE_KEEPALIVE=false"},
		{name: "window of unknown length", objs: objects(client(post...), httpUpstream, service(nil)), want: 1, in: "unknown length"},
		{name: "fixed: default idle 3 s < 5 s, retired", objs: objects(client(post...), upstream("true"), service(nil)), want: 0},
		{name: "per-request client", objs: objects(client("CLIENT", "per-request", "UPSTREAM_IDLE_TIMEOUT", "30s"), upstream("false"), service(nil)), want: 0},
		{name: "upstream not in the set", objs: objects(client(post...)), want: 0},
	})
	// POST is never resent: a warning; GET is resent by Go's transport: an info.
	if f := fired(t, objects(client(post...), upstream("false"), service(nil)), Options{}, RulePooledClientWindow); f[0].Severity != Warning {
		t.Errorf("POST: %v, want warning", f[0].Severity)
	}
	if f := fired(t, objects(client("CLIENT", "pooled", "UPSTREAM_METHOD", "GET"), upstream("false"), service(nil)), Options{}, RulePooledClientWindow); f[0].Severity != Info {
		t.Errorf("GET: %v, want info", f[0].Severity)
	}
}

func TestUnknownFields(t *testing.T) {
	objs := objects(deployment(nil), service(nil), pdb(nil))
	objs[0].Warnings = []string{`unknown field "spec.template.spec.terminationGracePeriodSecond"`}
	f := fired(t, objs, Options{}, RuleUnknownField)
	if len(f) != 1 || f[0].Severity != Warning || !strings.Contains(f[0].Message, "terminationGracePeriodSecond") {
		t.Fatalf("want one warning naming the field: %+v", f)
	}
}

func TestSuppression(t *testing.T) {
	noHook := withContainer(func(c *corev1.Container) { c.Lifecycle = nil; c.ReadinessProbe = nil })
	res := Run(objects(noHook, service(nil)), Options{Ignore: []string{RuleNoReadiness}})
	for _, f := range res.Findings {
		if f.Rule == RuleNoReadiness {
			t.Errorf("--ignore %s still reported", RuleNoReadiness)
		}
	}
	if res.Suppressed[RuleNoReadiness] != 1 {
		t.Errorf("suppressed %v, want no-readiness 1", res.Suppressed)
	}
	noHook.Annotations = map[string]string{IgnoreAnnotation: "no-prestop, no-pdb"}
	res = Run(objects(noHook, service(nil)), Options{})
	if res.Suppressed[RuleNoPrestop] != 1 || res.Suppressed[RuleNoPDB] != 1 || res.SuppressedTotal() != 2 {
		t.Errorf("annotation suppressed %v, want no-prestop 1, no-pdb 1", res.Suppressed)
	}
	for _, f := range res.Findings {
		if f.Rule == RuleNoPrestop || f.Rule == RuleNoPDB {
			t.Errorf("annotated rule %s still reported", f.Rule)
		}
	}
	if !strings.Contains(Summary(res), "2 suppressed") {
		t.Errorf("summary does not count suppressed findings: %s", Summary(res))
	}
}

func TestFailsThreshold(t *testing.T) {
	res := Result{Findings: []Finding{{Severity: Warning}}}
	for _, tc := range []struct {
		threshold Severity
		want      bool
	}{{Info, true}, {Warning, true}, {Error, false}, {0, false}} {
		if got := res.Fails(tc.threshold); got != tc.want {
			t.Errorf("Fails(%v) = %v, want %v", tc.threshold, got, tc.want)
		}
	}
}

func TestUnknownKindsIgnored(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"}}
	res := Run(objects(cm, deployment(nil), service(nil), pdb(nil)), Options{})
	if len(res.Findings) != 0 || res.Workloads != 1 {
		t.Errorf("a ConfigMap changed the outcome: %+v", res)
	}
}
