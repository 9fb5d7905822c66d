package check

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

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
