package cli

import (
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"testing/fstest"
	"time"

	"github.com/spf13/cobra"

	"github.com/gracelab/gracelab/internal/ablate"
	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/experiment"
	"github.com/gracelab/gracelab/internal/localkube"
	"github.com/gracelab/gracelab/internal/manifest"
	"github.com/gracelab/gracelab/k8s"
)

// ablateOptions are gracelab ablate's flags: drill's (with the run flags every preset shares),
// the demo's real-cluster flags, and the ablation's own.
type ablateOptions struct {
	drill    drillOptions
	list     bool
	variants string
	replicas int
	repeat   int
}

// ablatePlan is a validated ablation: the variants and one planned drill per scenario, bases
// first (each base followed by its variants).
type ablatePlan struct {
	variants []ablate.Variant
	skipped  []ablate.Unremovable
	scaled   []ablate.Edit
	runs     []ablateRun
	out      string
	repeat   int
	estimate time.Duration
	perRun   []time.Duration
	// disruption is what each scenario goes through --repeat times (restart: rollouts).
	disruption cluster.DisruptionKind
}

// unit is what the ablation's scenarios repeat, for its messages: "rollout", "kill", ...
func (ap *ablatePlan) unit() string { return disruptionUnit[ap.disruption] }

var disruptionUnit = map[cluster.DisruptionKind]string{
	cluster.DisruptRestart: "rollout", cluster.DisruptDelete: "deletion", cluster.DisruptEvict: "eviction",
	cluster.DisruptDrain: "drain", cluster.DisruptKill: "kill", cluster.DisruptScale: "scale-down",
}

type ablateRun struct {
	name string
	plan *runPlan
}

// Time an embedded scenario spends outside its load (cluster up, serving, report, tear down),
// and a real cluster's (namespace, image start, namespace deletion), as measured.
const (
	embeddedOverhead = 8 * time.Second
	kubeOverhead     = 40 * time.Second
	kubePodStart     = 2 * time.Second // the lab's median pod start (docs/fidelity.md)
)

// drillOnly are drill's flags that need -f (a team's manifests).
var drillOnly = []string{"recursive", "run", "path", "sandbox", "header", "body", "expect-status", "expect-body"}

func newAblateCommand(streams Streams) *cobra.Command {
	return newAblateCommandFor(&ablateOptions{}, streams)
}

// newAblateCommandFor binds the command's flags to o.
func newAblateCommandFor(o *ablateOptions, streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ablate [-f PATH... --run IMAGE=PROGRAM --target URL]",
		Short: "Find which protection actually prevents the errors: remove each in turn and measure",
		Long: `Derive variants from a protected set of manifests, each removing one protection (or adding
one to the unprotected v1), run each as an ordinary scenario with --repeat rolling restarts
in one load run, and judge per protection whether it is needed: "needed" when removing it
raises the losses per rollout significantly (an exact test), "no measurable effect at this
scale", or "inconclusive: more rollouts needed".

Without -f: the built-in versions. The default runs v2 and its six removals; --variants
chooses among all of them (--list shows them): from v2 no preStop hook, a 1 s native sleep,
no probes, no strategy block, a grace period of just the preStop delay, no drain; from v3 no
retries, a per-request client; from v1 only a preStop delay, only probes, only the drain.
With -f (and drill's flags): a team's manifests on the embedded cluster, manifest-level
variants only. With --cluster: the built-in versions on a real cluster, as demo --cluster.
--disruption KIND (delete, evict, drain, kill, scale) puts every scenario through that
disruption --repeat times instead of rolling restarts, and judges the protections under it
(docs/disruptions.md); "all" is refused: run one ablation per kind.

The variants and a time estimate are printed before anything runs. Each scenario's report
is in <out>/runs/<scenario>/; <out>/REPORT.md and report.json hold the verdict. Ctrl-C stops
the current scenario and writes the verdict of the finished ones (exit 1); a second Ctrl-C
exits at once. Exit 0 when every scenario ran, 1 when one failed or was interrupted, 2 for
bad input (nothing started, no report written), 3 when a threshold was breached.`,
		Example: `  gracelab ablate
  gracelab ablate --list
  gracelab ablate --variants v2-no-strategy --replicas 4 --repeat 5
  gracelab ablate -f deploy/ --run ghcr.io/acme/api=./bin/api --target http://api:8080/
  gracelab ablate --cluster --variants v2-no-prestop,v2-no-drain
  gracelab ablate --disruption kill --variants v2-no-prestop,v2-no-drain`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plan, err := o.plan(cmd, streams, time.Now())
			if err != nil || plan == nil { // nil: --list printed
				return err
			}
			return runAblation(plan, o.drill.quiet, streams)
		},
	}
	f := cmd.Flags()
	// drill's flags (its run flags are every preset's), bound to o.drill.
	f.AddFlagSet(newDrillCommandFor(&o.drill, streams).Flags())
	// The demo preset's real-cluster flags, bound to the same options. --target is drill's
	// field too: with --cluster it is the demo's (where this machine reaches the downstream).
	demo := newDemoCommandFor(&o.drill, streams).Flags()
	for _, name := range []string{"cluster", "kubeconfig", "context", "namespace", "keep", "image-upstream", "image-downstream", "port"} {
		if f.Lookup(name) == nil { // drill --cluster has some of them, bound to the same fields
			f.AddFlag(demo.Lookup(name))
		}
	}
	// Rollouts per scenario are --repeat here.
	_ = f.MarkHidden("rollouts")
	f.BoolVar(&o.list, "list", false, "print the variants (and what cannot be derived) and exit")
	f.StringVar(&o.variants, "variants", "", "variants to run, comma-separated (default: "+strings.Join(ablate.DefaultNames, ",")+"; with -f all)")
	f.IntVar(&o.replicas, "replicas", 0, "scale every Deployment to N replicas before deriving the variants (at 4 the default strategy allows a pod unavailable)")
	f.IntVar(&o.repeat, "repeat", ablate.DefaultRepeat, "rolling restarts per scenario, in one load run (3 is the fewest with which the verdict can say \"needed\")")
	return cmd
}

