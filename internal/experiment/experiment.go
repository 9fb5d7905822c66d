// Package experiment owns the drill: for each scenario it brings a cluster up, runs load
// through it, triggers a rolling restart mid-load, keeps the load running until the rollout
// has settled and one upstream timeout more has passed, then stops the load, tears the
// cluster down and records the result as a report.Scenario. It sees clusters only through
// cluster.Cluster, so the same drill runs on the embedded cluster and on Kubernetes.
//
// Timeline of one scenario (t = load start):
//
//	factory, Up                 the cluster is fully ready before any request is sent
//	serving                     the target answers 2xx to rounds of probe requests
//	t = 0                       load starts
//	t = RestartAt               Restart(deployment): a new pod-template revision
//	t = settled                 WaitSettled returns: rolled out, no old pod left at all
//	t = settled + RolloutGap    the next of Rollouts restarts, and so on
//	t = max(Duration, last settled + SettleTail)   Stop: no new request; in-flight ones finish
//	Done                        every request has its outcome; events are collected
//	Down                        always, also after a failure or on cancellation
package experiment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/load"
	"github.com/gracelab/gracelab/internal/report"
)

// Run drills every scenario in order and returns one report.Scenario per scenario started.
// A scenario whose run failed carries its Failure and the drill goes on with the next; the
// error is non-nil only when ctx ended (interrupted), in which case the scenarios run so far,
// the interrupted one included, are returned.
func Run(ctx context.Context, cfg Config) ([]report.Scenario, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var out []report.Scenario
	for i, sc := range cfg.Scenarios {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		d := &drill{cfg: cfg, sc: sc, index: i + 1, total: len(cfg.Scenarios)}
		out = append(out, d.run(ctx))
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
	return out, nil
}

// drill is one scenario in progress.
type drill struct {
	cfg          Config
	sc           Scenario
	index, total int

	load      LoadRun // nil until the load started
	loadStart time.Time
	planned   time.Duration
	phase     Phase
	restartAt time.Time
	out       report.Scenario

	windows   []Window
	samplesMu sync.Mutex
	samples   []load.Sample // every request's outcome, for Attribute
}

func (d *drill) report(phase Phase, detail string) {
	d.phase = phase
	p := Progress{Scenario: d.sc.Name, Index: d.index, Total: d.total, Phase: phase, Planned: d.planned, Detail: detail,
		Rollout: len(d.windows), Rollouts: d.cfg.Rollouts}
	if d.sc.what() != "restart" {
		p.Disruption = d.sc.Disruption
	}
	if d.load != nil {
		lp := d.load.Progress()
		p.Elapsed, p.Requests, p.Errors = lp.Elapsed, lp.Requests, lp.Errors
	}
	d.cfg.Progress(p)
}

func (d *drill) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if d.out.Failure == "" {
		d.out.Failure = msg
	} else {
		d.out.Failure += "; " + msg
	}
}

// wait blocks until the time until (if not zero), until done is closed (if not nil), or until
// ctx ends, reporting progress meanwhile. It returns false when ctx ended first.
func (d *drill) wait(ctx context.Context, until time.Time, done <-chan struct{}) bool {
	tick := time.NewTicker(d.cfg.ProgressEvery)
	defer tick.Stop()
	var timer <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		timer = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timer:
			return true
		case <-done:
			return true
		case <-tick.C:
			d.report(d.phase, "")
		}
	}
}

func (d *drill) run(ctx context.Context) report.Scenario {
	cfg := d.cfg
	d.out = report.Scenario{Scenario: d.sc.Name, Title: d.sc.Title, Manifests: d.sc.Manifests, Disruption: string(d.sc.Disruption), Events: []cluster.Event{}}
	d.report(PhaseStarting, "")
	c, err := cfg.Factory(d.sc)
	if err != nil {
		d.fail("setting up the cluster: %v", err)
	} else {
		d.drive(ctx, c)
		d.finish(ctx, c)
	}
	if d.out.Failure != "" {
		d.report(PhaseFailed, d.out.Failure)
	} else {
		d.report(PhaseDone, "")
	}
	return d.out
}

