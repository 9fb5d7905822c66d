package check

import (
	"fmt"
	"net/url"
	"path"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Rule IDs, as findings, --ignore and IgnoreAnnotation name them. docs/check.md has a section
// for each.
const (
	RuleNoPrestop            = "no-prestop"
	RulePrestopShort         = "prestop-short"
	RulePrestopUnknown       = "prestop-unknown"
	RuleGraceShort           = "grace-short"
	RulePrestopNoShell       = "prestop-no-shell"
	RuleSleepUnsupported     = "sleep-unsupported"
	RuleShellPID1            = "shell-pid1"
	RuleNoReadiness          = "no-readiness"
	RuleLivenessAsReadiness  = "liveness-as-readiness"
	RuleLivenessRestartsBusy = "liveness-restarts-busy"
	RuleRolloutNoCapacity    = "rollout-no-capacity"
	RuleSingleReplica        = "single-replica"
	RuleNoPDB                = "no-pdb"
	RulePDBBlocksDrain       = "pdb-blocks-drain"
	RuleSidecarNotNative     = "sidecar-not-native"
	RulePublishNotReady      = "publish-not-ready"
	RulePooledClientWindow   = "pooled-client-window"
	RuleUnknownField         = "unknown-field"
)

// Measured on the lab (docs/fidelity.md): kube-proxy's mean endpoint programming time.
const kubeProxyMean = "1.48 s"

// Rule is one check: its ID, the highest severity it reports, a one-line summary, and the
// function that applies it to one workload.
type Rule struct {
	ID       string
	Severity Severity
	Summary  string
	check    func(w *Workload, o Options) []Finding
}

// Rules are every rule, in the order of docs/check.md. unknown-field is applied by Run to every
// object, so it has no function here.
var Rules = []Rule{
	{RuleNoPrestop, Warning, "a pod behind a Service has no preStop delay", noPrestop},
	{RulePrestopShort, Warning, "the preStop delay is shorter than endpoint propagation", prestopShort},
	{RulePrestopUnknown, Info, "the preStop delay's length is unknown", nil},
	{RuleGraceShort, Warning, "terminationGracePeriodSeconds is shorter than preStop plus drain", graceShort},
	{RulePrestopNoShell, Error, "an exec preStop needs a shell or sleep the image does not have", prestopNoShell},
	{RuleSleepUnsupported, Error, "the native sleep action needs Kubernetes 1.30 or later", sleepUnsupported},
	{RuleShellPID1, Warning, "a shell as PID 1 runs several commands and does not pass SIGTERM on", shellPID1},
	{RuleNoReadiness, Warning, "a container behind a Service has no readiness probe", noReadiness},
	{RuleLivenessAsReadiness, Warning, "the liveness probe fails as soon as readiness does", livenessAsReadiness},
	{RuleLivenessRestartsBusy, Warning, "one slow liveness probe restarts the container", livenessRestartsBusy},
	{RuleRolloutNoCapacity, Error, "a rollout can take every serving pod away at once", rolloutNoCapacity},
	{RuleSingleReplica, Warning, "one replica serves the Service", singleReplica},
	{RuleNoPDB, Info, "no PodDisruptionBudget covers a workload with two or more replicas", noPDB},
	{RulePDBBlocksDrain, Warning, "a PodDisruptionBudget allows no disruption at all", pdbBlocksDrain},
	{RuleSidecarNotNative, Warning, "a second long-running container is not a native sidecar", sidecarNotNative},
	{RulePublishNotReady, Warning, "publishNotReadyAddresses defeats draining through readiness", publishNotReady},
	{RulePooledClientWindow, Info, "pooled client connections outlive the server's preStop window", pooledClientWindow},
	{RuleUnknownField, Warning, "a field the object's type does not have", nil},
}

// finding starts a finding about the workload itself.
func (w *Workload) finding(rule string, sev Severity, container, msg, fix string) Finding {
	return Finding{Rule: rule, Severity: sev, Object: w.Ref, Container: container, Message: msg, Fix: fix}
}

func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}

