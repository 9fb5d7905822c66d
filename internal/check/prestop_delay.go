package check

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// PrestopDelay is how long a container's preStop hook holds its pod, when the manifest tells:
// a native sleep, an exec `sleep N`, or an httpGet hook with PrestopDelayAnnotation on the pod
// template. Package ablate uses it to derive its grace-period variant.
func PrestopDelay(tpl *corev1.PodTemplateSpec, c *corev1.Container) (time.Duration, bool) {
	kind, d, known := (&Workload{Template: tpl}).prestop(c)
	return d, kind != prestopNone && known
}
