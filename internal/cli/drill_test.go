package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// drillTeam is a team's Service and Deployment, image acme/api, in a file of its own.
const drillTeam = `apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - {name: app, image: "ghcr.io/acme/api:1.0", ports: [{containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec:
  selector: {app: api}
  ports: [{port: 8080}]
`

// TestDrillBadInput: every kind of bad input is one line on stderr, exit 2, nothing on
// stdout and no report directory.
func TestDrillBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	team := write("team.yaml", drillTeam)
	badYAML := write("bad.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: [x\n")
	sts := write("sts.yaml", "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec: {containers: [{name: db, image: postgres}]}\n")
	twoBehind := write("two.yaml", drillTeam+"---\n"+strings.Replace(strings.SplitN(drillTeam, "---", 2)[0], "name: api}", "name: api-canary}", 1))
	withEnv := func(name, env string) string {
		return write(name, strings.Replace(drillTeam, "ports: [{containerPort: 8080}]}", "ports: [{containerPort: 8080}], env: ["+env+"]}", 1))
	}
	missingSecret := withEnv("nosecret.yaml", "{name: TOKEN, valueFrom: {secretKeyRef: {name: creds, key: token}}}")
	missingKey := write("nokey.yaml", strings.Replace(drillTeam, "ports: [{containerPort: 8080}]}",
		"ports: [{containerPort: 8080}], env: [{name: LEVEL, valueFrom: {configMapKeyRef: {name: settings, key: LEVEL}}}]}", 1)+
		"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {MODE: fast}\n")
	noLimit := withEnv("nolimit.yaml", "{name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory}}}")
	dupContainer := write("dup-container.yaml", strings.Replace(drillTeam, "      - {name: app,", "      - {name: app, image: \"ghcr.io/acme/api:1.0\"}\n      - {name: app,", 1))
	grpcProbe := write("grpc.yaml", strings.Replace(drillTeam, "ports: [{containerPort: 8080}]}", "ports: [{containerPort: 8080}], readinessProbe: {grpc: {port: 8080}}}", 1))
	command := write("command.yaml", strings.Replace(drillTeam, "ports: [{containerPort: 8080}]}", "ports: [{containerPort: 8080}], command: [/app/server]}", 1))
	typo := write("typo.yaml", strings.Replace(drillTeam, "replicas: 2", "replcas: 2", 1))
	unreadable := filepath.Join(dir, "missing.yaml")
	run := "ghcr.io/acme/api=/bin/true"

	cases := []struct {
		name string
		args []string
		want string // in the one line
	}{
		{"unknown flag", []string{"-f", team, "--run", run, "--target", "http://api:8080/", "--bogus"}, "unknown flag: --bogus"},
		{"no -f", []string{"--run", run, "--target", "http://api:8080/"}, "give your manifests with -f"},
		{"no target", []string{"-f", team, "--run", run}, "--target is required"},
		{"unmapped image", []string{"-f", team, "--target", "http://api:8080/"}, "ghcr.io/acme/api:1.0"},
		{"unreadable file", []string{"-f", unreadable, "--run", run, "--target", "http://api:8080/"}, "missing.yaml"},
		{"bad YAML", []string{"-f", badYAML, "--run", run, "--target", "http://api:8080/"}, "bad.yaml"},
		{"refused kind", []string{"-f", team, "-f", sts, "--run", run, "--target", "http://api:8080/"}, "StatefulSet db: kind"},
		{"bad --run", []string{"-f", team, "--run", "ghcr.io/acme/api", "--target", "http://api:8080/"}, "want IMAGE=PROGRAM [ARGS]"},
		{"no such program", []string{"-f", team, "--run", "ghcr.io/acme/api=./no-such-program", "--target", "http://api:8080/"}, "--run ghcr.io/acme/api"},
		{"target names no Service", []string{"-f", team, "--run", run, "--target", "http://web:8080/"}, `no Service "web"`},
		{"target in another namespace", []string{"-f", team, "--run", run, "--target", "http://api.shop.svc.cluster.local:8080/"}, `no Service "api.shop.svc.cluster.local"`},
		{"target port not the Service's", []string{"-f", team, "--run", run, "--target", "http://api/"}, "has no port 80"},
		{"local target without LoadBalancer", []string{"-f", team, "--run", run, "--target", "http://127.0.0.1:8000/"}, "reaches only a LoadBalancer Service"},
		{"no such deployment", []string{"-f", team, "--run", run, "--target", "http://api:8080/", "--deployment", "web"}, "--deployment web"},
		{"ambiguous deployment", []string{"-f", twoBehind, "--run", run, "--target", "http://api:8080/"}, "choose one with --deployment"},
		{"bad sandbox", []string{"-f", team, "--run", run, "--target", "http://api:8080/", "--sandbox", "vm"}, "--sandbox must be auto, ns or none"},
		{"bad header", []string{"-f", team, "--run", run, "--target", "http://api:8080/", "-H", "nocolon"}, "-H"},
		{"bad expect-status", []string{"-f", team, "--run", run, "--target", "http://api:8080/", "--expect-status", "abc"}, "expect-status"},
		{"empty stdin", []string{"-f", "-", "--run", run, "--target", "http://api:8080/"}, "-f -: no object in the manifests"},
		{"unknown field", []string{"-f", typo, "--run", run, "--target", "http://api:8080/"}, `unknown field "spec.replcas"`},
		{"duplicate object", []string{"-f", team, "-f", team, "--run", run, "--target", "http://api:8080/"}, "Deployment"},
		{"missing Secret", []string{"-f", missingSecret, "--run", run, "--target", "http://api:8080/"}, `Secret "creds" not found`},
		{"missing ConfigMap key", []string{"-f", missingKey, "--run", run, "--target", "http://api:8080/"}, `ConfigMap "settings" has no key "LEVEL"`},
		{"resourceFieldRef without limit", []string{"-f", noLimit, "--run", run, "--target", "http://api:8080/"}, "limits.memory"},
		{"container name used twice", []string{"-f", dupContainer, "--run", run, "--target", "http://api:8080/"}, `container "app": the name is used by another container`},
		{"refused field", []string{"-f", grpcProbe, "--run", run, "--target", "http://api:8080/"}, "grpc probes are not supported"},
		{"command path not mapped", []string{"-f", command, "--run", run, "--target", "http://api:8080/"}, "--path /app/server=LOCAL_PATH"},
		{"bad --path", []string{"-f", command, "--run", run, "--path", "/app/server", "--target", "http://api:8080/"}, "--path"},
		{"bad method", []string{"-f", team, "--run", run, "--target", "http://api:8080/", "--method", "GE T"}, `method "GE T" is not a valid HTTP method`},
		{"body file missing", []string{"-f", team, "--run", run, "--target", "http://api:8080/", "--body", "@" + filepath.Join(dir, "nobody.json")}, "--body"},
		{"bad expect-body", []string{"-f", team, "--run", run, "--target", "http://api:8080/", "--expect-body", "("}, "--expect-body"},
		{"restart after duration", []string{"-f", team, "--run", run, "--target", "http://api:8080/", "--duration", "2s", "--restart-at", "3s"}, "--restart-at"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report")
			var stdout, stderr bytes.Buffer
			// --sandbox none: a case that wrongly gets as far as starting the cluster does not
			// first probe a sandbox (its pods would run /bin/true until the ready timeout).
			code := Main(append([]string{"drill", "--out", out, "--sandbox", "none"}, tc.args...), Streams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr})
			if code != ExitBadArgs {
				t.Errorf("exit %d, want %d; stderr: %s", code, ExitBadArgs, stderr.String())
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Errorf("stderr should be one line with %q, got:\n%s", tc.want, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout should be empty, got:\n%s", stdout.String())
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("--out %s was created (%v)", out, err)
			}
		})
	}
}

