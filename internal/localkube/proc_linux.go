package localkube

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in its own process group and has the kernel SIGKILL it when the
// forking thread (the spawner's, alive as long as the Cluster) dies, even by SIGKILL.
func setProcAttr(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Kept: what the caller set, such as a pod sandbox's namespaces.
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
