package load

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// WriteSummary writes the human summary: totals, error rate, latencies, retries, error
// classes and disruption intervals.
func (r *Result) WriteSummary(w io.Writer) error {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "gracelab load: %s %s\n", c.Method, c.URL)
	fmt.Fprintf(&b, "  %s, timeout %s, %s\n", describeModel(c), c.Timeout, describeConnections(c.Connections))
	fmt.Fprintf(&b, "  started %s, sent for %s, last outcome after %s\n\n",
		r.Start.UTC().Format("2006-01-02T15:04:05.000Z"), seconds(r.SendEnd.Sub(r.Start).Seconds()), seconds(r.End.Sub(r.Start).Seconds()))

	fmt.Fprintf(&b, "requests  %8d   %.1f/s\n", r.Requests, r.RPS)
	fmt.Fprintf(&b, "ok        %8d\n", r.OK)
	fmt.Fprintf(&b, "errors    %8d   %.2f%%\n", r.Errors, 100*r.ErrorRate)
	fmt.Fprintf(&b, "retries   %8d\n\n", r.Retries)

	l := r.Latency
	fmt.Fprintf(&b, "latency ms    avg %s  p50 %s  p90 %s  p95 %s  p99 %s  max %s\n",
		num(l.Avg), num(l.P50), num(l.P90), num(l.P95), num(l.P99), num(l.Max))
	if s := r.SendLag; s != nil {
		fmt.Fprintf(&b, "send lag ms   p50 %s  p99 %s  max %s  late (>%s) %d\n",
			num(s.P50), num(s.P99), num(s.Max), LateAfter, s.Late)
	}
	b.WriteString("\n")

	if r.Errors == 0 {
		b.WriteString("errors by class: none\n")
	} else {
		b.WriteString("errors by class\n")
		for _, class := range ErrorClasses {
			n := r.ErrorsByKind[class]
			if n == 0 {
				continue
			}
			fmt.Fprintf(&b, "  %-12s %8d", class, n)
			if class == HTTP5xx && len(r.UpstreamKinds) > 0 {
				fmt.Fprintf(&b, "   upstream kind: %s", countList(r.UpstreamKinds))
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\n")

	if len(r.Disruptions) == 0 {
		b.WriteString("disruptions: none\n")
	} else {
		fmt.Fprintf(&b, "disruptions (failures sent less than %s apart)\n", DisruptionGap)
		for _, d := range r.Disruptions {
			classes := map[string]int64{}
			for k, n := range d.Classes {
				classes[string(k)] = n
			}
			fmt.Fprintf(&b, "  %s - %s (%s)  %d failed: %s\n", seconds(d.StartOffset), seconds(d.EndOffset),
				seconds(d.EndOffset-d.StartOffset), d.RequestsFailed, countList(classes))
			fmt.Fprintf(&b, "    first error: %s\n", d.FirstError)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func describeModel(c Config) string {
	if c.Model == Open {
		return fmt.Sprintf("open model, %g req/s, at most %d in flight", c.Rate, c.MaxInFlight)
	}
	return fmt.Sprintf("closed model, %d VUs, think %s", c.VUs, c.Think)
}

func describeConnections(policy string) string {
	if policy == ConnectionsReuse {
		return "keep-alive connections"
	}
	return "a new connection per request"
}

func seconds(s float64) string { return fmt.Sprintf("%.2fs", s) }

func num(v float64) string { return fmt.Sprintf("%.2f", v) }

// countList renders counts largest first, ties by name: "reset 12, refused 8".
func countList(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
