package ablate

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/gracelab/gracelab/internal/localkube"
	"github.com/gracelab/gracelab/internal/manifest"
	"github.com/gracelab/gracelab/k8s"
)

func builtin(t *testing.T, dir string) []manifest.Document {
	t.Helper()
	sub, err := fs.Sub(k8s.FS, dir)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := manifest.Read(sub)
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

func deployment(t *testing.T, docs []manifest.Document, name string) *appsv1.Deployment {
	t.Helper()
	for _, d := range docs {
		if dep, ok := d.Object.(*appsv1.Deployment); ok && dep.Name == name {
			return dep
		}
	}
	t.Fatalf("no deployment %s", name)
	return nil
}

func env(c *corev1.Container, name string) string {
	if i := envIndex(c, name); i >= 0 {
		return c.Env[i].Value
	}
	return "<unset>"
}

func variant(t *testing.T, vs []Variant, name string) Variant {
	t.Helper()
	i := slices.IndexFunc(vs, func(v Variant) bool { return v.Name == name })
	if i < 0 {
		t.Fatalf("no variant %s", name)
	}
	return vs[i]
}

func builtinVariants(t *testing.T) (v1, v2, v3 []manifest.Document, vs []Variant) {
	v1, v2, v3 = builtin(t, "v1-no-graceful"), builtin(t, "v2-graceful"), builtin(t, "v3-graceful-retry")
	vs, err := Builtin(v1, v2, v3)
	if err != nil {
		t.Fatal(err)
	}
	return v1, v2, v3, vs
}

func TestBuiltinVariantNames(t *testing.T) {
	_, _, _, vs := builtinVariants(t)
	var names []string
	for _, v := range vs {
		names = append(names, v.Name)
	}
	want := []string{"v2-no-prestop", "v2-prestop-sleep-1s", "v2-no-probes", "v2-no-strategy", "v2-grace-prestop", "v2-no-drain",
		"v3-no-retries", "v3-per-request-client", "v1-only-prestop", "v1-only-probes", "v1-only-drain"}
	if !slices.Equal(names, want) {
		t.Errorf("variants\n got %v\nwant %v", names, want)
	}
}

// Each variant changes exactly its protection, on every Deployment that has it, and leaves
// the base manifests untouched.
func TestBuiltinRemovalsFromV2(t *testing.T) {
	_, v2, _, vs := builtinVariants(t)
	for _, name := range []string{"upstream", "downstream"} {
		base := deployment(t, v2, name)
		bc := &base.Spec.Template.Spec.Containers[0]

		d := deployment(t, variant(t, vs, "v2-no-prestop").Docs, name)
		c := &d.Spec.Template.Spec.Containers[0]
		if c.Lifecycle != nil || c.ReadinessProbe == nil || d.Spec.Strategy.RollingUpdate == nil || *d.Spec.Template.Spec.TerminationGracePeriodSeconds != 30 {
			t.Errorf("%s no-prestop: lifecycle %v, probes/strategy/grace must stay", name, c.Lifecycle)
		}
		if bc.Lifecycle == nil || bc.Lifecycle.PreStop == nil {
			t.Fatalf("%s: the base v2 manifests were modified", name)
		}

		d = deployment(t, variant(t, vs, "v2-prestop-sleep-1s").Docs, name)
		c = &d.Spec.Template.Spec.Containers[0]
		if h := c.Lifecycle.PreStop; h.Sleep == nil || h.Sleep.Seconds != 1 || h.HTTPGet != nil {
			t.Errorf("%s prestop-sleep: hook %+v", name, h)
		}

		d = deployment(t, variant(t, vs, "v2-no-probes").Docs, name)
		c = &d.Spec.Template.Spec.Containers[0]
		if c.ReadinessProbe != nil || c.LivenessProbe != nil || c.Lifecycle.PreStop == nil {
			t.Errorf("%s no-probes: readiness %v liveness %v", name, c.ReadinessProbe, c.LivenessProbe)
		}

		d = deployment(t, variant(t, vs, "v2-no-strategy").Docs, name)
		if d.Spec.Strategy.Type != "" || d.Spec.Strategy.RollingUpdate != nil {
			t.Errorf("%s no-strategy: %+v", name, d.Spec.Strategy)
		}

		d = deployment(t, variant(t, vs, "v2-grace-prestop").Docs, name)
		if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g != 5 {
			t.Errorf("%s grace-prestop: %v, want the 5 s preStop delay", name, g)
		}

		d = deployment(t, variant(t, vs, "v2-no-drain").Docs, name)
		if got := env(&d.Spec.Template.Spec.Containers[0], "SHUTDOWN"); got != "immediate" {
			t.Errorf("%s no-drain: SHUTDOWN %s", name, got)
		}
	}
	ns := variant(t, vs, "v2-no-strategy")
	if !strings.Contains(ns.Note, "upstream at 2 replicas: the default resolves to maxSurge 1, maxUnavailable 0, the same as the block: expect no effect") {
		t.Errorf("no-strategy note %q", ns.Note)
	}
	if g := variant(t, vs, "v2-grace-prestop"); !strings.Contains(g.Note, "2 s") {
		t.Errorf("grace-prestop must say the kubelet's 2 s: %q", g.Note)
	}
	// Every edit names its Deployment and field.
	np := variant(t, vs, "v2-no-prestop")
	want := []string{
		"deployment downstream: spec.template.spec.containers[downstream].lifecycle.preStop: removed (was httpGet /prestop, 5s)",
		"deployment downstream: spec.template.metadata.annotations[gracelab.io/prestop-delay]: removed (was \"5s\"): the hook it described is gone",
	}
	for i, w := range want {
		if got := np.Edits[i].String(); got != w {
			t.Errorf("edit %d\n got %q\nwant %q", i, got, w)
		}
	}
}

func TestBuiltinV3AndAdditive(t *testing.T) {
	v1, _, _, vs := builtinVariants(t)
	nr := variant(t, vs, "v3-no-retries")
	if len(nr.Edits) != 1 || nr.Edits[0].Deployment != "downstream" || nr.Edits[0].Change != `"3" -> "1"` {
		t.Errorf("no-retries edits %v", nr.Edits)
	}
	if got := env(&deployment(t, nr.Docs, "downstream").Spec.Template.Spec.Containers[0], "RETRY_ATTEMPTS"); got != "1" {
		t.Errorf("RETRY_ATTEMPTS %s", got)
	}
	pc := variant(t, vs, "v3-per-request-client")
	if got := env(&deployment(t, pc.Docs, "downstream").Spec.Template.Spec.Containers[0], "CLIENT"); got != "per-request" || len(pc.Edits) != 1 {
		t.Errorf("CLIENT %s, edits %v", got, pc.Edits)
	}

	for _, name := range []string{"upstream", "downstream"} {
		c := &deployment(t, variant(t, vs, "v1-only-prestop").Docs, name).Spec.Template.Spec.Containers[0]
		if c.Lifecycle == nil || c.Lifecycle.PreStop.HTTPGet == nil || env(c, "PRESTOP_DELAY") != "5s" ||
			c.ReadinessProbe != nil || env(c, "SHUTDOWN") != "immediate" {
			t.Errorf("%s only-prestop: %+v", name, c)
		}
		c = &deployment(t, variant(t, vs, "v1-only-probes").Docs, name).Spec.Template.Spec.Containers[0]
		if c.ReadinessProbe == nil || c.LivenessProbe == nil || c.Lifecycle != nil || env(c, "SHUTDOWN") != "immediate" {
			t.Errorf("%s only-probes: %+v", name, c)
		}
		d := deployment(t, variant(t, vs, "v1-only-drain").Docs, name)
		c = &d.Spec.Template.Spec.Containers[0]
		// v2's grace period is 30 s, v1's the default 30 s: nothing to change there.
		if env(c, "SHUTDOWN") != "graceful" || env(c, "DRAIN_TIMEOUT") != "15s" || c.Lifecycle != nil || c.ReadinessProbe != nil ||
			d.Spec.Template.Spec.TerminationGracePeriodSeconds != nil {
			t.Errorf("%s only-drain: %+v", name, c)
		}
		if base := &deployment(t, v1, name).Spec.Template.Spec.Containers[0]; base.Lifecycle != nil || env(base, "SHUTDOWN") != "immediate" {
			t.Fatalf("the base v1 manifests were modified")
		}
	}
	for _, v := range vs {
		if v.Adds != (v.Base == "v1") {
			t.Errorf("%s: Adds %v", v.Name, v.Adds)
		}
	}
}

// A variant written out reads back, strictly decoded, as the same objects.
func TestVariantsRoundTripThroughManifestRead(t *testing.T) {
	_, _, _, vs := builtinVariants(t)
	for _, v := range vs {
		dir := filepath.Join(t.TempDir(), v.Name)
		if err := WriteDir(dir, v.Docs); err != nil {
			t.Fatal(err)
		}
		back, err := manifest.Read(os.DirFS(dir))
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		if len(back) != len(v.Docs) {
			t.Fatalf("%s: %d documents back, want %d", v.Name, len(back), len(v.Docs))
		}
		for _, d := range v.Docs {
			i := slices.IndexFunc(back, func(b manifest.Document) bool { return b.Kind() == d.Kind() && b.Name() == d.Name() })
			if i < 0 || !equality.Semantic.DeepEqual(back[i].Object, d.Object) {
				t.Errorf("%s: %s %s differs after the round trip", v.Name, d.Kind(), d.Name())
			}
		}
	}
}

func TestScale(t *testing.T) {
	v1, v2, v3 := builtin(t, "v1-no-graceful"), builtin(t, "v2-graceful"), builtin(t, "v3-graceful-retry")
	scaled, edits, err := Scale(v2, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(edits) != 2 || edits[1].String() != "deployment upstream: spec.replicas: 2 -> 4" {
		t.Errorf("edits %v", edits)
	}
	if *deployment(t, scaled, "upstream").Spec.Replicas != 4 || *deployment(t, v2, "upstream").Spec.Replicas != 2 {
		t.Error("scaled copy wrong or base modified")
	}
	vs, err := Builtin(v1, scaled, v3)
	if err != nil {
		t.Fatal(err)
	}
	// At 4 replicas the default strategy lets one pod be unavailable: the block starts to matter.
	if n := variant(t, vs, "v2-no-strategy").Note; !strings.Contains(n, "at 4 replicas: the default resolves to maxSurge 1, maxUnavailable 1") || strings.Contains(n, "expect no effect") {
		t.Errorf("note at 4 replicas: %q", n)
	}
	if _, _, err := Scale(v2, 0); err == nil {
		t.Error("0 replicas accepted")
	}
}

// readAll reads a team's directory as drill does: every kind, strictly.
func readAll(t *testing.T, dir string) []manifest.Document {
	t.Helper()
	files, err := manifest.FilesOf(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := manifest.Decode(files, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

func TestForeignManifests(t *testing.T) {
	docs := readAll(t, "testdata/team")
	vs, skipped := Foreign("team", docs)
	var names []string
	for _, v := range vs {
		names = append(names, v.Name)
	}
	want := []string{"team-no-prestop", "team-prestop-sleep-1s", "team-no-probes", "team-no-strategy", "team-grace-prestop"}
	if !slices.Equal(names, want) {
		t.Fatalf("variants %v, want %v", names, want)
	}
	// Application behaviour cannot be removed from someone else's program.
	var cannot []Protection
	for _, s := range skipped {
		cannot = append(cannot, s.Protection)
		if !strings.Contains(s.Reason, "not a manifest field") {
			t.Errorf("reason %q", s.Reason)
		}
	}
	if !slices.Equal(cannot, []Protection{Drain, Retries, PooledClient}) {
		t.Errorf("unremovable %v", cannot)
	}

	np := variant(t, vs, "team-no-prestop")
	if len(np.Edits) != 2 || np.Edits[0].Change != `removed (was exec ["/bin/sh" "-c" "sleep 10"], 10s)` || np.Edits[1].Deployment != "orders-worker" {
		t.Errorf("no-prestop edits %v", np.Edits)
	}
	// The sidecar without hooks is left alone.
	if api := deployment(t, np.Docs, "orders-api"); api.Spec.Template.Spec.Containers[1].Lifecycle != nil || api.Spec.Template.Spec.Containers[0].Lifecycle != nil {
		t.Error("no-prestop left a hook on orders-api")
	}

	nprobe := variant(t, vs, "team-no-probes")
	api := &deployment(t, nprobe.Docs, "orders-api").Spec.Template.Spec.Containers[0]
	if api.ReadinessProbe != nil || api.LivenessProbe != nil || api.StartupProbe == nil || !strings.Contains(nprobe.Note, "startup probes are kept") {
		t.Errorf("no-probes: %+v note %q", api, nprobe.Note)
	}

	// Only orders-worker has a strategy block (Recreate): no "expect no effect" for it.
	ns := variant(t, vs, "team-no-strategy")
	if len(ns.Edits) != 1 || ns.Edits[0].Change != "removed (was Recreate)" || strings.Contains(ns.Note, "expect no effect") {
		t.Errorf("no-strategy %v %q", ns.Edits, ns.Note)
	}

	// The grace period: orders-api's exec sleep is 10 s; orders-worker's httpGet hook has no
	// declared length, so it is kept and the variant says why.
	g := variant(t, vs, "team-grace-prestop")
	if len(g.Edits) != 1 || g.Edits[0].String() != "deployment orders-api: spec.template.spec.terminationGracePeriodSeconds: 60 -> 10 (the preStop delay)" {
		t.Errorf("grace edits %v", g.Edits)
	}
	if !strings.Contains(g.Note, "not edited: deployment orders-worker: the preStop hook's length is not in the manifest") {
		t.Errorf("grace note %q", g.Note)
	}
}

func TestForeignWithoutProtections(t *testing.T) {
	// v1 as a foreign set: nothing to remove, and each reason says so.
	vs, skipped := Foreign("plain", builtin(t, "v1-no-graceful"))
	if len(vs) != 0 {
		t.Errorf("variants %v from manifests without protections", vs)
	}
	reasons := map[Protection]string{}
	for _, s := range skipped {
		reasons[s.Protection] = s.Reason
	}
	for p, want := range map[Protection]string{
		PreStop:     "no container has a preStop hook",
		Probes:      "no container has a readiness or liveness probe",
		Strategy:    "no Deployment sets a strategy",
		GracePeriod: "no container has a preStop hook",
	} {
		if !strings.Contains(reasons[p], want) {
			t.Errorf("%s: reason %q, want %q", p, reasons[p], want)
		}
	}
}

func TestSelect(t *testing.T) {
	_, _, _, vs := builtinVariants(t)
	got, err := Select(vs, []string{"v2-no-probes", "v1-only-drain", "v2-no-probes"})
	if err != nil || len(got) != 2 || got[0].Name != "v2-no-probes" {
		t.Errorf("select: %v %v", got, err)
	}
	if _, err := Select(vs, []string{"v2-no-readiness"}); err == nil || !strings.Contains(err.Error(), `unknown variant "v2-no-readiness": choose from v2-no-prestop, `) {
		t.Errorf("unknown name: %v", err)
	}
	if all, _ := Select(vs, nil); len(all) != len(vs) {
		t.Error("no names must keep all")
	}
}

func TestDefaultsAndList(t *testing.T) {
	_, _, _, vs := builtinVariants(t)
	def, err := Select(vs, DefaultNames)
	if err != nil || len(def) != 6 {
		t.Fatalf("defaults: %v %v", def, err)
	}
	rm, add := variant(t, vs, "v2-no-probes"), variant(t, vs, "v1-only-probes")
	without, with := rm.Sides([]int64{5}, []int64{0})
	if without[0] != 5 || with[0] != 0 {
		t.Error("removal: the variant is the side without the protection")
	}
	without, with = add.Sides([]int64{0}, []int64{5})
	if without[0] != 5 || with[0] != 0 {
		t.Error("additive: the base (v1) is the side without the protection")
	}
	var b strings.Builder
	_, skipped := Foreign("team", builtin(t, "v1-no-graceful"))
	if err := WriteList(&b, def, skipped); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"v2-no-prestop", "removes preStop hook",
		"deployment upstream: spec.template.spec.terminationGracePeriodSeconds: 30 -> 5 (the preStop delay)",
		"note: the kubelet still grants a one-off 2 s", "cannot be derived:", "team: SIGTERM drain: the program's own behaviour"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
}

// Every built-in variant is accepted by the embedded cluster's own validation (nothing starts).
func TestVariantsValidateOnTheEmbeddedCluster(t *testing.T) {
	_, _, _, vs := builtinVariants(t)
	for _, v := range vs {
		dir := t.TempDir()
		if err := WriteDir(dir, v.Docs); err != nil {
			t.Fatal(err)
		}
		if _, err := localkube.New(localkube.Options{Manifests: os.DirFS(dir), Executable: "/nonexistent/gracelab"}); err != nil {
			t.Errorf("%s: %v", v.Name, err)
		}
		data, _ := os.ReadFile(filepath.Join(dir, "upstream.yaml"))
		if strings.Contains(string(data), "status:") || strings.Contains(string(data), "creationTimestamp") {
			t.Errorf("%s: unwritten fields in the YAML:\n%s", v.Name, data)
		}
	}
}

// A team's variants keep the objects ablate does not edit (here a ConfigMap) and read back whole.
func TestForeignVariantsRoundTrip(t *testing.T) {
	docs := readAll(t, "testdata/team")
	vs, _ := Foreign("team", docs)
	for _, v := range vs {
		dir := t.TempDir()
		if err := WriteDir(dir, v.Docs); err != nil {
			t.Fatal(err)
		}
		back := readAll(t, dir)
		if len(back) != len(docs) {
			t.Errorf("%s: %d objects back, want %d", v.Name, len(back), len(docs))
		}
		for _, d := range v.Docs {
			i := slices.IndexFunc(back, func(b manifest.Document) bool { return b.Kind() == d.Kind() && b.Name() == d.Name() })
			if i < 0 || !equality.Semantic.DeepEqual(back[i].Object, d.Object) {
				t.Errorf("%s: %s %s differs after the round trip", v.Name, d.Kind(), d.Name())
			}
		}
	}
}
