//go:build linux

package procfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestReadStat(t *testing.T) {
	proc := t.TempDir()
	write := func(pid, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(proc, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, pid, "stat"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A command with spaces and parentheses, as /proc shows it.
	write("9", "9 (a) (b c) S 4 9 9 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 77 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")
	write("10", "10 (short) S 4 9\n")
	write("11", "11 no-parenthesis S 4\n")

	if st, err := ReadStat(proc, 9); err != nil || st != (Stat{State: 'S', PPID: 4, Start: 77}) {
		t.Errorf("ReadStat(9) = %+v, %v; want state S, ppid 4, start 77", st, err)
	}
	for _, pid := range []int{10, 11} {
		if st, err := ReadStat(proc, pid); err == nil {
			t.Errorf("ReadStat(%d) = %+v, want an error", pid, st)
		}
	}
	if _, err := ReadStat(proc, 12); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadStat of a missing process: %v, want fs.ErrNotExist", err)
	}
	// This very process, from the real /proc.
	if st, err := ReadStat("/proc", os.Getpid()); err != nil || st.PPID != os.Getppid() || st.Start == 0 {
		t.Errorf("ReadStat(self) = %+v, %v; want ppid %d and a start time", st, err, os.Getppid())
	}
}
