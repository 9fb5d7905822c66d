package kube

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gracelab/gracelab/internal/procfs"
)

// The node side of the kill helper (the hidden `gracelab kill-container`, run in a pod with
// the host's PID namespace): from a container ID as the API reports it (containerd://ID) to the
// container's first process, found in /proc by its cgroup, and its SIGKILL.
//
// A container's processes sit in a cgroup whose last path element names the container:
// cgroupfs (cgroup v1 or v2) ".../pod<uid>/<id>", the systemd driver
// ".../cri-containerd-<id>.scope", "crio-<id>.scope" or "docker-<id>.scope". Its first process
// is the one whose parent is outside that cgroup (the runtime's shim) and that started first
// (a `kubectl exec` also has the shim as parent, but starts later).

// ContainerProcess is a container's first process as /proc shows it.
type ContainerProcess struct {
	PID     int    // in the PID namespace of the /proc read (the host's, with hostPID)
	NSPID   int    // in the container's own PID namespace (1 unless the pod shares one); 0 if unknown
	Command string // /proc/PID/comm
	Procs   int    // processes of the container found
	// KilledAt is when KillContainerProcess sent the SIGKILL (the node's clock).
	KilledAt time.Time
}

var containerIDPattern = regexp.MustCompile(`^[0-9a-f]{12,64}$`)

// ParseContainerID takes "containerd://ID" (or cri-o://, docker://) or a bare ID and returns
// the hexadecimal ID.
func ParseContainerID(s string) (string, error) {
	id := s
	if _, after, ok := strings.Cut(s, "://"); ok {
		id = after
	}
	if !containerIDPattern.MatchString(id) {
		return "", fmt.Errorf("container ID %q is not RUNTIME://HEX as a pod's status reports it", s)
	}
	return id, nil
}

// inContainerCgroup says whether a /proc/PID/cgroup text puts the process in container id.
func inContainerCgroup(cgroup, id string) bool {
	for _, line := range strings.Split(cgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		base := strings.TrimSuffix(filepath.Base(parts[2]), ".scope")
		for _, prefix := range []string{"", "cri-containerd-", "crio-", "docker-"} {
			if base == prefix+id {
				return true
			}
		}
	}
	return false
}

// nsPID is the last NSpid of /proc/PID/status: the PID in the innermost PID namespace.
func nsPID(proc string, pid int) int {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0
			}
			n, _ := strconv.Atoi(f[len(f)-1])
			return n
		}
	}
	return 0
}

// FindContainerProcess finds container id's first process under proc (normally "/proc").
func FindContainerProcess(proc, id string) (ContainerProcess, error) {
	entries, err := os.ReadDir(proc)
	if err != nil {
		return ContainerProcess{}, err
	}
	stats := map[int]procfs.Stat{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !e.IsDir() {
			continue
		}
		cg, err := os.ReadFile(filepath.Join(proc, e.Name(), "cgroup"))
		if err != nil || !inContainerCgroup(string(cg), id) {
			continue // gone meanwhile, or another container's
		}
		st, err := procfs.ReadStat(proc, pid)
		if err != nil {
			continue
		}
		if st.State == 'Z' {
			continue // dead already, waiting to be reaped
		}
		stats[pid] = st
	}
	if len(stats) == 0 {
		return ContainerProcess{}, fmt.Errorf("no running process of container %s under %s (not on this node, exited, or the helper does not see the host's processes: is hostPID set?)", short(id), proc)
	}
	var firsts []int
	for pid, st := range stats {
		if _, inside := stats[st.PPID]; !inside {
			firsts = append(firsts, pid)
		}
	}
	sort.Slice(firsts, func(i, j int) bool {
		a, b := stats[firsts[i]], stats[firsts[j]]
		if a.Start != b.Start {
			return a.Start < b.Start
		}
		return firsts[i] < firsts[j]
	})
	pid := firsts[0]
	comm, _ := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "comm"))
	return ContainerProcess{PID: pid, NSPID: nsPID(proc, pid), Command: strings.TrimSpace(string(comm)), Procs: len(stats)}, nil
}

func short(id string) string { return id[:min(len(id), 12)] }

// KillContainerProcess finds container id's first process under proc, SIGKILLs it and waits
// (up to wait) until it is gone or a zombie. With the container's init gone the runtime kills
// the rest of the container, as for a crash.
func KillContainerProcess(proc, id string, wait time.Duration) (ContainerProcess, error) {
	p, err := FindContainerProcess(proc, id)
	if err != nil {
		return p, err
	}
	p.KilledAt = time.Now()
	if err := sigkill(p.PID); err != nil {
		return p, fmt.Errorf("SIGKILL to pid %d (%s) of container %s: %w", p.PID, p.Command, short(id), err)
	}
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := procfs.ReadStat(proc, p.PID)
		if err != nil || st.State == 'Z' {
			return p, nil
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("pid %d (%s) of container %s still runs %s after SIGKILL", p.PID, p.Command, short(id), wait)
		}
		<-tick.C
	}
}
