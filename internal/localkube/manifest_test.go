package localkube

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestResolveRollingUpdate(t *testing.T) {
	i := func(v int) *intstr.IntOrString { x := intstr.FromInt32(int32(v)); return &x }
	p := func(v string) *intstr.IntOrString { x := intstr.FromString(v); return &x }
	cases := []struct {
		name          string
		replicas      int32
		surge, unav   *intstr.IntOrString
		wantS, wantU  int32
		wantErrSubstr string
	}{
		{"defaults, 2 replicas: surge rounds 0.5 up, unavailable rounds 0.5 down", 2, nil, nil, 1, 0, ""},
		{"defaults, 4 replicas", 4, nil, nil, 1, 1, ""},
		{"defaults, 10 replicas: 2.5 -> 3 and 2", 10, nil, nil, 3, 2, ""},
		{"defaults, 1 replica", 1, nil, nil, 1, 0, ""},
		{"ints", 2, i(1), i(0), 1, 0, ""},
		{"percent surge 50% of 3 -> 2", 3, p("50%"), i(0), 2, 0, ""},
		{"percent unavailable 50% of 3 -> 1", 3, i(0), p("50%"), 0, 1, ""},
		{"only surge set: unavailable defaults to 25%", 4, i(2), nil, 2, 1, ""},
		{"unavailable 34% of 2 rounds to 0 with surge 0: controller allows 1", 2, i(0), p("34%"), 0, 1, ""},
		{"unavailable larger than replicas is clamped", 2, i(1), i(5), 1, 2, ""},
		{"0 replicas", 0, nil, nil, 0, 0, ""},
		{"both zero ints", 2, i(0), i(0), 0, 0, "may not both be 0"},
		{"both zero percent", 2, p("0%"), p("0%"), 0, 0, "may not both be 0"},
		{"negative", 2, i(-1), i(1), 0, 0, "must not be negative"},
		{"not a percentage", 2, p("abc"), i(1), 0, 0, "integer or a percentage"},
		{"unavailable over 100%", 2, i(1), p("150%"), 0, 0, "greater than 100%"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, u, err := resolveRollingUpdate(tc.replicas, tc.surge, tc.unav)
			if tc.wantErrSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSubstr) {
					t.Fatalf("want error containing %q, got %v", tc.wantErrSubstr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s != tc.wantS || u != tc.wantU {
				t.Fatalf("got surge %d unavailable %d, want %d %d", s, u, tc.wantS, tc.wantU)
			}
		})
	}
}

func TestRollingStepArithmetic(t *testing.T) {
	cases := []struct {
		name                  string
		replicas, surge, unav int32
		newRS                 rsCount
		old                   []rsCount
		wantNew               int32
		wantOld               []int32
	}{
		{"restart starts with a surge", 2, 1, 0, rsCount{0, 0}, []rsCount{{2, 2}}, 1, []int32{2}},
		{"new pod not yet available: nothing deleted", 2, 1, 0, rsCount{1, 0}, []rsCount{{2, 2}}, 1, []int32{2}},
		{"new pod available: one old pod goes", 2, 1, 0, rsCount{1, 1}, []rsCount{{2, 2}}, 1, []int32{1}},
		{"after the deletion the next surge", 2, 1, 0, rsCount{1, 1}, []rsCount{{1, 1}}, 2, []int32{1}},
		{"unhealthy old pods are cleaned up first", 2, 1, 0, rsCount{1, 1}, []rsCount{{2, 1}}, 1, []int32{1}},
		{"maxUnavailable 1 deletes without a new pod ready", 2, 0, 1, rsCount{0, 0}, []rsCount{{2, 2}}, 0, []int32{1}},
		{"then creates into the room", 2, 0, 1, rsCount{0, 0}, []rsCount{{1, 1}}, 1, []int32{1}},
		{"surge 2 of 4", 4, 2, 1, rsCount{0, 0}, []rsCount{{4, 4}}, 2, []int32{4}},
		{"with 2 new unavailable, only maxUnavailable old go", 4, 2, 1, rsCount{2, 0}, []rsCount{{4, 4}}, 2, []int32{3}},
		{"oldest old ReplicaSet scales down first", 2, 1, 0, rsCount{2, 2}, []rsCount{{1, 1}, {1, 1}}, 2, []int32{0, 0}},
		{"new scaled above replicas comes down", 2, 1, 0, rsCount{3, 3}, nil, 2, []int32{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gotNew, gotOld := rollingStep(tc.replicas, tc.surge, tc.unav, tc.newRS, tc.old)
			if gotNew != tc.wantNew || !equalInts(gotOld, tc.wantOld) {
				t.Fatalf("got new %d old %v, want new %d old %v", gotNew, gotOld, tc.wantNew, tc.wantOld)
			}
		})
	}
}

