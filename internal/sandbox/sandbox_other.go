//go:build !linux

package sandbox

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"syscall"
)

// Sandbox is a pod sandbox; none can be made on this system.
type Sandbox struct{}

// Starter starts the shim's command.
type Starter func(*exec.Cmd) error

// IsShim is false: there is no shim here.
func IsShim() bool { return false }

// ShimMain is never called here.
func ShimMain() int { return 1 }

// Start fails: sandboxes need Linux namespaces.
func Start(context.Context, string, Config, Starter) (*Sandbox, error) {
	return nil, fmt.Errorf("%w (this is %s)", ErrUnsupported, runtime.GOOS)
}

// Probe fails: sandboxes need Linux namespaces.
func Probe(context.Context, string, string, Starter) error {
	return fmt.Errorf("%w (this is %s)", ErrUnsupported, runtime.GOOS)
}

func (*Sandbox) Run(context.Context, ProcSpec) (*Process, error) { return nil, ErrUnsupported }
func (*Sandbox) Dial(context.Context, string) (net.Conn, error)  { return nil, ErrUnsupported }
func (*Sandbox) Accepted() <-chan Accepted                       { return nil }
func (*Sandbox) Err() error                                      { return ErrUnsupported }
func (*Sandbox) Close() error                                    { return nil }

// Signal fails: there are no sandboxed processes here.
func (*Process) Signal(syscall.Signal) error { return ErrUnsupported }
