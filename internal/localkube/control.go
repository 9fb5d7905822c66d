package localkube

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The control endpoint lets a second terminal drive a running embedded cluster: `gracelab
// cluster up -f DIR` calls ServeControl, and `gracelab restart deployment NAME` calls
// RestartViaControl. The endpoint is HTTP on 127.0.0.1 with a random port; its address and a
// random token are in a state file (mode 0600) that only the same user can read:
//
//	$GRACELAB_RUNTIME_DIR/cluster.json, else $XDG_RUNTIME_DIR/gracelab/cluster.json,
//	else <os.TempDir()>/gracelab-<uid>/cluster.json
//
// API (token in the Authorization: Bearer header):
//
//	POST /v1/restart {"deployment":"upstream"}  -> 200 {"deployment","revision"} once triggered
//	GET  /v1/status                             -> 200 {"pid","target","pods":[...]}

// ErrNoCluster is returned by RestartViaControl when no embedded cluster is running.
var ErrNoCluster = errors.New("no embedded cluster is running; start one with `gracelab cluster up -f DIR`")

// ControlState is the content of the state file.
type ControlState struct {
	PID     int       `json:"pid"`
	Addr    string    `json:"addr"`
	Token   string    `json:"token"`
	Target  string    `json:"target"`
	Started time.Time `json:"started"`
}

// StateFile is where a running embedded cluster advertises its control endpoint.
func StateFile() string {
	if d := os.Getenv("GRACELAB_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "cluster.json")
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "gracelab", "cluster.json")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("gracelab-%d", os.Getuid()), "cluster.json")
}

func readState(path string) (*ControlState, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st ControlState
	if err := json.Unmarshal(b, &st); err != nil || st.PID <= 0 || st.Addr == "" {
		return nil, fmt.Errorf("state file %s is corrupt; remove it", path)
	}
	return &st, nil
}

// ServeControl starts the control endpoint on 127.0.0.1 (a port the OS chooses) and writes
// the state file. Both go away when ctx ends or the cluster goes down. It fails if another
// live embedded cluster already owns the state file.
func (c *Cluster) ServeControl(ctx context.Context) (string, error) {
	path := StateFile()
	if st, err := readState(path); err == nil && st.PID != os.Getpid() && processAlive(st.PID) {
		return "", fmt.Errorf("another embedded cluster is running (pid %d, control endpoint %s, state file %s)", st.PID, st.Addr, path)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("control endpoint: %w", err)
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	st := ControlState{PID: os.Getpid(), Addr: ln.Addr().String(), Token: hex.EncodeToString(tok), Target: c.Target(), Started: time.Now().UTC()}
	if err := writeState(path, st); err != nil {
		ln.Close()
		return "", err
	}
	srv := &http.Server{Handler: c.controlHandler(st.Token), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		select {
		case <-ctx.Done():
		case <-c.downCh:
		}
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		// Remove the file only if it is still ours.
		if cur, err := readState(path); err == nil && cur.Token == st.Token {
			_ = os.Remove(path)
		}
	}()
	return st.Addr, nil
}

func writeState(path string, st ControlState) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating the state directory: %w", err)
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	tmp, err := os.CreateTemp(filepath.Dir(path), ".cluster-*.json")
	if err != nil {
		return fmt.Errorf("writing the state file: %w", err)
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing the state file: %w", errors.Join(werr, cerr))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing the state file: %w", err)
	}
	return nil
}

type restartRequest struct {
	Deployment string `json:"deployment"`
}

type restartResponse struct {
	Deployment string `json:"deployment"`
	Revision   string `json:"revision"`
}

type statusResponse struct {
	PID    int       `json:"pid"`
	Target string    `json:"target"`
	Pods   []PodInfo `json:"pods"`
}

func (c *Cluster) controlHandler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/restart", func(w http.ResponseWriter, r *http.Request) {
		var req restartRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || req.Deployment == "" {
			writeJSONError(w, http.StatusBadRequest, `body must be {"deployment":"NAME"}`)
			return
		}
		if err := c.Restart(r.Context(), req.Deployment); err != nil {
			code := http.StatusConflict
			if strings.HasPrefix(err.Error(), "no Deployment") {
				code = http.StatusNotFound
			}
			writeJSONError(w, code, err.Error())
			return
		}
		c.mu.Lock()
		d, _ := c.findLocked(req.Deployment)
		resp := restartResponse{Deployment: d.spec.name, Revision: d.current.hash}
		c.mu.Unlock()
		writeJSON(w, http.StatusOK, resp)
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, statusResponse{PID: os.Getpid(), Target: c.Target(), Pods: c.Pods()})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			writeJSONError(w, http.StatusUnauthorized, "missing or wrong token (read it from the state file)")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// RestartViaControl asks the embedded cluster running in another process (found through the
// state file) to restart a Deployment. It returns once the restart is triggered, not when the
// rollout is complete.
func RestartViaControl(ctx context.Context, deployment string) error {
	path := StateFile()
	st, err := readState(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNoCluster
	}
	if err != nil {
		return err
	}
	if !processAlive(st.PID) {
		_ = os.Remove(path)
		return fmt.Errorf("stale state file %s: the embedded cluster (pid %d) is no longer running (file removed); start one with `gracelab cluster up -f DIR`", path, st.PID)
	}
	body, _ := json.Marshal(restartRequest{Deployment: deployment})
	var resp restartResponse
	return controlCall(ctx, st, http.MethodPost, "/v1/restart", body, &resp)
}

// ControlStatus fetches the pods of the embedded cluster running in another process.
func ControlStatus(ctx context.Context) (*ControlState, []PodInfo, error) {
	st, err := readState(StateFile())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, ErrNoCluster
	}
	if err != nil {
		return nil, nil, err
	}
	var resp statusResponse
	if err := controlCall(ctx, st, http.MethodGet, "/v1/status", nil, &resp); err != nil {
		return nil, nil, err
	}
	return st, resp.Pods, nil
}

var controlClient = &http.Client{Transport: &http.Transport{Proxy: nil}}

func controlCall(ctx context.Context, st *ControlState, method, path string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+st.Addr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+st.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := controlClient.Do(req)
	if err != nil {
		return fmt.Errorf("the embedded cluster (pid %d) does not answer at %s: %w", st.PID, st.Addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("the embedded cluster answered %s", resp.Status)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("the embedded cluster's answer is not valid JSON: %w", err)
	}
	return nil
}
