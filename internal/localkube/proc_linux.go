package localkube

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in its own process group and has the kernel SIGKILL it when the
// forking thread (the spawner's, alive as long as the Cluster) dies, even by SIGKILL.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
