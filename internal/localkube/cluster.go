// Package localkube is the embedded cluster: it runs the Deployments and Services of a manifest
// directory as local processes on one machine, with a Deployment controller, a kubelet and a
// Service proxy that reproduce what a real cluster does to requests during a rolling restart
// (surge and unavailability limits, probes, preStop, SIGTERM, grace period, SIGKILL, endpoint
// propagation lag, and the way a dying pod's network fails). It implements cluster.Cluster.
package localkube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/image"
	"github.com/gracelab/gracelab/internal/manifest"
	"github.com/gracelab/gracelab/internal/podenv"
)

// Options configure an embedded cluster. The zero value of every field but Manifests is usable.
type Options struct {
	// Manifests is a directory of YAML (Deployments and Services); other kinds are an error.
	Manifests fs.FS
	// Documents, when set, are used instead of Manifests: the objects to run, as
	// manifest.Triage keeps them (Deployments, Services, and the ConfigMaps and Secrets their
	// pods' environment refers to).
	Documents []manifest.Document
	// Programs, when set, maps every container's image to a program on this machine (--run,
	// --path) instead of Executable and Images; manifests' command and args are honoured.
	Programs *image.Table
	// Executable is the binary spawned for every pod; default os.Executable().
	Executable string
	// Images maps an image repository (tag ignored) to the arguments Executable runs with;
	// default DefaultImages. Unused when Programs is set.
	Images map[string][]string
	// EndpointLag is how long a ready/not-ready/terminating change takes to reach the Service
	// proxies. Zero: as kube-proxy's rules sync, changes batched into syncs at least
	// minSyncPeriod apart, each taking a duration measured on a real kube-proxy
	// (proxysync.go, docs/fidelity.md), with Seed.
	EndpointLag time.Duration
	// Seed seeds the draws of the measured delays, so that a run's timing can be repeated;
	// zero picks one at random (Cluster.Seed reports it).
	Seed uint64
	// NetworkLinger is how long a pod's network outlives its process: a connection sent to
	// the pod then is refused (the caller sees a reset); afterwards it is black-holed until
	// the proxy stops routing to the pod. The pod object is deleted a drawn delay after its
	// network goes (measuredPodDeletion), so this also decides when a rollout settles. Zero:
	// drawn per pod, with Seed, from what the lab's kubelet took from killing a pod to tearing
	// its network down on a quiet machine (measuredNetworkLinger, docs/fidelity.md).
	NetworkLinger time.Duration
	// PodStartDelay is how long a new pod takes from creation to its process starting (the
	// scheduler and the kubelet's sandbox, network and container creation; the kubelet's
	// report of the start comes after it, startreport.go). Zero: drawn per pod, with Seed,
	// from the lab's (measuredPodStart, docs/fidelity.md). It keeps a rollout step-by-step
	// instead of replacing every pod at once. Negative: none.
	PodStartDelay time.Duration
	// LoadBalancerPort is the port LoadBalancer Services listen on at 127.0.0.1. 0 lets the OS
	// choose (tests); commands pass DefaultLoadBalancerPort.
	LoadBalancerPort int
	// ReadyTimeout bounds Up; default 60s.
	ReadyTimeout time.Duration
	// Logger receives the cluster's own log (every event at Info); default: discarded.
	Logger *slog.Logger
	// LogDir, when set, receives each pod's stdout and stderr as <pod>.log.
	LogDir string
	// Sandbox isolates pods in namespaces of their own (podsandbox.go); default SandboxNone.
	Sandbox SandboxMode
	// Nodes is how many nodes pods are spread over (nodes.go); default DefaultNodes.
	Nodes int
}

// DefaultLoadBalancerPort is where the original demo's downstream LoadBalancer listened.
const DefaultLoadBalancerPort = 8000