// plan validates every flag, derives the variants and plans one drill per scenario; with
// --list it prints the variants and returns a nil plan.
func (o *ablateOptions) plan(cmd *cobra.Command, streams Streams, now time.Time) (*ablatePlan, error) {
	changed := cmd.Flags().Changed
	d := &o.drill
	foreign := len(d.files) > 0
	switch {
	case changed("rollouts"):
		return nil, usageError("ablate counts rollouts per scenario with --repeat: use --repeat %d", d.rollouts)
	case o.repeat < 1 || o.repeat > experiment.MaxRollouts:
		return nil, usageError("--repeat %d is out of range: give 1 to %d (3 or more for a verdict of \"needed\")", o.repeat, experiment.MaxRollouts)
	case changed("replicas") && o.replicas < 1:
		return nil, usageError("--replicas %d: a Deployment needs at least 1 replica to roll", o.replicas)
	case foreign && d.cluster:
		return nil, usageError("-f runs a team's manifests on the embedded cluster only (drill has no --cluster): drop --cluster, or drop -f to ablate the built-in versions")
	case strings.EqualFold(strings.TrimSpace(d.disruption.kind), disruptAll):
		return nil, usageError("--disruption all is for demo and drill: an ablation judges each protection under one disruption, so run one ablation per kind")
	}
	kind, err := cluster.ParseDisruptionKind(d.disruption.kind)
	if err != nil {
		return nil, usageError("--disruption: %v", err)
	}
	if !foreign {
		for _, name := range drillOnly {
			if changed(name) {
				return nil, usageError("--%s is for a team's manifests: add -f, or drop --%s", name, name)
			}
		}
		if err := d.needCluster(cmd, "kubeconfig", "context", "namespace", "keep", "target", "image-upstream", "image-downstream"); err != nil {
			return nil, err
		}
	}
	var names []string
	for _, n := range strings.Split(o.variants, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if changed("variants") && len(names) == 0 {
		return nil, usageError("--variants is empty: name at least one (gracelab ablate --list shows them)")
	}

	d.rollouts = o.repeat
	// The demo preset for the built-in versions, the drill for a team's, each with its own
	// default sandbox.
	d.builtin = !foreign
	if !changed("sandbox") {
		d.sandbox = string(localkube.SandboxAuto)
		if d.builtin {
			d.sandbox = string(localkube.SandboxNone)
		}
	}
	ap := &ablatePlan{repeat: o.repeat, disruption: kind}
	var bases map[string][]manifest.Document
	var base *runPlan
	if foreign && !o.list {
		// drill's planning reads and checks the manifests, programs and target.
		if base, err = d.plan(cmd, now); err != nil {
			return nil, err
		}
		bases, err = o.foreignVariants(ap, setName(d.files), base.local.docs[base.exp.Scenarios[0].Name])
	} else if foreign {
		files, cerr := manifest.Collect(d.files, d.recursive, streams.In)
		if cerr != nil {
			return nil, usageError("%v", cerr)
		}
		docs, derr := manifest.Decode(files, manifest.Options{})
		if derr != nil {
			return nil, usageError("%v", derr)
		}
		honoured, _, terr := manifest.Triage(docs, false)
		if terr != nil {
			return nil, usageError("%v", terr)
		}
		bases, err = o.foreignVariants(ap, setName(d.files), honoured)
	} else {
		bases, err = o.builtinVariants(ap)
	}
	if err != nil {
		return nil, err
	}
	if names == nil && !foreign {
		names = ablate.DefaultNames
	}
	all := ap.variants
	if ap.variants, err = ablate.Select(all, names); err != nil {
		return nil, usageError("--variants: %v", err)
	}
	if o.list {
		if err := writeScaled(streams.Out, ap.scaled); err != nil {
			return nil, err
		}
		if err := ablate.WriteList(streams.Out, all, ap.skipped); err != nil {
			return nil, err
		}
		if line := ap.disruptionLine(); line != "" {
			fmt.Fprintf(streams.Out, "\n%s\n", line)
		}
		if !foreign {
			fmt.Fprintf(streams.Out, "\na bare gracelab ablate runs v2 and %s\n", strings.Join(ablate.DefaultNames, ", "))
		}
		return nil, nil
	}
	if len(ap.variants) == 0 {
		return nil, usageError("no variant can be derived from these manifests (see gracelab ablate --list)")
	}

	// The scenarios: each base, then its variants.
	var scenarios []experiment.Scenario
	docsOf := map[string][]manifest.Document{}
	for _, b := range ablate.Bases(ap.variants) {
		docsOf[b] = bases[b]
		scenarios = append(scenarios, experiment.Scenario{Name: b, Title: b + " (base)", Manifests: b, FS: mustFS(bases[b]), Disruption: kind})
		for _, v := range ap.variants {
			if v.Base == b {
				docsOf[v.Name] = v.Docs
				scenarios = append(scenarios, experiment.Scenario{Name: v.Name, Title: v.Name, Manifests: "derived from " + b + ": " + v.Summary,
					FS: mustFS(v.Docs), Disruption: kind})
			}
		}
	}
	if !foreign {
		// The demo preset's planning checks the flags; its scenarios are replaced by ours.
		if base, err = d.plan(cmd, now); err != nil {
			return nil, err
		}
		if base.kube != nil {
			if base.kube, err = d.kubePlan(scenarios); err != nil {
				return nil, err
			}
		}
	} else {
		// Every scenario's objects, checked as drill checks its own.
		for _, sc := range scenarios {
			base.local.docs[sc.Name] = docsOf[sc.Name]
			if _, err := base.local.cluster(sc, localkube.Options{}); err != nil {
				return nil, usageError("variant %s: %v", sc.Name, err)
			}
		}
	}
	base.exp.Scenarios = scenarios
	ap.out = base.out

	podStart, overhead := time.Second, embeddedOverhead
	if base.kube != nil {
		podStart, overhead = kubePodStart, kubeOverhead
	}
	for _, sc := range scenarios {
		p := *base
		p.exp.Scenarios = []experiment.Scenario{sc}
		p.settings.Scenarios = []string{sc.Name}
		p.out = filepath.Join(base.out, "runs", safeDirName(sc.Name))
		ap.runs = append(ap.runs, ablateRun{name: sc.Name, plan: &p})
		e := overhead + loadLength(p.exp, ablate.DisruptionGuess(docsOf[sc.Name], p.exp.Deployment, podStart, kind, d.disruption.count, p.exp.Rollouts))
		ap.perRun = append(ap.perRun, e)
		ap.estimate += e
	}
	return ap, nil
}

// loadLength is how long one scenario's load runs when its rollouts (or other disruptions)
// take settling in all.
func loadLength(exp experiment.Config, settling time.Duration) time.Duration {
	n := max(exp.Rollouts, 1)
	settled := exp.RestartAt + settling + time.Duration(n-1)*exp.RolloutGap
	return max(exp.Duration, settled+exp.SettleTail)
}

// disruptionLine says what each scenario goes through instead of rolling restarts, or "".
func (ap *ablatePlan) disruptionLine() string {
	if ap.disruption == cluster.DisruptRestart {
		return ""
	}
	return fmt.Sprintf("each scenario: --disruption %s (%s) instead of a rolling restart, %d times in one load run",
		ap.disruption, disruptionWhat[ap.disruption], ap.repeat)
}

// disruptionWhat says in a few words what each disruption does.
var disruptionWhat = map[cluster.DisruptionKind]string{
	cluster.DisruptDelete: "a pod deleted, as kubectl delete pod",
	cluster.DisruptEvict:  "a pod evicted through the Eviction API, honouring the PodDisruptionBudget",
	cluster.DisruptDrain:  "a node cordoned, the Deployment's pods on it evicted, the node uncordoned",
	cluster.DisruptKill:   "the oldest pod's container SIGKILLed: no preStop, no grace; the kubelet restarts it with its back-off",
	cluster.DisruptScale:  "the Deployment scaled down by one and back",
}

// builtinVariants derives the built-in variants from the (scaled) v1, v2 and v3 manifests.
func (o *ablateOptions) builtinVariants(ap *ablatePlan) (map[string][]manifest.Document, error) {
	catalog, err := experiment.Catalog(k8s.FS, "k8s")
	if err != nil {
		return nil, err
	}
	bases := map[string][]manifest.Document{}
	for _, name := range []string{"v1", "v2", "v3"} {
		scs, err := experiment.Select(catalog, []string{name})
		if err != nil {
			return nil, err
		}
		docs, err := manifest.Read(scs[0].FS)
		if err != nil {
			return nil, fmt.Errorf("built-in manifests %s: %w", name, err)
		}
		if bases[name], err = o.scale(ap, docs); err != nil {
			return nil, err
		}
	}
	ap.variants, err = ablate.Builtin(bases["v1"], bases["v2"], bases["v3"])
	return bases, err
}

// foreignVariants derives the manifest-level variants from a team's (scaled) manifests.
func (o *ablateOptions) foreignVariants(ap *ablatePlan, name string, docs []manifest.Document) (map[string][]manifest.Document, error) {
	scaled, err := o.scale(ap, docs)
	if err != nil {
		return nil, err
	}
	ap.variants, ap.skipped = ablate.Foreign(name, scaled)
	return map[string][]manifest.Document{name: scaled}, nil
}

func (o *ablateOptions) scale(ap *ablatePlan, docs []manifest.Document) ([]manifest.Document, error) {
	if o.replicas == 0 {
		return docs, nil
	}
	scaled, edits, err := ablate.Scale(docs, int32(o.replicas))
	if err != nil {
		return nil, usageError("%v", err)
	}
	ap.scaled = append(ap.scaled, edits...)
	return scaled, nil
}

// setName names a team's manifest set after its first -f: the directory or file, without
// the extension ("stdin" for -).
func setName(files []string) string {
	if len(files) == 0 || files[0] == "-" {
		return "stdin"
	}
	base := filepath.Base(filepath.Clean(files[0]))
	if ext := filepath.Ext(base); ext == ".yaml" || ext == ".yml" || ext == ".json" {
		base = strings.TrimSuffix(base, ext)
	}
	return safeDirName(base)
}

// mustFS holds a scenario's documents as YAML files, as the clusters read them. The documents
// were decoded from YAML, so writing them back cannot fail but for a bug.
func mustFS(docs []manifest.Document) fstest.MapFS {
	files, err := ablate.Marshal(docs)
	if err != nil {
		panic(fmt.Sprintf("ablate: writing decoded manifests back: %v", err))
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	fsys := fstest.MapFS{}
	for i, n := range names {
		fsys[fmt.Sprintf("%02d-%s", i+1, filepath.Base(n))] = &fstest.MapFile{Data: files[n]}
	}
	return fsys
}

func writeScaled(w io.Writer, edits []ablate.Edit) error {
	if len(edits) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("scaled before deriving (--replicas):\n")
	for _, e := range edits {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}