// containerFix is a fix snippet that merges body into the named container of the pod template.
func (w *Workload) containerFix(name, body string) string {
	return "spec:\n  template:\n    spec:\n      containers:\n        - name: " + name + "\n" + indent(body, 10)
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pad + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// sleepFix suggests the native sleep action where the cluster has it (or its version is
// unknown), else an httpGet hook served by the application.
func sleepFix(o Options, secs int) string {
	if o.KubeMinor == 0 || o.KubeMinor >= 30 {
		return fmt.Sprintf("lifecycle:\n  preStop:\n    sleep:\n      seconds: %d\n", secs)
	}
	return fmt.Sprintf("# Kubernetes 1.%d has no native sleep: serve a handler that waits, and declare its length\n# (pod template annotation %s: \"%ds\")\nlifecycle:\n  preStop:\n    httpGet:\n      path: /prestop\n      port: http\n", o.KubeMinor, PrestopDelayAnnotation, secs)
}

func ceilSeconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

// servingContainers are the containers that serve the workload's Services: those with a
// declared port a Service targets; the first container when no declared port matches.
func (w *Workload) servingContainers() []*corev1.Container {
	if len(w.Services) == 0 {
		return nil
	}
	cs := w.Template.Spec.Containers
	var out []*corev1.Container
	for i := range cs {
		if w.serves(&cs[i]) {
			out = append(out, &cs[i])
		}
	}
	if len(out) == 0 && len(cs) > 0 {
		out = append(out, &cs[0])
	}
	return out
}

func (w *Workload) serves(c *corev1.Container) bool {
	for _, s := range w.Services {
		for _, sp := range s.Service.Spec.Ports {
			target := sp.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 && target.StrVal == "" {
				target = intstr.FromInt32(sp.Port)
			}
			for _, cp := range c.Ports {
				if (target.Type == intstr.String && cp.Name == target.StrVal) || (target.Type == intstr.Int && cp.ContainerPort == target.IntVal) {
					return true
				}
			}
		}
	}
	return false
}

// prestopKind describes a container's preStop hook.
type prestopKind int

const (
	prestopNone prestopKind = iota
	prestopSleep
	prestopExec
	prestopHTTP
	prestopOther
)

// prestop returns the hook's kind and its length when known.
func (w *Workload) prestop(c *corev1.Container) (kind prestopKind, d time.Duration, known bool) {
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
		return prestopNone, 0, false
	}
	h := c.Lifecycle.PreStop
	switch {
	case h.Sleep != nil:
		return prestopSleep, time.Duration(h.Sleep.Seconds) * time.Second, true
	case h.Exec != nil:
		d, ok := execSleep(h.Exec.Command)
		return prestopExec, d, ok
	case h.HTTPGet != nil:
		d, ok := declaredDelay(w.Template.Annotations[PrestopDelayAnnotation])
		return prestopHTTP, d, ok
	}
	return prestopOther, 0, false
}

// declaredDelay reads PrestopDelayAnnotation: a Go duration or whole seconds.
func declaredDelay(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return d, true
	}
	return 0, false
}

// execSleep finds the length of `sleep N` in an exec hook: [sleep, 5] or [sh, -c, "sleep 5"]
// (the first sleep of the script; anything else it runs is not counted).
func execSleep(argv []string) (time.Duration, bool) {
	if len(argv) == 0 {
		return 0, false
	}
	if script, ok := shellScript(argv); ok {
		for _, cmd := range splitCommands(script) {
			if d, ok := execSleep(strings.Fields(cmd)); ok {
				return d, true
			}
		}
		return 0, false
	}
	if path.Base(argv[0]) != "sleep" || len(argv) != 2 {
		return 0, false
	}
	arg := argv[1]
	if n, err := strconv.ParseFloat(strings.TrimSuffix(arg, "s"), 64); err == nil && n >= 0 {
		return time.Duration(n * float64(time.Second)), true
	}
	return 0, false
}

var shells = map[string]bool{"sh": true, "bash": true, "ash": true, "dash": true, "zsh": true, "ksh": true}

// shellScript returns the script of `sh -c SCRIPT` (also -ec, -exc, ...).
func shellScript(argv []string) (string, bool) {
	if len(argv) < 3 || !shells[path.Base(argv[0])] {
		return "", false
	}
	for i := 1; i < len(argv)-1; i++ {
		a := argv[i]
		if !strings.HasPrefix(a, "-") {
			return "", false
		}
		if strings.Contains(a, "c") {
			return argv[i+1], true
		}
	}
	return "", false
}

// splitCommands cuts a shell script at ;, &&, ||, |, & and newlines. It ignores quoting: good
// enough to count the commands of the one-liners manifests carry.
func splitCommands(script string) []string {
	r := strings.NewReplacer("&&", "\n", "||", "\n", ";", "\n", "|", "\n", "&", "\n")
	var out []string
	for _, c := range strings.Split(r.Replace(script), "\n") {
		if c = strings.TrimSpace(c); c != "" && !strings.HasPrefix(c, "#") {
			out = append(out, c)
		}
	}
	return out
}

