package ablate

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// DefaultRepeat is the default number of rollouts per scenario: the fewest with which the
// exact test can say "needed" at all, enough for a protection whose absence loses requests in
// every rollout (RolloutsNeeded(1, 0.8, ...) = 3). Rarer losses need more: 5 rollouts when 9 of
// 10 rollouts lose, 10 when half do, 21 when 3 in 10 do (80 % power).
const DefaultRepeat = 3

// DefaultNames are the variants a bare `gracelab ablate` runs, chosen to fit 10 minutes on two
// cores: v2 and its six removals (7 scenarios of DefaultRepeat rollouts). The v3 and v1 variants
// run with --variants.
var DefaultNames = []string{"v2-no-prestop", "v2-prestop-sleep-1s", "v2-no-probes", "v2-no-strategy", "v2-grace-prestop", "v2-no-drain"}

// Sides orders a variant's per-rollout losses and its base scenario's into Judge's arguments:
// without and with the protection. A removal variant lacks it and its base has it; an additive
// variant has it and its base (v1) lacks it.
func (v Variant) Sides(variantLosses, baseLosses []int64) (without, with []int64) {
	if v.Adds {
		return baseLosses, variantLosses
	}
	return variantLosses, baseLosses
}

// WriteList prints the variants and what cannot be derived, as `gracelab ablate --list` shows
// them before anything runs: name, base, protection and summary, then every edit and note.
func WriteList(w io.Writer, vs []Variant, skipped []Unremovable) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIANT\tFROM\tPROTECTION\tWHAT")
	for _, v := range vs {
		what := "removes"
		if v.Adds {
			what = "adds"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\n", v.Name, v.Base, what, v.Protection, v.Summary)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "\n%s:\n", v.Name)
		for _, e := range v.Edits {
			fmt.Fprintf(&b, "  %s\n", e)
		}
		if v.Note != "" {
			fmt.Fprintf(&b, "  note: %s\n", v.Note)
		}
	}
	if len(skipped) > 0 {
		b.WriteString("\ncannot be derived:\n")
		for _, s := range skipped {
			fmt.Fprintf(&b, "  %s\n", s)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
