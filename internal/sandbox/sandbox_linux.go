package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Sandbox is a running pod sandbox: its shim and the namespaces it holds.
type Sandbox struct {
	cfg     Config
	cmd     *exec.Cmd
	ctl     *net.UnixConn
	done    chan struct{} // closed when the reader has stopped (the shim is gone or Close ran)
	exited  chan struct{} // closed when the shim process has exited
	closing chan struct{} // closed by Close: nobody takes accepted connections any more

	accepted chan Accepted

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan reply
	procs   map[uint64]*Process
	closed  bool
	err     error // why the shim went away, if it did on its own
}

type reply struct {
	m   message
	fds []int
}

// Starter starts the shim's command; localkube passes the one whose thread owns its children's
// parent-death signal. It must keep cmd.SysProcAttr's namespace fields.
type Starter func(*exec.Cmd) error

// Start creates a sandbox: exe (gracelab itself; os.Executable when empty) re-executed as the
// shim into new namespaces. It returns once the shim has set the pod up, or with its reason.
func Start(ctx context.Context, exe string, cfg Config, start Starter) (*Sandbox, error) {
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	if err := writeNameFiles(cfg); err != nil {
		return nil, err
	}
	conf, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	child := os.NewFile(uintptr(pair[1]), "sandbox-ctl")
	defer child.Close()
	logf, err := os.Create(filepath.Join(cfg.Dir, "shim.log"))
	if err != nil {
		unix.Close(pair[0])
		return nil, err
	}
	defer logf.Close()

	cmd := exec.Command(exe)
	cmd.Args = []string{exe, ShimArg, cfg.Name} // for ps; the environment makes it the shim
	cmd.Env = []string{envShim + "=1", envConfig + "=" + string(conf), "PATH=" + os.Getenv("PATH")}
	cmd.ExtraFiles = []*os.File{child}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	exited := make(chan struct{})
	if start == nil {
		err = startLocked(cmd, exited)
	} else if err = start(cmd); err == nil {
		go func() { cmd.Wait(); close(exited) }()
	}
	if err != nil {
		unix.Close(pair[0])
		return nil, fmt.Errorf("starting the sandbox of %s: %w (%w)", cfg.Name, err, ErrUnsupported)
	}
	// Only the shim may hold its end: a copy left open here would keep the reader below from
	// ever seeing the shim go, and Close from returning, when set-up fails.
	child.Close()
	ctl, err := unixConn(pair[0], "sandbox-ctl")
	if err != nil {
		cmd.Process.Kill()
		return nil, err
	}
	s := &Sandbox{cfg: cfg, cmd: cmd, ctl: ctl, done: make(chan struct{}), exited: exited, closing: make(chan struct{}),
		accepted: make(chan Accepted, 64), pending: map[uint64]chan reply{}, procs: map[uint64]*Process{}}

	first := make(chan message, 1)
	go s.read(first)
	select {
	case m := <-first:
		if m.Op == opReady {
			return s, nil
		}
		s.Close()
		if m.Op == opFatal {
			return nil, fmt.Errorf("sandbox of %s: %s (%w)", cfg.Name, m.Err, ErrUnsupported)
		}
		return nil, fmt.Errorf("sandbox of %s: the shim exited during set-up%s (%w)", cfg.Name, s.logTail(), ErrUnsupported)
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	}
}

// sysProcAttr asks for every namespace a pod has; a user namespace only when not root, mapping
// the caller to root inside so the shim may set the pod up.
func sysProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS,
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
	}
	if os.Geteuid() != 0 {
		a.Cloneflags |= unix.CLONE_NEWUSER
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
		a.GidMappingsEnableSetgroups = false
	}
	return a
}

// startLocked forks from a thread that stays locked until the child exits (then closes
// exited): Pdeathsig fires when the forking thread dies, not the process.
func startLocked(cmd *exec.Cmd, exited chan<- struct{}) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := cmd.Start()
		errc <- err
		if err == nil {
			cmd.Wait()
			close(exited)
		}
	}()
	return <-errc
}

