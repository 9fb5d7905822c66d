package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

// TestAblateBadInput: every kind of bad input is one line on stderr, exit 2, nothing on stdout
// and no report directory.
func TestAblateBadInput(t *testing.T) {
	team := filepath.Join(t.TempDir(), "team.yaml")
	if err := os.WriteFile(team, []byte(drillTeam), 0o644); err != nil {
		t.Fatal(err)
	}
	run := "ghcr.io/acme/api=/bin/true"
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--bogus"}, "unknown flag: --bogus"},
		{"argument", []string{"v2"}, "unknown command"},
		{"repeat 0", []string{"--repeat", "0"}, "--repeat 0 is out of range"},
		{"repeat too many", []string{"--repeat", "1001"}, "--repeat 1001 is out of range"},
		{"rollouts", []string{"--rollouts", "3"}, "use --repeat"},
		{"replicas 0", []string{"--replicas", "0"}, "--replicas 0"},
		{"unknown variant", []string{"--variants", "v2-no-prestop,v9-nothing"}, `unknown variant "v9-nothing"`},
		{"empty variants", []string{"--variants", " , "}, "--variants is empty"},
		{"run without -f", []string{"--run", run}, "--run is for a team's manifests"},
		{"target without --cluster", []string{"--target", "http://127.0.0.1:8000/"}, "--target works only with --cluster"},
		{"keep without --cluster", []string{"--keep"}, "--keep works only with --cluster"},
		{"-f with --cluster", []string{"-f", team, "--run", run, "--target", "http://api:8080/", "--cluster"}, "-f runs a team's manifests on the embedded cluster only"},
		{"-f without target", []string{"-f", team, "--run", run}, "--target is required"},
		{"-f without run", []string{"-f", team, "--target", "http://api:8080/"}, "ghcr.io/acme/api:1.0"},
		{"-f nothing derivable", []string{"-f", team, "--run", run, "--target", "http://api:8080/"}, "no variant can be derived"},
		{"duration", []string{"--duration", "0s"}, "--duration must be positive"},
		{"restart after duration", []string{"--duration", "2s", "--restart-at", "3s"}, "--restart-at"},
		{"rollout gap", []string{"--rollout-gap", "-1s"}, "--rollout-gap must not be negative"},
		{"unknown disruption", []string{"--disruption", "explode"}, `--disruption: unknown disruption "explode"`},
		{"unknown disruption with --list", []string{"--list", "--disruption", "explode"}, `--disruption: unknown disruption "explode"`},
		{"disruption all", []string{"--disruption", "all"}, "--disruption all is for demo and drill: an ablation judges each protection under one disruption"},
		{"count without a kind that uses it", []string{"--disruption", "scale", "--count", "2"}, "--count is for --disruption delete, evict or kill"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report")
			var stdout, stderr bytes.Buffer
			code := Main(append([]string{"ablate", "--out", out}, tc.args...), Streams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr})
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

func ablateList(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(append([]string{"ablate", "--list"}, args...), Streams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr})
	if code != ExitOK || stderr.Len() != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	return stdout.String()
}

