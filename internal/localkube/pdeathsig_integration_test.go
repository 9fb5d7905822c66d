//go:build linux

package localkube

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestPodsDieWithTheirParent starts a cluster in a child process, SIGKILLs that process (no
// Down, no cleanup code runs) and checks that the kernel killed the pods with it (Pdeathsig).
func TestIntegrationPodsDieWithTheirParent(t *testing.T) {
	integration(t)
	t.Parallel()
	cmd := exec.Command(os.Args[0], "clusterchild", "testdata/basic")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // held open: the child waits on it
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		if s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	var pods []PodInfo
	select {
	case line := <-lines:
		if err := json.Unmarshal([]byte(line), &pods); err != nil {
			t.Fatalf("child output %q: %v", line, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the child cluster did not come up")
	}
	if len(pods) != 2 {
		t.Fatalf("want 2 pods, got %+v", pods)
	}
	for _, p := range pods {
		if !alive(p.PID) {
			t.Fatalf("pod %s (pid %d) is not running before the kill", p.Name, p.PID)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for _, p := range pods {
		assertGone(t, p.PID)
	}
}
