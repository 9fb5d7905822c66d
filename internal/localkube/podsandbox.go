package localkube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gracelab/gracelab/internal/sandbox"
)

// Pod sandboxes: with SandboxNS every pod runs in namespaces of its own (internal/sandbox), so
// a program binds any port on any address, containers share the pod's localhost, and Service
// names resolve through the pod's own /etc/hosts. The kubelet reaches into the pod (probes,
// hooks, the Service proxy's connections) through the sandbox's shim; the pod reaches the
// Services through listeners the shim keeps on every ClusterIP and port inside the pod.

// SandboxMode chooses how pods are isolated.
type SandboxMode string

const (
	// SandboxNone runs every pod on the host's loopback with an address of its own.
	SandboxNone SandboxMode = "none"
	// SandboxNS gives every pod its own namespaces; the cluster fails when it cannot.
	SandboxNS SandboxMode = "ns"
	// SandboxAuto tries SandboxNS once and falls back to SandboxNone, saying why.
	SandboxAuto SandboxMode = "auto"
)

// ParseSandboxMode reads --sandbox's value.
func ParseSandboxMode(s string) (SandboxMode, error) {
	switch m := SandboxMode(s); m {
	case SandboxNone, SandboxNS, SandboxAuto:
		return m, nil
	}
	return "", fmt.Errorf("--sandbox must be auto, ns or none, not %q", s)
}

// SandboxMode is the mode the cluster runs in, after auto's choice (valid after Up).
func (c *Cluster) SandboxMode() SandboxMode { return c.sandboxMode }

// SandboxUsed is the mode the pods ran in and why auto fell back to none, if it did, for the
// report (experiment.Sandboxer; valid after Up).
func (c *Cluster) SandboxUsed() (mode, fallback string) {
	return string(c.sandboxMode), c.sandboxFallback
}

// SandboxSummary says in one line how the pods run and, with sandboxes, what they cannot
// reach (valid after Up).
func (c *Cluster) SandboxSummary() string {
	s := sandbox.Describe(string(c.sandboxMode), c.sandboxFallback)
	if c.sandboxMode == SandboxNS {
		s += "; " + sandbox.Limits
	}
	return s
}

// chooseSandbox settles auto: one real sandbox with a process in it is tried (a probe of a
// sysctl would not see a security policy's refusal).
func (c *Cluster) chooseSandbox(ctx context.Context) error {
	mode := c.opts.Sandbox
	if mode == "" {
		mode = SandboxNone
	}
	if mode == SandboxNone {
		c.sandboxMode = SandboxNone
		return nil
	}
	err := c.trySandbox(ctx)
	switch {
	case err == nil:
		c.sandboxMode = SandboxNS
	case mode == SandboxAuto:
		c.sandboxMode = SandboxNone
		c.sandboxFallback = err.Error()
		c.warnings = append(c.warnings, "pod sandboxes are not available here, so pods share the host's loopback (each on its own 127.x address; a program must bind the address it is given): "+err.Error())
	default:
		return fmt.Errorf("--sandbox ns: %w", err)
	}
	return nil
}

func (c *Cluster) trySandbox(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "gracelab-sandbox-probe")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return sandbox.Probe(ctx, c.opts.Executable, dir, c.spawn.start)
}

// startSandbox creates the pod's sandbox: its names, and a listener inside it on every
// Service address, whose connections the Service proxies take as their own.
func (c *Cluster) startSandbox(ctx context.Context, p *pod) error {
	c.mu.Lock()
	cfg := sandbox.Config{Name: p.name, Search: searchList(p.d.spec.namespace)}
	handlers := map[string]*portProxy{}
	for _, s := range c.services {
		cfg.Hosts = append(cfg.Hosts, sandbox.HostEntry{IP: s.ip, Names: dnsNames(s.spec.name, s.spec.namespace, p.d.spec.namespace)})
		for _, pp := range s.ports {
			addr := net.JoinHostPort(s.ip, strconv.Itoa(int(s.spec.ports[pp.index].Port)))
			cfg.Listen = append(cfg.Listen, addr)
			handlers[addr] = pp
		}
	}
	c.mu.Unlock()
	dir, err := os.MkdirTemp(c.sandboxDir, p.name+"-")
	if err != nil {
		return err
	}
	cfg.Dir = dir
	sb, err := sandbox.Start(ctx, c.opts.Executable, cfg, c.spawn.start)
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	p.sb, p.sbDir = sb, dir
	p.sbClient = p.sandboxProbeClient()
	go func() {
		for a := range sb.Accepted() {
			pp := handlers[a.Listen]
			tc, ok := a.Conn.(*net.TCPConn)
			if pp == nil || !ok || !pp.svc.track(tc) {
				a.Conn.Close()
				continue
			}
			go func() {
				defer pp.svc.untrack(tc)
				pp.handle(tc)
			}()
		}
	}()
	return nil
}