func writeNameFiles(cfg Config) error {
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, h := range cfg.Hosts {
		fmt.Fprintf(&hosts, "%s\t%s\n", h.IP, strings.Join(h.Names, " "))
	}
	resolv := "# gracelab pod sandbox: names are in /etc/hosts; there is no DNS server\n"
	if len(cfg.Search) > 0 {
		resolv += "search " + strings.Join(cfg.Search, " ") + "\n"
	}
	resolv += "options ndots:5\n"
	if err := os.WriteFile(filepath.Join(cfg.Dir, "hosts"), []byte(hosts.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(cfg.Dir, "resolv.conf"), []byte(resolv), 0o644)
}

func (s *Sandbox) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.cfg.Dir, "shim.log"))
	if t := strings.TrimSpace(string(b)); t != "" {
		if i := strings.LastIndexByte(t, '\n'); i >= 0 {
			t = t[i+1:]
		}
		return ": " + t
	}
	return ""
}

// read delivers the shim's messages until it goes away.
func (s *Sandbox) read(first chan<- message) {
	defer close(s.done)
	gotFirst := false
	buf, oob := newBuffers()
	for {
		m, fds, err := recv(s.ctl, buf, oob)
		if err != nil {
			s.mu.Lock()
			if s.err == nil && !s.closed {
				s.err = fmt.Errorf("the sandbox of %s went away%s", s.cfg.Name, s.logTail())
			}
			for id, ch := range s.pending {
				close(ch)
				delete(s.pending, id)
			}
			for _, p := range s.procs {
				p.Status = syscall.WaitStatus(unix.SIGKILL) // killed with its sandbox
				close(p.Done)
			}
			s.procs = map[uint64]*Process{}
			s.mu.Unlock()
			if !gotFirst {
				first <- message{}
			}
			close(s.accepted)
			return
		}
		switch m.Op {
		case opReady, opFatal:
			if !gotFirst {
				gotFirst = true
				first <- m
			}
		case opReply:
			s.mu.Lock()
			ch := s.pending[m.ID]
			delete(s.pending, m.ID)
			s.mu.Unlock()
			if ch != nil {
				ch <- reply{m, fds}
			} else {
				closeAll(fds)
			}
		case opExit:
			s.mu.Lock()
			p := s.procs[m.ID]
			delete(s.procs, m.ID)
			s.mu.Unlock()
			if p != nil {
				p.Status = syscall.WaitStatus(m.Status)
				close(p.Done)
			}
		case opAccept:
			if len(fds) != 1 {
				closeAll(fds)
				continue
			}
			c, err := fdConn(fds[0])
			if err != nil {
				continue
			}
			select {
			case s.accepted <- Accepted{Listen: m.Addr, Conn: c}:
			case <-s.closing:
				c.Close()
			}
		default:
			closeAll(fds)
		}
	}
}

func fdConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "sandbox-conn")
	defer f.Close()
	return net.FileConn(f)
}

// call sends a request and waits for its reply. A process p is registered under the request's
// ID before it goes out, because its exit may follow the reply at once.
func (s *Sandbox) call(ctx context.Context, m message, p *Process, fds ...int) (reply, error) {
	ch := make(chan reply, 1)
	s.mu.Lock()
	if s.closed || s.err != nil {
		err := s.err
		s.mu.Unlock()
		if err == nil {
			err = errors.New("the sandbox is closed")
		}
		return reply{}, err
	}
	s.nextID++
	m.ID = s.nextID
	s.pending[m.ID] = ch
	if p != nil {
		p.id = m.ID
		s.procs[m.ID] = p
	}
	s.mu.Unlock()
	unregister := func() {
		s.mu.Lock()
		delete(s.pending, m.ID)
		delete(s.procs, m.ID)
		s.mu.Unlock()
	}
	if err := send(s.ctl, m, fds...); err != nil {
		unregister()
		return reply{}, err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return reply{}, s.Err()
		}
		if r.m.Err != "" {
			unregister()
			closeAll(r.fds)
			return r, errors.New(r.m.Err)
		}
		return r, nil
	case <-ctx.Done():
		// A start may still happen; that process then lives until the sandbox closes.
		unregister()
		go func() { // a late reply's descriptors must still be closed
			if r, ok := <-ch; ok {
				closeAll(r.fds)
			}
		}()
		return reply{}, ctx.Err()
	}
}

