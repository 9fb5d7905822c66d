//go:build linux

package localkube

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/image"
	"github.com/gracelab/gracelab/internal/manifest"
	"github.com/gracelab/gracelab/internal/sandbox"
)

// sidecarManifests: two replicas of a pod whose program (testdata/sidecarapp, not one of
// gracelab's) binds :8080 on all interfaces, and a native sidecar proxy in the same pod that
// the Service targets and that forwards every request to localhost:8080. graceful adds what a
// team adds to stop losing requests: readiness probes, a preStop delay longer than the
// endpoint lag, and programs that drain on SIGTERM.
func sidecarManifests(graceful bool) string {
	shutdown, appExtra, proxyExtra := "die", "", ""
	if graceful {
		shutdown = "drain"
		appExtra = `
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
        lifecycle: {preStop: {sleep: {seconds: 2}}}`
		proxyExtra = `
        readinessProbe: {httpGet: {path: /healthz, port: proxy}, periodSeconds: 1}`
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  replicas: 2
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      initContainers:
      - name: proxy
        image: ghcr.io/acme/proxy:1.0
        args: [-role=proxy]
        restartPolicy: Always
        ports: [{containerPort: 9090, name: proxy}]
        env:
        - {name: LISTEN, value: ":9090"}
        - {name: UPSTREAM, value: "http://localhost:8080"}
        - {name: SHUTDOWN, value: %[1]s}
        startupProbe: {tcpSocket: {port: proxy}, periodSeconds: 1}%[3]s
      containers:
      - name: app
        image: ghcr.io/acme/shop:1.4
        args: [-role=app]
        ports: [{containerPort: 8080}]
        env:
        - {name: LISTEN, value: ":8080"}
        - {name: SHUTDOWN, value: %[1]s}
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}%[2]s
---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  selector: {app: shop}
  ports: [{port: 80, targetPort: proxy}]
`, shutdown, appExtra, proxyExtra)
}

// upPrograms starts a cluster of the manifests with the images mapped to bin (as --run does),
// in the given sandbox mode. At cleanup nothing of it may be left: no pod process, no shim
// (whose death takes its pod's processes with it).
func upPrograms(t *testing.T, mode SandboxMode, bin, yaml string) *Cluster {
	t.Helper()
	integration(t)
	t.Parallel()
	files, err := manifest.FilesOf(manifests(map[string]string{"pod.yaml": yaml}))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := manifest.Decode(files, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	programs, err := image.NewTable([]string{"ghcr.io/acme/shop=" + bin, "ghcr.io/acme/proxy=" + bin}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Documents: docs, Programs: programs, Executable: os.Args[0], Sandbox: mode,
		EndpointLag: 300 * time.Millisecond, ReadyTimeout: 45 * time.Second, LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Up(ctx); err != nil {
		c.Down(context.Background())
		dumpEvents(t, c.Events())
		t.Fatalf("Up: %v", err)
	}
	t.Cleanup(func() {
		c.Down(context.Background())
		if mode == SandboxNone {
			assertGone(t, c.allPIDs()...)
		}
		for _, e := range c.Events() {
			if e.Kind == cluster.PodCreated {
				waitNoProcess(t, sandbox.ShimArg+"\x00"+e.Pod+"\x00")
			}
		}
		if t.Failed() {
			dumpEvents(t, c.Events())
		}
	})
	if used, fallback := c.SandboxUsed(); used != string(mode) || fallback != "" {
		t.Fatalf("sandbox mode %q (fallback %q), want %q", used, fallback, mode)
	}
	return c
}

// getThroughSidecar sends GET / to the Service and returns the status; an answer that did
// not come from the app behind the sidecar counts as -1.
func getThroughSidecar(client *http.Client, addr string) int {
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		return 0
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK && !strings.HasPrefix(string(b), "app shop-") {
		return -1
	}
	return resp.StatusCode
}

// drillSidecarPod restarts shop under load and returns every answer's status and the events.
func drillSidecarPod(t *testing.T, graceful bool) ([]int, []cluster.Event) {
	t.Helper()
	c := upPrograms(t, SandboxNS, binary(t, "./testdata/sidecarapp"), sidecarManifests(graceful))
	addr, ok := c.ServiceAddr("shop", 80)
	if !ok {
		t.Fatal("no Service shop")
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	l := startLoad(8, 10*time.Millisecond, func() int { return getThroughSidecar(client, addr) })
	l.waitFor(t, "20 answers before the restart", func(s []int) bool { return len(s) >= 20 })
	var old []string
	for _, p := range c.Pods() {
		old = append(old, p.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Restart(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitSettled(ctx, "shop"); err != nil {
		l.finish()
		t.Fatal(err)
	}
	for _, p := range old {
		waitEvent(t, c, 30*time.Second, podKind(p, cluster.PodDeleted))
	}
	return l.finish(), c.Events()
}

// TestIntegrationSidecarPodWithoutGracefulShutdownLosesRequests and its twin are the issue's
// test: a program on a fixed port with a sidecar that reaches it on localhost, two replicas, a
// rolling restart under load, each pod in its own sandbox.
func TestIntegrationSidecarPodWithoutGracefulShutdownLosesRequests(t *testing.T) {
	st, _ := drillSidecarPod(t, false)
	n, by := lost(st)
	t.Logf("%d requests, %d lost: %v", len(st), n, by)
	if n == 0 {
		t.Fatalf("pods dying on SIGTERM while the Service still routes to them lost nothing (%d requests)", len(st))
	}
}

func TestIntegrationSidecarPodWithPreStopAndDrainLosesNothing(t *testing.T) {
	st, evs := drillSidecarPod(t, true)
	n, by := lost(st)
	t.Logf("%d requests, %d lost: %v", len(st), n, by)
	if len(st) < 100 {
		t.Fatalf("only %d requests: the load did not run", len(st))
	}
	if n != 0 {
		t.Errorf("with preStop and drain %d of %d requests were lost: %v", n, len(st), by)
	}
	// Every replaced pod stopped its app first and its sidecar only after the app had exited.
	for _, pod := range podsDeleted(evs) {
		appExit := indexOf(evs, 0, podDetail(pod, cluster.PodExited, "container app:"))
		proxyTerm := indexOf(evs, 0, podDetail(pod, cluster.SIGTERMSent, "sidecar proxy"))
		if appExit < 0 || proxyTerm < 0 || proxyTerm < appExit {
			t.Errorf("pod %s: the sidecar's SIGTERM (event %d) did not follow the app's exit (event %d)", pod, proxyTerm, appExit)
		}
	}
}

func podsDeleted(evs []cluster.Event) []string {
	var out []string
	for _, e := range evs {
		if e.Kind == cluster.PodDeleted {
			out = append(out, e.Pod)
		}
	}
	return out
}

func podDetail(pod string, k cluster.EventKind, prefix string) func(cluster.Event) bool {
	return func(e cluster.Event) bool { return e.Kind == k && e.Pod == pod && strings.HasPrefix(e.Detail, prefix) }
}

func podDetailContains(pod string, k cluster.EventKind, part string) func(cluster.Event) bool {
	return func(e cluster.Event) bool { return e.Kind == k && e.Pod == pod && strings.Contains(e.Detail, part) }
}

// Without sandboxes the containers of a pod share its address: the sidecar reaches the app at
// $(POD_IP), where the app binds.
func TestIntegrationSidecarSharesThePodAddressWithoutSandbox(t *testing.T) {
	yaml := strings.NewReplacer(`"http://localhost:8080"`, `"http://$(POD_IP):8080"`, `":9090"`, `"$(POD_IP):9090"`, `":8080"`, `"$(POD_IP):8080"`).Replace(sidecarManifests(true))
	yaml = strings.ReplaceAll(yaml, "        env:\n", "        env:\n        - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}\n")
	c := upPrograms(t, SandboxNone, binary(t, "./testdata/sidecarapp"), yaml)
	addr, _ := c.ServiceAddr("shop", 80)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for range 10 {
		if st := getThroughSidecar(client, addr); st != http.StatusOK {
			t.Fatalf("through the sidecar: status %d", st)
		}
	}
}

// The kubelet's order, with the test pod program: an init container runs to completion first;
// a sidecar starts next and the container only once the sidecar's startup probe has passed; on
// deletion the container stops first, then the sidecars in reverse order, each after the
// previous one has exited, every one with its own preStop and SIGTERM. The pod is ready when
// all of them are.
func TestIntegrationSidecarStartAndStopOrder(t *testing.T) {
	integration(t)
	t.Parallel()
	yaml := `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 20
      initContainers:
      - {name: migrate, image: test/app:v1, env: [{name: POD_EXIT, value: "0"}]}
      - name: first
        image: test/app:v1
        restartPolicy: Always
        ports: [{containerPort: 9091}]
        env: [{name: POD_TERM, value: graceful}, {name: POD_READY_AFTER, value: 1500ms}]
        startupProbe: {httpGet: {path: /health, port: 9091}, periodSeconds: 1, failureThreshold: 10}
        lifecycle: {preStop: {httpGet: {path: "/prestop?ms=300", port: 9091}}}
      - name: second
        image: test/app:v1
        restartPolicy: Always
        ports: [{containerPort: 9092}]
        env: [{name: POD_TERM, value: graceful}, {name: POD_READY_AFTER, value: 2s}]
        readinessProbe: {httpGet: {path: /health, port: 9092}, periodSeconds: 1}
      containers:
      - name: app
        image: test/app:v1
        ports: [{containerPort: 8080, name: http}]
        env: [{name: POD_TERM, value: graceful}]
        readinessProbe: {httpGet: {path: /health, port: http}, periodSeconds: 1}
        lifecycle: {preStop: {httpGet: {path: "/prestop?ms=800", port: http}}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 8080, targetPort: http}]
