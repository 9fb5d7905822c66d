package ablate

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
)

// syntheticOutcome judges made-up counts: v2 loses nothing; without the preStop hook every
// rollout loses; without the drain nothing changes; a variant that failed and one never run;
// v1 loses in every rollout and the drain added alone stops it.
func syntheticOutcome(t *testing.T) Outcome {
	t.Helper()
	vs := []Variant{
		{Name: "v2-no-prestop", Base: "v2", Protection: PreStop},
		{Name: "v2-no-drain", Base: "v2", Protection: Drain},
		{Name: "v2-no-probes", Base: "v2", Protection: Probes},
		{Name: "v2-no-strategy", Base: "v2", Protection: Strategy},
		{Name: "v1-only-drain", Base: "v1", Protection: Drain, Adds: true},
	}
	ms := func(losses []int64, rollout float64, worst time.Duration) Measured {
		return Measured{Losses: losses, RolloutSeconds: []float64{rollout, rollout, rollout}, WorstLatency: worst}
	}
	measured := map[string]Measured{
		"v2":            ms([]int64{0, 0, 0}, 9.8, 215*time.Millisecond),
		"v2-no-prestop": ms([]int64{12, 9, 15}, 4.6, 5005*time.Millisecond),
		"v2-no-drain":   ms([]int64{0, 0, 0}, 9.9, 230*time.Millisecond),
		"v2-no-probes":  {Failure: "the rollout did not settle within 3m0s"},
		"v1":            ms([]int64{30, 41, 52}, 2.8, 5005*time.Millisecond),
		"v1-only-drain": ms([]int64{0, 0, 0}, 3.1, 250*time.Millisecond),
	}
	skipped := []Unremovable{{Base: "team", Protection: Retries, Reason: "the program's own behaviour"}}
	o, err := Assess(vs, measured, 3, skipped)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestAssessSyntheticCounts(t *testing.T) {
	o := syntheticOutcome(t)
	var names []string
	for _, r := range o.Rows {
		names = append(names, r.Scenario)
	}
	if got, want := strings.Join(names, " "), "v2 v2-no-prestop v2-no-drain v2-no-probes v1 v1-only-drain"; got != want {
		t.Fatalf("rows %q, want %q (each base, then its variants)", got, want)
	}
	if got := strings.Join(o.NotRun, " "); got != "v2-no-strategy" {
		t.Errorf("not run %q, want v2-no-strategy", got)
	}
	byName := map[string]Row{}
	for _, r := range o.Rows {
		byName[r.Scenario] = r
	}
	pre := byName["v2-no-prestop"]
	if pre.Verdict != Needed || pre.PValue == nil || *pre.PValue > 0.05 || pre.MeanLosses != 12 {
		t.Errorf("no-prestop: %+v, want needed with mean 12", pre)
	}
	if pre.CostSeconds == nil || *pre.CostSeconds < 5.19 || *pre.CostSeconds > 5.21 {
		t.Errorf("no-prestop: cost %v, want 9.8 - 4.6 = 5.2 s", pre.CostSeconds)
	}
	if d := byName["v2-no-drain"]; d.Verdict != NoEffect {
		t.Errorf("no-drain: %q, want %q", d.Verdict, NoEffect)
	}
	if p := byName["v2-no-probes"]; p.Verdict != "" || !strings.Contains(p.Reason, "did not settle") {
		t.Errorf("a failed variant is not judged: %+v", p)
	}
	// Additive: v1 (without) against the variant (with); the cost is with minus without.
	add := byName["v1-only-drain"]
	if add.Verdict != Needed || add.CostSeconds == nil || *add.CostSeconds < 0.29 || *add.CostSeconds > 0.31 {
		t.Errorf("v1-only-drain: %+v (cost %v), want needed, cost 3.1 - 2.8", add, add.CostSeconds)
	}
	if len(o.CannotDerive) != 1 || !strings.Contains(o.CannotDerive[0], "client retries") {
		t.Errorf("cannot derive %v", o.CannotDerive)
	}
}

// A base that did not run leaves its variants unjudged, whatever they measured.
func TestAssessWithoutBase(t *testing.T) {
	vs := []Variant{{Name: "v2-no-prestop", Base: "v2", Protection: PreStop}}
	o, err := Assess(vs, map[string]Measured{"v2-no-prestop": {Losses: []int64{9, 9, 9}}}, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Rows) != 1 || o.Rows[0].Verdict != "" || !strings.Contains(o.Rows[0].Reason, "base v2 did not run") {
		t.Errorf("rows %+v", o.Rows)
	}
}

func TestVerdictTable(t *testing.T) {
	o := syntheticOutcome(t)
	var b bytes.Buffer
	if err := o.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^variant\s+protection\s+losses per rollout\s+mean\s+worst latency\s+rollout\s+verdict$`),
		regexp.MustCompile(`(?m)^v2\s+-\s+0 0 0\s+0\.0\s+215 ms\s+9\.8 s\s+\(base\)$`),
		regexp.MustCompile(`(?m)^v2-no-prestop\s+removes preStop hook\s+12 9 15\s+12\.0\s+5005 ms\s+4\.6 s\s+needed \(p = 0\.05\)$`),
		regexp.MustCompile(`(?m)^v2-no-drain\s+removes SIGTERM drain\s+0 0 0\s+0\.0\s+230 ms\s+9\.9 s\s+no measurable effect at this scale \(p = 1\)$`),
		regexp.MustCompile(`(?m)^v2-no-probes\s+removes readiness and liveness probes\s+-\s+-\s+-\s+-\s+not judged$`),
		regexp.MustCompile(`(?m)^v1-only-drain\s+adds SIGTERM drain\s+0 0 0\s+0\.0\s+250 ms\s+3\.1 s\s+needed \(p = 0\.05\)$`),
		regexp.MustCompile(`(?m)^not run: v2-no-strategy$`),
	} {
		if !want.MatchString(text) {
			t.Errorf("table lacks %s:\n%s", want, text)
		}
	}

	b.Reset()
	if err := o.WriteMarkdown(&b, func(s string) string { return "runs/" + s + "/REPORT.md" }); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| [v2-no-prestop](runs/v2-no-prestop/REPORT.md) | removes preStop hook | 12 9 15 | 12.0 | 5005 ms | 4.6 s | needed (p = 0.05) |",
		"### preStop hook\n\nWithout it, v2-no-prestop lost 12 9 15 requests per rollout (mean 12.0, worst latency 5005 ms), against 0 0 0 (mean 0.0, worst latency 215 ms) in v2 with it. Verdict: **needed**",
		"It costs 5.2 s per rollout (9.8 s with it, 4.6 s without).",
		"It costs no measurable rollout time (9.8 s with it, 9.9 s without).",
		"Added alone to v1, v1-only-drain lost 0 0 0 requests per rollout",
		"v2-no-probes: the rollout did not settle within 3m0s.",
		"Not run (interrupted): v2-no-strategy.",
		"### Not ablated\n\n- team: client retries: the program's own behaviour",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("REPORT.md section lacks %q:\n%s", want, md)
		}
	}
	// Both drain rows are under one protection heading.
	if n := strings.Count(md, "### SIGTERM drain"); n != 1 {
		t.Errorf("%d SIGTERM drain headings, want 1", n)
	}

	// report.json's form: the verdict and the p-value per row.
	js, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var back Outcome
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if back.Rows[1].Verdict != Needed || back.Rows[1].PValue == nil || back.Repeat != 3 {
		t.Errorf("JSON round trip lost the verdict: %s", js)
	}
}

func TestRolloutGuess(t *testing.T) {
	_, v2, _, vs := builtinVariants(t)
	// v2: two steps of a 1 s start plus a 1 s readiness period, then the 5 s preStop and a second.
	if got := RolloutGuess(v2, "upstream", time.Second); got != 10*time.Second {
		t.Errorf("v2 guess %s, want 10s", got)
	}
	if got := RolloutGuess(variant(t, vs, "v2-no-prestop").Docs, "upstream", time.Second); got != 5*time.Second {
		t.Errorf("v2-no-prestop guess %s, want 5s", got)
	}
}

// Under another disruption the verdict speaks of disruptions and recovery, not rollouts; the
// judgement itself (verdicts, p-values) is the same, and a protection named "rollout strategy"
// keeps its name.
func TestVerdictUnderAnotherDisruption(t *testing.T) {
	base := syntheticOutcome(t)
	o := base.Under("kill")
	if o.Disruption != "kill" || base.Disruption != "" {
		t.Fatalf("disruption %q (base %q)", o.Disruption, base.Disruption)
	}
	var b bytes.Buffer
	if err := o.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^variant\s+protection\s+losses per disruption\s+mean\s+worst latency\s+recovery\s+verdict$`).MatchString(b.String()) {
		t.Errorf("table header:\n%s", b.String())
	}
	b.Reset()
	if err := o.WriteMarkdown(&b, nil); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"Each scenario went through 3 disruptions of kind kill (--disruption kill)",
		"Without it, v2-no-prestop lost 12 9 15 requests per disruption",
		"It costs 5.2 s of recovery time per disruption (9.8 s with it, 4.6 s without).",
		"It costs no measurable recovery time",
		"no disruption lost a request without it (0 of 3; at most 71 % of disruptions would, 95 %)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("REPORT.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "rollout") {
		t.Errorf("REPORT.md under a kill still speaks of rollouts:\n%s", md)
	}
	for i := range o.Rows {
		if o.Rows[i].Verdict != base.Rows[i].Verdict {
			t.Errorf("row %d: verdict %q changed to %q", i, base.Rows[i].Verdict, o.Rows[i].Verdict)
		}
	}
	if base.Under("restart").Disruption != "" {
		t.Error("a restart is worded as a disruption")
	}
}

