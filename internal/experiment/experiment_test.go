package experiment

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/load"
	"github.com/gracelab/gracelab/internal/report"
)

// script says how a scripted cluster behaves.
type script struct {
	factoryErr  error
	upErr       error
	restartErr  error
	downErr     error
	settleAfter time.Duration
	settleNever bool          // WaitSettled blocks until its context ends
	failFor     time.Duration // after Restart, answer 502 (kind eof) this long
	failNext    int           // after each Restart, answer 502 (kind eof) to this many requests
	hangAfter   bool          // after Restart, requests hang until the client gives up
	unavailable time.Duration // after Up, answer 503 this long (a pod ready before it serves)
	warnings    []string
}

// journal records calls across every cluster of a drill, in order.
type journal struct {
	mu    sync.Mutex
	calls []call
}

type call struct {
	what string // "factory v1", "up v1", ...
	at   time.Time
}

func (j *journal) add(what string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.calls = append(j.calls, call{what, time.Now()})
}

func (j *journal) names() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for _, c := range j.calls {
		out = append(out, c.what)
	}
	return out
}

func (j *journal) at(what string) time.Time {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, c := range j.calls {
		if c.what == what {
			return c.at
		}
	}
	return time.Time{}
}

// scripted is a cluster.Cluster whose Target is a real HTTP server on 127.0.0.1, so the load
// is real; its rollout is a script, and it records every call.
type scripted struct {
	name string
	sc   script
	j    *journal

	srv       *httptest.Server
	upAt      time.Time
	mu        sync.Mutex
	events    []cluster.Event
	restarted time.Time
	toFail    int // requests left to fail since the last Restart (failNext)
}

