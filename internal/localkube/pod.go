package localkube

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gracelab/gracelab/internal/podenv"
	"github.com/gracelab/gracelab/internal/sandbox"
)

// A pod as the kubelet holds it: its spec, address, and the state of each of its containers.

type pod struct {
	name    string
	d       *deployment
	rs      *replicaSet
	uid     string
	labels  map[string]string
	grace   time.Duration
	ip      string
	portMap map[int32]int32 // container port -> host port, mapped mode only
	// ctrs are the init containers (native sidecars among them) in order, then the containers.
	ctrs     []*ctr
	created  time.Time
	deleteCh chan struct{} // closed when deletion starts
	net      *podNet
	logPath  string
	tail     tailBuffer
	sb       *sandbox.Sandbox // SandboxNS: the pod's namespaces, from before its first start to teardown
	sbDir    string
	sbClient *http.Client // the prober, dialling into the sandbox

	// Guarded by Cluster.mu.
	node        string            // the node it is bound to; "" while pending (nodes.go)
	scheduled   chan struct{}     // closed once bound to a node
	annotations map[string]string // the pod's own, beside its template's (pod-deletion-cost)
	inst        *container        // the first container's current run, for its PID
	running     bool              // a process of one of its containers runs
	ready       bool              // every container and sidecar is ready
	readySince  time.Time
	terminating bool
	deletedAt   time.Time
	// startingUntil is when the kubelet's creation of its sandbox and container ends, while
	// that is under way; zero otherwise.
	startingUntil time.Time
	exitedFinal   bool // the last container has exited and will not restart
	restarts      int  // of all its containers
	lastProbe     string
	lastExit      string
}

// podNet is the part of a pod the proxies look at without the cluster lock.
type podNet struct {
	removed atomic.Bool // the pod's network is torn down: connections to it go nowhere
}

// ctrRole is what a container is to its pod, which decides when the kubelet starts and stops it.
type ctrRole int

const (
	roleInit    ctrRole = iota // runs alone, to completion, before the next one starts
	roleSidecar                // an init container with restartPolicy Always: runs beside the rest
	roleMain                   // spec.containers
)

// ctr is one container of a pod: its spec, command line and environment, and its state.
type ctr struct {
	spec corev1.Container
	role ctrRole
	argv []string
	env  []string
	// postStarted is closed once a run's postStart hook has completed (the next container
	// starts then); startedUp once a run's startup probe has succeeded (the next init
	// container starts after a sidecar's); gone once it has stopped for good (a sidecar
	// stops after the containers and after the sidecars declared after it).
	postStarted, startedUp, gone chan struct{}
	postOnce, upOnce             sync.Once

	// Guarded by Cluster.mu.
	inst     *container
	running  bool
	ready    bool
	restarts int
}

func newCtr(spec corev1.Container, role ctrRole) *ctr {
	return &ctr{spec: spec, role: role, postStarted: make(chan struct{}), startedUp: make(chan struct{}), gone: make(chan struct{})}
}

func (ct *ctr) markPostStarted() { ct.postOnce.Do(func() { close(ct.postStarted) }) }
func (ct *ctr) markStartedUp()   { ct.upOnce.Do(func() { close(ct.startedUp) }) }

// what names the container in events: nothing for a pod's only container, as before sidecars.
func (ct *ctr) what(p *pod) string {
	switch {
	case ct.role == roleInit:
		return "init container " + ct.spec.Name
	case ct.role == roleSidecar:
		return "sidecar " + ct.spec.Name
	case len(p.serving()) > 1:
		return "container " + ct.spec.Name
	}
	return ""
}

// serving are the containers whose readiness makes the pod's: the containers and sidecars.
func (p *pod) serving() []*ctr {
	var out []*ctr
	for _, ct := range p.ctrs {
		if ct.role != roleInit {
			out = append(out, ct)
		}
	}
	return out
}

// targetPort resolves a Service's targetPort as the endpoints controller does: a number, or
// a port name looked up in the containers, then in the sidecars.
func (p *pod) targetPort(port intstr.IntOrString) (int32, error) {
	return resolvePort(port, corev1.Container{Ports: templatePorts(&p.rs.template.Spec)})
}

// container is one run of one of the pod's containers.
type container struct {
	ct   *ctr
	cmd  *exec.Cmd        // on the host, or
	proc *sandbox.Process // in the pod's sandbox
	// stdioDone is closed once a sandboxed process's stderr pipe has been read to its end.
	stdioDone chan struct{}
	started   time.Time
	exited    chan struct{} // closed after the exit is recorded
	logFile   *os.File
	flush     func() // writes out what the output's redaction holds back (redact.go)
	killWhy   string // why the kubelet stopped it, if it did (guarded by Cluster.mu)
	code      int    // its exit code, valid once exited is closed
}

func (p *pod) available(minReady time.Duration, now time.Time) bool {
	return p.ready && !p.readySince.IsZero() && now.Sub(p.readySince) >= minReady
}

// addr is where the pod serves containerPort: its own IP and the same port, or 127.0.0.1 and
// the mapped port.
func (p *pod) addr(containerPort int32) string {
	port := containerPort
	if hp, ok := p.portMap[containerPort]; ok {
		port = hp
	}
	return net.JoinHostPort(p.ip, strconv.Itoa(int(port)))
}