// TestDrillPlan: the target resolves to its Service and the Deployment behind it, the load
// carries the Host header the pods' client would send, and the request flags reach it.
func TestDrillPlan(t *testing.T) {
	dir := t.TempDir()
	team := filepath.Join(dir, "team.yaml")
	extra := "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: api}\n"
	if err := os.WriteFile(team, []byte(drillTeam+extra), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"http://api:8080/orders?x=1", "http://api.default:8080/orders?x=1", "http://api.default.svc:8080/orders?x=1", "http://api.default.svc.cluster.local:8080/orders?x=1"} {
		t.Run(target, func(t *testing.T) {
			o := &drillOptions{}
			cmd := newDrillCommandFor(o, Streams{})
			if err := cmd.ParseFlags([]string{"-f", team, "--run", "ghcr.io/acme/api=/bin/true", "--target", target,
				"--method", "post", "-H", "X-Team: shop", "--body", "{}", "--expect-status", "200,201"}); err != nil {
				t.Fatal(err)
			}
			plan, err := o.plan(cmd, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			d := plan.local
			if d.sandbox != "auto" {
				t.Errorf("sandbox %q, want the drill's default auto", d.sandbox)
			}
			if d.target.service != "api" || d.target.port != 8080 || d.target.lb {
				t.Errorf("target %+v, want Service api port 8080", d.target)
			}
			if plan.exp.Deployment != "api" {
				t.Errorf("deployment %q, want api (behind Service api)", plan.exp.Deployment)
			}
			l := plan.exp.Load
			if got := l.Header.Get("Host"); got != strings.Split(target, "/")[2] {
				t.Errorf("Host %q, want the target's host", got)
			}
			if l.Method != "POST" || l.Header.Get("X-Team") != "shop" || string(l.Body) != "{}" || l.Expect.Status != "200,201" || !l.Expect.IgnoreJSONStatus {
				t.Errorf("request flags not applied: %s %v %q %q", l.Method, l.Header, l.Body, l.Expect.Status)
			}
			if !strings.Contains(d.skipped, "ServiceAccount api") {
				t.Errorf("skipped line %q should name ServiceAccount api", d.skipped)
			}
			if len(d.findings.Findings) == 0 {
				t.Error("gracelab check found nothing on a Deployment without preStop or readiness probe")
			}
		})
	}
}

// TestDrillPlanLoadBalancer: a local target is the LoadBalancer Service, on the port given,
// sent as given (no Host rewrite), and its Deployment is the one behind it.
func TestDrillPlanLoadBalancer(t *testing.T) {
	team := filepath.Join(t.TempDir(), "team.yaml")
	lb := strings.Replace(drillTeam, "  selector: {app: api}\n  ports:", "  type: LoadBalancer\n  selector: {app: api}\n  ports:", 1)
	if err := os.WriteFile(team, []byte(lb), 0o644); err != nil {
		t.Fatal(err)
	}
	o := &drillOptions{}
	cmd := newDrillCommandFor(o, Streams{})
	if err := cmd.ParseFlags([]string{"-f", team, "--run", "ghcr.io/acme/api=/bin/true", "--target", "http://127.0.0.1:18080/x"}); err != nil {
		t.Fatal(err)
	}
	plan, err := o.plan(cmd, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if tg := plan.local.target; !tg.lb || tg.service != "api" || plan.port != 18080 || plan.exp.Deployment != "api" {
		t.Errorf("target %+v, port %d, deployment %s: want the LoadBalancer api on 18080", tg, plan.port, plan.exp.Deployment)
	}
	if h := plan.exp.Load.Header.Get("Host"); h != "" {
		t.Errorf("Host %q: a local target is sent as given", h)
	}
	if got := (&drillCluster{plan: plan.local}).Target(); got != "http://127.0.0.1:18080/x" {
		t.Errorf("Target() = %q, want the URL given", got)
	}
}