// DefaultImages maps the project's images to the hidden `gracelab serve` command.
var DefaultImages = map[string][]string{
	"gracelab/upstream":   {"serve", "upstream"},
	"gracelab/downstream": {"serve", "downstream"},
}

const (
	defaultReadyTimeout = 60 * time.Second
	defaultGrace        = 30 * time.Second // terminationGracePeriodSeconds' default
	minimumGrace        = 2 * time.Second  // the kubelet's minimum shutdown window after preStop
	downGrace           = 2 * time.Second  // Down: SIGTERM, then SIGKILL after this
	restartedAtKey      = "kubectl.kubernetes.io/restartedAt"
	templateHashLabel   = "pod-template-hash"
)

type lifecycleState int

const (
	stateNew lifecycleState = iota
	stateStarting
	stateUp
	stateStopping
	stateDown
)

// Cluster is one embedded cluster. Create it with New, start it with Up, stop it with Down.
type Cluster struct {
	opts      Options
	log       *slog.Logger
	lags      *lagSource
	lingers   *lagSource
	deletions *lagSource // network gone -> pod object deleted
	starts    *lagSource // pod created -> its process starts
	reports   *lagSource // the kubelet's start reports (startreport.go)
	psync     *proxySync // kube-proxy's sync loop; nil with a fixed EndpointLag
	set       *manifestSet

	reactions *lagSource // the controllers' reaction to a change (controller.go)

	mu       sync.Mutex
	state    lifecycleState
	deploys  []*deployment
	services []*service
	pods     map[string]*pod // every pod not yet deleted
	nodes    []*node
	addrs    *addressing
	changed  chan struct{} // closed and replaced on every change, for waiters
	upErr    error         // a pod failed while Up was waiting
	lbAddr   string
	redact   *podenv.Redactor // Secret values, hidden in everything shown (redact.go)

	evMu   sync.Mutex
	events []cluster.Event

	warnings []string // set during Up, read after it

	spawn       *spawner
	sandboxMode SandboxMode // settled by Up
	// sandboxFallback is why auto fell back to SandboxNone.
	sandboxFallback string
	sandboxDir      string // the sandboxes' generated files
	kick            chan struct{}
	downCh          chan struct{} // closed when Down starts
	ctx             context.Context
	cancel          context.CancelFunc
	podWG           sync.WaitGroup // one kubelet goroutine per pod
	bgWG            sync.WaitGroup // controller, endpoint propagation, proxies
}

var _ cluster.Cluster = (*Cluster)(nil)

// New decodes and validates the manifests strictly. No process is started yet.
func New(opts Options) (*Cluster, error) {
	if opts.Images == nil {
		opts.Images = DefaultImages
	}
	if opts.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding the gracelab executable: %w", err)
		}
		opts.Executable = exe
	}
	switch {
	case opts.EndpointLag < 0:
		return nil, fmt.Errorf("endpoint lag must not be negative (got %s)", opts.EndpointLag)
	}
	if opts.Seed == 0 {
		opts.Seed = randomSeed()
	}
	switch {
	case opts.NetworkLinger < 0:
		return nil, fmt.Errorf("network linger must not be negative (got %s)", opts.NetworkLinger)
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = defaultReadyTimeout
	}
	switch {
	case opts.Nodes < 0:
		return nil, fmt.Errorf("nodes must not be negative (got %d)", opts.Nodes)
	case opts.Nodes == 0:
		opts.Nodes = DefaultNodes
	}
	if opts.LoadBalancerPort < 0 || opts.LoadBalancerPort > 65535 {
		return nil, fmt.Errorf("load balancer port %d is out of range (0-65535, 0 lets the OS choose)", opts.LoadBalancerPort)
	}
	docs := opts.Documents
	if docs == nil {
		var err error
		if docs, err = readManifests(opts.Manifests); err != nil {
			return nil, err
		}
	}
	set, err := validate(docs, opts.Images, opts.Programs)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		opts:      opts,
		lags:      newLagSource(opts.EndpointLag, opts.Seed),
		lingers:   newLingerSource(opts.NetworkLinger, opts.Seed),
		deletions: newDeletionSource(opts.Seed),
		starts:    newPodStartSource(max(opts.PodStartDelay, 0), opts.Seed),
		reports:   newStartReportSource(opts.Seed),
		log:       log,
		set:       set,
		pods:      map[string]*pod{},
		nodes:     newNodes(opts.Nodes),
		addrs:     newAddressing(),
		changed:   make(chan struct{}),
		kick:      make(chan struct{}, 1),
		downCh:    make(chan struct{}),
		redact:    podenv.NewRedactor(set.sources.SecretValues()...),
	}
	c.reactions = newReactionSource(opts.Seed)
	for _, d := range set.deployments {
		c.deploys = append(c.deploys, &deployment{spec: d, template: *d.template.DeepCopy()})
	}
	for _, s := range set.services {
		if len(s.selectedBy(set.deployments)) == 0 {
			log.Warn("Service selects no Deployment: it will have no endpoints", "service", s.name)
		}
		c.services = append(c.services, &service{spec: s, qsig: make(chan struct{}, 1), conns: map[net.Conn]struct{}{}})
	}
	return c, nil
}

