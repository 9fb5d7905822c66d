package ablate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gracelab/gracelab/internal/check"
	"github.com/gracelab/gracelab/internal/manifest"
)

func containerField(c *corev1.Container, field string) string {
	return fmt.Sprintf("spec.template.spec.containers[%s].%s", c.Name, field)
}

// eachContainer applies edit to every container of d's pod template, in order, and collects
// the edits it reports.
func eachContainer(d *appsv1.Deployment, edit func(c *corev1.Container) []Edit) []Edit {
	var edits []Edit
	for i := range d.Spec.Template.Spec.Containers {
		edits = append(edits, edit(&d.Spec.Template.Spec.Containers[i])...)
	}
	return edits
}

func hasPrestop(c *corev1.Container) bool {
	return c.Lifecycle != nil && c.Lifecycle.PreStop != nil
}

// describeHook says what a preStop hook does, with its length when the manifest tells.
func describeHook(tpl *corev1.PodTemplateSpec, c *corev1.Container) string {
	h := c.Lifecycle.PreStop
	what := "a handler"
	switch {
	case h.Sleep != nil:
		what = fmt.Sprintf("sleep %ds", h.Sleep.Seconds)
	case h.HTTPGet != nil:
		what = "httpGet " + h.HTTPGet.Path
	case h.Exec != nil:
		what = fmt.Sprintf("exec %q", h.Exec.Command)
	}
	if d, ok := check.PrestopDelay(tpl, c); ok && h.Sleep == nil {
		what += fmt.Sprintf(", %s", d)
	}
	return what
}

// dropDelayAnnotation removes check's preStop-length annotation once the httpGet hook it
// describes is gone.
func dropDelayAnnotation(d *appsv1.Deployment) []Edit {
	v, ok := d.Spec.Template.Annotations[check.PrestopDelayAnnotation]
	if !ok {
		return nil
	}
	delete(d.Spec.Template.Annotations, check.PrestopDelayAnnotation)
	return []Edit{{d.Name, "spec.template.metadata.annotations[" + check.PrestopDelayAnnotation + "]", fmt.Sprintf("removed (was %q): the hook it described is gone", v)}}
}

var noPrestop = transform{
	suffix: "no-prestop", protection: PreStop,
	summary: "no preStop hook: SIGTERM comes as soon as the pod is deleted, while the Service may still route to it",
	absent:  "no container has a preStop hook",
	edit: func(d *appsv1.Deployment) ([]Edit, string, error) {
		edits := eachContainer(d, func(c *corev1.Container) []Edit {
			if !hasPrestop(c) {
				return nil
			}
			e := Edit{d.Name, containerField(c, "lifecycle.preStop"), "removed (was " + describeHook(&d.Spec.Template, c) + ")"}
			c.Lifecycle.PreStop = nil
			if c.Lifecycle.PostStart == nil && c.Lifecycle.StopSignal == nil {
				c.Lifecycle = nil
			}
			return []Edit{e}
		})
		if len(edits) > 0 {
			edits = append(edits, dropDelayAnnotation(d)...)
		}
		return edits, "", nil
	},
}

// nativeSleepSeconds is the preStop length of the prestop-sleep variant: shorter than the
// endpoint propagation measured on real clusters, to show whether the length matters.
const nativeSleepSeconds = 1

var prestopSleep = transform{
	suffix: "prestop-sleep-1s", protection: PreStopSleep,
	summary: "the preStop hook replaced by the native sleep action of 1 s (Kubernetes 1.30+)",
	absent:  "no container has a preStop hook to replace",
	edit: func(d *appsv1.Deployment) ([]Edit, string, error) {
		edits := eachContainer(d, func(c *corev1.Container) []Edit {
			if !hasPrestop(c) {
				return nil
			}
			was := describeHook(&d.Spec.Template, c)
			c.Lifecycle.PreStop = &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: nativeSleepSeconds}}
			return []Edit{{d.Name, containerField(c, "lifecycle.preStop"), fmt.Sprintf("%s -> sleep %ds", was, nativeSleepSeconds)}}
		})
		if len(edits) > 0 {
			edits = append(edits, dropDelayAnnotation(d)...)
		}
		return edits, "", nil
	},
}