func (p *pod) logHint() string {
	if p.logPath != "" {
		return " (log: " + p.logPath + ")"
	}
	if t := p.tail.lastLine(); t != "" {
		return " (stderr: " + t + ")"
	}
	return ""
}

// What the downward API says about the node: one node, on this machine's loopback.
const (
	nodeName = "localkube"
	hostIP   = "127.0.0.1"
)

// podEnvLocked builds a container's process environment: PATH (so exec probes find
// commands), HOSTNAME, the manifest's env and envFrom as the kubelet resolves them (package
// podenv: ConfigMaps, Secrets, the downward API, $(VAR)) with Service names rewritten as
// cluster DNS would resolve them, then HOST (the pod's address) and PORT (its first container
// port, unless the manifest sets PORT; mapped to the host port off Linux).
func (c *Cluster) podEnvLocked(p *pod, ct *corev1.Container) ([]string, podenv.Env, error) {
	self := podenv.Pod{Name: p.name, Namespace: p.d.spec.namespace, UID: p.uid, Labels: p.labels,
		Annotations: p.rs.template.Annotations, NodeName: p.node, ServiceAccountName: p.rs.template.Spec.ServiceAccountName,
		PodIPs: []string{p.ip}, HostIPs: []string{hostIP}}
	resolved, err := podenv.Resolve(self, &p.rs.template.Spec, ct, c.set.sources, nil)
	if err != nil {
		return nil, nil, err
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOSTNAME=" + p.name}
	lookup := c.serviceResolverLocked(p.d.spec.namespace)
	portSet := ""
	for _, e := range resolved {
		v := e.Value
		if c.sandboxMode != SandboxNS { // a sandbox resolves Service names itself
			v = rewriteServiceRef(v, lookup)
		}
		if e.Secret && v != e.Value {
			c.redact.Add(v) // the secret as this pod got it
		}
		if e.Name == "PORT" {
			portSet = v
			continue
		}
		env = append(env, e.Name+"="+v)
	}
	env = append(env, "HOST="+p.ip)
	switch {
	case portSet != "":
		if n, err := strconv.Atoi(portSet); err == nil && p.portMap != nil {
			if hp, ok := p.portMap[int32(n)]; ok {
				portSet = strconv.Itoa(int(hp))
			}
		}
		env = append(env, "PORT="+portSet)
	case len(ct.Ports) > 0:
		cp := ct.Ports[0].ContainerPort
		if hp, ok := p.portMap[cp]; ok {
			cp = hp
		}
		env = append(env, "PORT="+strconv.Itoa(int(cp)))
	}
	return env, resolved, nil
}

// argvLocked is a container's command line: with Programs, its image's program and the
// manifest's command and args ($(VAR)-expanded) as Kubernetes composes them; else Executable
// with the arguments Images maps the image to.
func (c *Cluster) argvLocked(ct *corev1.Container, env podenv.Env, imageArgs []string) ([]string, error) {
	if c.opts.Programs == nil {
		return append([]string{c.opts.Executable}, imageArgs...), nil
	}
	command, args := podenv.ExpandCommand(ct, env)
	return c.opts.Programs.Argv(ct.Image, command, args)
}

// serviceResolverLocked maps a Service DNS name and port, as seen from namespace podNS, to the
// Service proxy's address.
func (c *Cluster) serviceResolverLocked(podNS string) resolver {
	table := map[string]map[int]string{}
	for _, s := range c.services {
		ports := map[int]string{}
		for _, pp := range s.ports {
			ports[int(s.spec.ports[pp.index].Port)] = pp.clusterAddr
		}
		for _, n := range dnsNames(s.spec.name, s.spec.namespace, podNS) {
			table[n] = ports
		}
	}
	return func(host string, port int) (string, bool) {
		ports, ok := table[host]
		if !ok {
			return "", false
		}
		if a, ok := ports[port]; ok {
			return a, true
		}
		// Not a port of the Service: keep it, on the Service's address, as a real cluster
		// would (and fail the same way).
		for _, a := range ports {
			h, _, _ := net.SplitHostPort(a)
			return net.JoinHostPort(h, strconv.Itoa(port)), true
		}
		return "", false
	}
}

func logOnly(p *pod) string {
	if p.logPath != "" {
		return " (log: " + p.logPath + ")"
	}
	return ""
}

// tailBuffer keeps the last few KB of a pod's stderr so errors can say why it died.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 4 << 10

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > tailSize {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-tailSize:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) lastLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return lastLine(string(t.buf))
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\r\n ")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// signal sends sig to the container's process group.
func (inst *container) signal(sig syscall.Signal) error {
	if inst.proc != nil {
		return inst.proc.Signal(sig)
	}
	return signalGroup(inst.cmd.Process.Pid, sig)
}

// wait blocks until the process has exited and returns how it ended.
func (inst *container) wait() (code int, detail string) {
	if inst.proc != nil {
		<-inst.proc.Done
		return waitStatusDetail(inst.proc.Status)
	}
	_ = inst.cmd.Wait()
	return exitDetail(inst.cmd)
}

func (inst *container) pid() int {
	if inst.proc != nil {
		return inst.proc.Pid
	}
	return inst.cmd.Process.Pid
}
