//go:build unix

package localkube

import (
	"errors"
	"os/exec"
	"strconv"
	"syscall"
)

// signalGroup sends sig to the process group led by pid (pods run in their own group, so a
// service's children get the signal too, as in a container).
func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// processAlive reports whether pid exists (a zombie counts as gone for a caller that is not
// its parent only once reaped; use it for processes that are not our children).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func exitDetail(cmd *exec.Cmd) (code int, detail string) {
	ps := cmd.ProcessState
	if ps == nil {
		return -1, "unknown exit status"
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
		return waitStatusDetail(ws)
	}
	return ps.ExitCode(), "exit code " + strconv.Itoa(ps.ExitCode())
}

// waitStatusDetail reports an exit as a container runtime does: a signal death is 128+signal.
func waitStatusDetail(ws syscall.WaitStatus) (code int, detail string) {
	if ws.Signaled() {
		return 128 + int(ws.Signal()), "exit code " + strconv.Itoa(128+int(ws.Signal())) + " (killed by " + signalName(ws.Signal()) + ")"
	}
	return ws.ExitStatus(), "exit code " + strconv.Itoa(ws.ExitStatus())
}

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return s.String()
}

const (
	sigTERM = syscall.SIGTERM
	sigKILL = syscall.SIGKILL
)
