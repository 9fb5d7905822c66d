package check

import (
	"io/fs"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/gracelab/gracelab/internal/downstream"
	"github.com/gracelab/gracelab/internal/manifest"
	"github.com/gracelab/gracelab/k8s"
)

func readScenario(t *testing.T, dir string) []Object {
	t.Helper()
	sub, err := fs.Sub(k8s.FS, dir)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := manifest.Read(sub)
	if err != nil {
		t.Fatal(err)
	}
	return FromDocuments(docs)
}

func rulesOn(res Result, kind, name string) []string {
	var ids []string
	for _, f := range res.Findings {
		if f.Object.Kind == kind && f.Object.Name == name {
			ids = append(ids, f.Rule)
		}
	}
	return ids
}

// v1 loses requests because nothing holds a terminating pod while its endpoint goes away and
// because a new pod gets traffic before it listens: the checker must say both, for both
// services, and fail at the default threshold.
func TestBuiltinV1ExplainsItsLosses(t *testing.T) {
	res := Run(readScenario(t, "v1-no-graceful"), Options{})
	if !res.Fails(Warning) {
		t.Fatalf("v1 passes at --fail-on warning: %+v", res.Findings)
	}
	for _, name := range []string{"upstream", "downstream"} {
		got := rulesOn(res, "Deployment", name)
		for _, want := range []string{RuleNoPrestop, RuleNoReadiness} {
			if !slices.Contains(got, want) {
				t.Errorf("Deployment %s: %s missing from %v", name, want, got)
			}
		}
	}
}

// v2, v2pooled-post and v3 lose nothing in the drills: at most infos.
func TestBuiltinV2V3PassWithAtMostInfos(t *testing.T) {
	for _, dir := range []string{"v2-graceful", "v2pooled-post", "v3-graceful-retry"} {
		t.Run(dir, func(t *testing.T) {
			objs := readScenario(t, dir)
			res := Run(objs, Options{})
			if res.Fails(Warning) {
				t.Errorf("%s has warnings or errors: %+v", dir, res.Findings)
			}
			// Their httpGet hooks declare their length, and it is the length the services
			// are configured to wait.
			for _, o := range objs {
				d, ok := o.Object.(*appsv1.Deployment)
				if !ok {
					continue
				}
				declared, ok := declaredDelay(d.Spec.Template.Annotations[PrestopDelayAnnotation])
				var env string
				for _, e := range d.Spec.Template.Spec.Containers[0].Env {
					if e.Name == "PRESTOP_DELAY" {
						env = e.Value
					}
				}
				configured, err := time.ParseDuration(env)
				if !ok || err != nil || declared != configured {
					t.Errorf("%s: %s %v does not match PRESTOP_DELAY %q", d.Name, PrestopDelayAnnotation, declared, env)
				}
			}
			if slices.Contains(rulesOn(res, "Deployment", "upstream"), RulePrestopUnknown) {
				t.Errorf("the declared preStop length was not used")
			}
		})
	}
}

// Dir is what a drill calls on the directory it runs: the same findings as reading the files.
func TestDirMatchesFiles(t *testing.T) {
	sub, err := fs.Sub(k8s.FS, "v1-no-graceful")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Dir(sub, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := Run(readScenario(t, "v1-no-graceful"), Options{})
	if len(res.Findings) != len(want.Findings) || !res.Fails(Warning) {
		t.Fatalf("Dir: %d findings, files: %d", len(res.Findings), len(want.Findings))
	}
	for i, f := range res.Findings {
		if f.Rule != want.Findings[i].Rule || f.Object.Line < 1 {
			t.Errorf("finding %d: %s at line %d, want %s", i, f.Rule, f.Object.Line, want.Findings[i].Rule)
		}
	}
	if _, err := Dir(fstest.MapFS{"bad.yaml": {Data: []byte("kind: [")}}, Options{}); err == nil {
		t.Error("a directory with a broken file gave no error")
	}
}

// v2race-post-unfixed is issue 18's race, kept open on purpose: pooled POSTs to an upstream that
// does not retire its keep-alive connections.
func TestBuiltinUnfixedPooledRace(t *testing.T) {
	res := Run(readScenario(t, "v2race-post-unfixed"), Options{})
	var got []Finding
	for _, f := range res.Findings {
		if f.Severity >= Warning {
			got = append(got, f)
		}
	}
	if len(got) != 1 || got[0].Rule != RulePooledClientWindow || got[0].Object.Name != "downstream" {
		t.Errorf("want one pooled-client-window warning on the downstream, got %+v", got)
	}
	if pooledIdleTimeout != downstream.DefaultIdleConnTimeout {
		t.Errorf("the rule assumes the downstream's idle timeout is %v, it is %v", pooledIdleTimeout, downstream.DefaultIdleConnTimeout)
	}
}