func equalInts(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRollingStepSimulation drives rollingStep to completion for many shapes, with new pods
// becoming available one sync after creation, and checks the two invariants at every step.
func TestRollingStepSimulation(t *testing.T) {
	for replicas := int32(1); replicas <= 6; replicas++ {
		for _, su := range [][2]string{{"25%", "25%"}, {"1", "0"}, {"0", "1"}, {"50%", "50%"}, {"100%", "0"}, {"2", "2"}} {
			s, u, err := resolveRollingUpdate(replicas, strOrInt(su[0]), strOrInt(su[1]))
			if err != nil {
				t.Fatal(err)
			}
			newRS := rsCount{}
			old := rsCount{replicas, replicas}
			steps := 0
			for ; steps < 100 && (newRS.available < replicas || old.desired > 0); steps++ {
				nd, od := rollingStep(replicas, s, u, newRS, []rsCount{old})
				// Scale-down removes unavailable old pods first.
				if od[0] < old.desired {
					gone := old.desired - od[0]
					unavail := old.desired - old.available
					old.available -= max(0, gone-unavail)
				}
				old.desired = od[0]
				newRS.desired = nd
				if total := newRS.desired + old.desired; total > replicas+s {
					t.Fatalf("%d replicas %v: %d pods > %d+%d", replicas, su, total, replicas, s)
				}
				if avail := newRS.available + old.available; avail < replicas-u {
					t.Fatalf("%d replicas %v: %d available < %d-%d", replicas, su, avail, replicas, u)
				}
				// Pods created in this sync become available before the next one.
				newRS.available = newRS.desired
			}
			if steps == 100 {
				t.Fatalf("%d replicas %v: rollout did not converge", replicas, su)
			}
		}
	}
}

func strOrInt(s string) *intstr.IntOrString {
	v := intstr.Parse(s)
	return &v
}

const goodDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: test/app:v1
        ports: [{containerPort: 8080, name: http}]
`

func TestNewRejectsBadManifests(t *testing.T) {
	svc := "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n"
	cases := []struct {
		name, file, want string
	}{
		{"unknown field", strings.Replace(goodDeployment, "replicas: 2", "replcas: 2", 1), `a.yaml: document 1 (Deployment): unknown field "spec.replcas"`},
		{"missing image", strings.Replace(goodDeployment, "image: test/app:v1", "imagePullPolicy: Always", 1), `container "app": image is required`},
		{"unknown kind", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "v1 ConfigMap is not supported by the embedded cluster"},
		{"old apiVersion", strings.Replace(goodDeployment, "apps/v1", "extensions/v1beta1", 1), "extensions/v1beta1 Deployment is not supported"},
		{"no kind", "apiVersion: v1\nmetadata: {name: x}\n", "missing kind"},
		{"bad yaml", "apiVersion: v1\nkind: [\n", "a.yaml: document 1"},
		{"unmapped image", strings.Replace(goodDeployment, "test/app:v1", "nginx:1.27", 1), `image "nginx:1.27" is not mapped`},
		{"command set", strings.Replace(goodDeployment, "image: test/app:v1", "image: test/app:v1\n        command: [/bin/app]", 1), "command/args cannot be honoured"},
		{"two containers, one name", goodDeployment + "      - {name: app, image: test/app:v1}\n", `container "app": the name is used by another container`},
		{"probe on an init container", strings.Replace(goodDeployment, "      containers:\n", "      initContainers:\n      - {name: migrate, image: test/app:v1, readinessProbe: {tcpSocket: {port: 1}}}\n      containers:\n", 1), `init container "migrate": lifecycle and probes are only allowed on a sidecar`},
		{"sidecar probe port unknown", strings.Replace(goodDeployment, "      containers:\n", "      initContainers:\n      - {name: proxy, image: test/app:v1, restartPolicy: Always, startupProbe: {tcpSocket: {port: admin}}}\n      containers:\n", 1), `init container "proxy": startupProbe: tcpSocket.port: no container port named "admin"`},
		{"restartPolicy on a container", strings.Replace(goodDeployment, "image: test/app:v1", "image: test/app:v1\n        restartPolicy: Always", 1), `container "app": restartPolicy is for init containers only`},
		{"selector mismatch", strings.Replace(goodDeployment, "labels: {app: web}", "labels: {app: other}", 1), "selector does not match"},
		{"both zero", strings.Replace(goodDeployment, "  replicas: 2\n", "  replicas: 2\n  strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}\n", 1), "may not both be 0"},
		{"recreate with rollingUpdate", strings.Replace(goodDeployment, "  replicas: 2\n", "  replicas: 2\n  strategy: {type: Recreate, rollingUpdate: {maxSurge: 1}}\n", 1), "may not be set when strategy type is Recreate"},
		{"grpc probe", strings.Replace(goodDeployment, "ports: [", "readinessProbe: {grpc: {port: 8080}}\n        ports: [", 1), "grpc probes are not supported"},
		{"probe port name unknown", strings.Replace(goodDeployment, "ports: [", "readinessProbe: {httpGet: {path: /, port: web}}\n        ports: [", 1), `no container port named "web"`},
		{"liveness success threshold", strings.Replace(goodDeployment, "ports: [", "livenessProbe: {tcpSocket: {port: 8080}, successThreshold: 2}\n        ports: [", 1), "successThreshold must be 1"},
		{"postStart tcpSocket", strings.Replace(goodDeployment, "ports: [", "lifecycle: {postStart: {tcpSocket: {port: 8080}}}\n        ports: [", 1), "lifecycle.postStart: tcpSocket is not a valid lifecycle hook"},
		{"unmapped init image", strings.Replace(goodDeployment, "      containers:\n", "      initContainers:\n      - {name: migrate, image: acme/migrate:1}\n      containers:\n", 1), `init container "migrate": image "acme/migrate:1" is not mapped`},
		{"startup success threshold", strings.Replace(goodDeployment, "ports: [", "startupProbe: {tcpSocket: {port: 8080}, successThreshold: 2}\n        ports: [", 1), "startupProbe: successThreshold must be 1"},
		{"envFrom", strings.Replace(goodDeployment, "ports: [", "envFrom: [{configMapRef: {name: x}}]\n        ports: [", 1), `container "app": envFrom[0]: ConfigMap "x" not found in namespace default`},
		{"service named targetPort missing", goodDeployment + strings.Replace(svc, "targetPort: http", "targetPort: metrics", 1), `no container port named "metrics"`},
		{"headless service", goodDeployment + strings.Replace(svc, "spec:\n", "spec:\n  clusterIP: None\n", 1), "headless Services"},
		{"service without selector", goodDeployment + strings.Replace(svc, "  selector: {app: web}\n", "", 1), "spec.selector is required"},
		{"two LoadBalancers", goodDeployment + strings.Replace(svc, "spec:\n", "spec:\n  type: LoadBalancer\n", 1) +
			strings.Replace(strings.Replace(svc, "name: web}", "name: web2}", 1), "spec:\n", "spec:\n  type: LoadBalancer\n", 1), "only one LoadBalancer Service"},
		{"duplicate", goodDeployment + "---\n" + goodDeployment, `Deployment "web" is defined twice`},
		{"configMap volume mounted", strings.Replace(goodDeployment, "ports: [", "volumeMounts: [{name: conf, mountPath: /etc/app}]\n        ports: [", 1) + "      volumes: [{name: conf, configMap: {name: app}}]\n",
			`container "app": volumeMounts "conf" at /etc/app: configMap volumes are not mounted`},
		{"mount of no volume", strings.Replace(goodDeployment, "ports: [", "volumeMounts: [{name: data, mountPath: /data}]\n        ports: [", 1), `volumeMounts "data": no volume of that name`},
		{"UDP", goodDeployment + strings.Replace(svc, "port: 80,", "port: 80, protocol: UDP,", 1), "protocol UDP is not supported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{Manifests: manifests(map[string]string{"a.yaml": tc.file}), Executable: "/bin/true", Images: testImages})
			if err == nil {
				t.Fatalf("New accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

func TestNewAcceptsGoodManifestsAndIgnoresOtherFiles(t *testing.T) {
	fs := manifests(map[string]string{
		"web.yaml":  "# comment\n---\n" + goodDeployment + "---\n\n",
		"README.md": "not yaml: [",
		"svc.yml":   "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  type: LoadBalancer\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n",
	})
	c, err := New(Options{Manifests: fs, Executable: "/bin/true", Images: testImages})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.deploys) != 1 || len(c.services) != 1 {
		t.Fatalf("got %d deployments, %d services", len(c.deploys), len(c.services))
	}
	d := c.deploys[0].spec
	if d.replicas != 2 || d.maxSurge != 1 || d.maxUnavailable != 0 {
		t.Errorf("defaults for 2 replicas: %+v", d)
	}
	scratch := strings.Replace(goodDeployment, "ports: [", "volumeMounts: [{name: tmp, mountPath: /tmp}]\n        ports: [", 1) + "      volumes: [{name: tmp, emptyDir: {}}]\n"
	if _, err := New(Options{Manifests: manifests(map[string]string{"web.yaml": scratch}), Executable: "/bin/true", Images: testImages}); err != nil {
		t.Errorf("an emptyDir mount (scratch space, left to this machine's file system) refused: %v", err)
	}
	if _, err := New(Options{Manifests: manifests(map[string]string{"x.txt": "hello"}), Executable: "/bin/true"}); err == nil || !strings.Contains(err.Error(), "no Deployment or Service found") {
		t.Errorf("empty directory: %v", err)
	}
	if _, err := New(Options{Manifests: fs, Executable: "/bin/true", Images: testImages, EndpointLag: -1}); err == nil {
		t.Error("negative endpoint lag accepted")
	}
}

func TestImageRepository(t *testing.T) {
	for in, want := range map[string]string{
		"gracelab/upstream:dev":               "gracelab/upstream",
		"gracelab/upstream":                   "gracelab/upstream",
		"docker.io/gracelab/upstream:v1":      "gracelab/upstream",
		"localhost:5000/gracelab/upstream:v1": "localhost:5000/gracelab/upstream",
		"gracelab/upstream@sha256:abc":        "gracelab/upstream",
		"localhost:5000/app":                  "localhost:5000/app",
	} {
		if got := imageRepository(in); got != want {
			t.Errorf("imageRepository(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRewriteServiceRef(t *testing.T) {
	lookup := func(host string, port int) (string, bool) {
		switch host {
		case "upstream", "upstream.default", "upstream.default.svc", "upstream.default.svc.cluster.local":
			if port == 7000 {
				return "127.96.1.1:7000", true
			}
			return "127.96.1.1:" + strconv.Itoa(port), true
		}
		return "", false
	}
	for in, want := range map[string]string{
		"http://upstream:7000":                             "http://127.96.1.1:7000",
		"http://upstream:7000/api/data?x=1":                "http://127.96.1.1:7000/api/data?x=1",
		"http://upstream.default.svc.cluster.local:7000/":  "http://127.96.1.1:7000/",
		"http://UPSTREAM.default.svc.cluster.local.:7000/": "http://127.96.1.1:7000/",
		"upstream.default:7000":                            "127.96.1.1:7000",
		"http://upstream/":                                 "http://127.96.1.1:80/",
		"upstream":                                         "upstream",
		"http://other:7000":                                "http://other:7000",
		"immediate":                                        "immediate",
		"5s":                                               "5s",
		"http://[::1]:7000":                                "http://[::1]:7000",
		"postgres://user:pw@upstream.default.svc:7000/db?x=y": "postgres://user:pw@127.96.1.1:7000/db?x=y",
	} {
		if got := rewriteServiceRef(in, lookup); got != want {
			t.Errorf("rewriteServiceRef(%q) = %q, want %q", in, got, want)
		}
	}
}

// A pod with an init container, a native sidecar that the Service targets by port name, and
// two containers: accepted, and the named targetPort found on the sidecar as the endpoints
// controller finds it.
func TestNewAcceptsSidecarsAndSeveralContainers(t *testing.T) {
	sidecarPod := strings.Replace(goodDeployment, "      containers:\n", `      initContainers:
      - {name: migrate, image: test/app:v1}
      - name: proxy
        image: test/app:v1
        restartPolicy: Always
        ports: [{containerPort: 9090, name: proxy}]
        startupProbe: {tcpSocket: {port: proxy}}
        lifecycle: {preStop: {sleep: {seconds: 1}}}
      containers:
`, 1) + "      - {name: metrics, image: test/app:v1, ports: [{containerPort: 9100, name: metrics}]}\n"
	svc := "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: proxy}]\n"
	c, err := New(Options{Manifests: manifests(map[string]string{"a.yaml": sidecarPod + svc}), Executable: "/bin/true", Images: testImages})
	if err != nil {
		t.Fatal(err)
	}
	d := c.deploys[0].spec
	if len(d.initArgs) != 2 || len(d.args) != 2 {
		t.Fatalf("init containers %d, containers %d: want 2 and 2", len(d.initArgs), len(d.args))
	}
	var got []int32
	for _, p := range templatePorts(&d.template.Spec) {
		got = append(got, p.ContainerPort)
	}
	if fmt.Sprint(got) != "[8080 9100 9090]" {
		t.Errorf("pod ports %v, want the containers' then the sidecar's: [8080 9100 9090]", got)
	}
	p := &pod{rs: &replicaSet{template: d.template}}
	for name, want := range map[string]int32{"proxy": 9090, "metrics": 9100, "http": 8080} {
		if port, err := p.targetPort(intstr.FromString(name)); err != nil || port != want {
			t.Errorf("targetPort %s: %d, %v; want %d", name, port, err, want)
		}
	}
	if _, err := p.targetPort(intstr.FromString("migrate")); err == nil {
		t.Error("a port name no serving container has resolved")
	}
}