func (s *serviceSpec) selectedBy(deps []*deploySpec) []*deploySpec {
	var out []*deploySpec
	for _, d := range deps {
		if d.namespace == s.namespace && s.selector.Matches(labelSet(d.template.Labels)) {
			out = append(out, d)
		}
	}
	return out
}

// Up binds the Service proxies, starts every Deployment's pods and returns once every
// Deployment is fully rolled out and ready and every proxy routes to the ready pods. On error
// (including ctx being cancelled, e.g. by Ctrl-C) it leaves nothing running.
func (c *Cluster) Up(ctx context.Context) (err error) {
	c.mu.Lock()
	if c.state != stateNew {
		c.mu.Unlock()
		return errors.New("the embedded cluster can be started only once")
	}
	c.state = stateStarting
	c.mu.Unlock()

	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.spawn = newSpawner()
	defer func() {
		if err != nil {
			_ = c.Down(context.Background())
			err = c.redact.Error(err)
		}
	}()
	if c.opts.LogDir != "" {
		if err := os.MkdirAll(c.opts.LogDir, 0o755); err != nil {
			return fmt.Errorf("creating the pod log directory: %w", err)
		}
	}
	if c.opts.Programs == nil {
		if _, err := os.Stat(c.opts.Executable); err != nil {
			return fmt.Errorf("pod executable: %w", err)
		}
	}
	if err := c.chooseSandbox(ctx); err != nil {
		return err
	}
	if c.sandboxMode == SandboxNS {
		removeStaleSandboxDirs(os.TempDir(), c.log) // left by gracelabs that were killed
		dir, err := newSandboxDir(os.TempDir())
		if err != nil {
			return err
		}
		c.sandboxDir = dir
	}
	c.avoidWildcardListeners()
	if err := c.bindServices(); err != nil {
		return err
	}
	c.startEndpointPropagation()
	c.bgWG.Add(1)
	go c.controllerLoop()

	c.mu.Lock()
	for _, d := range c.deploys {
		d.setTemplate(d.template)
	}
	c.kickLocked()
	c.mu.Unlock()

	waitCtx, cancel := context.WithTimeout(ctx, c.opts.ReadyTimeout)
	defer cancel()
	err = c.waitFor(waitCtx, func() (bool, error) {
		if c.upErr != nil {
			return false, c.upErr
		}
		return c.allReadyLocked(), nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("start-up interrupted: %w", ctx.Err())
		}
		if errors.Is(err, context.DeadlineExceeded) {
			c.mu.Lock()
			defer c.mu.Unlock()
			return fmt.Errorf("the embedded cluster was not ready after %s: %s", c.opts.ReadyTimeout, c.notReadyReasonLocked())
		}
		return err
	}
	// A pod without a readiness probe is "ready" once its process has started, maybe before
	// it listens. Unlike a real cluster, Up also waits until every pod accepts connections on
	// its ports, so the first requests of a drill do not fail for start-up reasons.
	if err := c.waitListening(waitCtx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("start-up interrupted: %w", ctx.Err())
		}
		return err
	}
	c.mu.Lock()
	c.state = stateUp
	c.mu.Unlock()
	return nil
}

