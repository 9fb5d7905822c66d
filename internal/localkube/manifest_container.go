package localkube

import (
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gracelab/gracelab/internal/image"
)

// The validation of a Deployment's containers: their image, mounts, ports, probes and
// lifecycle hooks, each refused with the reason when the embedded cluster cannot honour it.

// validateMounts refuses the volume mounts the embedded cluster cannot honour: it mounts
// nothing, so only an emptyDir (scratch space; the program writes to this machine's file system
// instead) is harmless to leave out. A program reading a mounted file would otherwise read this
// machine's file at that path, or fail, and the drill would measure something else.
func validateMounts(c corev1.Container, volumes []corev1.Volume) error {
	byName := map[string]corev1.Volume{}
	for _, v := range volumes {
		byName[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		v, ok := byName[m.Name]
		if !ok {
			return fmt.Errorf("volumeMounts %q: no volume of that name in the pod", m.Name)
		}
		if v.EmptyDir != nil {
			continue
		}
		return fmt.Errorf("volumeMounts %q at %s: %s volumes are not mounted by the embedded cluster: give the program these settings as environment (env valueFrom or envFrom), or drill it on a real cluster (docs/sandbox.md)", m.Name, m.MountPath, volumeKind(v))
	}
	return nil
}

// volumeKind names a volume's source as the manifest spells it.
func volumeKind(v corev1.Volume) string {
	switch s := v.VolumeSource; {
	case s.ConfigMap != nil:
		return "configMap"
	case s.Secret != nil:
		return "secret"
	case s.PersistentVolumeClaim != nil:
		return "persistentVolumeClaim"
	case s.HostPath != nil:
		return "hostPath"
	case s.Projected != nil:
		return "projected"
	case s.DownwardAPI != nil:
		return "downwardAPI"
	case s.CSI != nil:
		return "csi"
	case s.Ephemeral != nil:
		return "ephemeral"
	}
	return "these"
}

// validateServing checks a container's ports, probes and hooks (serving: a container or a
// sidecar; an init container has no probes or hooks).
func validateServing(c corev1.Container, serving bool) error {
	names := map[string]bool{}
	for _, p := range c.Ports {
		if p.ContainerPort < 1 || p.ContainerPort > 65535 {
			return fmt.Errorf("containerPort %d is out of range", p.ContainerPort)
		}
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			return fmt.Errorf("port %d: protocol %s is not supported (TCP only)", p.ContainerPort, p.Protocol)
		}
		if p.Name != "" {
			if names[p.Name] {
				return fmt.Errorf("port name %q is used twice", p.Name)
			}
			names[p.Name] = true
		}
	}
	if !serving {
		return nil
	}
	for _, pr := range []struct {
		what     string
		p        *corev1.Probe
		liveness bool
	}{{"readinessProbe", c.ReadinessProbe, false}, {"livenessProbe", c.LivenessProbe, true}, {"startupProbe", c.StartupProbe, true}} {
		if pr.p == nil {
			continue
		}
		if err := validateProbe(pr.p, c, pr.liveness); err != nil {
			return fmt.Errorf("%s: %w", pr.what, err)
		}
	}
	if lc := c.Lifecycle; lc != nil {
		for _, h := range []struct {
			what string
			h    *corev1.LifecycleHandler
		}{{"postStart", lc.PostStart}, {"preStop", lc.PreStop}} {
			if h.h == nil {
				continue
			}
			if err := validateHandler(*h.h, c); err != nil {
				return fmt.Errorf("lifecycle.%s: %w", h.what, err)
			}
		}
	}
	return nil
}

