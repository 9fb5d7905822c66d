//go:build linux

package localkube

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

func TestIntegrationReadinessProbeTimingAndThresholds(t *testing.T) {
	integration(t)
	t.Parallel()
	// Probes at start+1s, +2s, ...: two successes needed, so ready at >= 2s. /health fails
	// from 6s on (after Up, even on a loaded machine): two failures needed, so not ready at
	// >= 7s.
	a := app{name: "web", replicas: 1, env: map[string]string{"POD_HEALTH_FAIL_AFTER": "6s"},
		readiness: "httpGet: {path: /health, port: 8080}\ninitialDelaySeconds: 1\nperiodSeconds: 1\nsuccessThreshold: 2\nfailureThreshold: 2\n"}
	c := startCluster(t, Options{}, a)
	pod := firstPod(t, c).Name
	evs := c.Events()
	started := evs[indexOf(evs, 0, podKind(pod, cluster.PodStarted))]
	ready := evs[indexOf(evs, 0, podKind(pod, cluster.PodReady))]
	if d := ready.Time.Sub(started.Time); d < 1900*time.Millisecond {
		t.Errorf("ready %s after start; initialDelay 1s + 2 successes 1s apart needs >= 2s", d)
	}
	notReady := waitEvent(t, c, 30*time.Second, podKind(pod, cluster.PodNotReady))
	if d := notReady.Time.Sub(started.Time); d < 6900*time.Millisecond {
		t.Errorf("not ready %s after start; failing from 6s with failureThreshold 2 needs >= 7s", d)
	}
	if !strings.Contains(notReady.Detail, "503") {
		t.Errorf("not-ready detail should carry the probe failure: %q", notReady.Detail)
	}
	// The API view turns not ready at once; the proxy drops the endpoint after the lag.
	removed := waitEvent(t, c, 10*time.Second, podKind(pod, cluster.EndpointRemoved))
	if removed.Time.Sub(notReady.Time) < 300*time.Millisecond {
		t.Errorf("endpoint removed %s after not-ready; the lag is 300ms", removed.Time.Sub(notReady.Time))
	}
}

func TestIntegrationLivenessFailureRestartsTheContainer(t *testing.T) {
	integration(t)
	t.Parallel()
	// Liveness fails from 4s on (well after Up, even on a loaded machine), twice in a row.
	a := app{name: "web", replicas: 1, env: map[string]string{"POD_LIVE_FAIL_AFTER": "4s", "POD_TERM": "graceful"},
		liveness: "httpGet: {path: /live, port: http}\ninitialDelaySeconds: 4\nperiodSeconds: 1\nfailureThreshold: 2\n"}
	c := startCluster(t, Options{}, a)
	before := firstPod(t, c)
	restarted := waitEvent(t, c, 30*time.Second, func(e cluster.Event) bool {
		return e.Kind == cluster.PodStarted && strings.Contains(e.Detail, "restart 1")
	})
	if restarted.Pod != before.Name {
		t.Fatalf("liveness restarts the container in the same pod: %s != %s", restarted.Pod, before.Name)
	}
	evs := c.Events()
	term := indexOf(evs, 0, func(e cluster.Event) bool {
		return e.Kind == cluster.SIGTERMSent && strings.Contains(e.Detail, "liveness probe failed")
	})
	exited := indexOf(evs, term, podKind(before.Name, cluster.PodExited))
	start := indexOf(evs, exited, podKind(before.Name, cluster.PodStarted))
	if term < 0 || exited < 0 || start < 0 {
		t.Fatalf("want sigterm (liveness) < exited < started; got %d %d %d", term, exited, start)
	}
	if !strings.Contains(evs[exited].Detail, "after liveness probe failed") {
		t.Errorf("exit detail should say the kubelet killed it: %q", evs[exited].Detail)
	}
	started := evs[indexOf(evs, 0, podKind(before.Name, cluster.PodStarted))]
	if d := evs[term].Time.Sub(started.Time); d < 5*time.Second {
		t.Errorf("liveness kill %s after start; failing from 4s with failureThreshold 2 needs >= 5s", d)
	}
	if indexOf(evs, 0, podKind(before.Name, cluster.PodTerminating)) >= 0 {
		t.Error("a liveness restart must not delete the pod")
	}
	after := firstPod(t, c)
	if after.Restarts < 1 || after.IP != before.IP {
		t.Errorf("after restart: %+v (before %+v)", after, before)
	}
}