// Warnings says where this run departs from the usual emulation (experiment.Warner).
func (c *Cluster) Warnings() []string { return append([]string(nil), c.warnings...) }

// Events returns a copy of every event recorded so far, in order.
func (c *Cluster) Events() []cluster.Event {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	return append([]cluster.Event(nil), c.events...)
}

// record appends an event; callers hold c.mu so events and state changes agree in order.
func (c *Cluster) record(kind cluster.EventKind, d *deployment, p *pod, detail string) {
	detail = c.redact.String(detail)
	ev := cluster.Event{Kind: kind, Detail: detail, Source: cluster.SourceEmbedded}
	if d != nil {
		ev.Deployment = d.spec.name
		if d.current != nil {
			ev.Revision = d.current.hash
		}
	}
	if p != nil {
		ev.Deployment = p.d.spec.name
		ev.Pod = p.name
		ev.Revision = p.rs.hash
		ev.Node = p.node
	}
	c.recordEvent(ev)
}

// recordEvent timestamps and appends ev.
func (c *Cluster) recordEvent(ev cluster.Event) {
	c.evMu.Lock()
	ev.Time = time.Now()
	c.events = append(c.events, ev)
	c.evMu.Unlock()
	c.log.Info(string(ev.Kind), "deployment", ev.Deployment, "pod", ev.Pod, "revision", ev.Revision, "node", ev.Node, "detail", ev.Detail)
}

// PodInfo describes one pod, for status displays and tests.
type PodInfo struct {
	Name        string `json:"name"`
	Deployment  string `json:"deployment"`
	Revision    string `json:"revision"`
	IP          string `json:"ip"`
	PID         int    `json:"pid"` // 0 when no process runs
	Ready       bool   `json:"ready"`
	Terminating bool   `json:"terminating"`
	Restarts    int    `json:"restarts"`
	Node        string `json:"node,omitempty"` // "" while pending
	Log         string `json:"log,omitempty"`
}