// The estimate follows the disruption: a kill of v2 is its pod's restart after a growing
// back-off (0, 10 s, 20 s), an eviction or a deletion one pod's preStop, exit and replacement.
func TestDisruptionGuess(t *testing.T) {
	_, v2, _, _ := builtinVariants(t)
	step := 2 * time.Second // a 1 s start and the 1 s readiness period
	for _, tc := range []struct {
		kind     cluster.DisruptionKind
		count, n int
		want     time.Duration
	}{
		{cluster.DisruptRestart, 1, 3, 30 * time.Second},
		{cluster.DisruptKill, 1, 3, 3*step + 30*time.Second},
		{cluster.DisruptDelete, 1, 3, 3 * (5*time.Second + time.Second + step)},
		{cluster.DisruptEvict, 2, 1, 5*time.Second + time.Second + step + 5*time.Second + step},
		{cluster.DisruptScale, 1, 2, 2 * (5*time.Second + time.Second + step)},
		{cluster.DisruptDrain, 1, 1, 5*time.Second + time.Second + step},
	} {
		if got := DisruptionGuess(v2, "upstream", time.Second, tc.kind, tc.count, tc.n); got != tc.want {
			t.Errorf("%s x%d (count %d): %s, want %s", tc.kind, tc.n, tc.count, got, tc.want)
		}
	}
}
