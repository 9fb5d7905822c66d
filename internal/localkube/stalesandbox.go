//go:build linux

package localkube

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/gracelab/gracelab/internal/procfs"
)

// Stale sandbox directories: a gracelab that is SIGKILLed (or crashes) cannot remove its pods'
// generated files, so every such directory names its owner in a mark file, and a later
// cluster removes the ones whose owner is provably dead. Unmarked directories (from older
// versions, or a cluster killed between mkdir and writing the mark) are never touched: nobody
// can tell whether a process still uses them.

const (
	sandboxDirPrefix = "gracelab-pods-"
	sandboxOwnerFile = ".gracelab-owner"
	ownerMarkVersion = "gracelab-pods-owner v1"
)

// procOwner identifies a process for as long as the machine runs: a PID is reused, a PID with
// its start time (clock ticks after boot, /proc/PID/stat field 22) is not, within one boot and
// one PID namespace.
type procOwner struct {
	PID   int
	Start uint64
	Boot  string // /proc/sys/kernel/random/boot_id
	PIDNS string // /proc/self/ns/pid's link, e.g. "pid:[4026531836]"
}

func selfOwner() (procOwner, error) {
	pid := os.Getpid()
	st, err := procfs.ReadStat("/proc", pid)
	if err != nil {
		return procOwner{}, err
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return procOwner{}, err
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return procOwner{}, err
	}
	return procOwner{PID: pid, Start: st.Start, Boot: strings.TrimSpace(string(boot)), PIDNS: ns}, nil
}

func (o procOwner) mark() string {
	return fmt.Sprintf("%s\npid %d\nstart %d\nboot %s\npidns %s\n", ownerMarkVersion, o.PID, o.Start, o.Boot, o.PIDNS)
}

func parseOwnerMark(s string) (procOwner, error) {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) != 5 || lines[0] != ownerMarkVersion {
		return procOwner{}, errors.New("not an owner mark")
	}
	var o procOwner
	vals := map[string]string{}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, " ")
		if !ok || v == "" {
			return procOwner{}, fmt.Errorf("owner mark line %q", l)
		}
		vals[k] = v
	}
	var err1, err2 error
	o.PID, err1 = strconv.Atoi(vals["pid"])
	o.Start, err2 = strconv.ParseUint(vals["start"], 10, 64)
	o.Boot, o.PIDNS = vals["boot"], vals["pidns"]
	if err := errors.Join(err1, err2); err != nil || o.PID <= 0 || o.Boot == "" || o.PIDNS == "" {
		return procOwner{}, fmt.Errorf("owner mark: %v", err)
	}
	return o, nil
}

// newSandboxDir creates the cluster's directory for its sandboxes' files under root, marked
// with this process as its owner. Without /proc it stays unmarked (never removed by others).
func newSandboxDir(root string) (string, error) {
	dir, err := os.MkdirTemp(root, sandboxDirPrefix)
	if err != nil {
		return "", err
	}
	self, err := selfOwner()
	if err != nil {
		return dir, nil
	}
	f, err := os.OpenFile(filepath.Join(dir, sandboxOwnerFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err == nil {
		_, err = f.WriteString(self.mark())
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("marking the sandboxes' directory: %w", err)
	}
	return dir, nil
}

// ownerGone says why the mark's owner is provably dead, or "" when it may be alive or
// nothing can be told (another PID namespace, /proc unreadable).
func ownerGone(o, self procOwner) string {
	if o.Boot != self.Boot {
		return "its owner ran before the last reboot"
	}
	if o.PIDNS != self.PIDNS {
		return ""
	}
	st, err := procfs.ReadStat("/proc", o.PID)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("its owner, PID %d, has exited", o.PID)
	case err != nil:
		return ""
	case st.Start != o.Start:
		return fmt.Sprintf("its owner, PID %d, has exited (the PID is another process's now)", o.PID)
	}
	return ""
}

// removeStaleSandboxDirs removes root's sandbox directories whose owner is provably dead.
// Only real directories of this user that hold an owner mark are candidates; symlinks are not
// followed, and a directory with a mount point inside is left (removing it would empty the
// mounted filesystem).
func removeStaleSandboxDirs(root string, log *slog.Logger) {
	self, err := selfOwner()
	if err != nil {
		log.Info("not looking for stale sandbox directories", "error", err)
		return
	}
	mounts, err := mountPoints()
	if err != nil {
		log.Info("not looking for stale sandbox directories", "error", err)
		return
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return
	}
	r, err := os.OpenRoot(realRoot)
	if err != nil {
		return
	}
	defer r.Close()
	entries, err := os.ReadDir(realRoot)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, sandboxDirPrefix) {
			continue
		}
		info, err := r.Lstat(name)
		if err != nil || !info.IsDir() {
			continue // a symlink is never followed
		}
		if st, ok := info.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
			continue
		}
		owner, err := readOwnerMark(r, name)
		if err != nil {
			continue
		}
		why := ownerGone(owner, self)
		if why == "" {
			continue
		}
		path := filepath.Join(realRoot, name)
		if m := mountInside(path, mounts); m != "" {
			log.Warn("left a stale sandbox directory: a filesystem is mounted inside", "dir", path, "mount", m, "reason", why)
			continue
		}
		if err := removeMarkedDir(r, name); err != nil {
			log.Warn("could not remove a stale sandbox directory", "dir", path, "reason", why, "error", err)
			continue
		}
		log.Warn("removed a stale sandbox directory", "dir", path, "reason", why)
	}
}

// removeMarkedDir removes the mark last, so a removal that fails half way is tried again by
// the next cluster instead of leaving an unmarked directory nobody removes.
func removeMarkedDir(r *os.Root, dir string) error {
	entries, err := fs.ReadDir(r.FS(), dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() != sandboxOwnerFile {
			if err := r.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return r.RemoveAll(dir)
}

func readOwnerMark(r *os.Root, dir string) (procOwner, error) {
	f, err := r.OpenFile(filepath.Join(dir, sandboxOwnerFile), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return procOwner{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return procOwner{}, err
	}
	return parseOwnerMark(string(b))
}

// mountPoints lists this mount namespace's mount points (/proc/self/mountinfo field 5).
func mountPoints() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			return nil, fmt.Errorf("/proc/self/mountinfo line %q", sc.Text())
		}
		mps = append(mps, unescapeMountinfo(fields[4]))
	}
	return mps, sc.Err()
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space, \134 for '\').
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountInside is the first mount point at or below dir, or "".
func mountInside(dir string, mounts []string) string {
	for _, m := range mounts {
		if m == dir || strings.HasPrefix(m, dir+"/") {
			return m
		}
	}
	return ""
}