// Pods lists the pods that exist (not yet deleted), sorted by name.
func (c *Cluster) Pods() []PodInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]PodInfo, 0, len(c.pods))
	for _, p := range c.pods {
		pid := 0
		if p.inst != nil && p.inst.ct.running {
			pid = p.inst.pid()
		}
		out = append(out, PodInfo{Name: p.name, Deployment: p.d.spec.name, Revision: p.rs.hash, IP: p.ip, PID: pid,
			Ready: p.ready, Terminating: p.terminating, Restarts: p.restarts, Node: p.node, Log: p.logPath})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Restart starts a rolling restart of a Deployment exactly as `kubectl rollout restart`: the
// pod template gets a new kubectl.kubernetes.io/restartedAt annotation, hence a new revision.
// It returns once the restart is triggered; WaitSettled waits for it to finish.
func (c *Cluster) Restart(ctx context.Context, name string) error {
	if err := c.lockRunning(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	d, err := c.findLocked(name)
	if err != nil {
		return err
	}
	t := *d.template.DeepCopy()
	if t.Annotations == nil {
		t.Annotations = map[string]string{}
	}
	now := time.Now()
	stamp := now.Format(time.RFC3339)
	if t.Annotations[restartedAtKey] == stamp {
		stamp = now.Format(time.RFC3339Nano) // a second restart within the same second
	}
	t.Annotations[restartedAtKey] = stamp
	d.setTemplate(t)
	c.record(cluster.RestartTriggered, d, nil, "restartedAt "+stamp)
	c.kickLocked()
	c.notifyLocked()
	return nil
}

func (c *Cluster) findLocked(name string) (*deployment, error) {
	ns, n, ok := strings.Cut(name, "/")
	if !ok {
		ns, n = "", name
	}
	var names []string
	for _, d := range c.deploys {
		if d.spec.name == n && (ns == "" || d.spec.namespace == ns) {
			return d, nil
		}
		names = append(names, d.spec.name)
	}
	return nil, fmt.Errorf("no Deployment %q in the embedded cluster (have: %s)", name, strings.Join(names, ", "))
}

// WaitSettled blocks until the Deployment's rollout is complete (updated = ready = available
// = replicas) and no pod of an old revision is left, terminating or not, nor a terminating
// pod of the current one.
func (c *Cluster) WaitSettled(ctx context.Context, name string) error {
	c.mu.Lock()
	d, err := c.findLocked(name)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.waitFor(ctx, func() (bool, error) {
		if c.state >= stateStopping {
			return false, errors.New("the embedded cluster was stopped")
		}
		if !d.settled() {
			return false, nil
		}
		for _, p := range d.current.pods {
			if !p.ready || p.terminating { // a deleted, evicted or scaled-down pod is gone too
				return false, nil
			}
		}
		return true, nil
	})
}

// waitFor re-evaluates cond (under c.mu) on every change until it holds, fails or ctx ends.
func (c *Cluster) waitFor(ctx context.Context, cond func() (bool, error)) error {
	for {
		c.mu.Lock()
		ok, err := cond()
		ch := c.changed
		c.mu.Unlock()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *Cluster) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Cluster) kickLocked() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Down stops every pod (SIGTERM, SIGKILL after 2s; no preStop: the cluster is going away),
// closes the proxies and returns once no process is left. Safe to call more than once. If ctx
// ends first, every pod is SIGKILLed at once and Down still waits for them.
func (c *Cluster) Down(ctx context.Context) error {
	c.mu.Lock()
	switch c.state {
	case stateNew:
		c.state = stateDown
		c.mu.Unlock()
		return nil
	case stateStopping, stateDown:
		c.mu.Unlock()
		c.podWG.Wait()
		c.bgWG.Wait()
		return nil
	}
	c.state = stateStopping
	close(c.downCh)
	c.notifyLocked()
	c.mu.Unlock()

	c.cancel()
	done := make(chan struct{})
	go func() { c.podWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		c.killAll()
		<-done
	}
	for _, s := range c.services {
		s.closeAll()
	}
	c.bgWG.Wait()
	c.spawn.stop()
	if c.sandboxDir != "" { // every sandbox is closed: only their emptied directories are left
		os.RemoveAll(c.sandboxDir)
	}
	c.mu.Lock()
	c.state = stateDown
	c.notifyLocked()
	c.mu.Unlock()
	return nil
}

// killAll SIGKILLs every pod process group now.
func (c *Cluster) killAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pods {
		for _, ct := range p.ctrs {
			if ct.running && ct.inst != nil {
				_ = ct.inst.signal(sigKILL)
			}
		}
	}
}

// templateHash is the pod-template-hash of a template, computed like the Deployment
// controller's (FNV-32a of the template, safely encoded).
func templateHash(t corev1.PodTemplateSpec) string {
	t = *t.DeepCopy()
	delete(t.Labels, templateHashLabel)
	b, _ := json.Marshal(t) // a PodTemplateSpec always marshals
	h := fnv.New32a()
	h.Write(b)
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// logPathFor is where a pod's output goes, or "" when LogDir is unset.
func (c *Cluster) logPathFor(name string) string {
	if c.opts.LogDir == "" {
		return ""
	}
	return filepath.Join(c.opts.LogDir, name+".log")
}