// validateContainer checks what the embedded cluster needs of one container (main or init)
// and returns the program arguments its image maps to.
func validateContainer(c corev1.Container, images map[string][]string, programs *image.Table) ([]string, error) {
	if c.Image == "" {
		return nil, errors.New("image is required")
	}
	if programs != nil {
		return nil, nil // every image is checked at once, command and args resolved per pod
	}
	args, ok := images[imageRepository(c.Image)]
	if !ok {
		return nil, fmt.Errorf("image %q is not mapped to a command (known: %s)", c.Image, strings.Join(sortedKeys(images), ", "))
	}
	if len(c.Command) > 0 || len(c.Args) > 0 {
		return nil, fmt.Errorf("command/args cannot be honoured: the embedded cluster runs the command mapped to image %q", imageRepository(c.Image))
	}
	return args, nil
}

func validateProbe(p *corev1.Probe, c corev1.Container, liveness bool) error {
	h := p.ProbeHandler
	n := countTrue(h.HTTPGet != nil, h.TCPSocket != nil, h.Exec != nil)
	if h.GRPC != nil {
		return errors.New("grpc probes are not supported by the embedded cluster")
	}
	if n != 1 {
		return errors.New("exactly one of httpGet, tcpSocket, exec must be set")
	}
	if err := validateTarget(h.HTTPGet, h.TCPSocket, h.Exec, c); err != nil {
		return err
	}
	for name, v := range map[string]int32{"initialDelaySeconds": p.InitialDelaySeconds, "periodSeconds": p.PeriodSeconds, "timeoutSeconds": p.TimeoutSeconds, "successThreshold": p.SuccessThreshold, "failureThreshold": p.FailureThreshold} {
		if v < 0 {
			return fmt.Errorf("%s must not be negative", name)
		}
	}
	if liveness && p.SuccessThreshold > 1 {
		return errors.New("successThreshold must be 1 for a liveness or startup probe")
	}
	return nil
}

func validateHandler(h corev1.LifecycleHandler, c corev1.Container) error {
	n := countTrue(h.HTTPGet != nil, h.Exec != nil, h.Sleep != nil)
	if h.Sleep != nil && h.Sleep.Seconds < 0 {
		return errors.New("sleep.seconds must not be negative")
	}
	if h.TCPSocket != nil {
		return errors.New("tcpSocket is not a valid lifecycle hook (Kubernetes ignores it); use httpGet, exec or sleep")
	}
	if n != 1 {
		return errors.New("exactly one of httpGet, exec, sleep must be set")
	}
	return validateTarget(h.HTTPGet, nil, h.Exec, c)
}

// countTrue counts the handlers set, for "exactly one of" checks.
func countTrue(set ...bool) int {
	n := 0
	for _, b := range set {
		if b {
			n++
		}
	}
	return n
}

func validateTarget(hg *corev1.HTTPGetAction, tcp *corev1.TCPSocketAction, ex *corev1.ExecAction, c corev1.Container) error {
	if hg != nil {
		if hg.Scheme != "" && hg.Scheme != corev1.URISchemeHTTP && hg.Scheme != corev1.URISchemeHTTPS {
			return fmt.Errorf("httpGet.scheme %q is not HTTP or HTTPS", hg.Scheme)
		}
		if _, err := resolvePort(hg.Port, c); err != nil {
			return fmt.Errorf("httpGet.port: %w", err)
		}
	}
	if tcp != nil {
		if _, err := resolvePort(tcp.Port, c); err != nil {
			return fmt.Errorf("tcpSocket.port: %w", err)
		}
	}
	if ex != nil && len(ex.Command) == 0 {
		return errors.New("exec.command is empty")
	}
	return nil
}

// resolvePort turns a number or a container port name into a container port number.
func resolvePort(p intstr.IntOrString, c corev1.Container) (int32, error) {
	if p.Type == intstr.Int {
		if p.IntVal < 1 || p.IntVal > 65535 {
			return 0, fmt.Errorf("port %d is out of range", p.IntVal)
		}
		return p.IntVal, nil
	}
	if p.StrVal == "" {
		return 0, errors.New("port is required")
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, nil
		}
	}
	return 0, fmt.Errorf("no container port named %q", p.StrVal)
}

// imageRepository strips the tag or digest (and a docker.io/ prefix): the tag is not an image here.
func imageRepository(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return strings.TrimPrefix(image, "docker.io/")
}