// cloudLB describes a cloud load balancer in front of the workload: who, where it is
// declared, and its declared deregistration time (0 when not declared).
type cloudLB struct {
	what     string
	dereg    time.Duration
	fallback string
}

// cloudLoadBalancer finds an AWS or GCP load balancer among the workload's Services and
// Ingresses, from their annotations and classes.
func (w *Workload) cloudLoadBalancer() (cloudLB, bool) {
	for _, s := range w.Services {
		a := s.Service.Annotations
		for k := range a {
			switch {
			case strings.HasPrefix(k, "service.beta.kubernetes.io/aws-load-balancer"):
				lb := cloudLB{what: "the AWS load balancer of " + s.Ref.String(), fallback: "AWS target groups default to 300 s"}
				lb.dereg = awsDereg(a)
				return lb, true
			case strings.HasPrefix(k, "cloud.google.com/") || strings.HasPrefix(k, "networking.gke.io/"):
				return cloudLB{what: "the GCP load balancer of " + s.Ref.String(), fallback: "set in its BackendConfig's connectionDraining"}, true
			}
		}
	}
	for _, in := range w.Ingresses {
		class := in.Ingress.Annotations["kubernetes.io/ingress.class"]
		if in.Ingress.Spec.IngressClassName != nil {
			class = *in.Ingress.Spec.IngressClassName
		}
		aws := class == "alb"
		gcp := class == "gce" || class == "gce-internal"
		for k := range in.Ingress.Annotations {
			aws = aws || strings.HasPrefix(k, "alb.ingress.kubernetes.io/")
			gcp = gcp || strings.HasPrefix(k, "ingress.gcp.kubernetes.io/") || strings.HasPrefix(k, "networking.gke.io/")
		}
		switch {
		case aws:
			return cloudLB{what: "the AWS load balancer of " + in.Ref.String(), dereg: awsDereg(in.Ingress.Annotations), fallback: "AWS target groups default to 300 s"}, true
		case gcp:
			return cloudLB{what: "the GCP load balancer of " + in.Ref.String(), fallback: "set in its BackendConfig's connectionDraining"}, true
		}
	}
	return cloudLB{}, false
}

// awsDereg reads a declared deregistration delay from AWS annotations.
func awsDereg(a map[string]string) time.Duration {
	for _, k := range []string{"alb.ingress.kubernetes.io/target-group-attributes", "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"} {
		for _, kv := range strings.Split(a[k], ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(kv), "=")
			if name == "deregistration_delay.timeout_seconds" {
				if n, err := strconv.Atoi(val); err == nil && n >= 0 {
					return time.Duration(n) * time.Second
				}
			}
		}
	}
	if n, err := strconv.Atoi(a["service.beta.kubernetes.io/aws-load-balancer-connection-draining-timeout"]); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	return 0
}

// budget is the preStop length that passes: --propagation, or a load balancer's declared
// deregistration time when longer, and a noun phrase saying which.
func (w *Workload) budget(o Options) (time.Duration, string) {
	prop := fmt.Sprintf("the propagation budget of %s", seconds(o.Propagation))
	lb, ok := w.cloudLoadBalancer()
	switch {
	case !ok:
		return o.Propagation, fmt.Sprintf("%s (kube-proxy alone took %s on average on the lab)", prop, kubeProxyMean)
	case lb.dereg > o.Propagation:
		return lb.dereg, fmt.Sprintf("the %s deregistration time declared for %s", seconds(lb.dereg), lb.what)
	case lb.dereg > 0:
		return o.Propagation, fmt.Sprintf("%s (%s deregisters in %s)", prop, lb.what, seconds(lb.dereg))
	}
	return o.Propagation, fmt.Sprintf("%s, though with %s in front the budget is its deregistration time, not declared here (%s)", prop, lb.what, lb.fallback)
}

// 1. no-prestop
func noPrestop(w *Workload, o Options) []Finding {
	var out []Finding
	for _, c := range w.servingContainers() {
		if k, _, _ := w.prestop(c); k != prestopNone {
			continue
		}
		extra := "ingress controllers and cloud load balancers add more"
		if lb, ok := w.cloudLoadBalancer(); ok {
			extra = lb.what + " adds its deregistration time"
		} else if w.Services[0].Service.Spec.Type == corev1.ServiceTypeLoadBalancer {
			extra = "the LoadBalancer Service's load balancer adds its own"
		}
		out = append(out, w.finding(RuleNoPrestop, Warning, c.Name,
			fmt.Sprintf("no preStop delay while %s routes to it: on each rollout new requests keep arriving after SIGTERM until the endpoint removal propagates (kube-proxy took %s on average on the lab; %s), and they fail",
				w.Services[0].Ref, kubeProxyMean, extra),
			w.containerFix(c.Name, sleepFix(o, ceilSeconds(o.Propagation)))))
	}
	return out
}

