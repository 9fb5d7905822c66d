package check

// Rules 6 to 10 and the pooled-client rule: probes, serving capacity, disruption budgets,
// sidecars, Services and keep-alive clients. Rules 1 to 5 (shutdown timing) are in rules.go.

import (
	"fmt"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

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
			fmt.Sprintf("no readiness probe while %s routes to it: a new pod gets traffic once its container is reported running, listening or not (refused connections during every rollout), and a pod cannot leave the Service by failing readiness", w.Services[0].Ref),
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
