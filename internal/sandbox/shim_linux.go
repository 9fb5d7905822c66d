package sandbox

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The shim side. gracelab re-executes itself with these variables set; IsShim tells its main
// to run ShimMain instead of the command line.
const (
	envShim   = "GRACELAB_SANDBOX_SHIM" // "1": the shim; "probe": a process Probe starts inside
	envConfig = "GRACELAB_SANDBOX_CONFIG"
	shimFD    = 3 // the control socket, ExtraFiles[0]
)

// IsShim reports whether this process was started as a pod sandbox's shim (or as Probe's
// process inside one).
func IsShim() bool { v := os.Getenv(envShim); return v == "1" || v == "probe" }

// ShimMain runs the shim until gracelab closes the control socket or dies, and returns the
// process's exit code. Call it first thing in main when IsShim is true.
func ShimMain() int {
	if os.Getenv(envShim) == "probe" {
		return 0
	}
	conf := os.Getenv(envConfig)
	// Nothing of the shim's own environment may reach the pod's processes.
	os.Unsetenv(envShim)
	os.Unsetenv(envConfig)
	s := &shim{ctl: shimFD, procs: map[int]uint64{}}
	var cfg Config
	if err := json.Unmarshal([]byte(conf), &cfg); err != nil {
		s.fatal(fmt.Errorf("reading the sandbox config: %w", err))
		return 1
	}
	if err := setup(cfg); err != nil {
		s.fatal(err)
		return 1
	}
	lns, err := redirect(cfg.Listen)
	if err != nil {
		s.fatal(fmt.Errorf("Service addresses inside the sandbox: %w", err))
		return 1
	}
	for addr, ln := range lns {
		go s.accept(ln, addr)
	}
	go s.reap()
	if err := send(s.ctl, message{Op: opReady}); err != nil {
		return 1
	}
	s.serve()
	// gracelab closed the socket or died: the pod goes with the shim. As PID 1 of the pod's PID
	// namespace its exit also has the kernel kill whatever is left.
	unix.Kill(-1, unix.SIGKILL)
	return 0
}

type shim struct {
	ctl   int
	mu    sync.Mutex     // held across a start and its bookkeeping, and across reaping
	procs map[int]uint64 // pid -> request ID of the start that made it
}

func (s *shim) fatal(err error) {
	send(s.ctl, message{Op: opFatal, Err: err.Error()})
}

// setup makes the namespaces the shim was created in into a pod: loopback up, hostname, and
// (mount namespace) private mounts, a fresh /proc and the generated name files.
func setup(cfg Config) error {
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("bringing up the sandbox's loopback: %w", err)
	}
	if cfg.Name != "" {
		unix.Sethostname([]byte(cfg.Name))
	}
	// Private first, so nothing below propagates to the host's mounts.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making the sandbox's mounts private: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc in the sandbox: %w", err)
	}
	for _, f := range []struct{ name, target string }{{"hosts", "/etc/hosts"}, {"resolv.conf", "/etc/resolv.conf"}} {
		src := filepath.Join(cfg.Dir, f.name)
		target, err := filepath.EvalSymlinks(f.target)
		if err != nil {
			return fmt.Errorf("sandbox %s: %w", f.target, err)
		}
		if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("mounting the sandbox's %s: %w", f.target, err)
		}
	}
	return nil
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

func (s *shim) serve() {
	for {
		m, fds, err := recv(s.ctl)
		if err != nil {
			closeAll(fds)
			return
		}
		switch m.Op {
		case opStart:
			s.start(m, fds)
		case opSignal:
			if m.Pid <= 1 { // never the shim itself, nor everything
				s.reply(m.ID, fmt.Errorf("no such process %d in the sandbox", m.Pid))
				continue
			}
			err := unix.Kill(-m.Pid, syscall.Signal(m.Signal))
			if err == unix.ESRCH { // no group (it never made one): the process itself
				err = unix.Kill(m.Pid, syscall.Signal(m.Signal))
			}
			s.reply(m.ID, err)
		case opDial:
			go s.dial(m)
		default:
			closeAll(fds)
			s.reply(m.ID, fmt.Errorf("unknown sandbox request %q", m.Op))
		}
	}
}

func (s *shim) reply(id uint64, err error, fds ...int) {
	r := message{Op: opReply, ID: id}
	if err != nil {
		r.Err = err.Error()
	}
	send(s.ctl, r, fds...)
}

// start runs a pod process with the stdio gracelab sent (stdout, stderr). Every descriptor
// is owned by one *os.File and closed through it: a raw close beside an os.File's finalizer
// would close whatever socket reuses the number later.
func (s *shim) start(m message, fds []int) {
	var files []*os.File
	for _, fd := range fds {
		files = append(files, os.NewFile(uintptr(fd), "stdio"))
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		s.reply(m.ID, err)
		return
	}
	defer devnull.Close()
	stdio := []*os.File{devnull, devnull, devnull}
	for i := 0; i < 2 && i < len(files); i++ {
		stdio[i+1] = files[i]
	}
	env := append([]string{}, m.Env...) // never nil: nil would pass the shim's own
	s.mu.Lock()
	p, err := os.StartProcess(m.Path, m.Args, &os.ProcAttr{
		Dir: m.Dir, Env: env, Files: stdio,
		Sys: &syscall.SysProcAttr{Setpgid: true},
	})
	pid := 0
	if err == nil {
		pid = p.Pid
		s.procs[pid] = m.ID
		p.Release() // the reaper waits for it
	}
	s.mu.Unlock()
	if err != nil {
		s.reply(m.ID, err)
		return
	}
	send(s.ctl, message{Op: opReply, ID: m.ID, Pid: pid})
}

// reap collects every child that exits: the pod's processes, and as PID 1 of the pod also any
// orphan of theirs, and reports the pod's own.
func (s *shim) reap() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGCHLD)
	for range ch {
		s.mu.Lock()
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			if id, ok := s.procs[pid]; ok {
				delete(s.procs, pid)
				send(s.ctl, message{Op: opExit, ID: id, Pid: pid, Status: int(ws)})
			}
		}
		s.mu.Unlock()
	}
}

func (s *shim) dial(m message) {
	c, err := net.Dial("tcp", m.Addr)
	if err != nil {
		s.reply(m.ID, err)
		return
	}
	defer c.Close()
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		s.reply(m.ID, err)
		return
	}
	defer f.Close()
	s.reply(m.ID, nil, int(f.Fd()))
}

func (s *shim) accept(ln net.Listener, addr string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		f, err := c.(*net.TCPConn).File()
		c.Close()
		if err != nil {
			continue
		}
		send(s.ctl, message{Op: opAccept, Addr: addr}, int(f.Fd()))
		f.Close()
	}
}