var noProbes = transform{
	suffix: "no-probes", protection: Probes,
	summary: "no readiness and liveness probes: a new pod counts as ready once the kubelet reports its container running (0.04-1 s after the start), listening or not",
	absent:  "no container has a readiness or liveness probe",
	edit: func(d *appsv1.Deployment) ([]Edit, string, error) {
		edits := eachContainer(d, func(c *corev1.Container) []Edit {
			var removed []Edit
			if c.ReadinessProbe != nil {
				removed = append(removed, Edit{d.Name, containerField(c, "readinessProbe"), "removed"})
				c.ReadinessProbe = nil
			}
			if c.LivenessProbe != nil {
				removed = append(removed, Edit{d.Name, containerField(c, "livenessProbe"), "removed"})
				c.LivenessProbe = nil
			}
			return removed
		})
		note := ""
		if len(edits) > 0 && slices.ContainsFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.StartupProbe != nil }) {
			note = "startup probes are kept: they gate readiness only until the first success"
		}
		return edits, note, nil
	},
}

// defaultRollingUpdate is what Kubernetes resolves the default strategy (25 % / 25 %) to:
// maxSurge rounds up, maxUnavailable down.
func defaultRollingUpdate(replicas int32) (surge, unavailable int) {
	surge, unavailable, _ = resolveRollingUpdate(appsv1.DeploymentStrategy{}, replicas)
	return surge, unavailable
}

func replicasOf(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

func describeStrategy(s appsv1.DeploymentStrategy) string {
	if s.Type == appsv1.RecreateDeploymentStrategyType {
		return "Recreate"
	}
	if s.RollingUpdate == nil {
		return "RollingUpdate with the defaults"
	}
	str := func(v *intstr.IntOrString) string {
		if v == nil {
			return "25%"
		}
		return v.String()
	}
	return fmt.Sprintf("maxUnavailable %s, maxSurge %s", str(s.RollingUpdate.MaxUnavailable), str(s.RollingUpdate.MaxSurge))
}

var noStrategy = transform{
	suffix: "no-strategy", protection: Strategy,
	summary: "no strategy block: the default RollingUpdate, maxSurge 25 % (rounded up) and maxUnavailable 25 % (rounded down)",
	absent:  "no Deployment sets a strategy: it already runs the default",
	edit: func(d *appsv1.Deployment) ([]Edit, string, error) {
		if d.Spec.Strategy.Type == "" && d.Spec.Strategy.RollingUpdate == nil {
			return nil, "", nil
		}
		old := d.Spec.Strategy
		d.Spec.Strategy = appsv1.DeploymentStrategy{}
		n := replicasOf(d)
		surge, unavailable := defaultRollingUpdate(n)
		note := fmt.Sprintf("%s at %d replicas: the default resolves to maxSurge %d, maxUnavailable %d", d.Name, n, surge, unavailable)
		if oldSurge, oldUnavailable, ok := resolveRollingUpdate(old, n); ok && oldSurge == surge && oldUnavailable == unavailable {
			note += ", the same as the block: expect no effect (at 4 replicas one pod may be unavailable)"
		}
		return []Edit{{d.Name, "spec.strategy", "removed (was " + describeStrategy(old) + ")"}}, note, nil
	},
}

// resolveRollingUpdate is what a RollingUpdate block resolves to at n replicas (false for Recreate).
func resolveRollingUpdate(s appsv1.DeploymentStrategy, n int32) (surge, unavailable int, ok bool) {
	if s.Type == appsv1.RecreateDeploymentStrategyType {
		return 0, 0, false
	}
	quarter := intstr.FromString("25%")
	ms, mu := &quarter, &quarter
	if s.RollingUpdate != nil {
		if s.RollingUpdate.MaxSurge != nil {
			ms = s.RollingUpdate.MaxSurge
		}
		if s.RollingUpdate.MaxUnavailable != nil {
			mu = s.RollingUpdate.MaxUnavailable
		}
	}
	surge, err1 := intstr.GetScaledValueFromIntOrPercent(ms, int(n), true)
	unavailable, err2 := intstr.GetScaledValueFromIntOrPercent(mu, int(n), false)
	return surge, unavailable, err1 == nil && err2 == nil
}

var errUnknownDelay = errors.New("the preStop hook's length is not in the manifest (annotate the pod template with " + check.PrestopDelayAnnotation + ")")

var gracePrestop = transform{
	suffix: "grace-prestop", protection: GracePeriod,
	summary: "terminationGracePeriodSeconds cut to just the preStop delay, leaving nothing for the drain after SIGTERM",
	absent:  "no container has a preStop hook, so no grace period of just its delay exists",
	edit: func(d *appsv1.Deployment) ([]Edit, string, error) {
		var longest time.Duration
		found := false
		for i := range d.Spec.Template.Spec.Containers {
			c := &d.Spec.Template.Spec.Containers[i]
			if !hasPrestop(c) {
				continue
			}
			delay, ok := check.PrestopDelay(&d.Spec.Template, c)
			if !ok {
				return nil, "", errUnknownDelay
			}
			found = true
			longest = max(longest, delay)
		}
		if !found {
			return nil, "", nil
		}
		seconds := int64(math.Ceil(longest.Seconds()))
		was := "unset (30)"
		if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
			if *g <= seconds {
				return nil, "", fmt.Errorf("terminationGracePeriodSeconds %d is already no longer than the preStop delay %s", *g, longest)
			}
			was = strconv.FormatInt(*g, 10)
		}
		d.Spec.Template.Spec.TerminationGracePeriodSeconds = &seconds
		note := "the kubelet still grants a one-off 2 s after a preStop hook that uses up the grace period, so SIGTERM handling gets about 2 s before SIGKILL, not 0"
		return []Edit{{d.Name, "spec.template.spec.terminationGracePeriodSeconds", fmt.Sprintf("%s -> %d (the preStop delay)", was, seconds)}}, note, nil
	},
}

