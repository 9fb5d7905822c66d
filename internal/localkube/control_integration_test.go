//go:build linux

package localkube

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

func TestIntegrationControlEndpointRestartsAndCleansUp(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	t.Setenv("GRACELAB_RUNTIME_DIR", dir)
	ctx := context.Background()
	if err := RestartViaControl(ctx, "web"); !errors.Is(err, ErrNoCluster) {
		t.Fatalf("without a cluster: %v", err)
	}
	c := startCluster(t, Options{}, app{name: "web", replicas: 1, env: map[string]string{"POD_TERM": "graceful"}})
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	addr, err := c.ServeControl(sctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := readState(StateFile())
	if err != nil || st.Addr != addr || st.PID != os.Getpid() || st.Target != c.Target() {
		t.Fatalf("state file: %+v, %v", st, err)
	}
	if fi, _ := os.Stat(StateFile()); fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600 (it holds the token)", fi.Mode().Perm())
	}

	if err := RestartViaControl(ctx, "web"); err != nil {
		t.Fatalf("restart via control: %v", err)
	}
	if indexOf(c.Events(), 0, kindIs(cluster.RestartTriggered)) < 0 {
		t.Fatal("no restart_triggered after a restart via control")
	}
	if err := RestartViaControl(ctx, "nope"); err == nil || !strings.Contains(err.Error(), `no Deployment "nope"`) {
		t.Fatalf("unknown deployment: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.WaitSettled(wctx, "web"); err != nil {
		t.Fatal(err)
	}
	_, pods, err := ControlStatus(ctx)
	if err != nil || len(pods) != 1 {
		t.Fatalf("status: %v %+v", err, pods)
	}

	// Bad requests get a clear JSON error, not a crash.
	for _, tc := range []struct {
		token, body string
		want        int
	}{
		{"wrong", `{"deployment":"web"}`, http.StatusUnauthorized},
		{st.Token, `{"deployment":`, http.StatusBadRequest},
		{st.Token, `{"deployment":"web","extra":1}`, http.StatusBadRequest},
		{st.Token, `{}`, http.StatusBadRequest},
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/restart", strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+tc.token)
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.want || body["error"] == "" {
			t.Errorf("%q with token %q: %d %v, want %d with an error", tc.body, tc.token, resp.StatusCode, body, tc.want)
		}
	}

	// A second cluster may not take over the state file of a live one.
	other, err := New(Options{Manifests: manifests(map[string]string{"a.yaml": app{name: "x", replicas: 1}.yaml()}), Executable: os.Args[0], Images: testImages})
	if err != nil {
		t.Fatal(err)
	}
	if st2 := (ControlState{PID: 1, Addr: "127.0.0.1:1", Token: "t"}); true {
		// PID 1 is alive: pretend it owns the file.
		writeState(StateFile(), st2)
		if _, err := other.ServeControl(ctx); err == nil || !strings.Contains(err.Error(), "another embedded cluster is running") {
			t.Errorf("second ServeControl over a live owner: %v", err)
		}
		writeState(StateFile(), *st)
	}

	// Down removes the state file.
	if err := c.Down(ctx); err != nil {
		t.Fatal(err)
	}
	poll(t, 5*time.Second, func() bool {
		_, err := os.Stat(StateFile())
		return errors.Is(err, os.ErrNotExist)
	}, func() string { return "the state file is still there after Down" })
	if err := RestartViaControl(ctx, "web"); !errors.Is(err, ErrNoCluster) {
		t.Fatalf("after Down: %v", err)
	}
}