// 2. prestop-short and prestop-unknown
func prestopShort(w *Workload, o Options) []Finding {
	var out []Finding
	budget, why := w.budget(o)
	for _, c := range w.servingContainers() {
		kind, d, known := w.prestop(c)
		switch {
		case kind == prestopNone:
			continue
		case !known:
			how := "its length is not visible"
			fix := w.containerFix(c.Name, sleepFix(o, ceilSeconds(budget)))
			if kind == prestopHTTP {
				how = "an httpGet hook's length is not visible in the manifest"
				fix = fmt.Sprintf("spec:\n  template:\n    metadata:\n      annotations:\n        %s: \"%s\"   # how long the hook takes\n", PrestopDelayAnnotation, budget)
			}
			out = append(out, w.finding(RulePrestopUnknown, Info, c.Name,
				fmt.Sprintf("the preStop hook's length is unknown (%s), so it cannot be held against %s", how, why), fix))
		case d < budget:
			out = append(out, w.finding(RulePrestopShort, Warning, c.Name,
				fmt.Sprintf("the preStop delay (%s) is shorter than %s: requests routed to the pod in the remaining %s arrive after SIGTERM and fail unless the program keeps serving", seconds(d), why, seconds(budget-d)),
				w.containerFix(c.Name, sleepFix(o, ceilSeconds(budget)))))
		}
	}
	return out
}

// 3. grace-short
func graceShort(w *Workload, o Options) []Finding {
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if g := w.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	var out []Finding
	for i := range w.Template.Spec.Containers {
		c := &w.Template.Spec.Containers[i]
		_, pre, known := w.prestop(c)
		need := pre + o.Drain
		preText := seconds(pre)
		if !known {
			preText = "unknown"
		}
		if time.Duration(grace)*time.Second >= need {
			continue
		}
		when := fmt.Sprintf("%s into its drain, with requests in flight", seconds(time.Duration(grace)*time.Second-pre))
		if time.Duration(grace)*time.Second <= pre {
			when = "before its preStop delay ends: it never drains"
		}
		out = append(out, w.finding(RuleGraceShort, Warning, c.Name,
			fmt.Sprintf("terminationGracePeriodSeconds %d is shorter than the preStop delay (%s) plus the drain allowance (%s): the grace period counts from the deletion, preStop included, so the container is killed (SIGKILL) %s",
				grace, preText, seconds(o.Drain), when),
			fmt.Sprintf("spec:\n  template:\n    spec:\n      terminationGracePeriodSeconds: %d\n", ceilSeconds(need)+5)))
	}
	return out
}

// shell-less images: distroless (not its :debug variants), Chainguard's static image, and
// gracelab's own FROM-scratch images.
func noShellImage(image string) bool {
	name, tag, _ := strings.Cut(image, "@")
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name, tag = name[:i], name[i+1:]
	}
	if strings.Contains(tag, "debug") {
		return false
	}
	return strings.Contains(name, "distroless") || strings.HasPrefix(name, "cgr.dev/chainguard/static") ||
		name == "scratch" || strings.HasPrefix(name, "gracelab/") || strings.HasPrefix(name, "docker.io/gracelab/")
}

// tools a hook may call that shell-less images lack.
var shellTools = map[string]bool{"sleep": true, "sh": true, "bash": true, "ash": true, "dash": true, "busybox": true, "curl": true, "wget": true, "kill": true}

// 4. prestop-no-shell
func prestopNoShell(w *Workload, o Options) []Finding {
	var out []Finding
	for i := range w.Template.Spec.Containers {
		c := &w.Template.Spec.Containers[i]
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil {
			continue
		}
		argv := c.Lifecycle.PreStop.Exec.Command
		if len(argv) == 0 || !shellTools[path.Base(argv[0])] || !noShellImage(c.Image) {
			continue
		}
		secs := ceilSeconds(o.Propagation)
		if d, ok := execSleep(argv); ok {
			secs = max(ceilSeconds(d), 1)
		}
		out = append(out, w.finding(RulePrestopNoShell, Error, c.Name,
			fmt.Sprintf("the exec preStop runs %s, which image %s does not have: the hook fails, the kubelet records FailedPreStopHook and sends SIGTERM at once, so there is no delay at all", path.Base(argv[0]), c.Image),
			w.containerFix(c.Name, sleepFix(o, secs))))
	}
	return out
}

