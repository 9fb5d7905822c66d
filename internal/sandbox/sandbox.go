// Package sandbox gives an embedded pod what a container runtime gives a real one, without
// images: its own network namespace (only a loopback, so a program binds what it likes), its
// own mount namespace (a private /etc/hosts and /etc/resolv.conf, so cluster DNS names
// resolve), its own PID namespace, and, when gracelab is not root, its own user namespace.
//
// One small supervisor per pod, the shim, owns the namespaces, like containerd's shim: it is
// gracelab re-executed into new namespaces (so the Go runtime never moves its own threads
// between namespaces), it starts the pod's processes, reaps them, and dies with gracelab
// (parent-death signal), and because it is PID 1 of the pod's PID namespace the kernel kills
// every process of the pod with it. Everything that must happen inside the pod goes through
// the shim over a Unix socket: it starts processes, dials connections inside the pod and hands
// the connected socket back (SCM_RIGHTS), and listens inside the pod for Service traffic,
// handing each accepted connection back to be forwarded by gracelab's Service proxy.
//
// Lifetime of a sandbox:
//
//	Start        the shim is created in new namespaces, brings lo up, mounts hosts files
//	Run / Dial   processes and connections inside the pod, for as long as the pod lives
//	(exits)      the pod's processes may exit; the namespaces stay (a dead pod's network
//	             still exists: connections are refused, not black-holed)
//	Close        the shim kills what is left and exits; the kernel removes the namespaces
package sandbox

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// Limits is what a sandboxed pod cannot do, said once in the output (docs/sandbox.md).
const Limits = "a pod reaches Services, not the host's own localhost services or its DNS resolver; volumes are not mounted"

// Describe says how the embedded cluster ran its pods under mode ("ns" or "none"), and why it
// fell back to none when sandboxes were not available; one wording for the terminal, the
// cluster's summary and REPORT.md.
func Describe(mode, fallback string) string {
	if mode == "ns" {
		namespaces := "network, mount, PID and UTS"
		if os.Geteuid() != 0 { // as Start makes them: a user namespace only when not root
			namespaces = "network, mount, PID, UTS and user"
		}
		return "each in a sandbox of its own (" + namespaces + " namespaces: --sandbox ns)"
	}
	s := "on the host's shared loopback, each at its own 127.x address (--sandbox " + mode + ")"
	if fallback != "" {
		s += ", because pod sandboxes are not available here: " + fallback
	}
	return s
}

// ShimArg is the shim's first argument, so that ps shows "gracelab sandbox-shim POD".
const ShimArg = "sandbox-shim"

// ErrUnsupported is returned (wrapped) where sandboxes cannot be made: not Linux, or the
// kernel or its security policy refuses the namespaces.
var ErrUnsupported = errors.New("pod sandboxes need Linux namespaces")

// Config describes one pod's sandbox.
type Config struct {
	// Name is the pod's name, for messages and the hostname inside the sandbox.
	Name string
	// Hosts are the lines of the sandbox's /etc/hosts after the localhost entries: an
	// address and the names that resolve to it (every Service name form).
	Hosts []HostEntry
	// Search is the resolv.conf search list (NS.svc.cluster.local svc.cluster.local ...).
	Search []string
	// Listen are addresses (IPv4:port) the pod reaches through gracelab, typically each
	// Service's ClusterIP and port: a connection to one inside the pod arrives on Accepted,
	// even when a program in the pod listens on that port on all interfaces.
	Listen []string
	// Dir holds the sandbox's generated files; it must exist and outlive the sandbox.
	Dir string
}

// HostEntry is one /etc/hosts line.
type HostEntry struct {
	IP    string
	Names []string
}

// Accepted is a connection made inside the sandbox to one of Config.Listen's addresses.
type Accepted struct {
	Listen string // the address it was made to
	Conn   net.Conn
}

// Process is a process running inside a sandbox.
type Process struct {
	Pid  int           // in the sandbox's PID namespace
	Done chan struct{} // closed when it has exited and Status is set
	// Status is its wait status, valid once Done is closed.
	Status syscall.WaitStatus

	sb *Sandbox
	id uint64
}

// ProcSpec is a process to start inside the sandbox.
type ProcSpec struct {
	Path   string   // absolute path of the program on this machine
	Args   []string // argv, Args[0] included
	Env    []string
	Dir    string
	Stdout *os.File // nil: /dev/null
	Stderr *os.File // nil: /dev/null
}