`
	c := startCluster(t, Options{Manifests: manifests(map[string]string{"web.yaml": yaml})})
	pod := c.Pods()[0].Name
	evs := c.Events()
	at := func(match func(cluster.Event) bool, what string) int {
		t.Helper()
		i := indexOf(evs, 0, match)
		if i < 0 {
			dumpEvents(t, evs)
			t.Fatalf("no event: %s", what)
		}
		return i
	}
	migrated := at(podDetail(pod, cluster.PodExited, "init container migrate: exit code 0"), "migrate exited")
	first := at(podDetailContains(pod, cluster.PodStarted, "sidecar first"), "first started")
	second := at(podDetailContains(pod, cluster.PodStarted, "sidecar second"), "second started")
	app := at(podDetailContains(pod, cluster.PodStarted, "container app"), "app started")
	if !(migrated < first && first < second && second < app) {
		t.Errorf("start order: migrate exited %d, first %d, second %d, app %d; want increasing", migrated, first, second, app)
	}
	// first answers its startup probe only 1.5s after it starts: second waits for that.
	if gap := evs[second].Time.Sub(evs[first].Time); gap < 1500*time.Millisecond {
		t.Errorf("second started %s after first, before first's startup probe could pass", gap)
	}
	// The pod is ready once every container and sidecar is: second, ready 2s after its start,
	// is the last.
	ready := at(podKind(pod, cluster.PodReady), "pod ready")
	if gap := evs[ready].Time.Sub(evs[second].Time); gap < 2*time.Second || !strings.HasPrefix(evs[ready].Detail, "sidecar second: readiness probe") {
		t.Errorf("pod ready %s after second started (%q); want >= 2s, made ready by second", gap, evs[ready].Detail)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Restart(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, c, 40*time.Second, podKind(pod, cluster.PodDeleted))
	evs = c.Events()
	term := at(podKind(pod, cluster.PodTerminating), "terminating")
	var preStops []int
	for i, e := range evs[term:] {
		if e.Pod == pod && e.Kind == cluster.PreStopStarted {
			preStops = append(preStops, term+i)
		}
	}
	if len(preStops) != 2 {
		t.Fatalf("%d preStop hooks ran, want the app's and first's", len(preStops))
	}
	// Both preStop hooks start at once, at deletion: neither waits for the other.
	if d := evs[preStops[1]].Time.Sub(evs[term].Time); d > 500*time.Millisecond {
		t.Errorf("the second preStop started %s after deletion: hooks must run at once", d)
	}
	appTerm := at(podDetail(pod, cluster.SIGTERMSent, "container app"), "SIGTERM app")
	appExit := at(podDetail(pod, cluster.PodExited, "container app: exit code 0"), "app exited with 0")
	secondTerm := at(podDetail(pod, cluster.SIGTERMSent, "sidecar second"), "SIGTERM second")
	secondExit := at(podDetail(pod, cluster.PodExited, "sidecar second: exit code 0"), "second exited with 0")
	firstTerm := at(podDetail(pod, cluster.SIGTERMSent, "sidecar first"), "SIGTERM first")
	firstExit := at(podDetail(pod, cluster.PodExited, "sidecar first: exit code 0"), "first exited with 0")
	if !(appTerm < appExit && appExit < secondTerm && secondTerm < secondExit && secondExit < firstTerm && firstTerm < firstExit) {
		t.Errorf("stop order: app SIGTERM %d exit %d, second SIGTERM %d exit %d, first SIGTERM %d exit %d; want increasing",
			appTerm, appExit, secondTerm, secondExit, firstTerm, firstExit)
	}
	if n := countKind(evs[term:], cluster.SIGKILLSent); n != 0 {
		t.Errorf("%d SIGKILLs: every container should have stopped on SIGTERM", n)
	}
}
