package experiment

import (
	"slices"
	"sort"
	"time"

	"gonum.org/v1/gonum/stat"

	"github.com/gracelab/gracelab/internal/load"
)

// Window is one rollout's share of a load run: a request belongs to the rollout in whose
// window [Start, End) it was sent, or to none. Windows are in time order and do not overlap.
type Window struct {
	Index   int       // from 1
	Start   time.Time // the restart was triggered
	Settled time.Time // zero when the rollout never settled
	End     time.Time // Settled plus the tail, cut at the next window's Start or the load's end
}

// Rollout is what the requests sent in one window met.
type Rollout struct {
	Window
	Requests      int64
	OK            int64
	Errors        int64
	ErrorsByKind  map[string]int64 // by error class
	UpstreamKinds map[string]int64 // 5xx answers by the downstream's kind
	// LongestDisruption is the longest run of failures sent less than load.DisruptionGap
	// apart, from the first one's send to the last one's end (as load counts disruptions).
	LongestDisruption time.Duration
	LatencyMax        time.Duration // of the sent requests
	// Latency holds the quantiles of the sent requests' latencies (failed ones included),
	// exact over the window: a rollout's p99 is what a baseline compares.
	Latency Quantiles
}

// Quantiles are latency quantiles; zero when the window had no request with a latency.
type Quantiles struct{ P50, P90, P95, P99 time.Duration }

// quantilesOf returns the empirical quantiles (the smallest latency with at least that share of
// latencies at or below it), as HDR histograms read them, of latencies in any order.
func quantilesOf(latencies []float64) Quantiles {
	if len(latencies) == 0 {
		return Quantiles{}
	}
	slices.Sort(latencies)
	q := func(p float64) time.Duration { return time.Duration(stat.Quantile(p, stat.Empirical, latencies, nil)) }
	return Quantiles{P50: q(0.50), P90: q(0.90), P95: q(0.95), P99: q(0.99)}
}

// windowOf returns the index in windows of the window sent falls in, or -1.
func windowOf(windows []Window, sent time.Time) int {
	i := sort.Search(len(windows), func(i int) bool { return windows[i].End.After(sent) })
	if i < len(windows) && !sent.Before(windows[i].Start) {
		return i
	}
	return -1
}

// Attribute splits samples (in any order) into one Rollout per window.
func Attribute(windows []Window, samples []load.Sample) []Rollout {
	out := make([]Rollout, len(windows))
	failures := make([][]load.Sample, len(windows))
	latencies := make([][]float64, len(windows))
	for i, w := range windows {
		out[i] = Rollout{Window: w, ErrorsByKind: map[string]int64{}, UpstreamKinds: map[string]int64{}}
	}
	for _, s := range samples {
		i := windowOf(windows, s.Sent)
		if i < 0 {
			continue
		}
		r := &out[i]
		r.Requests++
		if s.Latency >= 0 {
			r.LatencyMax = max(r.LatencyMax, s.Latency)
			latencies[i] = append(latencies[i], float64(s.Latency))
		}
		if s.Outcome == load.OK {
			r.OK++
			continue
		}
		r.Errors++
		r.ErrorsByKind[string(s.Outcome)]++
		if s.Outcome == load.HTTP5xx && s.Kind != "" {
			r.UpstreamKinds[s.Kind]++
		}
		failures[i] = append(failures[i], s)
	}
	for i := range out {
		out[i].LongestDisruption = longestDisruption(failures[i])
		out[i].Latency = quantilesOf(latencies[i])
	}
	return out
}

// longestDisruption groups failures sent less than load.DisruptionGap apart.
func longestDisruption(failures []load.Sample) time.Duration {
	sort.Slice(failures, func(i, j int) bool { return failures[i].Sent.Before(failures[j].Sent) })
	var longest time.Duration
	for i := 0; i < len(failures); {
		first, end := failures[i].Sent, failures[i].End
		j := i + 1
		for ; j < len(failures) && failures[j].Sent.Sub(failures[j-1].Sent) < load.DisruptionGap; j++ {
			if failures[j].End.After(end) {
				end = failures[j].End
			}
		}
		longest = max(longest, end.Sub(first))
		i = j
	}
	return longest
}
