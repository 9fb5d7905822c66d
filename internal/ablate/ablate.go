// Package ablate derives the variants of `gracelab ablate`: manifest transforms over typed
// objects that remove one protection from a protected set of manifests (or add one to the
// unprotected v1), each naming the Deployment and field it edits, and the verdict on whether a
// protection is needed, judged on per-rollout loss counts by an exact test.
//
// Built-in variants (Builtin), from the demo's manifests:
//
//	from v2  no preStop hook; a native sleep of 1 s instead of the hook; no readiness and
//	         liveness probes; no strategy block; a grace period of just the preStop delay;
//	         no drain (SHUTDOWN=immediate)
//	from v3  no retries (RETRY_ATTEMPTS=1); a per-request instead of a pooled client
//	from v1  only a preStop delay; only the probes; only the drain (each copied from v2)
//
// A team's manifests (Foreign) get the manifest-level removals only: what the program does on
// SIGTERM or how its clients retry is not in a manifest. What cannot be derived is returned as
// Unremovable with the reason. Scale sets every Deployment's replicas (--replicas N); apply it to
// the base manifests before deriving, so the notes speak of the scaled strategy.
//
// A variant's Docs are ordinary manifests: WriteDir writes them to a directory that the embedded
// cluster and the real-cluster driver read like any other scenario.
package ablate

import (
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/gracelab/gracelab/internal/manifest"
)

// Protection names what a variant takes away (or adds).
type Protection string

const (
	PreStop      Protection = "preStop hook"
	PreStopSleep Protection = "preStop length"
	Probes       Protection = "readiness and liveness probes"
	Strategy     Protection = "rollout strategy"
	GracePeriod  Protection = "grace period"
	Drain        Protection = "SIGTERM drain"
	Retries      Protection = "client retries"
	PooledClient Protection = "pooled client"
)

// Edit is one field a variant changes.
type Edit struct {
	Deployment string // metadata.name
	Field      string // e.g. spec.template.spec.containers[upstream].lifecycle.preStop
	Change     string // e.g. "removed (httpGet /prestop)"
}

func (e Edit) String() string {
	return fmt.Sprintf("deployment %s: %s: %s", e.Deployment, e.Field, e.Change)
}

// Variant is one scenario of an ablation.
type Variant struct {
	Name       string // scenario name: "v2-no-prestop"
	Base       string // the scenario it is derived from: "v2", "v3", "v1" or a team's set
	Protection Protection
	// Adds is true for the additive variants from v1: the protection is added, not removed.
	Adds    bool
	Summary string // one line: what the variant does
	Note    string // what to expect or beware of; may be empty
	Edits   []Edit
	Docs    []manifest.Document
}

// Unremovable is a protection a variant cannot be derived for, and why.
type Unremovable struct {
	Base       string
	Protection Protection
	Reason     string
}

func (u Unremovable) String() string {
	return fmt.Sprintf("%s: %s: %s", u.Base, u.Protection, u.Reason)
}

// Builtin derives the built-in variants from the demo's v1, v2 and v3 manifests, in the order of
// the package doc. An error means the built-in manifests lack what a variant edits (a bug).
func Builtin(v1, v2, v3 []manifest.Document) ([]Variant, error) {
	var out []Variant
	for _, r := range []struct {
		base string
		docs []manifest.Document
		ts   []transform
	}{
		{"v2", v2, []transform{noPrestop, prestopSleep, noProbes, noStrategy, gracePrestop, noDrain}},
		{"v3", v3, []transform{noRetries, perRequestClient}},
		{"v1", v1, []transform{onlyPrestop(v2), onlyProbes(v2), onlyDrain(v2)}},
	} {
		vs, skipped := derive(r.base, r.docs, r.ts)
		if len(skipped) > 0 {
			return nil, fmt.Errorf("built-in variant %s", skipped[0])
		}
		out = append(out, vs...)
	}
	return out, nil
}

// Foreign derives the manifest-level removals from a team's manifests (base names them, e.g. the
// directory's name): preStop, preStop length, probes, strategy, grace period.
func Foreign(base string, docs []manifest.Document) ([]Variant, []Unremovable) {
	vs, skipped := derive(base, docs, []transform{noPrestop, prestopSleep, noProbes, noStrategy, gracePrestop})
	for _, p := range []Protection{Drain, Retries, PooledClient} {
		skipped = append(skipped, Unremovable{base, p, "the program's own behaviour, not a manifest field: ablate cannot remove it from a team's service"})
	}
	return vs, skipped
}

// Select keeps the variants named (by full name, e.g. "v2-no-probes"); none named keeps all.
func Select(all []Variant, names []string) ([]Variant, error) {
	if len(names) == 0 {
		return all, nil
	}
	var out []Variant
	for _, n := range names {
		n = strings.TrimSpace(n)
		i := slices.IndexFunc(all, func(v Variant) bool { return v.Name == n })
		if i < 0 {
			known := make([]string, len(all))
			for j, v := range all {
				known[j] = v.Name
			}
			return nil, fmt.Errorf("unknown variant %q: choose from %s", n, strings.Join(known, ", "))
		}
		if !slices.ContainsFunc(out, func(v Variant) bool { return v.Name == n }) {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// transform edits one deep-copied Deployment; it returns the edits made (none when the
// Deployment lacks the protection) and the note for the variant, if any.
type transform struct {
	suffix     string
	protection Protection
	adds       bool
	summary    string
	// absent is the reason given when no Deployment of the set has the protection.
	absent string
	edit   func(d *appsv1.Deployment) (edits []Edit, note string, err error)
}

// derive applies every transform to a copy of docs; a transform that edits nothing (or fails)
// becomes an Unremovable.
func derive(base string, docs []manifest.Document, ts []transform) ([]Variant, []Unremovable) {
	var out []Variant
	var skipped []Unremovable
	for _, t := range ts {
		v, err := apply(base, docs, t)
		if err != nil {
			skipped = append(skipped, Unremovable{base, t.protection, err.Error()})
			continue
		}
		out = append(out, v)
	}
	return out, skipped
}

func apply(base string, docs []manifest.Document, t transform) (Variant, error) {
	v := Variant{Name: base + "-" + t.suffix, Base: base, Protection: t.protection, Adds: t.adds, Summary: t.summary}
	copied := copyDocs(docs)
	var notes, kept []string
	var firstErr error
	for _, d := range copied {
		dep, ok := d.Object.(*appsv1.Deployment)
		if !ok {
			continue
		}
		edits, note, err := t.edit(dep)
		if err != nil {
			err = fmt.Errorf("deployment %s: %w", dep.Name, err)
			if firstErr == nil {
				firstErr = err
			}
			kept = append(kept, err.Error())
			continue
		}
		v.Edits = append(v.Edits, edits...)
		if note != "" && !slices.Contains(notes, note) {
			notes = append(notes, note)
		}
	}
	if len(v.Edits) == 0 {
		if firstErr != nil {
			return Variant{}, firstErr
		}
		return Variant{}, fmt.Errorf("%s", t.absent)
	}
	for _, k := range kept {
		notes = append(notes, "not edited: "+k)
	}
	v.Note = strings.Join(notes, "; ")
	v.Docs = copied
	return v, nil
}

// copyDocs deep-copies the objects; Raw is dropped, as it no longer describes them (WriteDir
// writes the objects).
func copyDocs(docs []manifest.Document) []manifest.Document {
	out := make([]manifest.Document, len(docs))
	for i, d := range docs {
		out[i] = d
		out[i].Object = d.Object.DeepCopyObject()
		out[i].Raw = nil
	}
	return out
}
