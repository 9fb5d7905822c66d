// Package procfs reads what gracelab needs from Linux's /proc: a process's state, parent and
// start time. One parser for the kill helper (which finds a container's process) and the
// embedded cluster (which tells a dead sandbox owner from a live one).
package procfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stat is what /proc/PID/stat says of a process.
type Stat struct {
	State byte // R, S, D, Z, ...
	PPID  int
	// Start is when the process started, in clock ticks since boot: comparable between
	// processes, and it tells a PID's new process from the one that had it before.
	Start uint64
}

// ReadStat parses proc/PID/stat (proc is "/proc" but in tests). An error wrapping
// fs.ErrNotExist means there is no such process.
func ReadStat(proc string, pid int) (Stat, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return Stat{}, err
	}
	s := string(b)
	end := strings.LastIndexByte(s, ')') // the command may hold spaces and parentheses
	if end < 0 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(s[end+1:])
	// After the command: state (field 3), ppid (4), ..., starttime (22).
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: %d fields after the command, want 20 or more", pid, len(f))
	}
	ppid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return Stat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return Stat{State: f[0][0], PPID: ppid, Start: start}, nil
}
