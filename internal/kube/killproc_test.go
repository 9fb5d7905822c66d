package kube

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const (
	testCID   = "3b2499e342a21b57c8ac8eaeb9280288b2cfee36552ea88e73ee90efebf2fb91"
	otherCID  = "3b2499e342a21b57c8ac8eaeb9280288b2cfee36552ea88e73ee90efebf2fb92"
	testPodID = "pod6386e936-efe1-4c38-8ca2-4631fe219fcb"
)

// fakeProc writes a /proc tree: pid -> its cgroup file, parent, start time, state, NSpid.
type fakeProc struct {
	pid, ppid int
	comm      string
	cgroup    string
	start     uint64
	state     string
	nspid     string
}

func writeProc(t *testing.T, procs ...fakeProc) string {
	t.Helper()
	root := t.TempDir()
	for _, p := range procs {
		dir := filepath.Join(root, strconv.Itoa(p.pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		state := p.state
		if state == "" {
			state = "S"
		}
		// Fields 3..22 of proc(5): state ppid pgrp session tty tpgid flags minflt cminflt majflt
		// cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime, then more.
		stat := fmt.Sprintf("%d (%s) %s %d 1 1 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 8 0 %d 1000000 500 18446744073709551615\n", p.pid, p.comm, state, p.ppid, p.start)
		status := fmt.Sprintf("Name:\t%s\nState:\t%s\nPPid:\t%d\nNSpid:\t%s\n", p.comm, state, p.ppid, p.nspid)
		for name, text := range map[string]string{"stat": stat, "status": status, "cgroup": p.cgroup, "comm": p.comm + "\n"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Not processes: /proc has files and non-numeric directories too.
	os.WriteFile(filepath.Join(root, "uptime"), []byte("1 1\n"), 0o644)
	os.MkdirAll(filepath.Join(root, "sys"), 0o755)
	return root
}

// cgroupV1 is the lab's form (cgroupfs driver on cgroup v1): every hierarchy plus the v2 line.
func cgroupV1(path string) string {
	var b strings.Builder
	for i, c := range []string{"cpu", "memory", "pids", "name=systemd"} {
		fmt.Fprintf(&b, "%d:%s:%s\n", 4-i, c, path)
	}
	b.WriteString("0::" + path + "\n")
	return b.String()
}

func TestFindContainerProcess(t *testing.T) {
	shim := fakeProc{pid: 500, ppid: 1, comm: "containerd-shim", cgroup: cgroupV1("/system.slice/containerd.service"), start: 100, nspid: "500"}
	cases := []struct {
		name   string
		cgroup string // of the target container's processes
	}{
		{"cgroup v1, cgroupfs driver", cgroupV1("/kubepods/burstable/" + testPodID + "/" + testCID)},
		{"cgroup v2, cgroupfs driver", "0::/kubepods/burstable/" + testPodID + "/" + testCID + "\n"},
		{"cgroup v2, systemd driver", "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" + testPodID + ".slice/cri-containerd-" + testCID + ".scope\n"},
		{"cgroup v2 seen from a cgroup namespace", "0::/../../kubepods-burstable-" + testPodID + ".slice/cri-containerd-" + testCID + ".scope\n"},
		{"cri-o", "0::/kubepods.slice/kubepods-" + testPodID + ".slice/crio-" + testCID + ".scope\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			proc := writeProc(t,
				fakeProc{pid: 1, ppid: 0, comm: "systemd", cgroup: cgroupV1("/"), start: 1, nspid: "1"},
				shim,
				// The container: its init, a child of it, and a later `kubectl exec` (also the
				// shim's child, started later).
				fakeProc{pid: 612, ppid: 500, comm: "upstream", cgroup: tc.cgroup, start: 200, nspid: "612\t1"},
				fakeProc{pid: 640, ppid: 612, comm: "worker", cgroup: tc.cgroup, start: 210, nspid: "640\t7"},
				fakeProc{pid: 700, ppid: 500, comm: "sh", cgroup: tc.cgroup, start: 900, nspid: "700\t12"},
				// Another container whose ID differs in the last digit, its pause container and
				// a zombie of ours: none is the answer.
				fakeProc{pid: 601, ppid: 500, comm: "other", cgroup: strings.ReplaceAll(tc.cgroup, testCID, otherCID), start: 150, nspid: "601\t1"},
				fakeProc{pid: 599, ppid: 500, comm: "pause", cgroup: cgroupV1("/kubepods/burstable/" + testPodID + "/0123456789abcdef"), start: 120, nspid: "599\t1"},
				fakeProc{pid: 605, ppid: 500, comm: "upstream", cgroup: tc.cgroup, start: 190, state: "Z", nspid: "605\t1"},
			)
			got, err := FindContainerProcess(proc, testCID)
			if err != nil {
				t.Fatal(err)
			}
			want := ContainerProcess{PID: 612, NSPID: 1, Command: "upstream", Procs: 3}
			if got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestFindContainerProcessRefusesLookalikes(t *testing.T) {
	// cri-o's monitor sits in crio-conmon-ID.scope: it is not the container.
	proc := writeProc(t,
		fakeProc{pid: 42, ppid: 1, comm: "conmon", cgroup: "0::/system.slice/crio-conmon-" + testCID + ".scope\n", start: 5, nspid: "42"},
		fakeProc{pid: 43, ppid: 1, comm: "prefix", cgroup: "0::/kubepods/" + testCID[:20] + "\n", start: 6, nspid: "43"},
	)
	_, err := FindContainerProcess(proc, testCID)
	if err == nil || !strings.Contains(err.Error(), "no running process of container 3b2499e342a2") {
		t.Fatalf("err = %v, want no process found", err)
	}
}

func TestParseContainerID(t *testing.T) {
	for in, want := range map[string]string{
		"containerd://" + testCID: testCID,
		"cri-o://" + testCID:      testCID,
		testCID:                   testCID,
	} {
		if got, err := ParseContainerID(in); err != nil || got != want {
			t.Errorf("ParseContainerID(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "containerd://", "containerd://../../etc", "containerd://ABC", "docker://1234"} {
		if _, err := ParseContainerID(bad); err == nil {
			t.Errorf("ParseContainerID(%q) accepted", bad)
		}
	}
}