// closeSandbox ends the pod's sandbox: its network goes with it.
func (p *pod) closeSandbox() {
	if p.sb != nil {
		p.sb.Close()
		os.RemoveAll(p.sbDir)
	}
}

func searchList(ns string) []string {
	return []string{ns + ".svc.cluster.local", "svc.cluster.local", "cluster.local"}
}

// dial connects to addr in the pod's network: through its sandbox, or on the host.
func (p *pod) dial(ctx context.Context, addr string) (net.Conn, error) {
	if p.sb != nil {
		return p.sb.Dial(ctx, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// startInSandbox runs the container's process inside the pod's sandbox.
// The program is inst.cmd's, already looked up on the PATH.
func (c *Cluster) startInSandbox(p *pod, inst *container, env []string) error {
	if inst.cmd.Err != nil {
		return inst.cmd.Err
	}
	// A sandboxed process writes to files: stdout to the pod log, stderr through a pipe that
	// also keeps its last line (the sinks startContainer chose); stdout too when redacted.
	var copiers sync.WaitGroup
	pipe := func(sink io.Writer) (*os.File, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		copiers.Go(func() {
			defer r.Close()
			io.Copy(sink, r)
		})
		return w, nil
	}
	stderr, err := pipe(inst.cmd.Stderr)
	if err != nil {
		return err
	}
	defer stderr.Close()
	stdout, direct := inst.cmd.Stdout.(*os.File)
	if !direct && inst.cmd.Stdout != nil {
		if stdout, err = pipe(inst.cmd.Stdout); err != nil {
			return err
		}
		defer stdout.Close()
	}
	copied := make(chan struct{})
	inst.stdioDone = copied
	go func() {
		defer close(copied)
		copiers.Wait()
	}()
	proc, err := p.sb.Run(c.ctx, sandbox.ProcSpec{Path: inst.cmd.Path, Args: inst.cmd.Args, Env: env, Stdout: stdout, Stderr: stderr})
	if err != nil {
		// The shim may still have started it (a cancelled request): the copier then ends
		// with that process, not before.
		inst.stdioDone = nil
		return err
	}
	inst.proc = proc
	return nil
}

// execInSandbox runs an exec handler inside the pod, output kept for the error.
func (c *Cluster) execInSandbox(ctx context.Context, p *pod, ct *ctr, argv []string) error {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	proc, err := p.sb.Run(ctx, sandbox.ProcSpec{Path: path, Args: argv, Env: ct.env, Stdout: w, Stderr: w})
	w.Close()
	if err != nil {
		return err
	}
	var out strings.Builder
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			if out.Len() < 1024 {
				out.Write(buf[:min(n, 1024-out.Len())])
			}
			if err != nil {
				return
			}
		}
	}()
	select {
	case <-proc.Done:
	case <-ctx.Done():
		proc.Signal(syscall.SIGKILL)
		<-proc.Done
		return fmt.Errorf("command timed out: %w", context.Cause(ctx))
	}
	<-outDone
	if st := proc.Status; !st.Exited() || st.ExitStatus() != 0 {
		_, detail := waitStatusDetail(st)
		err := errors.New(detail)
		if s := strings.TrimSpace(out.String()); s != "" {
			return fmt.Errorf("%w: %s", err, lastLine(s))
		}
		return err
	}
	return nil
}