func envIndex(c *corev1.Container, name string) int {
	for i, e := range c.Env {
		if e.Name == name {
			return i
		}
	}
	return -1
}

// setEnv sets a literal env value; it returns the edit, none when nothing changed.
func setEnv(d *appsv1.Deployment, c *corev1.Container, name, value string) []Edit {
	field := containerField(c, "env["+name+"]")
	if i := envIndex(c, name); i >= 0 {
		if c.Env[i].ValueFrom == nil && c.Env[i].Value == value {
			return nil
		}
		was := strconv.Quote(c.Env[i].Value)
		if c.Env[i].ValueFrom != nil {
			was = "a reference"
		}
		c.Env[i] = corev1.EnvVar{Name: name, Value: value}
		return []Edit{{d.Name, field, fmt.Sprintf("%s -> %q", was, value)}}
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
	return []Edit{{d.Name, field, fmt.Sprintf("added %q", value)}}
}

// envTransform sets name to value in every container whose env has name with another value
// (gracelab's own services: the variable is how their behaviour is chosen).
func envTransform(suffix string, p Protection, summary, name, value string) transform {
	return transform{
		suffix: suffix, protection: p, summary: summary,
		absent: fmt.Sprintf("no container sets %s to anything but %q", name, value),
		edit: func(d *appsv1.Deployment) ([]Edit, string, error) {
			return eachContainer(d, func(c *corev1.Container) []Edit {
				if envIndex(c, name) < 0 {
					return nil
				}
				return setEnv(d, c, name, value)
			}), "", nil
		},
	}
}

var (
	noDrain = envTransform("no-drain", Drain,
		"no drain: SHUTDOWN=immediate, the process dies on SIGTERM with requests in flight (after the preStop hook)",
		"SHUTDOWN", "immediate")
	noRetries = envTransform("no-retries", Retries,
		"no retries: RETRY_ATTEMPTS=1, a failed upstream call fails the request",
		"RETRY_ATTEMPTS", "1")
	perRequestClient = envTransform("per-request-client", PooledClient,
		"a new connection per upstream call (CLIENT=per-request) instead of the pooled keep-alive client",
		"CLIENT", "per-request")
)

// fromV2 finds the container of the same name in the v2 Deployment of the same name.
func fromV2(v2 []manifest.Document, d *appsv1.Deployment, c *corev1.Container) (*appsv1.Deployment, *corev1.Container) {
	for _, doc := range v2 {
		src, ok := doc.Object.(*appsv1.Deployment)
		if !ok || src.Name != d.Name {
			continue
		}
		for i := range src.Spec.Template.Spec.Containers {
			if src.Spec.Template.Spec.Containers[i].Name == c.Name {
				return src, &src.Spec.Template.Spec.Containers[i]
			}
		}
	}
	return nil, nil
}

// eachFromV2 applies edit to every container of d that has a namesake in v2's Deployment of
// the same name, in order, and collects the edits it reports.
func eachFromV2(v2 []manifest.Document, d *appsv1.Deployment, edit func(c *corev1.Container, srcDep *appsv1.Deployment, src *corev1.Container) []Edit) []Edit {
	var edits []Edit
	for i := range d.Spec.Template.Spec.Containers {
		c := &d.Spec.Template.Spec.Containers[i]
		if srcDep, src := fromV2(v2, d, c); src != nil {
			edits = append(edits, edit(c, srcDep, src)...)
		}
	}
	return edits
}

// copyEnv copies the named variables the v2 container sets.
func copyEnv(d *appsv1.Deployment, c, src *corev1.Container, names ...string) []Edit {
	var edits []Edit
	for _, n := range names {
		if i := envIndex(src, n); i >= 0 {
			edits = append(edits, setEnv(d, c, n, src.Env[i].Value)...)
		}
	}
	return edits
}

func onlyPrestop(v2 []manifest.Document) transform {
	return transform{
		suffix: "only-prestop", protection: PreStop, adds: true,
		summary: "v1 plus v2's preStop delay alone (the process still dies at once on SIGTERM)",
		absent:  "v2 has no preStop hook to add",
		edit: func(d *appsv1.Deployment) ([]Edit, string, error) {
			return eachFromV2(v2, d, func(c *corev1.Container, srcDep *appsv1.Deployment, src *corev1.Container) []Edit {
				if !hasPrestop(src) {
					return nil
				}
				if c.Lifecycle == nil {
					c.Lifecycle = &corev1.Lifecycle{}
				}
				c.Lifecycle.PreStop = src.Lifecycle.PreStop.DeepCopy()
				edits := []Edit{{d.Name, containerField(c, "lifecycle.preStop"), "added from v2 (" + describeHook(&srcDep.Spec.Template, src) + ")"}}
				// The httpGet hook waits PRESTOP_DELAY; its declared length goes with it.
				edits = append(edits, copyEnv(d, c, src, "PRESTOP_DELAY")...)
				if v, ok := srcDep.Spec.Template.Annotations[check.PrestopDelayAnnotation]; ok && d.Spec.Template.Annotations[check.PrestopDelayAnnotation] != v {
					if d.Spec.Template.Annotations == nil {
						d.Spec.Template.Annotations = map[string]string{}
					}
					d.Spec.Template.Annotations[check.PrestopDelayAnnotation] = v
					edits = append(edits, Edit{d.Name, "spec.template.metadata.annotations[" + check.PrestopDelayAnnotation + "]", fmt.Sprintf("added %q from v2", v)})
				}
				return edits
			}), "", nil
		},
	}
}

func onlyProbes(v2 []manifest.Document) transform {
	return transform{
		suffix: "only-probes", protection: Probes, adds: true,
		summary: "v1 plus v2's readiness and liveness probes alone",
		absent:  "v2 has no probes to add",
		edit: func(d *appsv1.Deployment) ([]Edit, string, error) {
			return eachFromV2(v2, d, func(c *corev1.Container, _ *appsv1.Deployment, src *corev1.Container) []Edit {
				var edits []Edit
				if src.ReadinessProbe != nil {
					c.ReadinessProbe = src.ReadinessProbe.DeepCopy()
					edits = append(edits, Edit{d.Name, containerField(c, "readinessProbe"), "added from v2"})
				}
				if src.LivenessProbe != nil {
					c.LivenessProbe = src.LivenessProbe.DeepCopy()
					edits = append(edits, Edit{d.Name, containerField(c, "livenessProbe"), "added from v2"})
				}
				return edits
			}), "", nil
		},
	}
}

func onlyDrain(v2 []manifest.Document) transform {
	return transform{
		suffix: "only-drain", protection: Drain, adds: true,
		summary: "v1 plus v2's graceful SIGTERM handling alone (SHUTDOWN=graceful, its drain settings and grace period)",
		absent:  "v2 has no SHUTDOWN setting to add",
		edit: func(d *appsv1.Deployment) ([]Edit, string, error) {
			return eachFromV2(v2, d, func(c *corev1.Container, srcDep *appsv1.Deployment, src *corev1.Container) []Edit {
				if envIndex(src, "SHUTDOWN") < 0 {
					return nil
				}
				edits := copyEnv(d, c, src, "SHUTDOWN", "SHUTDOWN_DELAY", "DRAIN_TIMEOUT")
				// The grace period is the pod's: copied with the first container that gets v2's
				// SHUTDOWN (a sidecar without one may come first); once set, later ones see it equal.
				if g := srcDep.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
					cur := int64(corev1.DefaultTerminationGracePeriodSeconds)
					if p := d.Spec.Template.Spec.TerminationGracePeriodSeconds; p != nil {
						cur = *p
					}
					if cur != *g {
						v := *g
						d.Spec.Template.Spec.TerminationGracePeriodSeconds = &v
						edits = append(edits, Edit{d.Name, "spec.template.spec.terminationGracePeriodSeconds", fmt.Sprintf("set to v2's %d", v)})
					}
				}
				return edits
			}), "", nil
		},
	}
}