// drive brings the cluster up, starts the load, restarts, waits for the rollout to settle and
// for the load's planned end. Whatever it leaves running, finish stops.
func (d *drill) drive(ctx context.Context, c cluster.Cluster) {
	cfg := d.cfg
	upCtx, cancel := context.WithTimeout(ctx, cfg.UpTimeout)
	err := c.Up(upCtx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			d.fail("interrupted while the cluster was starting")
		} else {
			d.fail("the cluster did not come up: %v", err)
		}
		return
	}

	lc := cfg.Load
	if lc.URL == "" {
		lc.URL = c.Target()
	}
	lc.Duration = 0 // the drill stops the load itself, possibly after Duration
	lc.Observe = func(s load.Sample) {
		d.samplesMu.Lock()
		d.samples = append(d.samples, s)
		d.samplesMu.Unlock()
	}
	var run LoadRun
	if cfg.StartLoad != nil {
		lc.Observe = nil
		remote, err := cfg.StartLoad(ctx, lc)
		if err != nil {
			d.fail("starting the load: %v", err)
			return
		}
		run = remote
	} else {
		if err := awaitServing(ctx, lc.URL, lc.Header.Get("Host"), cfg.ServingTimeout); err != nil {
			if ctx.Err() != nil {
				d.fail("interrupted while waiting for the target to answer")
			} else {
				d.fail("the cluster came up but %v", err)
			}
			return
		}
		local, err := load.Start(lc)
		if err != nil {
			d.fail("starting the load: %v", err)
			return
		}
		run = local
	}
	d.load = run
	d.loadStart = time.Now().Add(-run.Progress().Elapsed)
	d.planned = cfg.Duration

	d.report(PhaseLoad, "")
	next := d.loadStart.Add(cfg.RestartAt)
	var settled time.Time
	for i := 1; i <= cfg.Rollouts; i++ {
		if settled, err = d.rollout(ctx, c, i, next); err != nil {
			return
		}
		next = settled.Add(cfg.RolloutGap)
	}

	end := d.loadStart.Add(cfg.Duration)
	if tail := settled.Add(cfg.SettleTail); tail.After(end) {
		end = tail
	}
	d.planned = end.Sub(d.loadStart)
	d.report(PhaseTail, "")
	if !d.wait(ctx, end, nil) {
		d.fail("interrupted after the rollout")
	}
}

// errRolloutFailed says rollout has recorded a failure.
var errRolloutFailed = errors.New("rollout failed")

// rollout waits until at, restarts the deployment and waits for it to settle, recording
// rollout i's window; the previous window ends at this restart at the latest.
func (d *drill) rollout(ctx context.Context, c cluster.Cluster, i int, at time.Time) (time.Time, error) {
	cfg := d.cfg
	nth := "" // names the rollout only when there are several
	if cfg.Rollouts > 1 {
		nth = fmt.Sprintf(" (rollout %d of %d)", i, cfg.Rollouts)
	}
	if !d.wait(ctx, at, nil) {
		d.fail("interrupted before the %s%s", d.sc.what(), nth)
		return time.Time{}, errRolloutFailed
	}
	now := time.Now()
	if n := len(d.windows); n > 0 && d.windows[n-1].End.After(now) {
		d.windows[n-1].End = now
	}
	d.windows = append(d.windows, Window{Index: i, Start: now})
	if i == 1 {
		d.restartAt = now
		d.out.RestartAt = now
	}
	if err := c.Restart(ctx, cfg.Deployment); err != nil {
		if ctx.Err() != nil {
			d.fail("interrupted during the %s%s", d.sc.what(), nth)
		} else {
			d.fail("%s deployment %s%s: %v", d.sc.verb(), cfg.Deployment, nth, err)
		}
		return time.Time{}, errRolloutFailed
	}

	if d.sc.what() == "restart" {
		d.report(PhaseRollout, "")
	} else {
		d.report(PhaseRecovering, "")
	}
	sctx, cancel := context.WithTimeout(ctx, cfg.RolloutTimeout)
	defer cancel()
	settledCh := make(chan struct{})
	var settleErr error
	go func() {
		settleErr = c.WaitSettled(sctx, cfg.Deployment)
		close(settledCh)
	}()
	d.wait(ctx, time.Time{}, settledCh)
	<-settledCh // WaitSettled returns soon after its context ends
	settled := time.Now()
	switch {
	case ctx.Err() != nil:
		d.fail("interrupted during the rollout%s", nth)
		return time.Time{}, errRolloutFailed
	case settleErr != nil && sctx.Err() != nil:
		d.fail("%s did not settle within %s: %v", d.settling(nth), cfg.RolloutTimeout, settleErr)
		return time.Time{}, errRolloutFailed
	case settleErr != nil:
		d.fail("%s did not settle: %v", d.settling(nth), settleErr)
		return time.Time{}, errRolloutFailed
	}
	w := &d.windows[len(d.windows)-1]
	w.Settled, w.End = settled, settled.Add(cfg.SettleTail)
	if i == 1 {
		d.out.RolloutSeconds = settled.Sub(now).Seconds()
	}
	return settled, nil
}

// settling names what WaitSettled waited for: "the rollout of upstream (rollout 2 of 3)", or
// "deployment upstream after the disruption (kill)".
func (d *drill) settling(nth string) string {
	if w := d.sc.what(); w != "restart" {
		return fmt.Sprintf("deployment %s after the %s%s", d.cfg.Deployment, w, nth)
	}
	return fmt.Sprintf("the rollout of %s%s", d.cfg.Deployment, nth)
}