func TestIntegrationGracePeriodEndsWithSIGKILL(t *testing.T) {
	integration(t)
	t.Parallel()
	a := app{name: "stubborn", replicas: 1, grace: 3, env: map[string]string{"POD_TERM": "ignore"},
		strategy: "rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n"}
	c := startCluster(t, Options{}, a)
	old := firstPod(t, c)
	restartAndSettle(t, c, "stubborn")
	evs := c.Events()
	term := indexOf(evs, 0, podKind(old.Name, cluster.PodTerminating))
	sigterm := indexOf(evs, term, podKind(old.Name, cluster.SIGTERMSent))
	sigkill := indexOf(evs, sigterm, podKind(old.Name, cluster.SIGKILLSent))
	exited := indexOf(evs, sigkill, podKind(old.Name, cluster.PodExited))
	if term < 0 || sigterm < 0 || sigkill < 0 || exited < 0 {
		t.Fatalf("want terminating < sigterm < sigkill < exited: %d %d %d %d", term, sigterm, sigkill, exited)
	}
	if d := evs[sigkill].Time.Sub(evs[term].Time); d < 3*time.Second {
		t.Errorf("SIGKILL %s after deletion; the grace period is 3s", d)
	}
	if !strings.Contains(evs[exited].Detail, "137") {
		t.Errorf("exit detail %q, want code 137 (SIGKILL)", evs[exited].Detail)
	}
	assertGone(t, old.PID)
}

func TestIntegrationPreStopLongerThanGraceStillGetsTwoSeconds(t *testing.T) {
	integration(t)
	t.Parallel()
	// The kubelet cuts preStop at the grace period and then still allows 2s after SIGTERM.
	a := app{name: "slowstop", replicas: 1, grace: 1, env: map[string]string{"POD_TERM": "ignore"},
		strategy: "rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n", preStop: "sleep: {seconds: 5}\n"}
	c := startCluster(t, Options{}, a)
	old := firstPod(t, c)
	restartAndSettle(t, c, "slowstop")
	evs := c.Events()
	term := indexOf(evs, 0, podKind(old.Name, cluster.PodTerminating))
	fin := indexOf(evs, term, podKind(old.Name, cluster.PreStopFinished))
	sigterm := indexOf(evs, fin, podKind(old.Name, cluster.SIGTERMSent))
	sigkill := indexOf(evs, sigterm, podKind(old.Name, cluster.SIGKILLSent))
	if fin < 0 || sigterm < 0 || sigkill < 0 {
		t.Fatalf("want terminating < prestop_finished < sigterm < sigkill: %d %d %d %d", term, fin, sigterm, sigkill)
	}
	if !strings.Contains(evs[fin].Detail, "failed") {
		t.Errorf("a preStop cut by the grace period should say so: %q", evs[fin].Detail)
	}
	if d := evs[fin].Time.Sub(evs[term].Time); d < 900*time.Millisecond || d > 4*time.Second {
		t.Errorf("preStop cut %s after deletion, want ~1s (the grace period), well before its 5s", d)
	}
	if d := evs[sigkill].Time.Sub(evs[sigterm].Time); d < 2*time.Second {
		t.Errorf("SIGKILL %s after SIGTERM; the kubelet allows at least 2s", d)
	}
}

