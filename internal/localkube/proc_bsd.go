//go:build unix && !linux

package localkube

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in its own process group. Without Pdeathsig (Linux only), children
// outlive a gracelab that is killed with SIGKILL; Down and Ctrl-C still stop them.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