func TestAblateListBuiltin(t *testing.T) {
	out := ablateList(t)
	for _, want := range []string{
		`(?m)^v2-no-prestop\s+v2\s+removes preStop hook\s`,
		`(?m)^v2-no-drain\s+v2\s+removes SIGTERM drain\s`,
		`(?m)^v3-no-retries\s+v3\s+removes client retries\s`,
		`(?m)^v1-only-drain\s+v1\s+adds SIGTERM drain\s`,
		`deployment upstream: spec\.template\.spec\.containers\[upstream\]\.lifecycle\.preStop: removed \(was httpGet /prestop, 5s\)`,
		`deployment upstream: spec\.template\.spec\.terminationGracePeriodSeconds: 30 -> 5 \(the preStop delay\)`,
		`deployment downstream: spec\.template\.spec\.containers\[downstream\]\.env\[RETRY_ATTEMPTS\]: "3" -> "1"`,
		`upstream at 2 replicas: the default resolves to maxSurge 1, maxUnavailable 0, the same as the block: expect no effect`,
		`(?m)^a bare gracelab ablate runs v2 and v2-no-prestop, v2-prestop-sleep-1s, v2-no-probes, v2-no-strategy, v2-grace-prestop, v2-no-drain$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("--list lacks %s:\n%s", want, out)
		}
	}

	// --replicas 4 scales first: the strategy note speaks of 4 replicas.
	out = ablateList(t, "--replicas", "4")
	for _, want := range []string{
		"deployment upstream: spec.replicas: 2 -> 4",
		"upstream at 4 replicas: the default resolves to maxSurge 1, maxUnavailable 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--list --replicas 4 lacks %q:\n%s", want, out)
		}
	}
}

// A team's manifests get the manifest-level variants; what cannot be removed says why. --list
// needs neither --run nor --target.
func TestAblateListForeign(t *testing.T) {
	out := ablateList(t, "-f", filepath.Join("..", "ablate", "testdata", "team"))
	for _, want := range []string{
		`(?m)^team-no-prestop\s+team\s+removes preStop hook\s`,
		`(?m)^team-no-probes\s+team\s+removes readiness and liveness probes\s`,
		`(?m)^team-grace-prestop\s+team\s+removes grace period\s`,
		`deployment orders-api: spec\.template\.spec\.containers\[api\]\.lifecycle\.preStop: removed \(was exec \["/bin/sh" "-c" "sleep 10"\], 10s\)`,
		`not edited: deployment orders-worker: the preStop hook's length is not in the manifest`,
		`team: SIGTERM drain: the program's own behaviour, not a manifest field`,
		`team: client retries: the program's own behaviour`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("--list -f lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "v2-") || strings.Contains(out, "a bare gracelab ablate") {
		t.Errorf("a team's list shows built-in variants:\n%s", out)
	}

	// The team set without any protection: nothing to derive, each reason listed.
	team := filepath.Join(t.TempDir(), "bare.yaml")
	if err := os.WriteFile(team, []byte(drillTeam), 0o644); err != nil {
		t.Fatal(err)
	}
	out = ablateList(t, "-f", team)
	for _, want := range []string{"bare: preStop hook: no container has a preStop hook", "bare: rollout strategy: no Deployment sets a strategy"} {
		if !strings.Contains(out, want) {
			t.Errorf("--list of a bare set lacks %q:\n%s", want, out)
		}
	}
}

// planAblation plans an ablation as the command would, without running it.
func planAblation(t *testing.T, args ...string) *ablatePlan {
	t.Helper()
	o := &ablateOptions{}
	var stdout, stderr bytes.Buffer
	streams := Streams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr}
	cmd := newAblateCommandFor(o, streams)
	if err := cmd.ParseFlags(append([]string{"--out", filepath.Join(t.TempDir(), "report")}, args...)); err != nil {
		t.Fatal(err)
	}
	ap, err := o.plan(cmd, streams, time.Now())
	if err != nil {
		t.Fatalf("%v; stderr %s", err, stderr.String())
	}
	return ap
}

// --disruption puts every scenario (bases and variants) through that disruption, and the
// estimate follows it: three kills of v2's pod wait out the kubelet's back-off (10 s, then
// 20 s) after the second and third, which three rolling restarts do not.
func TestAblateDisruptionPlan(t *testing.T) {
	args := []string{"--variants", "v2-no-prestop"}
	restart := planAblation(t, args...)
	kill := planAblation(t, append(args, "--disruption", "kill")...)
	if len(kill.runs) != 2 || kill.unit() != "kill" || restart.unit() != "rollout" {
		t.Fatalf("runs %d, units %q %q", len(kill.runs), kill.unit(), restart.unit())
	}
	for _, r := range kill.runs {
		if sc := r.plan.exp.Scenarios; len(sc) != 1 || sc[0].Disruption != cluster.DisruptKill {
			t.Errorf("scenario %s: %+v, want it under the kill", r.name, sc)
		}
	}
	for _, r := range restart.runs {
		if sc := r.plan.exp.Scenarios[0]; sc.Disruption != cluster.DisruptRestart {
			t.Errorf("scenario %s under %q, want restart", r.name, sc.Disruption)
		}
	}
	// v2: restarts 3 x 10 s; kills 3 x 2 s (start, readiness) + 10 s + 20 s of back-off.
	if d := kill.perRun[0] - restart.perRun[0]; d != 6*time.Second {
		t.Errorf("v2's estimate: kill %s, restart %s; want the kill's 6 s longer", kill.perRun[0], restart.perRun[0])
	}
	if !strings.Contains(kill.disruptionLine(), "--disruption kill (the oldest pod's container SIGKILLed") || restart.disruptionLine() != "" {
		t.Errorf("lines %q / %q", kill.disruptionLine(), restart.disruptionLine())
	}
	out := ablateList(t, "--disruption", "evict")
	if !strings.Contains(out, "each scenario: --disruption evict (a pod evicted through the Eviction API") {
		t.Errorf("--list --disruption evict does not say it:\n%s", out)
	}
}
