//go:build unix

package kube

import "golang.org/x/sys/unix"

func sigkill(pid int) error { return unix.Kill(pid, unix.SIGKILL) }