// Err is why the sandbox went away on its own, or nil.
func (s *Sandbox) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Run starts a process inside the sandbox.
func (s *Sandbox) Run(ctx context.Context, spec ProcSpec) (*Process, error) {
	var fds []int
	for _, f := range []*os.File{spec.Stdout, spec.Stderr} {
		fd, err := fileFD(f)
		if err != nil {
			closeAll(fds)
			return nil, err
		}
		if fd < 0 {
			if fd, err = unix.Open(os.DevNull, unix.O_WRONLY|unix.O_CLOEXEC, 0); err != nil {
				closeAll(fds)
				return nil, err
			}
		}
		fds = append(fds, fd)
	}
	defer closeAll(fds)
	p := &Process{Done: make(chan struct{}), sb: s}
	r, err := s.call(ctx, message{Op: opStart, Path: spec.Path, Args: spec.Args, Env: spec.Env, Dir: spec.Dir}, p, fds...)
	if err != nil {
		return nil, fmt.Errorf("starting %s in the sandbox of %s: %w", spec.Path, s.cfg.Name, err)
	}
	p.Pid = r.m.Pid
	return p, nil
}

// Signal sends sig to the process's group inside the sandbox.
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.Done:
		return os.ErrProcessDone
	default:
	}
	_, err := p.sb.call(context.Background(), message{Op: opSignal, Pid: p.Pid, Signal: int(sig)}, nil)
	return err
}

// Dial connects to addr (IP:port as seen inside the pod) from inside the sandbox.
func (s *Sandbox) Dial(ctx context.Context, addr string) (net.Conn, error) {
	r, err := s.call(ctx, message{Op: opDial, Addr: addr}, nil)
	if err != nil {
		return nil, err
	}
	if len(r.fds) != 1 {
		closeAll(r.fds)
		return nil, errors.New("sandbox dial: no connection came back")
	}
	return fdConn(r.fds[0])
}

// Accepted delivers the connections made inside the sandbox to Config.Listen's addresses. It
// is closed when the sandbox goes away.
func (s *Sandbox) Accepted() <-chan Accepted { return s.accepted }

// Close ends the sandbox: the shim kills the pod's processes and exits, and the kernel removes
// its namespaces. It returns once the shim is gone. Idempotent.
func (s *Sandbox) Close() error {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	if !already {
		close(s.closing)
		s.ctl.CloseWrite() // the shim reads the end and goes
	}
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second): // a shim that does not go: take it down
		s.cmd.Process.Kill()
		<-s.exited
	}
	<-s.done
	if !already {
		s.ctl.Close()
	}
	return nil
}

// Probe makes one sandbox and runs a process in it (exe, re-executed in probe mode), the way a
// pod would use it: what the kernel or a security policy refuses shows here, wrapped in
// ErrUnsupported. dir is a scratch directory.
func Probe(ctx context.Context, exe, dir string, start Starter) error {
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return err
		}
	}
	sb, err := Start(ctx, exe, Config{Name: "probe", Dir: dir}, start)
	if err != nil {
		return err
	}
	defer sb.Close()
	p, err := sb.Run(ctx, ProcSpec{Path: exe, Args: []string{exe}, Env: []string{envShim + "=probe"}})
	if err != nil {
		return fmt.Errorf("%w (%w)", err, ErrUnsupported)
	}
	select {
	case <-p.Done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if !p.Status.Exited() || p.Status.ExitStatus() != 0 {
		return fmt.Errorf("a process in a pod sandbox ended with %v (%w)", p.Status, ErrUnsupported)
	}
	return nil
}
