package localkube

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// Windows has neither process groups nor SIGTERM: a pod is stopped by terminating its
// process, so the graceful-shutdown scenarios cannot be reproduced there. Linux is the
// platform the embedded cluster is built and tested for.

func setProcAttr(*exec.Cmd) {}

func signalGroup(pid int, _ syscall.Signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return nil
	}
	return p.Kill()
}

func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}

func exitDetail(cmd *exec.Cmd) (int, string) {
	if cmd.ProcessState == nil {
		return -1, "unknown exit status"
	}
	return cmd.ProcessState.ExitCode(), "exit code " + strconv.Itoa(cmd.ProcessState.ExitCode())
}

const (
	sigTERM = syscall.SIGTERM
	sigKILL = syscall.SIGKILL
)

func waitStatusDetail(ws syscall.WaitStatus) (int, string) {
	return ws.ExitStatus(), "exit code " + strconv.Itoa(ws.ExitStatus())
}
