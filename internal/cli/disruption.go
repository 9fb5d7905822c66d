package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/experiment"
	"github.com/gracelab/gracelab/internal/kube"
	"github.com/gracelab/gracelab/internal/localkube"
	"github.com/gracelab/gracelab/internal/report"
)

// disruptionFlags are --disruption and its settings, shared by demo and drill.
type disruptionFlags struct {
	kind            string
	count           int
	evictionTimeout time.Duration
	to              int
	nodes           int
	node            string
	yes             bool
	disruptAt       time.Duration // --disrupt-at, the new name of --restart-at
	killHelper      string        // --kill-helper IMAGE: the opt-in to kill on a real cluster
}

// disruptAll runs every disruption against every scenario, as one matrix.
const disruptAll = "all"

func (f *disruptionFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.kind, "disruption", string(cluster.DisruptRestart), "how the pods die: restart, delete, evict, drain, kill, scale, or all (a matrix over the scenarios)")
	fl.IntVar(&f.count, "count", 1, "pods to delete, evict or kill")
	fl.DurationVar(&f.evictionTimeout, "eviction-timeout", cluster.DefaultEvictionTimeout, "how long a refused eviction (HTTP 429, a PodDisruptionBudget) is retried, every 5s as kubectl drain does")
	fl.IntVar(&f.to, "to", -1, "replicas to scale to (default one less); scaled back after the settle time, always")
	fl.IntVar(&f.nodes, "nodes", localkube.DefaultNodes, "nodes of the embedded cluster, the pods spread over them")
	fl.StringVar(&f.node, "node", "", "the node to drain; with --cluster (required there)")
	fl.BoolVar(&f.yes, "yes", false, "drain a real cluster's node: without it gracelab refuses; with --cluster")
	fl.StringVar(&f.killHelper, "kill-helper", "", "kill on a real cluster through a helper pod of IMAGE (gracelab's own, e.g. gracelab/gracelab:dev) on the pod's node, with the host's PID namespace, root and CAP_KILL: it can signal any process of the node; with --cluster")
	fl.DurationVar(&f.disruptAt, "disrupt-at", 0, "when the disruption starts, from the load's start (the same as --restart-at)")
}

// disruptionPlan is a validated --disruption: what each scenario's cluster gets done to it.
type disruptionPlan struct {
	spec   cluster.Disruption
	kinds  map[string]cluster.DisruptionKind // scenario name -> its disruption
	matrix []experiment.Scenario             // --disruption all: the scenarios, as columns
	nodes  int
	real   bool
	// killHelper is --kill-helper's image: kill on a real cluster through a helper pod.
	killHelper string

	mu      sync.Mutex
	pending map[*cluster.Restore]struct{} // restores not yet run, for a second Ctrl-C
}