// finish stops the load, collects the events and tears the cluster down. Normally in-flight
// requests are awaited before Down, so they end as the cluster made them end; when
// interrupted, Down comes first and cuts them short.
func (d *drill) finish(ctx context.Context, c cluster.Cluster) {
	interrupted := ctx.Err() != nil
	limit := d.cfg.Load.Timeout
	if limit <= 0 {
		limit = load.DefaultTimeout
	}
	limit += 10 * time.Second
	if d.load != nil {
		d.load.Stop()
		if !interrupted {
			d.report(PhaseStopping, "")
			d.awaitLoad(limit)
		}
	}
	var restarts []time.Time
	for _, w := range d.windows {
		restarts = append(restarts, w.Start)
	}
	d.out.Events = withRestartEvents(c.Events(), restarts, d.cfg.Deployment, d.sc.Disruption.TriggerEvent())
	if w, ok := c.(Warner); ok {
		d.out.Warnings = append(d.out.Warnings, w.Warnings()...)
	}
	if s, ok := c.(Sandboxer); ok {
		d.out.Sandbox, d.out.SandboxFallback = s.SandboxUsed()
	}

	d.report(PhaseTearDown, "")
	// Down runs even when ctx was cancelled: it is what stops the pods.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.DownTimeout)
	defer cancel()
	if err := c.Down(dctx); err != nil {
		d.fail("tearing the cluster down: %v", err)
	}
	if d.load != nil {
		d.awaitLoad(limit)
		d.out.Result = report.FromLoad(d.load.Result())
		if r, ok := d.load.(RemoteLoad); ok {
			d.out.Warnings = append(d.out.Warnings, r.Warnings()...)
			d.out.LoadPods = r.LoadPods()
			if err := r.Incomplete(); err != nil {
				d.fail("%v", err)
			}
		}
		if d.out.Result == nil {
			d.fail("the load did not finish within %s of being stopped", limit)
		} else if d.cfg.OnRollouts != nil {
			d.cfg.OnRollouts(d.sc, d.rollouts(d.out.Result.SendEnd))
		}
	}
}

// rollouts attributes the requests to the windows; a window still open when sending stopped
// (a rollout that never settled) ends there.
func (d *drill) rollouts(sendEnd time.Time) []Rollout {
	windows := append([]Window{}, d.windows...)
	for i := range windows {
		if windows[i].End.IsZero() || windows[i].End.After(sendEnd) {
			windows[i].End = sendEnd
		}
	}
	if w, ok := d.load.(WindowedLoad); ok {
		return w.Rollouts(windows)
	}
	d.samplesMu.Lock()
	defer d.samplesMu.Unlock()
	return Attribute(windows, d.samples)
}

// awaitLoad waits for every request to have its outcome, at most limit.
func (d *drill) awaitLoad(limit time.Duration) {
	t := time.NewTimer(limit)
	defer t.Stop()
	tick := time.NewTicker(d.cfg.ProgressEvery)
	defer tick.Stop()
	for {
		select {
		case <-d.load.Done():
			return
		case <-t.C:
			return
		case <-tick.C:
			d.report(d.phase, "")
		}
	}
}

// withRestartEvents makes sure the timeline shows when the drill triggered each disruption (an
// event of kind trigger: restart_triggered, eviction_requested, ...), even on a cluster that
// records no such event itself, and keeps events in time order. A cluster that recorded a
// trigger of deployment from a second before the first one on records them all, so its own
// events are kept and none are added.
func withRestartEvents(events []cluster.Event, restarts []time.Time, deployment string, trigger cluster.EventKind) []cluster.Event {
	out := append([]cluster.Event{}, events...)
	own := false
	for _, e := range out {
		if len(restarts) > 0 && e.Kind == trigger && e.Deployment == deployment && !e.Time.Before(restarts[0].Add(-time.Second)) {
			own = true
			break
		}
	}
	for _, at := range restarts {
		if !own {
			out = append(out, cluster.Event{Time: at, Kind: trigger, Deployment: deployment, Source: cluster.SourceDrill})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// Serving check: servingRounds rounds in a row of servingWidth concurrent GETs, each on a new
// connection (a random endpoint behind the Service), must all answer 2xx.
const (
	servingRounds = 3
	servingWidth  = 6
)

// awaitServing returns once url answers, or an error saying what it answered last. host, when
// set, is the Host header the load sends (a Service by its DNS name).
func awaitServing(ctx context.Context, url, host string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	get := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if host != "" {
			req.Host = host
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("answered %s", resp.Status)
		}
		return nil
	}
	var last error
	for ok := 0; ok < servingRounds; {
		errs := make(chan error, servingWidth)
		for range servingWidth {
			go func() { errs <- get() }()
		}
		failed := false
		for range servingWidth {
			if err := <-errs; err != nil {
				failed, last = true, err
			}
		}
		if !failed {
			ok++
			continue
		}
		ok = 0
		select {
		case <-ctx.Done():
			return fmt.Errorf("its target %s did not answer 2xx within %s (last: %v)", url, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}
