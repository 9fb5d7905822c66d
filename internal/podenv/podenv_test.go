package podenv

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gracelab/gracelab/internal/manifest"
)

const objects = `apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {GREETING: hello, MODE: fast, "bad=key": x, dotted.key: d}
binaryData: {blob: aGVsbG8=}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
data: {TOKEN: czNjcmV0LXRva2Vu, USER: YWRtaW4=}
stringData: {USER: root-override, PASSWORD: hunter2-long}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other, namespace: shop}
data: {GREETING: from-shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      serviceAccountName: api-sa
      containers:
      - name: app
        image: acme/api:1
        command: ["/bin/api", "--listen=$(POD_IP):$(PORT)", "$$(POD_IP)", "$(UNSET)"]
        args: ["--greeting=$(GREETING)", "--token=$(TOKEN)"]
        resources:
          limits: {cpu: 1500m, memory: 256Mi}
          requests: {memory: 64Mi}
        envFrom:
        - configMapRef: {name: settings}
        - secretRef: {name: creds}
          prefix: DB_
        - configMapRef: {name: missing, optional: true}
        env:
        - {name: PORT, value: "8080"}
        - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: POD_IPS, valueFrom: {fieldRef: {fieldPath: status.podIPs}}}
        - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
        - {name: UID, valueFrom: {fieldRef: {apiVersion: v1, fieldPath: metadata.uid}}}
        - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
        - {name: NOLABEL, valueFrom: {fieldRef: {fieldPath: "metadata.labels['nope']"}}}
        - {name: ANN, valueFrom: {fieldRef: {fieldPath: "metadata.annotations['team.io/owner']"}}}
        - {name: LABELS, valueFrom: {fieldRef: {fieldPath: metadata.labels}}}
        - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
        - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
        - {name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}
        - {name: CPU_M, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}
        - {name: MEM_MI, valueFrom: {resourceFieldRef: {resource: requests.memory, divisor: 1Mi}}}
        - {name: REQ_CPU, valueFrom: {resourceFieldRef: {resource: requests.cpu}}}
        - {name: GREETING2, valueFrom: {configMapKeyRef: {name: settings, key: GREETING}}}
        - {name: OPT, valueFrom: {configMapKeyRef: {name: settings, key: nope, optional: true}}}
        - {name: PASS, valueFrom: {secretKeyRef: {name: creds, key: PASSWORD}}}
        - {name: URL, value: "http://$(DB_USER):$(DB_PASSWORD)@db"}
        - {name: SELF, value: "$(LATER)-$(PORT)-$$(PORT)"}
        - {name: LATER, value: "x"}
        - {name: MODE, value: "overridden"}
        - {name: EMPTY}
`