// plan validates the flags and, for --disruption all, multiplies the scenarios by the
// disruptions. It sets *restartAt from --disrupt-at and records the disruption in settings.
func (f *disruptionFlags) plan(cmd *cobra.Command, onCluster bool, restartAt *time.Duration, exp *experiment.Config, settings *report.Settings, local *localPlan) (*disruptionPlan, error) {
	changed := cmd.Flags().Changed
	if changed("disrupt-at") {
		if changed("restart-at") {
			return nil, usageError("--disrupt-at and --restart-at are the same setting: give one")
		}
		if f.disruptAt < 0 || f.disruptAt >= exp.Duration {
			return nil, usageError("--disrupt-at (%s) must be >= 0 and < --duration (%s): the disruption has to happen under load", f.disruptAt, exp.Duration)
		}
		*restartAt, exp.RestartAt, settings.RestartAt = f.disruptAt, f.disruptAt, report.Duration(f.disruptAt)
	}
	var kinds []cluster.DisruptionKind
	if strings.TrimSpace(strings.ToLower(f.kind)) == disruptAll {
		kinds = cluster.DisruptionKinds
	} else {
		k, err := cluster.ParseDisruptionKind(f.kind)
		if err != nil {
			return nil, usageError("--disruption: %v, or all", err)
		}
		kinds = []cluster.DisruptionKind{k}
	}
	has := func(k cluster.DisruptionKind) bool {
		for _, x := range kinds {
			if x == k {
				return true
			}
		}
		return false
	}
	switch {
	case f.count < 1:
		return nil, usageError("--count must be at least 1")
	case changed("count") && !has(cluster.DisruptDelete) && !has(cluster.DisruptEvict) && !has(cluster.DisruptKill):
		return nil, usageError("--count is for --disruption delete, evict or kill")
	case f.evictionTimeout <= 0:
		return nil, usageError("--eviction-timeout must be positive, for example 2m")
	case changed("to") && !has(cluster.DisruptScale):
		return nil, usageError("--to is for --disruption scale")
	case changed("to") && f.to < 0:
		return nil, usageError("--to must not be negative")
	case f.nodes < 1:
		return nil, usageError("--nodes must be at least 1")
	case onCluster && changed("nodes"):
		return nil, usageError("--nodes is for the embedded cluster: a real cluster has its own nodes")
	case !onCluster && (changed("node") || changed("yes")):
		return nil, usageError("--node and --yes are for a drain with --cluster; the embedded cluster drains the node of the oldest pod")
	case changed("node") && !has(cluster.DisruptDrain):
		return nil, usageError("--node is for --disruption drain")
	case onCluster && has(cluster.DisruptDrain) && strings.TrimSpace(f.node) == "":
		return nil, usageError("--disruption drain on a real cluster needs --node NAME (the node to cordon; gracelab evicts only the drilled Deployment's pods on it)")
	case onCluster && has(cluster.DisruptDrain) && !f.yes:
		return nil, usageError("--disruption drain cordons node %s of a real cluster: add --yes to let it (the pods it evicts are listed when it runs; it uncordons the node afterwards)", f.node)
	case !onCluster && changed("kill-helper"):
		return nil, usageError("--kill-helper is for --disruption kill with --cluster: the embedded cluster kills its own processes")
	case changed("kill-helper") && !has(cluster.DisruptKill):
		return nil, usageError("--kill-helper is for --disruption kill")
	case changed("kill-helper") && strings.TrimSpace(f.killHelper) == "":
		return nil, usageError("--kill-helper needs an image, gracelab's own (gracelab/gracelab:dev or the one your cluster pulls)")
	case onCluster && has(cluster.DisruptKill) && f.killHelper == "":
		return nil, usageError("--disruption kill on a real cluster needs the opt-in --kill-helper IMAGE (gracelab's image): gracelab then runs a pod on the target pod's node with the host's PID namespace, as root with CAP_KILL, which can signal any process there (docs/disruptions.md)")
	}
	p := &disruptionPlan{
		spec:  cluster.Disruption{Count: f.count, EvictionTimeout: f.evictionTimeout, To: int32(f.to), Node: strings.TrimSpace(f.node)},
		nodes: f.nodes, real: onCluster, kinds: map[string]cluster.DisruptionKind{},
		killHelper: strings.TrimSpace(f.killHelper),
	}
	if len(kinds) == 1 {
		p.spec.Kind = kinds[0]
		for i, sc := range exp.Scenarios {
			p.kinds[sc.Name] = kinds[0]
			exp.Scenarios[i].Disruption = kinds[0]
		}
		settings.Disruption = string(kinds[0])
		return p, nil
	}
	p.matrix = exp.Scenarios
	var cells []experiment.Scenario
	for _, k := range kinds {
		for _, sc := range exp.Scenarios {
			cell := sc
			cell.Name, cell.Title, cell.Disruption = sc.Name+"-"+string(k), sc.Title+", "+string(k), k
			p.kinds[cell.Name] = k
			if local != nil && local.docs[sc.Name] != nil {
				local.docs[cell.Name] = local.docs[sc.Name]
			}
			cells = append(cells, cell)
		}
	}
	exp.Scenarios = cells
	settings.Disruption = disruptAll
	settings.Scenarios = settings.Scenarios[:0]
	for _, c := range cells {
		settings.Scenarios = append(settings.Scenarios, c.Name)
	}
	return p, nil
}

// retarget applies the planned disruption to the scenario that replaced the planned ones
// (drill --cluster drills a Deployment by name, planned as a built-in scenario); a matrix is
// the demo's and cannot be retargeted.
func (p *disruptionPlan) retarget(sc *experiment.Scenario) error {
	if p == nil {
		return nil
	}
	if p.matrix != nil {
		return usageError("--disruption all is a matrix of the demo's scenarios: drill --cluster applies one disruption at a time")
	}
	p.kinds = map[string]cluster.DisruptionKind{sc.Name: p.spec.Kind}
	sc.Disruption = p.spec.Kind
	return nil
}

// nodeCount is the embedded cluster's node count (0: its default).
func (p *disruptionPlan) nodeCount() int {
	if p == nil {
		return 0
	}
	return p.nodes
}

// wrap makes every scenario's cluster apply its disruption where the drill restarts.
func (p *disruptionPlan) wrap(next experiment.Factory, out io.Writer) experiment.Factory {
	if p == nil {
		return next
	}
	return func(sc experiment.Scenario) (cluster.Cluster, error) {
		c, err := next(sc)
		if err != nil {
			return nil, err
		}
		k := sc.Disruption
		if k == "" || k == cluster.DisruptRestart {
			return c, nil
		}
		d, ok := c.(cluster.Disrupter)
		if !ok {
			return nil, fmt.Errorf("--disruption %s is not supported on this cluster", k)
		}
		spec := p.spec
		spec.Kind = k
		dc := &disruptedCluster{Cluster: c, d: d, spec: spec, plan: p, scenario: sc.Name, out: out}
		if kc, ok := c.(*kube.Cluster); ok && k == cluster.DisruptKill && p.killHelper != "" {
			kc.EnableKillHelper(p.killHelper)
			dc.always = kc.RemoveKillHelpers
		}
		return dc, nil
	}
}