func TestIntegrationPreStopHandlersRunBeforeSIGTERM(t *testing.T) {
	integration(t)
	t.Parallel()
	graceful := map[string]string{"POD_TERM": "graceful"}
	surge := "rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n"
	apps := []app{
		{name: "hook-http", replicas: 1, env: graceful, strategy: surge, preStop: "httpGet: {path: '/prestop?ms=1500', port: http}\n"},
		{name: "hook-exec", replicas: 1, env: graceful, strategy: surge, preStop: "exec: {command: [sleep, '1.5']}\n"},
		{name: "hook-sleep", replicas: 1, env: graceful, strategy: surge, preStop: "sleep: {seconds: 2}\n"},
	}
	c := startCluster(t, Options{}, apps...)
	olds := map[string]string{}
	for _, p := range c.Pods() {
		olds[p.Deployment] = p.Name
	}
	for _, a := range apps {
		t.Run(a.name, func(t *testing.T) {
			restartAndSettle(t, c, a.name)
			evs := c.Events()
			pod := olds[a.name]
			order := []cluster.EventKind{cluster.PodTerminating, cluster.EndpointNotReady, cluster.PreStopStarted,
				cluster.PreStopFinished, cluster.SIGTERMSent, cluster.PodExited, cluster.PodNetworkRemoved, cluster.PodDeleted}
			idx := make([]int, len(order))
			prev := 0
			for i, k := range order {
				idx[i] = indexOf(evs, prev, podKind(pod, k))
				if idx[i] < 0 {
					t.Fatalf("%s: no %s after event %d", pod, k, prev)
				}
				prev = idx[i]
			}
			if d := evs[idx[4]].Time.Sub(evs[idx[0]].Time); d < 1400*time.Millisecond {
				t.Errorf("SIGTERM %s after deletion; preStop takes >= 1.5s", d)
			}
			if fin := evs[idx[3]]; fin.Detail != "ok" {
				t.Errorf("preStop finished with %q", fin.Detail)
			}
			if ex := evs[idx[5]]; !strings.Contains(ex.Detail, "exit code 0") {
				t.Errorf("graceful pod exit: %q", ex.Detail)
			}
		})
	}
}

func TestIntegrationUpFailsClearlyWhenAPodExits(t *testing.T) {
	integration(t)
	t.Parallel()
	a := app{name: "crash", replicas: 1, env: map[string]string{"POD_EXIT": "3"}}
	for _, logDir := range []string{"", t.TempDir()} {
		c, err := New(Options{Manifests: manifests(map[string]string{"a.yaml": a.yaml()}), Executable: os.Args[0], Images: testImages, LogDir: logDir})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Up(context.Background())
		if err == nil {
			t.Fatal("Up succeeded with a pod that exits with code 3")
		}
		msg := err.Error()
		for _, want := range []string{"pod crash-", "exit code 3"} {
			if !strings.Contains(msg, want) {
				t.Errorf("Up error %q does not mention %q", msg, want)
			}
		}
		if logDir == "" && !strings.Contains(msg, "exiting on purpose") {
			t.Errorf("without a log dir the error should quote stderr: %q", msg)
		}
		if logDir != "" && !strings.Contains(msg, logDir) {
			t.Errorf("with a log dir the error should name the log file: %q", msg)
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("error is not one line: %q", msg)
		}
		assertGone(t, c.allPIDs()...)
		if len(c.Pods()) != 0 {
			t.Errorf("pods left after a failed Up: %+v", c.Pods())
		}
	}
}

func TestIntegrationUpTimesOutNamingTheProbeFailure(t *testing.T) {
	integration(t)
	t.Parallel()
	a := app{name: "never", replicas: 1, env: map[string]string{"POD_READY_AFTER": "1h"}, readiness: healthProbe}
	// Long enough for the controllers' reaction, the start delay, the kubelet's start report,
	// the program's listen and a few probes that answer 503, on a loaded machine.
	c, err := New(Options{Manifests: manifests(map[string]string{"a.yaml": a.yaml()}), Executable: os.Args[0], Images: testImages, ReadyTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Up(context.Background())
	if err == nil {
		t.Fatal("Up succeeded with a pod that never becomes ready")
	}
	for _, want := range []string{"not ready after 10s", "pod never-", "last readiness probe", "503"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Up error %q does not mention %q", err, want)
		}
	}
	assertGone(t, c.allPIDs()...)
}

func TestIntegrationUpCancelledLeavesNothingRunning(t *testing.T) {
	integration(t)
	t.Parallel()
	a := app{name: "never", replicas: 2, env: map[string]string{"POD_READY_AFTER": "1h", "POD_TERM": "ignore"}, readiness: healthProbe}
	c, err := New(Options{Manifests: manifests(map[string]string{"a.yaml": a.yaml()}), Executable: os.Args[0], Images: testImages})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel once both processes run, as Ctrl-C would.
		eventually(5*time.Second, func() bool { return len(c.allPIDs()) == 2 })
		cancel()
	}()
	err = c.Up(ctx)
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("Up after cancel: %v", err)
	}
	pids := c.allPIDs()
	if len(pids) != 2 {
		t.Fatalf("expected 2 pod processes to have started, got %v", pids)
	}
	assertGone(t, pids...)
}