// 4b. sleep-unsupported: the native sleep action on a cluster known to be too old.
func sleepUnsupported(w *Workload, o Options) []Finding {
	if o.KubeMinor == 0 || o.KubeMinor >= 30 {
		return nil
	}
	var out []Finding
	for i := range w.Template.Spec.Containers {
		c := &w.Template.Spec.Containers[i]
		if k, _, _ := w.prestop(c); k == prestopSleep {
			out = append(out, w.finding(RuleSleepUnsupported, Error, c.Name,
				fmt.Sprintf("the native sleep preStop action is enabled by default from Kubernetes 1.30 (GA in 1.34); on 1.%d the API server rejects it or drops it, leaving no delay", o.KubeMinor),
				w.containerFix(c.Name, sleepFix(o, int(c.Lifecycle.PreStop.Sleep.Seconds)))))
		}
	}
	return out
}

// initSystems forward signals to their children.
var initSystems = map[string]bool{"tini": true, "dumb-init": true, "catatonit": true, "s6-svscan": true}

// 5. shell-pid1
func shellPID1(w *Workload, o Options) []Finding {
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if g := w.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	var out []Finding
	for _, c := range w.longRunning() {
		argv := append(append([]string{}, c.Command...), c.Args...)
		if len(c.Command) == 0 || initSystems[path.Base(argv[0])] {
			continue // the image's entrypoint is not visible here
		}
		script, ok := shellScript(argv)
		if !ok || strings.Contains(script, "trap ") {
			continue
		}
		cmds := splitCommands(script)
		if len(cmds) < 2 || strings.HasPrefix(cmds[len(cmds)-1], "exec ") {
			continue
		}
		last := cmds[len(cmds)-1]
		fixed := strings.TrimSuffix(strings.TrimSpace(script), last) + "exec " + last
		out = append(out, w.finding(RuleShellPID1, Warning, c.Name,
			fmt.Sprintf("%s is PID 1 and runs %d commands without exec before the last (%q): SIGTERM stops at the shell, the program never drains, and the pod waits out its %d s grace period to be killed", path.Base(argv[0]), len(cmds), last, grace),
			w.containerFix(c.Name, fmt.Sprintf("command: [%s, -c]\nargs:\n  - %s\n", path.Base(argv[0]), strconv.Quote(fixed)))))
	}
	return out
}

// longRunning are the regular containers and the native sidecars.
func (w *Workload) longRunning() []*corev1.Container {
	var out []*corev1.Container
	spec := &w.Template.Spec
	for i := range spec.Containers {
		out = append(out, &spec.Containers[i])
	}
	for i := range spec.InitContainers {
		if p := spec.InitContainers[i].RestartPolicy; p != nil && *p == corev1.ContainerRestartPolicyAlways {
			out = append(out, &spec.InitContainers[i])
		}
	}
	return out
}

// 6a. no-readiness
func noReadiness(w *Workload, o Options) []Finding {
	var out []Finding
	for _, c := range w.servingContainers() {
		if c.ReadinessProbe != nil {
			continue
		}
		port := "http"
		if len(c.Ports) > 0 {
			if c.Ports[0].Name != "" {
				port = c.Ports[0].Name
			} else {
				port = strconv.Itoa(int(c.Ports[0].ContainerPort))
			}
		}
		out = append(out, w.finding(RuleNoReadiness, Warning, c.Name,
			fmt.Sprintf("no readiness probe while %s routes to it: a new pod gets traffic as soon as its process starts, before it listens (refused connections during every rollout), and a pod cannot leave the Service by failing readiness", w.Services[0].Ref),
			w.containerFix(c.Name, fmt.Sprintf("readinessProbe:\n  httpGet:\n    path: /healthz   # an endpoint that answers when the pod can serve\n    port: %s\n  periodSeconds: 2\n  failureThreshold: 2\n", port))))
	}
	return out
}

func probeDefaults(p *corev1.Probe) (period, timeout, failures int32) {
	period, timeout, failures = p.PeriodSeconds, p.TimeoutSeconds, p.FailureThreshold
	if period == 0 {
		period = 10
	}
	if timeout == 0 {
		timeout = 1
	}
	if failures == 0 {
		failures = 3
	}
	return
}

