package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/lifecycle/lifecycletest"
)

func TestServeIsHiddenAndChecksItsArgument(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main([]string{"--help"}, Streams{Out: &out, ErrOut: &errOut}); code != ExitOK {
		t.Fatalf("--help exit %d", code)
	}
	if regexp.MustCompile(`(?m)^\s+serve\s`).MatchString(out.String()) {
		t.Fatalf("serve is plumbing and must not be listed in --help:\n%s", out.String())
	}
	for _, args := range [][]string{{"serve"}, {"serve", "sidecar"}, {"serve", "upstream", "extra"}} {
		errOut.Reset()
		if code := Main(args, Streams{Out: &out, ErrOut: &errOut}); code != ExitBadArgs {
			t.Fatalf("%v: exit %d, want %d", args, code, ExitBadArgs)
		}
		if strings.Count(errOut.String(), "\n") != 1 {
			t.Fatalf("%v: want one error line, got %q", args, errOut.String())
		}
	}
}

// TestIntegrationServe runs the real gracelab binary as each service, as the embedded cluster
// does for its pods.
func TestIntegrationServe(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test")
	}
	gracelab := gracelabBinary(t)
	local := []string{"HOST=127.0.0.1", "PORT=0"}

	t.Run("immediate dies on SIGTERM with no handler anywhere", func(t *testing.T) {
		p := lifecycletest.Start(t, gracelab, []string{"serve", "upstream"}, append(local, "SHUTDOWN=immediate", "WORK_MIN=5s", "WORK_MAX=5s")...)
		failed := make(chan error, 1)
		go func() {
			resp, err := (&http.Client{Timeout: 20 * time.Second}).Get(p.URL + "/api/data")
			if err == nil {
				resp.Body.Close()
			}
			failed <- err
		}()
		p.WaitMetric("gracelab_http_requests_in_flight", 2)
		p.Signal(syscall.SIGTERM)
		ws, ok := p.Wait(10 * time.Second).Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
			t.Fatalf("want the process killed by SIGTERM, got %v:\n%s", ws, p.Logs())
		}
		if err := <-failed; err == nil {
			t.Fatal("the in-flight request survived")
		}
	})

	t.Run("graceful upstream and downstream serve and drain", func(t *testing.T) {
		up := lifecycletest.Start(t, gracelab, []string{"serve", "upstream"}, append(local, "WORK_MIN=0", "WORK_MAX=0")...)
		down := lifecycletest.Start(t, gracelab, []string{"serve", "downstream"}, append(local, "UPSTREAM_URL="+up.URL)...)
		resp, err := http.Get(down.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var answer struct{ Status string }
		if resp.StatusCode != 200 || json.Unmarshal(body, &answer) != nil || answer.Status != "ok" {
			t.Fatalf("GET / = %d %s, want 200 ok", resp.StatusCode, body)
		}
		for _, p := range []*lifecycletest.Process{down, up} {
			p.Signal(syscall.SIGTERM)
			if state := p.Wait(10 * time.Second); state.ExitCode() != 0 {
				t.Fatalf("exit %v, want 0:\n%s", state, p.Logs())
			}
			if strings.Contains(p.Logs(), "gracelab:") {
				t.Fatalf("a clean exit must print no error line:\n%s", p.Logs())
			}
		}
	})

	t.Run("bad variable exits 2 with one line", func(t *testing.T) {
		for _, tc := range []struct{ service, env, blame string }{
			{"upstream", "WORK_MIN=abc", "WORK_MIN"},
			{"downstream", "UPSTREAM_URL=upstream:7000", "UPSTREAM_URL"},
			{"downstream", "SHUTDOWN=maybe", "SHUTDOWN"},
		} {
			cmd := exec.Command(gracelab, "serve", tc.service)
			cmd.Env = []string{tc.env}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != ExitBadArgs {
				t.Fatalf("%s %s: %v, want exit 2", tc.service, tc.env, err)
			}
			if out := stderr.String(); strings.Count(out, "\n") != 1 || !strings.Contains(out, tc.blame+"=") {
				t.Fatalf("%s %s: want one line naming %s, got %q", tc.service, tc.env, tc.blame, out)
			}
		}
	})
}