func TestIntegrationDownKillsPodsThatIgnoreSIGTERM(t *testing.T) {
	integration(t)
	t.Parallel()
	c := startCluster(t, Options{}, app{name: "stubborn", replicas: 2, env: map[string]string{"POD_TERM": "ignore"}})
	pids := c.allPIDs()
	if err := c.Down(context.Background()); err != nil {
		t.Fatal(err)
	}
	assertGone(t, pids...)
	evs := c.Events()
	if n := countKind(evs, cluster.SIGKILLSent); n != 2 {
		t.Errorf("want 2 SIGKILLs at Down, got %d", n)
	}
	if n := countKind(evs, cluster.PodDeleted); n != 2 {
		t.Errorf("want 2 pod_deleted at Down, got %d", n)
	}
	// Down does not wait out the 30s grace period: SIGKILL follows SIGTERM after downGrace.
	kill := evs[indexOf(evs, 0, kindIs(cluster.SIGKILLSent))]
	term := eventOf(t, evs, kill.Pod, cluster.SIGTERMSent)
	if d := kill.Time.Sub(term.Time); d < downGrace || d > downGrace+5*time.Second {
		t.Errorf("pod %s: SIGKILL %s after SIGTERM at Down, want %s", kill.Pod, d, downGrace)
	}
	if err := c.Down(context.Background()); err != nil {
		t.Errorf("second Down: %v", err)
	}
	if err := c.Restart(context.Background(), "stubborn"); err == nil {
		t.Error("Restart after Down succeeded")
	}
}

func countKind(evs []cluster.Event, k cluster.EventKind) int {
	n := 0
	for _, e := range evs {
		if e.Kind == k {
			n++
		}
	}
	return n
}