// 6b. liveness-as-readiness
func livenessAsReadiness(w *Workload, o Options) []Finding {
	var out []Finding
	for _, c := range w.longRunning() {
		l, r := c.LivenessProbe, c.ReadinessProbe
		if l == nil || r == nil || !reflect.DeepEqual(l.ProbeHandler, r.ProbeHandler) {
			continue
		}
		lp, _, lf := probeDefaults(l)
		rp, _, rf := probeDefaults(r)
		lAfter, rAfter := lp*lf, rp*rf
		if lAfter > rAfter {
			continue
		}
		out = append(out, w.finding(RuleLivenessAsReadiness, Warning, c.Name,
			fmt.Sprintf("liveness probes the same handler as readiness and fails after %d s, no later than readiness (%d s): a pod that should only leave the Service while it is busy is restarted instead, dropping its requests in flight", lAfter, rAfter),
			w.containerFix(c.Name, fmt.Sprintf("livenessProbe:   # same handler, or better a cheaper one; fail well after readiness\n  periodSeconds: %d\n  failureThreshold: 3\n  timeoutSeconds: 2\n", max(rAfter, 5)))))
	}
	return out
}

// 6c. liveness-restarts-busy: failureThreshold 1 means one slow answer restarts the container.
func livenessRestartsBusy(w *Workload, o Options) []Finding {
	var out []Finding
	for _, c := range w.longRunning() {
		l := c.LivenessProbe
		if l == nil {
			continue
		}
		_, timeout, failures := probeDefaults(l)
		if failures != 1 {
			continue
		}
		out = append(out, w.finding(RuleLivenessRestartsBusy, Warning, c.Name,
			fmt.Sprintf("liveness has failureThreshold 1 and timeoutSeconds %d: a single probe answered later than %d s (a busy or paused pod) restarts the container and drops its requests in flight", timeout, timeout),
			w.containerFix(c.Name, "livenessProbe:\n  failureThreshold: 3\n  timeoutSeconds: 2\n")))
	}
	return out
}

// 7a. rollout-no-capacity
func rolloutNoCapacity(w *Workload, o Options) []Finding {
	if len(w.Services) == 0 || w.Replicas < 1 {
		return nil
	}
	switch {
	case w.Deployment != nil:
		st := w.Deployment.Spec.Strategy
		if st.Type == appsv1.RecreateDeploymentStrategyType {
			return []Finding{w.finding(RuleRolloutNoCapacity, Error, "",
				fmt.Sprintf("strategy Recreate stops all %d pods before starting new ones: %s has no endpoint during every rollout", w.Replicas, w.Services[0].Ref),
				"spec:\n  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxUnavailable: 0\n      maxSurge: 1\n")}
		}
		mu := intstr.FromString("25%")
		if st.RollingUpdate != nil && st.RollingUpdate.MaxUnavailable != nil {
			mu = *st.RollingUpdate.MaxUnavailable
		}
		n, err := intstr.GetScaledValueFromIntOrPercent(&mu, int(w.Replicas), false)
		if err == nil && n >= int(w.Replicas) {
			return []Finding{w.finding(RuleRolloutNoCapacity, Error, "",
				fmt.Sprintf("maxUnavailable %s resolves to %d of %d replicas: a rollout may take every serving pod of %s away at once", mu.String(), n, w.Replicas, w.Services[0].Ref),
				"spec:\n  strategy:\n    rollingUpdate:\n      maxUnavailable: 0\n      maxSurge: 1\n")}
		}
	case w.StatefulSet != nil:
		ru := w.StatefulSet.Spec.UpdateStrategy.RollingUpdate
		if ru != nil && ru.MaxUnavailable != nil {
			n, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, int(w.Replicas), false)
			if err == nil && n >= int(w.Replicas) && w.Replicas > 1 {
				return []Finding{w.finding(RuleRolloutNoCapacity, Error, "",
					fmt.Sprintf("maxUnavailable %s resolves to all %d replicas: a rollout may take every serving pod of %s away at once", ru.MaxUnavailable.String(), w.Replicas, w.Services[0].Ref),
					"spec:\n  updateStrategy:\n    rollingUpdate:\n      maxUnavailable: 1\n")}
			}
		}
	}
	return nil
}