// killHelperImage is --kill-helper's image when a real cluster's pods are to be killed.
func (p *disruptionPlan) killHelperImage() string {
	if p == nil || !p.real {
		return ""
	}
	return p.killHelper
}

// restoreAll runs every restore not yet run (a second Ctrl-C: nothing stays cordoned or scaled).
func (p *disruptionPlan) restoreAll(out io.Writer) {
	if p == nil {
		return
	}
	p.mu.Lock()
	var rs []*cluster.Restore
	for r := range p.pending {
		rs = append(rs, r)
	}
	p.mu.Unlock()
	for _, r := range rs {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := (*r)(ctx); err != nil {
			fmt.Fprintf(out, "gracelab: undoing the disruption: %v\n", err)
		}
		cancel()
		p.done(r)
	}
}

func (p *disruptionPlan) hold(r *cluster.Restore) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending == nil {
		p.pending = map[*cluster.Restore]struct{}{}
	}
	p.pending[r] = struct{}{}
}

func (p *disruptionPlan) done(r *cluster.Restore) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.pending, r)
}

// label sets each scenario's disruption in its report.
func (p *disruptionPlan) label(scenarios []report.Scenario) {
	if p == nil {
		return
	}
	for i := range scenarios {
		if k := p.kinds[scenarios[i].Scenario]; k != "" {
			scenarios[i].Disruption = string(k)
		}
	}
}

// writeTable prints the comparison table, or for --disruption all the matrix: one row per
// disruption, one column per scenario, errors and their dominant cause in each cell.
func (p *disruptionPlan) writeTable(w io.Writer, rep *report.Report) error {
	if p == nil || p.matrix == nil {
		return report.WriteTable(w, rep)
	}
	byName := map[string]report.Scenario{}
	for _, s := range rep.Scenarios {
		byName[s.Scenario] = s
	}
	fmt.Fprintln(w, "Requests lost per disruption (errors, error rate, dominant cause):")
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	head := []string{"disruption"}
	for _, sc := range p.matrix {
		head = append(head, sc.Title)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, k := range cluster.DisruptionKinds {
		row := []string{string(k)}
		for _, sc := range p.matrix {
			row = append(row, report.MatrixCell(byName[sc.Name+"-"+string(k)]))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// disruptedCluster applies a disruption where the drill would restart: Restart disrupts,
// WaitSettled settles then undoes what must be undone (uncordon, scale back) and settles
// again, and Down undoes it too when the drill failed before, so nothing stays changed.
type disruptedCluster struct {
	cluster.Cluster
	d        cluster.Disrupter
	spec     cluster.Disruption
	plan     *disruptionPlan
	scenario string
	out      io.Writer
	// always runs after the disruption whatever happens, as a restore does (kill helpers).
	always cluster.Restore

	mu      sync.Mutex
	restore *cluster.Restore
}

func (c *disruptedCluster) say(line string) {
	fmt.Fprintf(c.out, "gracelab: %s: %s\n", c.scenario, line)
}

func (c *disruptedCluster) Restart(ctx context.Context, deployment string) error {
	if c.always != nil {
		always := c.always
		c.mu.Lock()
		c.restore = &always
		c.mu.Unlock()
		c.plan.hold(&always) // held before it can be needed: a second Ctrl-C mid-kill
	}
	restore, err := cluster.Disrupt(ctx, c.d, deployment, c.spec, c.say)
	if restore != nil {
		c.mu.Lock()
		c.restore = &restore
		c.mu.Unlock()
		c.plan.hold(&restore)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", c.spec.Kind, err)
	}
	return nil
}

// undo runs the pending restore, if any, once.
func (c *disruptedCluster) undo(ctx context.Context) error {
	c.mu.Lock()
	r := c.restore
	c.restore = nil
	c.mu.Unlock()
	if r == nil {
		return nil
	}
	defer c.plan.done(r)
	if err := (*r)(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("undoing the %s: %w", c.spec.Kind, err)
	}
	return nil
}

func (c *disruptedCluster) WaitSettled(ctx context.Context, deployment string) error {
	if err := c.Cluster.WaitSettled(ctx, deployment); err != nil {
		return err
	}
	c.mu.Lock()
	pending := c.restore != nil
	c.mu.Unlock()
	if !pending {
		return nil
	}
	if err := c.undo(ctx); err != nil {
		return err
	}
	return c.Cluster.WaitSettled(ctx, deployment)
}

func (c *disruptedCluster) Down(ctx context.Context) error {
	uerr := c.undo(ctx)
	return errors.Join(uerr, c.Cluster.Down(ctx))
}

// Warnings passes the cluster's own on (experiment.Warner).
func (c *disruptedCluster) Warnings() []string {
	if w, ok := c.Cluster.(experiment.Warner); ok {
		return w.Warnings()
	}
	return nil
}