func TestIntegrationServiceNamesInEnvResolveToTheServiceProxy(t *testing.T) {
	integration(t)
	t.Parallel()
	front := app{name: "front", replicas: 1, serviceType: "LoadBalancer", env: map[string]string{
		"BACK_URL":  "http://back:8080/api?x=1",
		"BACK_FQDN": "back.default.svc.cluster.local:8080",
		"BACK_NS":   "http://back.default.svc:8080",
		"PLAIN":     "back",
		"OTHER":     "http://example.com:8080/",
		"OTHER_NS":  "http://back.elsewhere:8080",
	}}
	back := app{name: "back", replicas: 1}
	c := startCluster(t, Options{}, front, back)
	backAddr, ok := c.ServiceAddr("back", 8080)
	if !ok || !strings.HasPrefix(backAddr, "127.") {
		t.Fatalf("ServiceAddr(back): %q %v", backAddr, ok)
	}
	resp, err := testClient.Get(c.Target() + "/env")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env []string
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	pod := c.Pods()
	var frontPod PodInfo
	for _, p := range pod {
		if p.Deployment == "front" {
			frontPod = p
		}
	}
	want := map[string]string{
		"BACK_URL":  "http://" + backAddr + "/api?x=1",
		"BACK_FQDN": backAddr,
		"BACK_NS":   "http://" + backAddr,
		"PLAIN":     "back",
		"OTHER":     "http://example.com:8080/",
		"OTHER_NS":  "http://back.elsewhere:8080",
		"HOST":      frontPod.IP,
		"PORT":      "8080",
		"HOSTNAME":  frontPod.Name,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	// And the rewritten address really reaches the back Service.
	r2, err := testClient.Get("http://" + backAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if !strings.HasPrefix(string(b), "back-") {
		t.Errorf("back Service answered %q", b)
	}
}

// TestMappedPortsMode runs the non-Linux addressing on Linux: every pod and Service on
// 127.0.0.1 with ports chosen by the OS, and the env, probes and proxies following the map.
func TestIntegrationMappedPortsMode(t *testing.T) {
	integration(t)
	t.Parallel()
	front := app{name: "front", replicas: 1, serviceType: "LoadBalancer", readiness: healthProbe,
		env: map[string]string{"BACK_URL": "http://back:8080/x", "POD_TERM": "graceful"}, strategy: "rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n"}
	back := app{name: "back", replicas: 2, readiness: healthProbe}
	c, err := New(Options{Manifests: manifests(map[string]string{"f.yaml": front.yaml(), "b.yaml": back.yaml()}),
		Executable: os.Args[0], Images: testImages, EndpointLag: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c.addrs.mapped = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Up(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		c.Down(context.Background())
		assertGone(t, c.allPIDs()...)
		if t.Failed() {
			dumpEvents(t, c.Events())
		}
	}()
	backAddr, _ := c.ServiceAddr("back", 8080)
	if !strings.HasPrefix(backAddr, "127.0.0.1:") || strings.HasSuffix(backAddr, ":8080") {
		t.Fatalf("mapped Service address %q", backAddr)
	}
	resp, err := testClient.Get(c.Target() + "/env")
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	json.NewDecoder(resp.Body).Decode(&env)
	resp.Body.Close()
	joined := strings.Join(env, " ")
	if !strings.Contains(joined, "BACK_URL=http://"+backAddr+"/x") || !strings.Contains(joined, "HOST=127.0.0.1") || strings.Contains(joined, "PORT=8080") {
		t.Fatalf("mapped env: %v", env)
	}
	old := ""
	for _, p := range c.Pods() {
		if p.Deployment == "front" {
			old = p.Name
		}
	}
	restartAndSettle(t, c, "front")
	// The rollout is done before the proxy has dropped the old pod (no preStop here):
	// until then a connection may still be black-holed, as on a real cluster.
	waitEvent(t, c, 10*time.Second, podKind(old, cluster.EndpointRemoved))
	r2, err := testClient.Get(c.Target() + "/")
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 200 {
		t.Fatalf("after a restart in mapped mode: %d", r2.StatusCode)
	}
}

// testClient bounds every request a test makes: a hang is a failure, not a stuck run.
var testClient = &http.Client{Timeout: 10 * time.Second}

// TestWildcardListenerFallsBackToMappedPorts: a program on *:PORT blocks PORT on every
// 127.x.y.z, so a cluster whose manifests use PORT maps its ports and says so, instead of
// failing with "address in use".
func TestIntegrationWildcardListenerFallsBackToMappedPorts(t *testing.T) {
	integration(t)
	t.Parallel()
	// A port the OS chose, held on all interfaces: no other test uses it.
	squatter, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()
	port := squatter.Addr().(*net.TCPAddr).Port
	a := app{name: "front", replicas: 1, serviceType: "LoadBalancer", readiness: healthProbe, port: port}
	c, err := New(Options{Manifests: manifests(map[string]string{"f.yaml": a.yaml()}),
		Executable: os.Args[0], Images: testImages, EndpointLag: 200 * time.Millisecond, LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Up(ctx); err != nil {
		t.Fatalf("Up with *:%d taken: %v", port, err)
	}
	defer func() {
		c.Down(context.Background())
		assertGone(t, c.allPIDs()...)
	}()
	if !c.addrs.mapped {
		t.Fatal("cluster kept per-pod addresses although the port is taken on all interfaces")
	}
	w := c.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], strconv.Itoa(port)) {
		t.Fatalf("warnings %q do not name port %d", w, port)
	}
	resp, err := testClient.Get(c.Target() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("through the mapped LoadBalancer: %d", resp.StatusCode)
	}
}

// TestFreePortsKeepPodAddresses: without a squatter, pods get their own addresses.
func TestIntegrationFreePortsKeepPodAddresses(t *testing.T) {
	integration(t)
	t.Parallel()
	c := startCluster(t, Options{}, app{name: "front", replicas: 1, readiness: healthProbe})
	if c.addrs.mapped || len(c.Warnings()) != 0 {
		t.Fatalf("mapped %v, warnings %q", c.addrs.mapped, c.Warnings())
	}
}