// 7b. single-replica
func singleReplica(w *Workload, o Options) []Finding {
	if len(w.Services) == 0 || w.Replicas != 1 {
		return nil
	}
	if w.StatefulSet != nil {
		return []Finding{w.finding(RuleSingleReplica, Warning, "",
			fmt.Sprintf("one replica behind %s: a StatefulSet rollout deletes the pod before it starts the new one, so the Service has no endpoint for the whole restart", w.Services[0].Ref),
			"spec:\n  replicas: 2\n")}
	}
	if w.Deployment != nil {
		return []Finding{w.finding(RuleSingleReplica, Info, "",
			fmt.Sprintf("one replica behind %s: a rollout keeps it serving only because a new pod starts first, but a node drain, eviction or crash leaves the Service without an endpoint", w.Services[0].Ref),
			"spec:\n  replicas: 2\n")}
	}
	return nil
}

// 8a. no-pdb
func noPDB(w *Workload, o Options) []Finding {
	if w.DaemonSet != nil || w.Replicas < 2 || len(w.PDBs) > 0 {
		return nil
	}
	return []Finding{w.finding(RuleNoPDB, Info, "",
		fmt.Sprintf("no PodDisruptionBudget covers these %d replicas: a node drain can evict them all at once", w.Replicas),
		fmt.Sprintf("# a new object\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: %s\nspec:\n  maxUnavailable: 1\n  selector:\n    matchLabels:\n%s", w.Ref.Name, indent(labelsYAML(w.Template.Labels), 6))),
	}
}

func labelsYAML(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\n", k, strconv.Quote(l[k]))
	}
	return b.String()
}

// 8b. pdb-blocks-drain, reported on the PDB.
func pdbBlocksDrain(w *Workload, o Options) []Finding {
	var out []Finding
	for _, p := range w.PDBs {
		spec := p.PDB.Spec
		why := ""
		switch {
		case spec.MaxUnavailable != nil:
			if n, err := intstr.GetScaledValueFromIntOrPercent(spec.MaxUnavailable, max(int(w.Replicas), 1), true); err == nil && n == 0 {
				why = fmt.Sprintf("maxUnavailable %s", spec.MaxUnavailable.String())
			}
		case spec.MinAvailable != nil:
			if spec.MinAvailable.Type == intstr.String {
				if spec.MinAvailable.StrVal == "100%" {
					why = "minAvailable 100%"
				}
			} else if w.Replicas > 0 && spec.MinAvailable.IntVal >= w.Replicas {
				why = fmt.Sprintf("minAvailable %d with %d replicas", spec.MinAvailable.IntVal, w.Replicas)
			}
		}
		if why == "" {
			continue
		}
		out = append(out, Finding{Rule: RulePDBBlocksDrain, Severity: Warning, Object: p.Ref,
			Message: fmt.Sprintf("%s allows no eviction of %s: every node drain blocks until someone deletes a pod by hand, which no budget then protects", why, w.Ref),
			Fix:     "spec:\n  maxUnavailable: 1   # and no minAvailable\n"})
	}
	return out
}

// sidecar-like names and images: proxies and agents that serve the main container's traffic.
var sidecarWords = []string{"proxy", "envoy", "istio", "linkerd", "agent", "sidecar", "fluent", "vector", "otel", "collector", "oauth2", "cloudsql", "cloud-sql", "vault"}

// 9. sidecar-not-native
func sidecarNotNative(w *Workload, o Options) []Finding {
	cs := w.Template.Spec.Containers
	if len(cs) < 2 {
		return nil
	}
	main := map[string]bool{}
	for _, c := range w.servingContainers() {
		main[c.Name] = true
	}
	if len(main) == 0 {
		main[cs[0].Name] = true
	}
	var mainName string
	for _, c := range cs {
		if main[c.Name] {
			mainName = c.Name
			break
		}
	}
	var out []Finding
	for i := range cs {
		c := &cs[i]
		if main[c.Name] {
			continue
		}
		sev := Info
		id := strings.ToLower(c.Name + " " + c.Image)
		for _, word := range sidecarWords {
			if strings.Contains(id, word) {
				sev = Warning
				break
			}
		}
		need := "native sidecars are on by default since Kubernetes 1.29"
		if o.KubeMinor > 0 && o.KubeMinor < 29 {
			need = fmt.Sprintf("native sidecars need Kubernetes 1.29; this cluster is 1.%d", o.KubeMinor)
		}
		out = append(out, w.finding(RuleSidecarNotNative, sev, c.Name,
			fmt.Sprintf("%s runs beside %s as a regular container: both get SIGTERM at the same moment, so it may stop before %s has drained and its requests through it fail (%s)", c.Name, mainName, mainName, need),
			fmt.Sprintf("spec:\n  template:\n    spec:\n      initContainers:   # moved from containers; it stops after the main containers\n        - name: %s\n          restartPolicy: Always\n", c.Name)))
	}
	return out
}

