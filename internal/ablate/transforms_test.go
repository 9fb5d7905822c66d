package ablate

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gracelab/gracelab/internal/manifest"
)

func editStrings(edits []Edit) []string {
	out := make([]string, len(edits))
	for i, e := range edits {
		out[i] = e.String()
	}
	return out
}

// Every change a variant makes is listed, container by container, in the containers' order.
func TestVariantEditsListEveryChange(t *testing.T) {
	_, _, _, vs := builtinVariants(t)
	// {c} is the Deployment's name, the same as its container's.
	want := map[string][]string{
		"v1-only-prestop": {
			`spec.template.spec.containers[{c}].lifecycle.preStop: added from v2 (httpGet /prestop, 5s)`,
			`spec.template.spec.containers[{c}].env[PRESTOP_DELAY]: added "5s"`,
			`spec.template.metadata.annotations[gracelab.io/prestop-delay]: added "5s" from v2`,
		},
		"v1-only-probes": {
			`spec.template.spec.containers[{c}].readinessProbe: added from v2`,
			`spec.template.spec.containers[{c}].livenessProbe: added from v2`,
		},
		"v2-no-probes": {
			`spec.template.spec.containers[{c}].readinessProbe: removed`,
			`spec.template.spec.containers[{c}].livenessProbe: removed`,
		},
		"v2-prestop-sleep-1s": {
			`spec.template.spec.containers[{c}].lifecycle.preStop: httpGet /prestop, 5s -> sleep 1s`,
			`spec.template.metadata.annotations[gracelab.io/prestop-delay]: removed (was "5s"): the hook it described is gone`,
		},
		"v1-only-drain": {
			`spec.template.spec.containers[{c}].env[SHUTDOWN]: "immediate" -> "graceful"`,
			`spec.template.spec.containers[{c}].env[SHUTDOWN_DELAY]: added "0s"`,
			`spec.template.spec.containers[{c}].env[DRAIN_TIMEOUT]: added "15s"`,
		},
	}
	for name, per := range want {
		var w []string
		for _, dep := range []string{"downstream", "upstream"} {
			for _, e := range per {
				w = append(w, "deployment "+dep+": "+strings.ReplaceAll(e, "{c}", dep))
			}
		}
		if got := editStrings(variant(t, vs, name).Edits); !slices.Equal(got, w) {
			t.Errorf("%s edits\n got %q\nwant %q", name, got, w)
		}
	}
}

// only-drain copies the settings of every container v2 names, and the pod's grace period once,
// with the first container.
func TestOnlyDrainTwoContainers(t *testing.T) {
	container := func(name string, env ...string) corev1.Container {
		c := corev1.Container{Name: name}
		for i := 0; i < len(env); i += 2 {
			c.Env = append(c.Env, corev1.EnvVar{Name: env[i], Value: env[i+1]})
		}
		return c
	}
	dep := func(grace *int64, cs ...corev1.Container) *appsv1.Deployment {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "app"}}
		d.Spec.Template.Spec.Containers = cs
		d.Spec.Template.Spec.TerminationGracePeriodSeconds = grace
		return d
	}
	grace := int64(45)
	v2 := []manifest.Document{{Object: dep(&grace,
		container("main", "SHUTDOWN", "graceful", "DRAIN_TIMEOUT", "20s"),
		container("side", "SHUTDOWN", "graceful"))}}
	v1 := dep(nil, container("main", "SHUTDOWN", "immediate"), container("side"), container("extra", "SHUTDOWN", "immediate"))

	edits, _, err := onlyDrain(v2).edit(v1)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`deployment app: spec.template.spec.containers[main].env[SHUTDOWN]: "immediate" -> "graceful"`,
		`deployment app: spec.template.spec.containers[main].env[DRAIN_TIMEOUT]: added "20s"`,
		`deployment app: spec.template.spec.terminationGracePeriodSeconds: set to v2's 45`,
		`deployment app: spec.template.spec.containers[side].env[SHUTDOWN]: added "graceful"`,
	}
	if got := editStrings(edits); !slices.Equal(got, want) {
		t.Errorf("edits\n got %q\nwant %q", got, want)
	}
	cs := v1.Spec.Template.Spec.Containers
	if env(&cs[0], "SHUTDOWN") != "graceful" || env(&cs[1], "SHUTDOWN") != "graceful" || env(&cs[2], "SHUTDOWN") != "immediate" ||
		v1.Spec.Template.Spec.TerminationGracePeriodSeconds == nil || *v1.Spec.Template.Spec.TerminationGracePeriodSeconds != 45 {
		t.Errorf("containers %+v, grace %v", cs, v1.Spec.Template.Spec.TerminationGracePeriodSeconds)
	}

	// A sidecar listed first that v2 gives no SHUTDOWN: the grace period still comes along.
	v2 = []manifest.Document{{Object: dep(&grace, container("proxy"), container("main", "SHUTDOWN", "graceful"))}}
	v1 = dep(nil, container("proxy"), container("main"))
	if edits, _, err = onlyDrain(v2).edit(v1); err != nil {
		t.Fatal(err)
	}
	want = []string{
		`deployment app: spec.template.spec.containers[main].env[SHUTDOWN]: added "graceful"`,
		`deployment app: spec.template.spec.terminationGracePeriodSeconds: set to v2's 45`,
	}
	if got := editStrings(edits); !slices.Equal(got, want) {
		t.Errorf("sidecar first: edits\n got %q\nwant %q", got, want)
	}
}