func (s *scripted) event(kind cluster.EventKind, pod string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, cluster.Event{Time: time.Now(), Kind: kind, Deployment: "upstream", Pod: pod, Source: cluster.SourceEmbedded})
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	restarted, upAt := s.restarted, s.upAt
	failThis := s.toFail > 0
	if failThis {
		s.toFail--
	}
	s.mu.Unlock()
	if time.Since(upAt) < s.sc.unavailable {
		http.Error(w, "not listening yet", http.StatusServiceUnavailable)
		return
	}
	if !restarted.IsZero() {
		if s.sc.hangAfter {
			<-r.Context().Done()
			return
		}
		if failThis || time.Since(restarted) < s.sc.failFor {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, `{"status":"upstream_unreachable","kind":"eof","retries":0,"error":"EOF"}`)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"status":"ok","retries":0}`)
}

func (s *scripted) Up(ctx context.Context) error {
	s.j.add("up " + s.name)
	if s.sc.upErr != nil {
		return s.sc.upErr
	}
	s.mu.Lock()
	s.upAt = time.Now()
	s.mu.Unlock()
	s.srv = httptest.NewServer(s)
	s.event(cluster.PodReady, "upstream-old-aaaaa")
	return nil
}

func (s *scripted) Restart(ctx context.Context, deployment string) error {
	s.j.add("restart " + s.name + " " + deployment)
	if s.sc.restartErr != nil {
		return s.sc.restartErr
	}
	s.mu.Lock()
	s.restarted = time.Now()
	s.toFail = s.sc.failNext
	s.mu.Unlock()
	s.event(cluster.PodTerminating, "upstream-old-aaaaa")
	s.event(cluster.SIGTERMSent, "upstream-old-aaaaa")
	return nil
}

func (s *scripted) WaitSettled(ctx context.Context, deployment string) error {
	s.j.add("wait " + s.name + " " + deployment)
	defer s.j.add("settled " + s.name)
	if s.sc.settleNever {
		<-ctx.Done()
		return ctx.Err()
	}
	select {
	case <-time.After(s.sc.settleAfter):
		s.event(cluster.PodReady, "upstream-new-bbbbb")
		s.event(cluster.RolloutComplete, "")
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *scripted) Target() string { return s.srv.URL + "/" }

func (s *scripted) Warnings() []string { return s.sc.warnings }

func (s *scripted) Events() []cluster.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]cluster.Event(nil), s.events...)
}

func (s *scripted) Down(ctx context.Context) error {
	s.j.add("down " + s.name)
	if s.srv != nil {
		s.srv.CloseClientConnections()
		s.srv.Close()
	}
	return s.sc.downErr
}

var manifests = fstest.MapFS{"app.yaml": {Data: []byte("kind: Deployment\n")}}

// drillConfig builds a short drill over scenarios with the given scripts.
func drillConfig(j *journal, scripts map[string]script, names ...string) Config {
	var scs []Scenario
	for _, n := range names {
		scs = append(scs, Scenario{Name: n, Title: n + " title", Manifests: "testdata/" + n, FS: manifests})
	}
	return Config{
		Scenarios: scs,
		Factory: func(sc Scenario) (cluster.Cluster, error) {
			j.add("factory " + sc.Name)
			s := scripts[sc.Name]
			if s.factoryErr != nil {
				return nil, s.factoryErr
			}
			return &scripted{name: sc.Name, sc: s, j: j}, nil
		},
		Load:          load.Config{VUs: 3, Think: 20 * time.Millisecond, Timeout: 10 * time.Second},
		Duration:      1200 * time.Millisecond,
		RestartAt:     300 * time.Millisecond,
		SettleTail:    300 * time.Millisecond,
		ProgressEvery: 50 * time.Millisecond,
	}
}

func TestRunOrderAndTiming(t *testing.T) {
	t.Parallel() // each drill has its own servers and cluster; they wait, not compute
	j := &journal{}
	cfg := drillConfig(j, map[string]script{"a": {settleAfter: 200 * time.Millisecond}, "b": {settleAfter: 200 * time.Millisecond}}, "a", "b")
	out, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"factory a", "up a", "restart a upstream", "wait a upstream", "settled a", "down a",
		"factory b", "up b", "restart b upstream", "wait b upstream", "settled b", "down b",
	}
	if got := j.names(); !slices.Equal(got, want) {
		t.Fatalf("calls:\n got %v\nwant %v", got, want)
	}
	if len(out) != 2 {
		t.Fatalf("got %d scenarios, want 2", len(out))
	}
	for _, s := range out {
		if s.Failure != "" {
			t.Fatalf("%s failed: %s", s.Scenario, s.Failure)
		}
		res := s.Result
		if res == nil || res.Requests == 0 || res.Errors != 0 {
			t.Fatalf("%s: want requests and no errors, got %+v", s.Scenario, res)
		}
		restart := j.at("restart " + s.Scenario + " upstream")
		if d := restart.Sub(res.Start); d < cfg.RestartAt {
			t.Errorf("%s: restart %s after the load's start, want at least %s", s.Scenario, d, cfg.RestartAt)
		}
		if d := res.SendEnd.Sub(res.Start); d < cfg.Duration {
			t.Errorf("%s: load sent for %s, want at least the duration %s", s.Scenario, d, cfg.Duration)
		}
		if down := j.at("down " + s.Scenario); down.Before(res.End) {
			t.Errorf("%s: Down at %s came before the load's last outcome at %s", s.Scenario, down, res.End)
		}
		if s.RolloutSeconds < 0.2 {
			t.Errorf("%s: rollout %.3fs, want at least the scripted 0.2s", s.Scenario, s.RolloutSeconds)
		}
		if !s.RestartAt.Equal(restart) && s.RestartAt.After(restart) {
			t.Errorf("%s: restart_at %s is after the Restart call %s", s.Scenario, s.RestartAt, restart)
		}
		kinds := eventKinds(s.Events)
		wantKinds := []cluster.EventKind{cluster.PodReady, cluster.RestartTriggered, cluster.PodTerminating, cluster.SIGTERMSent, cluster.PodReady, cluster.RolloutComplete}
		if !slices.Equal(kinds, wantKinds) {
			t.Errorf("%s: events %v, want %v (the drill adds restart_triggered when the cluster does not)", s.Scenario, kinds, wantKinds)
		}
		if s.Title != s.Scenario+" title" || s.Manifests != "testdata/"+s.Scenario {
			t.Errorf("scenario identity not carried: %+v", s)
		}
	}
}

func eventKinds(evs []cluster.Event) []cluster.EventKind {
	var out []cluster.EventKind
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

func TestRunCarriesClusterWarnings(t *testing.T) {
	t.Parallel() // each drill has its own servers and cluster; they wait, not compute
	j := &journal{}
	w := "target matches no address of Service downstream"
	cfg := drillConfig(j, map[string]script{"a": {settleAfter: 10 * time.Millisecond, warnings: []string{w}}}, "a")
	out, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(out[0].Warnings) != 1 || out[0].Warnings[0] != w || out[0].Failure != "" {
		t.Fatalf("warnings %q, failure %q", out[0].Warnings, out[0].Failure)
	}
}

func TestRunKeepsLoadUntilSettledPlusTail(t *testing.T) {
	t.Parallel() // each drill has its own servers and cluster; they wait, not compute
	j := &journal{}
	cfg := drillConfig(j, map[string]script{"a": {settleAfter: 900 * time.Millisecond}}, "a")
	cfg.Duration = 400 * time.Millisecond
	cfg.RestartAt = 100 * time.Millisecond
	cfg.SettleTail = 500 * time.Millisecond
	out, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	res := out[0].Result
	settled := j.at("settled a")
	if res.SendEnd.Before(settled.Add(cfg.SettleTail)) {
		t.Errorf("load stopped sending at %s, before settled+tail %s", res.SendEnd, settled.Add(cfg.SettleTail))
	}
	if res.SendEnd.Sub(res.Start) <= cfg.Duration {
		t.Errorf("load was not extended past its duration although the rollout took longer")
	}
}

func TestRunStartsLoadOnceTheTargetServes(t *testing.T) {
	t.Parallel() // each drill has its own servers and cluster; they wait, not compute
	j := &journal{}
	cfg := drillConfig(j, map[string]script{"a": {settleAfter: 100 * time.Millisecond, unavailable: 500 * time.Millisecond}}, "a")
	out, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := out[0]
	if s.Failure != "" || s.Errors != 0 {
		t.Fatalf("failure %q, %d errors: the load started before the target served", s.Failure, s.Errors)
	}
	if d := s.Start.Sub(j.at("up a")); d < 500*time.Millisecond {
		t.Fatalf("load started %s after Up, before the target answered", d)
	}

	cfg = drillConfig(j, map[string]script{"a": {unavailable: time.Hour}}, "a")
	cfg.ServingTimeout = 600 * time.Millisecond
	out, err = Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := "the cluster came up but its target http://127.0.0.1:"
	if f := out[0].Failure; !strings.HasPrefix(f, want) || !strings.Contains(f, "did not answer 2xx within 600ms (last: answered 503 Service Unavailable)") {
		t.Fatalf("failure %q", f)
	}
	if out[0].Result != nil {
		t.Fatal("a load ran against a target that never served")
	}
}

func TestRunLoadErrorsAreResultsNotFailures(t *testing.T) {
	t.Parallel() // each drill has its own servers and cluster; they wait, not compute
	j := &journal{}
	cfg := drillConfig(j, map[string]script{"a": {settleAfter: 200 * time.Millisecond, failFor: 300 * time.Millisecond}}, "a")
	out, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := out[0]
	if s.Failure != "" {
		t.Fatalf("errors seen by the load made the run fail: %s", s.Failure)
	}
	if s.Errors == 0 || s.ErrorsByKind[string(load.HTTP5xx)] == 0 || s.UpstreamKinds["eof"] == 0 {
		t.Fatalf("want 5xx errors with upstream kind eof, got errors=%d by kind %v kinds %v", s.Errors, s.ErrorsByKind, s.UpstreamKinds)
	}
	// A request sent just before the restart may be answered after it, so the first failure's
	// send time may precede the restart by one request's duration.
	if len(s.Disruptions) == 0 || s.Disruptions[0].StartOffset < cfg.RestartAt.Seconds()-0.1 {
		t.Fatalf("want a disruption after the restart at %s, got %+v", cfg.RestartAt, s.Disruptions)
	}
}

func TestRunFailures(t *testing.T) {
	t.Parallel() // each drill has its own servers and cluster; they wait, not compute
	boom := errors.New("boom")
	cases := []struct {
		name      string
		sc        script
		failure   string
		calls     []string
		hasResult bool
	}{
		{"factory", script{factoryErr: boom}, "setting up the cluster: boom", []string{"factory a"}, false},
		{"up", script{upErr: boom}, "the cluster did not come up: boom", []string{"factory a", "up a", "down a"}, false},
		{"restart", script{restartErr: boom}, "restarting deployment upstream: boom", []string{"factory a", "up a", "restart a upstream", "down a"}, true},
		{"never settles", script{settleNever: true}, "the rollout of upstream did not settle within 300ms", []string{"factory a", "up a", "restart a upstream", "wait a upstream", "settled a", "down a"}, true},
		{"down", script{settleAfter: 10 * time.Millisecond, downErr: boom}, "tearing the cluster down: boom", []string{"factory a", "up a", "restart a upstream", "wait a upstream", "settled a", "down a"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := &journal{}
			cfg := drillConfig(j, map[string]script{"a": tc.sc, "b": {settleAfter: 10 * time.Millisecond}}, "a", "b")
			cfg.RolloutTimeout = 300 * time.Millisecond
			out, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatalf("a failed scenario is a result, not an error of Run: %v", err)
			}
			if len(out) != 2 {
				t.Fatalf("the drill must go on with the next scenario; got %d scenarios", len(out))
			}
			a := out[0]
			if !strings.HasPrefix(a.Failure, tc.failure) {
				t.Errorf("failure %q, want it to start with %q", a.Failure, tc.failure)
			}
			if (a.Result != nil) != tc.hasResult {
				t.Errorf("result present = %v, want %v", a.Result != nil, tc.hasResult)
			}
			calls := j.names()
			var aCalls []string
			for _, c := range calls {
				if strings.HasSuffix(c, " a") || strings.Contains(c, " a ") {
					aCalls = append(aCalls, c)
				}
			}
			if !slices.Equal(aCalls, tc.calls) {
				t.Errorf("calls %v, want %v", aCalls, tc.calls)
			}
			if out[1].Failure != "" || out[1].Result == nil {
				t.Errorf("the next scenario should have run normally: %+v", out[1].Failure)
			}
		})
	}
}

func TestRunInterruptStopsLoadTearsDownAndSkipsTheRest(t *testing.T) {
	t.Parallel() // each drill has its own servers and cluster; they wait, not compute
	j := &journal{}
	// After the restart every request hangs; an interrupted drill must not wait for the
	// load's 10s timeout but tear down at once, which cuts those requests short.
	cfg := drillConfig(j, map[string]script{"a": {settleNever: true, hangAfter: true}, "b": {}}, "a", "b")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	cfg.Progress = func(p Progress) {
		if p.Phase == PhaseRollout && p.Elapsed > 500*time.Millisecond {
			once.Do(cancel)
		}
	}
	began := time.Now()
	out, err := Run(ctx, cfg)
	took := time.Since(began)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	if len(out) != 1 {
		t.Fatalf("got %d scenarios, want only the interrupted one", len(out))
	}
	a := out[0]
	if !strings.Contains(a.Failure, "interrupted") {
		t.Errorf("failure %q should say interrupted", a.Failure)
	}
	if a.Result == nil || a.Requests == 0 {
		t.Fatalf("the interrupted scenario should keep what its load measured: %+v", a.Result)
	}
	if got := j.names(); !slices.Contains(got, "down a") || slices.Contains(got, "factory b") {
		t.Errorf("calls %v: want Down of a and no scenario b", got)
	}
	// Generous: the point is not waiting for the 10s load timeout of the hanging requests.
	if took > 8*time.Second {
		t.Errorf("interrupted drill took %s: it waited for hanging requests instead of tearing down", took)
	}
}

func TestRunReportsPhasesInOrder(t *testing.T) {
	t.Parallel() // each drill has its own servers and cluster; they wait, not compute
	j := &journal{}
	cfg := drillConfig(j, map[string]script{"a": {settleAfter: 100 * time.Millisecond}}, "a")
	var mu sync.Mutex
	var phases []Phase
	cfg.Progress = func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
		if p.Index != 1 || p.Total != 1 || p.Scenario != "a" {
			t.Errorf("bad progress identity %+v", p)
		}
	}
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	want := []Phase{PhaseStarting, PhaseLoad, PhaseRollout, PhaseTail, PhaseStopping, PhaseTearDown, PhaseDone}
	if !slices.Equal(phases, want) {
		t.Fatalf("phases %v, want %v", phases, want)
	}
}

func TestValidate(t *testing.T) {
	good := drillConfig(&journal{}, nil, "a")
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no scenarios", func(c *Config) { c.Scenarios = nil }, "no scenario"},
		{"no factory", func(c *Config) { c.Factory = nil }, "no cluster factory"},
		{"zero duration", func(c *Config) { c.Duration = 0 }, "duration must be positive"},
		{"restart after end", func(c *Config) { c.RestartAt = c.Duration }, "restart-at (1.2s) must be less than duration (1.2s)"},
		{"negative restart", func(c *Config) { c.RestartAt = -time.Second }, "restart-at must not be negative"},
		{"negative tail", func(c *Config) { c.SettleTail = -time.Second }, "settle tail must not be negative"},
		{"duplicate", func(c *Config) { c.Scenarios = append(c.Scenarios, c.Scenarios[0]) }, "listed twice"},
		{"bad load", func(c *Config) { c.Load.VUs = 0 }, "vus must be at least 1"},
		{"think beyond duration", func(c *Config) { c.Load.Think = 2 * time.Second }, "think 2s is longer than the run"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			c.Scenarios = slices.Clone(good.Scenarios)
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if _, err := Run(context.Background(), c); err == nil {
				t.Fatal("Run accepted an invalid config")
			}
		})
	}
}

func TestWithRestartEventsKeepsTheClustersOwn(t *testing.T) {
	t0 := time.Now()
	own := []cluster.Event{
		{Time: t0.Add(10 * time.Millisecond), Kind: cluster.RestartTriggered, Deployment: "upstream", Source: cluster.SourceEmbedded},
		{Time: t0.Add(-time.Second), Kind: cluster.PodReady, Pod: "p"},
	}
	got := withRestartEvents(own, []time.Time{t0}, "upstream", cluster.RestartTriggered)
	if len(got) != 2 || got[0].Kind != cluster.PodReady || got[1].Source != cluster.SourceEmbedded {
		t.Fatalf("got %+v: want the cluster's own restart event kept, no drill duplicate, time order", got)
	}
	got = withRestartEvents(own[1:], []time.Time{t0}, "upstream", cluster.RestartTriggered)
	if len(got) != 2 || got[1].Source != cluster.SourceDrill || !got[1].Time.Equal(t0) {
		t.Fatalf("got %+v: want a drill restart event at t0", got)
	}
	if got := withRestartEvents(own[1:], nil, "upstream", cluster.RestartTriggered); len(got) != 1 {
		t.Fatalf("no restart happened, yet an event was added: %+v", got)
	}
	// Another disruption is marked by its own event; a restart event does not stand for it.
	got = withRestartEvents(own, []time.Time{t0}, "upstream", cluster.EvictionRequested)
	if len(got) != 3 || got[1].Kind != cluster.EvictionRequested || got[1].Source != cluster.SourceDrill || !got[1].Time.Equal(t0) {
		t.Fatalf("got %+v: want a drill eviction_requested event at t0 beside the cluster's restart", got)
	}
}

// The drill's output is a report.Scenario that the report package can render.
func TestRunOutputRenders(t *testing.T) {
	t.Parallel() // each drill has its own servers and cluster; they wait, not compute
	j := &journal{}
	cfg := drillConfig(j, map[string]script{"a": {settleAfter: 100 * time.Millisecond, failFor: 200 * time.Millisecond}}, "a")
	out, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &report.Report{Schema: report.SchemaVersion, Created: time.Now(), Cluster: "scripted", Scenarios: out}
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := report.Decode(buf.Bytes())
	if err != nil {
		t.Fatalf("the drill's report does not decode: %v", err)
	}
	if back.Scenarios[0].Requests != out[0].Requests || len(back.Scenarios[0].Events) != len(out[0].Events) {
		t.Fatalf("round trip lost data")
	}
	var table bytes.Buffer
	if err := report.WriteTable(&table, back); err != nil || !strings.Contains(table.String(), "http_5xx") {
		t.Fatalf("table: %v\n%s", err, table.String())
	}
}

// ats returns the times of every call named what, in order.
func (j *journal) ats(what string) []time.Time {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []time.Time
	for _, c := range j.calls {
		if c.what == what {
			out = append(out, c.at)
		}
	}
	return out
}

// Three rollouts in one load run: each restarts once the previous one settled plus the gap,
// each window holds the requests sent in it, and the load runs until the last settled plus
// the tail.
func TestRunRepeatedRollouts(t *testing.T) {
	t.Parallel() // each drill has its own servers and cluster; they wait, not compute
	j := &journal{}
	// A count, not a time window, which a loaded machine may send nothing in: one more than the
	// VUs, so at least one failed request was sent after the restart, in its window.
	cfg := drillConfig(j, map[string]script{"a": {settleAfter: 150 * time.Millisecond, failNext: 4}}, "a")
	cfg.Duration, cfg.RestartAt = 300*time.Millisecond, 100*time.Millisecond
	cfg.Rollouts, cfg.RolloutGap, cfg.SettleTail = 3, 100*time.Millisecond, 200*time.Millisecond
	var got []Rollout
	cfg.OnRollouts = func(sc Scenario, rs []Rollout) {
		if sc.Name != "a" {
			t.Errorf("rollouts of %s", sc.Name)
		}
		got = rs
	}
	out, err := Run(context.Background(), cfg)
	if err != nil || out[0].Failure != "" {
		t.Fatalf("run: %v %s", err, out[0].Failure)
	}
	restarts, settles := j.ats("restart a upstream"), j.ats("settled a")
	if len(restarts) != 3 || len(settles) != 3 || len(got) != 3 {
		t.Fatalf("%d restarts, %d settles, %d rollouts: want 3 each", len(restarts), len(settles), len(got))
	}
	for i := 1; i < 3; i++ {
		if d := restarts[i].Sub(settles[i-1]); d < cfg.RolloutGap {
			t.Errorf("restart %d came %s after the previous settled, want at least the gap %s", i+1, d, cfg.RolloutGap)
		}
	}
	res := out[0].Result
	if res.SendEnd.Before(settles[2].Add(cfg.SettleTail)) {
		t.Errorf("load stopped at %s, before the last settled plus the tail", res.SendEnd)
	}
	var inWindows int64
	for i, r := range got {
		if r.Index != i+1 || r.Start.Before(restarts[i].Add(-50*time.Millisecond)) || r.Start.After(restarts[i]) {
			t.Errorf("rollout %d: index %d, window start %s vs restart call %s", i+1, r.Index, r.Start, restarts[i])
		}
		if r.Settled.IsZero() || r.End.Before(r.Settled) || r.Requests == 0 {
			t.Errorf("rollout %d: %+v", i+1, r)
		}
		// Every restart fails the next four requests: each window has its own errors.
		if r.Errors == 0 || r.ErrorsByKind["http_5xx"] != r.Errors || r.UpstreamKinds["eof"] != r.Errors {
			t.Errorf("rollout %d: errors %d by kind %v upstream %v", i+1, r.Errors, r.ErrorsByKind, r.UpstreamKinds)
		}
		if i > 0 && r.Start.Before(got[i-1].End) {
			t.Errorf("rollout %d starts before rollout %d's window ends", i+1, i)
		}
		inWindows += r.Requests
	}
	if inWindows >= res.Requests {
		t.Errorf("%d of %d requests in windows: the ones before the first restart belong to none", inWindows, res.Requests)
	}
	restartEvents := 0
	for _, e := range out[0].Events {
		if e.Kind == cluster.RestartTriggered {
			restartEvents++
		}
	}
	if restartEvents != 3 {
		t.Errorf("%d restart events on the timeline, want 3", restartEvents)
	}
}

// A scenario under another disruption is labelled with it, its trigger is marked by the
// kind's own event (not restart_triggered), and a failure names the disruption.
func TestRunNamesTheDisruption(t *testing.T) {
	t.Parallel() // each drill has its own servers and cluster; they wait, not compute
	j := &journal{}
	cfg := drillConfig(j, map[string]script{"a": {settleAfter: 100 * time.Millisecond}, "b": {restartErr: errors.New("no pod to evict")}}, "a", "b")
	cfg.Scenarios[0].Disruption = cluster.DisruptKill
	cfg.Scenarios[1].Disruption = cluster.DisruptEvict
	var mu sync.Mutex
	phases := map[Phase]bool{}
	cfg.Progress = func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		phases[p.Phase] = true
	}
	out, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Disruption != "kill" || out[1].Disruption != "evict" {
		t.Fatalf("disruptions %q, %q; want kill, evict", out[0].Disruption, out[1].Disruption)
	}
	var kinds []cluster.EventKind
	for _, e := range out[0].Events {
		if cluster.IsTrigger(e.Kind) {
			kinds = append(kinds, e.Kind)
		}
	}
	if len(kinds) != 1 || kinds[0] != cluster.KillRequested {
		t.Fatalf("trigger events %v, want [kill_requested]", kinds)
	}
	mu.Lock()
	if !phases[PhaseRecovering] || phases[PhaseRollout] {
		t.Errorf("phases %v: a kill is recovered from, not rolled out", phases)
	}
	mu.Unlock()
	if want := "disrupting (evict) deployment upstream: no pod to evict"; out[1].Failure != want {
		t.Fatalf("failure %q, want %q", out[1].Failure, want)
	}
}