func decoded(t *testing.T, src string) ([]runtime.Object, *appsv1.Deployment) {
	t.Helper()
	docs, err := manifest.Decode([]manifest.File{{Name: "m.yaml", Data: []byte(src)}}, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var objs []runtime.Object
	var dep *appsv1.Deployment
	for _, d := range docs {
		objs = append(objs, d.Object)
		if o, ok := d.Object.(*appsv1.Deployment); ok {
			dep = o
		}
	}
	return objs, dep
}

var pod = Pod{Name: "api-7d9f-x2x", UID: "u-1", Labels: map[string]string{"app": "api", "pod-template-hash": "7d9f"},
	Annotations: map[string]string{"team.io/owner": "payments"}, NodeName: "laptop", ServiceAccountName: "api-sa",
	PodIPs: []string{"127.0.0.5", "::1"}, HostIPs: []string{"127.0.0.1"}}

func TestResolveAsTheKubelet(t *testing.T) {
	objs, dep := decoded(t, objects)
	spec := &dep.Spec.Template.Spec
	env, err := Resolve(pod, spec, &spec.Containers[0], NewSources(objs...), map[string]string{"API_SERVICE_HOST": "127.0.0.9", "PORT": "ignored"})
	if err != nil {
		t.Fatal(err)
	}
	got := env.Map()
	want := map[string]string{
		"GREETING": "hello", "MODE": "overridden", "dotted.key": "d",
		"DB_TOKEN": "s3cret-token", "DB_USER": "root-override", "DB_PASSWORD": "hunter2-long",
		"PORT": "8080", "POD_IP": "127.0.0.5", "POD_IPS": "127.0.0.5,::1", "HOST_IP": "127.0.0.1",
		"POD_NAME": "api-7d9f-x2x", "NS": "default", "UID": "u-1", "APP": "api", "NOLABEL": "", "ANN": "payments",
		"LABELS": "app=\"api\"\npod-template-hash=\"7d9f\"", "NODE": "laptop", "SA": "api-sa",
		"CPU": "2", "CPU_M": "1500", "MEM_MI": "64", "REQ_CPU": "2",
		"GREETING2": "hello", "PASS": "hunter2-long",
		"URL":  "http://root-override:hunter2-long@db",
		"SELF": "$(LATER)-8080-$(PORT)", "LATER": "x", "EMPTY": "",
		"API_SERVICE_HOST": "127.0.0.9",
	}
	if !reflect.DeepEqual(got, want) {
		for k := range want {
			if got[k] != want[k] {
				t.Errorf("%s = %q, want %q", k, got[k], want[k])
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected %s = %q", k, got[k])
			}
		}
	}
	if _, ok := got["OPT"]; ok {
		t.Error("optional missing key was set")
	}
	// "bad=key" cannot be carried by execve.
	for _, kv := range env.Environ() {
		if strings.Count(kv[:strings.Index(kv, "=")+1], "=") != 1 || strings.HasPrefix(kv, "bad") {
			t.Errorf("environ entry %q", kv)
		}
	}
	secret := map[string]bool{}
	for _, v := range env {
		if v.Secret {
			secret[v.Name] = true
		}
	}
	if want := map[string]bool{"DB_TOKEN": true, "DB_USER": true, "DB_PASSWORD": true, "PASS": true, "URL": true}; !reflect.DeepEqual(secret, want) {
		t.Errorf("secret variables %v, want %v", secret, want)
	}
	shown := env.String()
	for _, s := range []string{"s3cret-token", "hunter2-long", "root-override"} {
		if strings.Contains(shown, s) {
			t.Errorf("Env.String shows secret %q: %s", s, shown)
		}
	}
	if !strings.Contains(shown, "GREETING=hello") || !strings.Contains(shown, "PASS=<redacted>") {
		t.Errorf("Env.String %s", shown)
	}

	cmd, args := ExpandCommand(&spec.Containers[0], env)
	if want := []string{"/bin/api", "--listen=127.0.0.5:8080", "$(POD_IP)", "$(UNSET)"}; !reflect.DeepEqual(cmd, want) {
		t.Errorf("command %q, want %q", cmd, want)
	}
	if want := []string{"--greeting=hello", "--token=$(TOKEN)"}; !reflect.DeepEqual(args, want) {
		t.Errorf("args %q, want %q", args, want)
	}

	// In another namespace, that namespace's objects are used.
	other := pod
	other.Namespace = "shop"
	c := spec.Containers[0]
	c.EnvFrom = nil
	c.Env = c.Env[:1]
	c.Env = append(c.Env, dep.Spec.Template.Spec.Containers[0].Env[0])
	c.EnvFrom = append(c.EnvFrom, spec.Containers[0].EnvFrom[0])
	c.EnvFrom[0].ConfigMapRef = c.EnvFrom[0].ConfigMapRef.DeepCopy()
	c.EnvFrom[0].ConfigMapRef.Name = "other"
	env, err = Resolve(other, spec, &c, NewSources(objs...), nil)
	if err != nil || env.Map()["GREETING"] != "from-shop" {
		t.Fatalf("namespace shop: %v %v", env, err)
	}
}

func TestResolveErrors(t *testing.T) {
	objs, _ := decoded(t, objects)
	for _, tc := range []struct {
		name, env, want string
	}{
		{"missing configmap", `{name: A, valueFrom: {configMapKeyRef: {name: nope, key: k}}}`, `container "app": env A: ConfigMap "nope" not found in namespace default: add it to the manifests, or mark the reference optional: true`},
		{"missing key", `{name: A, valueFrom: {configMapKeyRef: {name: settings, key: k}}}`, `ConfigMap "settings" has no key "k" (keys: GREETING, MODE, bad=key, dotted.key)`},
		{"binary key", `{name: A, valueFrom: {configMapKeyRef: {name: settings, key: blob}}}`, `is in binaryData`},
		{"missing secret", `{name: A, valueFrom: {secretKeyRef: {name: nope, key: k}}}`, `Secret "nope" not found`},
		{"missing secret key", `{name: A, valueFrom: {secretKeyRef: {name: creds, key: k}}}`, `Secret "creds" has no key "k" (keys: PASSWORD, TOKEN, USER)`},
		{"unsupported field", `{name: A, valueFrom: {fieldRef: {fieldPath: status.phase}}}`, `fieldRef "status.phase" is not supported`},
		{"bad label subscript", `{name: A, valueFrom: {fieldRef: {fieldPath: "metadata.labels['a b']"}}}`, `invalid key subscript`},
		{"unset limit", `{name: A, valueFrom: {resourceFieldRef: {resource: limits.ephemeral-storage}}}`, `container "app" sets no resources.limits.ephemeral-storage`},
		{"unset request and limit", `{name: A, valueFrom: {resourceFieldRef: {resource: requests.ephemeral-storage}}}`, `sets no resources.requests.ephemeral-storage`},
		{"other container", `{name: A, valueFrom: {resourceFieldRef: {containerName: side, resource: limits.cpu}}}`, `no container "side"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(objects, "        - {name: PORT, value: \"8080\"}\n", "        - "+tc.env+"\n", 1)
			_, d := decoded(t, src)
			c := d.Spec.Template.Spec.Containers[0]
			_, err := Resolve(pod, &d.Spec.Template.Spec, &c, NewSources(objs...), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			for _, s := range []string{"s3cret", "hunter2", "root-override"} {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error shows a secret: %v", err)
				}
			}
		})
	}
	// A required envFrom source that is missing.
	_, d := decoded(t, strings.Replace(objects, "{name: missing, optional: true}", "{name: missing}", 1))
	_, err := Resolve(pod, &d.Spec.Template.Spec, &d.Spec.Template.Spec.Containers[0], NewSources(objs...), nil)
	if err == nil || !strings.Contains(err.Error(), `envFrom[2]: ConfigMap "missing" not found`) {
		t.Fatalf("missing envFrom: %v", err)
	}
}

func TestRedactor(t *testing.T) {
	objs, _ := decoded(t, objects)
	r := NewRedactor(append(NewSources(objs...).SecretValues(), "on", "line-one\nline-two")...)
	if got := r.String("token s3cret-token and hunter2-long, on, line-two"); got != "token <redacted> and <redacted>, on, <redacted>" {
		t.Fatalf("String: %q", got)
	}
	var out bytes.Buffer
	w := r.Writer(&out)
	for _, chunk := range []string{"starting with s3cr", "et-token\nsecond ", "line hunter2-", "long"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(out.String(), "hunter2") {
		t.Fatalf("an unterminated line was written before Close: %q", out.String())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "starting with <redacted>\nsecond line <redacted>" {
		t.Fatalf("Writer: %q", got)
	}
	if got := NewRedactor().String("nothing s3cret"); got != "nothing s3cret" {
		t.Fatalf("empty redactor: %q", got)
	}
}

// TestRedactorAdd: a value added later (a secret as a pod got it, rewritten) is redacted by
// writers made before, and an error's message is redacted while a clean error stays itself.
func TestRedactorAdd(t *testing.T) {
	r := NewRedactor()
	if !r.Empty() {
		t.Fatal("a redactor without values is not empty")
	}
	var out bytes.Buffer
	w := r.Writer(&out)
	r.Add("postgres://app:pw@127.0.0.9:5432/db", "pw")
	if r.Empty() {
		t.Fatal("empty after Add")
	}
	if _, err := w.Write([]byte("dsn postgres://app:pw@127.0.0.9:5432/db\n")); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "dsn <redacted>\n" {
		t.Fatalf("Writer after Add: %q", got)
	}
	clean := errors.New("pod api exited with code 1")
	if got := r.Error(clean); got != clean {
		t.Errorf("a clean error was replaced: %v", got)
	}
	if got := r.Error(fmt.Errorf("pod api: %w", errors.New("bad dsn postgres://app:pw@127.0.0.9:5432/db"))); got.Error() != "pod api: bad dsn <redacted>" {
		t.Errorf("Error: %q", got)
	}
}
