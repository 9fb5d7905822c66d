package ablate

import (
	"math"
	"strings"
	"testing"

	"gonum.org/v1/gonum/stat/combin"

	"github.com/gracelab/gracelab/internal/stats"
)

func TestJudgeOnSyntheticCounts(t *testing.T) {
	for _, c := range []struct {
		name          string
		without, with []int
		want          Verdict
		reason        string
	}{
		// v1-like: every rollout without the protection loses tens of requests.
		{"always lossy without", []int{33, 67, 41}, []int{0, 0, 0}, Needed, "p = 0.05"},
		{"clear with overlap", []int{12, 0, 30, 7, 22, 9}, []int{0, 0, 1, 0, 0, 0}, Needed, ""},
		{"too few rollouts", []int{33, 67}, []int{0, 0}, Inconclusive, "at least 3 on each side"},
		{"rare loss", []int{0, 3, 0, 0, 2}, []int{0, 0, 0, 0, 0}, Inconclusive, "lean higher without it"},
		{"nothing lost either way", []int{0, 0, 0, 0, 0}, []int{0, 0, 0, 0, 0}, NoEffect, "0 of 5; at most 52 % of rollouts"},
		{"fewer losses without", []int{0, 1, 0, 0}, []int{2, 0, 3, 1}, NoEffect, "not higher"},
		{"empty", nil, []int{0, 0, 0}, Inconclusive, "nothing to compare"},
	} {
		j, err := Judge(c.without, c.with)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if j.Verdict != c.want || !strings.Contains(j.Reason, c.reason) {
			t.Errorf("%s: %q (%s), want %q containing %q", c.name, j.Verdict, j.Reason, c.want, c.reason)
		}
	}
}

// On lossy/clean counts, Judge (exact Mann-Whitney) and Fisher's one-sided test agree, which is
// what RolloutsNeeded relies on.
func TestJudgeOnLossyCleanIsFisher(t *testing.T) {
	for n := 3; n <= 8; n++ {
		for k := 0; k <= n; k++ {
			without := make([]int, n)
			for i := range k {
				without[i] = 1
			}
			j, err := Judge(without, make([]int, n))
			if err != nil {
				t.Fatal(err)
			}
			f, _ := stats.Fisher(k, n-k, 0, n, stats.Greater)
			if (j.Verdict == Needed) != f.Significant() || (k > 0 && (j.Test.P-f.P > 1e-12 || f.P-j.Test.P > 1e-12)) {
				t.Errorf("%d of %d lossy: Judge %q p %v, Fisher p %v", k, n, j.Verdict, j.Test.P, f.P)
			}
		}
	}
}

// fisherPower recomputes the power by enumerating k, independently of detectionPower's loop.
func fisherPower(q float64, n int) float64 {
	var p float64
	for k := 0; k <= n; k++ {
		r, _ := stats.Fisher(k, n-k, 0, n, stats.Greater)
		if r.Significant() {
			p += math.Exp(combin.LogGeneralizedBinomial(float64(n), float64(k))) * math.Pow(q, float64(k)) * math.Pow(1-q, float64(n-k))
		}
	}
	return p
}

func TestRolloutsNeeded(t *testing.T) {
	if n, ok := RolloutsNeeded(1, 0.8, 50); !ok || n != 3 {
		t.Errorf("always lossy: %d %v, want 3", n, ok)
	}
	for _, q := range []float64{0.9, 0.5, 0.3} {
		n, ok := RolloutsNeeded(q, 0.8, 60)
		if !ok {
			t.Fatalf("q %v: not found", q)
		}
		if fisherPower(q, n) < 0.8 || fisherPower(q, n-1) >= 0.8 {
			t.Errorf("q %v: n = %d, power there %.3f and at n-1 %.3f", q, n, fisherPower(q, n), fisherPower(q, n-1))
		}
		t.Logf("lossy fraction %.1f: %d rollouts per variant for 80 %% power", q, n)
	}
	if _, ok := RolloutsNeeded(0.05, 0.8, 20); ok {
		t.Error("a 5 % lossy rate cannot be shown in 20 rollouts")
	}
	if _, ok := RolloutsNeeded(0, 0.8, 20); ok {
		t.Error("lossy fraction 0 accepted")
	}
}

func TestDefaultRepeatMatchesRolloutsNeeded(t *testing.T) {
	if n, _ := RolloutsNeeded(1, 0.8, 50); n != DefaultRepeat {
		t.Errorf("DefaultRepeat %d, RolloutsNeeded for always-lossy %d", DefaultRepeat, n)
	}
	for q, want := range map[float64]int{0.9: 5, 0.5: 10, 0.3: 21} {
		if n, _ := RolloutsNeeded(q, 0.8, 60); n != want {
			t.Errorf("lossy fraction %v: %d, the DefaultRepeat doc says %d", q, n, want)
		}
	}
}