// 10. publish-not-ready, reported on the Service.
func publishNotReady(w *Workload, o Options) []Finding {
	probed := false
	for _, c := range w.servingContainers() {
		probed = probed || c.ReadinessProbe != nil
	}
	if !probed {
		return nil
	}
	var out []Finding
	for _, s := range w.Services {
		if !s.Service.Spec.PublishNotReadyAddresses || s.Service.Spec.ClusterIP == corev1.ClusterIPNone {
			continue // a headless Service publishes peers for discovery, not for traffic
		}
		out = append(out, Finding{Rule: RulePublishNotReady, Severity: Warning, Object: s.Ref,
			Message: fmt.Sprintf("publishNotReadyAddresses routes to pods of %s that failed readiness and to terminating ones: leaving the Service through readiness does nothing, requests reach pods that are shutting down", w.Ref),
			Fix:     "spec:\n  publishNotReadyAddresses: false   # keep it only on a headless Service for peer discovery\n"})
	}
	return out
}

// The gracelab downstream's default UPSTREAM_IDLE_TIMEOUT (downstream.DefaultIdleConnTimeout,
// issue 18): a pooled connection idle this long is closed by the client.
const pooledIdleTimeout = 3 * time.Second

// 11. pooled-client-window (issue 18): a gracelab downstream (CLIENT=pooled, UPSTREAM_URL)
// keeps keep-alive connections to an upstream whose pods close them only as they exit, unless
// the upstream retires them during its preStop window (RETIRE_KEEPALIVE, on by default) and the
// pool's idle timeout (UPSTREAM_IDLE_TIMEOUT) ends before that window does. Other programs'
// pooling is not visible in a manifest.
func pooledClientWindow(w *Workload, o Options) []Finding {
	var out []Finding
	for _, c := range w.longRunning() {
		env := envOf(c)
		if env["CLIENT"] != "pooled" || env["UPSTREAM_URL"] == "" {
			continue
		}
		u, err := url.Parse(env["UPSTREAM_URL"])
		if err != nil {
			continue
		}
		idle := pooledIdleTimeout
		if d, err := time.ParseDuration(env["UPSTREAM_IDLE_TIMEOUT"]); err == nil {
			idle = d
		}
		// Go's transport resends an idempotent request that met a closed reused connection,
		// never a POST.
		sev, what := Info, "a request"
		switch env["UPSTREAM_METHOD"] {
		case "POST":
			sev, what = Warning, "a POST (never resent)"
		case "":
			what = "a POST forwarded from a caller (never resent)"
		}
		host, _, _ := strings.Cut(u.Hostname(), ".")
		for _, up := range w.set.workloads {
			if !slicesContainsService(up.Services, host) || namespaceOfRef(up.Ref) != namespaceOfRef(w.Ref) {
				continue
			}
			for _, uc := range up.servingContainers() {
				_, window, known := up.prestop(uc)
				retire := envOf(uc)["RETIRE_KEEPALIVE"] != "false"
				var why string
				switch {
				case !retire:
					why = fmt.Sprintf("%s keeps its keep-alive connections open through its preStop window (RETIRE_KEEPALIVE=false) and closes them as it exits", up.Ref)
				case !known:
					why = fmt.Sprintf("the preStop window of %s is of unknown length, so the pool's idle timeout (%s) cannot be held against it", up.Ref, seconds(idle))
				case idle >= window:
					why = fmt.Sprintf("the pool's idle timeout (%s) is not shorter than the preStop window of %s (%s): a connection idle through the window is closed by the exiting pod", seconds(idle), up.Ref, seconds(window))
				default:
					continue
				}
				out = append(out, w.finding(RulePooledClientWindow, sev, c.Name,
					fmt.Sprintf("keeps pooled keep-alive connections to %s (CLIENT=pooled), and %s; %s sent on such a connection as it closes fails (issue 18: about 1 request in 12,000 with pooled POSTs on v2)", host, why, what),
					"# an idle timeout below the upstream's preStop window, and retirement on the upstream\n"+
						"env:\n  - name: UPSTREAM_IDLE_TIMEOUT\n    value: \"3s\"\n# upstream container: RETIRE_KEEPALIVE \"true\" (the default)\n"))
			}
		}
	}
	return out
}

func envOf(c *corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}
