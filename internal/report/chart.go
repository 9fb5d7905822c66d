package report

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/gracelab/gracelab/internal/cluster"
)

// Chart sizes in pixels; the PNG is exactly this size (96 dpi), the SVG the same in CSS pixels.
const (
	ChartWidth        = 1200
	CombinedRowHeight = 260 // per scenario in the combined chart, plus the legend strip
	RolloutsHeight    = 480
	trafficHeight     = 300
	latencyHeight     = 210
	laneHeight        = 30 // per pod in the pods panel
	lanesExtra        = 40 // the pods panel's axis and padding
	legendHeight      = 96
	chartDPI          = 96
)

// TimelineHeight is a scenario chart's height in pixels with lanes pods in its pods panel.
func TimelineHeight(lanes int) int {
	h := trafficHeight + latencyHeight + legendHeight
	if lanes > 0 {
		h += lanes*laneHeight + lanesExtra
	}
	return h
}

// Format is a chart's file format.
type Format string

const (
	PNG Format = "png"
	SVG Format = "svg"
)

// px converts pixels to vg lengths at chartDPI.
func px(n float64) vg.Length { return vg.Length(n) * vg.Inch / chartDPI }

func rgb(r, g, b uint8) color.RGBA { return color.RGBA{R: r, G: g, B: b, A: 255} }

// A failure cause is what an error bar is coloured by: for a 5xx, what went wrong behind the
// downstream (the upstream kind); otherwise the load's own class at the downstream.
type cause struct {
	key   string // "upstream:refused", "class:timeout"
	text  string // legend text
	color color.RGBA
}

var causes = []cause{
	{"upstream:refused", "5xx: upstream refused", rgb(140, 86, 75)},
	{"upstream:reset", "5xx: upstream reset", rgb(148, 103, 189)},
	{"upstream:eof", "5xx: upstream EOF", rgb(255, 127, 14)},
	{"upstream:timeout", "5xx: upstream timeout", rgb(227, 119, 194)},
	{"upstream:other", "5xx: other upstream failure", rgb(188, 189, 34)},
	{"upstream:unknown", "5xx: upstream kind not recorded per second", rgb(214, 39, 40)},
	{"class:refused", "refused at the downstream", rgb(196, 156, 148)},
	{"class:reset", "reset at the downstream", rgb(197, 176, 213)},
	{"class:eof", "EOF at the downstream", rgb(255, 187, 120)},
	{"class:timeout", "timed out at the downstream", rgb(247, 182, 210)},
	{"class:http_4xx", "4xx", rgb(219, 219, 141)},
	{"class:body_not_ok", "2xx with a body not ok", rgb(23, 190, 207)},
	{"class:dropped", "dropped (in-flight cap)", rgb(127, 127, 127)},
	{"class:unexpected", "outside --expect-status/--expect-body", rgb(31, 119, 180)},
	{"class:lost", "lost with a load pod", rgb(90, 90, 90)},
	{"class:other", "other failure", rgb(60, 60, 60)},
}

// causeCounts splits one second's errors by cause. A 5xx's kind comes from the second's own
// upstream kinds (schema 2); an older timeline cannot split, unless the whole run saw one kind.
func causeCounts(sec Second, runKinds map[string]int64) map[string]float64 {
	out := map[string]float64{}
	for _, c := range ErrorClasses {
		n := sec.ErrorsByKind[c]
		if n <= 0 {
			continue
		}
		if c != classHTTP5xx {
			out["class:"+c] += float64(n)
			continue
		}
		kinds := sec.UpstreamKinds
		if kinds == nil {
			if only := onlyKind(runKinds); only != "" {
				kinds = map[string]int64{only: n}
			}
		}
		left := n
		for k, m := range kinds {
			out[upstreamCause(k)] += float64(m)
			left -= m
		}
		if left > 0 {
			out["upstream:unknown"] += float64(left)
		}
	}
	return out
}

func upstreamCause(kind string) string {
	switch kind {
	case kindRefused, kindReset, kindEOF, kindTimeout:
		return "upstream:" + kind
	}
	return "upstream:other"
}

// onlyKind is the one upstream kind of a run, or "" when it had none or several.
func onlyKind(kinds map[string]int64) string {
	only := ""
	for k, n := range kinds {
		if n > 0 {
			if only != "" {
				return ""
			}
			only = k
		}
	}
	return only
}

// runKinds is the upstream kinds of one scenario's run, for a legend: "; run: reset 68, eof 8".
func runKinds(scenarios []Scenario) string {
	var with []Scenario
	for _, s := range scenarios {
		if s.Result != nil && len(s.UpstreamKinds) > 0 && fmtCounts(s.UpstreamKinds) != "" {
			with = append(with, s)
		}
	}
	if len(with) != 1 {
		return ""
	}
	return "; run: " + fmtCounts(with[0].UpstreamKinds)
}

var (
	requestsColor = rgb(31, 119, 180)
	labelFont     = font.From(plot.DefaultFont, vg.Points(9))
)

// trafficPlot: requests per second as a step line, errors per second stacked by cause.
func trafficPlot(s Scenario, xmax float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = titleOf(s)
	p.X.Label.Text = "seconds from load start"
	p.Y.Label.Text = "requests / s"
	p.X.Min, p.X.Max = 0, xmax
	p.X.Tick.Marker = plainTicks{}
	p.Y.Min = 0
	p.Y.Tick.Marker = plainTicks{}
	p.Add(windows{spans: rolloutWindows(s)})
	p.Add(plotter.NewGrid())
	if s.Result == nil {
		p.Title.Text += " (failed: no load ran)"
		p.Y.Max = 1
		return p, nil
	}
	tl := s.Timeline
	if len(tl) > 0 {
		counts := make([]map[string]float64, len(tl))
		for i, sec := range tl {
			counts[i] = causeCounts(sec, s.UpstreamKinds)
		}
		bars := stackedBars{}
		for _, c := range causes {
			vals := make([]float64, len(tl))
			nonzero := false
			for i := range tl {
				vals[i] = counts[i][c.key]
				nonzero = nonzero || vals[i] > 0
			}
			if nonzero {
				bars.layers = append(bars.layers, barLayer{x0: secondsOf(tl), vals: vals, color: c.color})
			}
		}
		p.Add(bars)

		xys := make(plotter.XYs, 0, len(tl)+1)
		for _, sec := range tl {
			xys = append(xys, plotter.XY{X: float64(sec.Second), Y: float64(sec.Requests)})
		}
		last := tl[len(tl)-1]
		xys = append(xys, plotter.XY{X: float64(last.Second + 1), Y: float64(last.Requests)})
		line, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		line.StepStyle = plotter.PostStep
		line.Color = requestsColor
		line.Width = vg.Points(1.5)
		p.Add(line)
		ymax := 0.0
		for _, sec := range tl {
			ymax = math.Max(ymax, float64(sec.Requests))
		}
		p.Y.Max = math.Max(1, ymax*1.3) // headroom for the marks' labels
	} else {
		p.Y.Max = 1
	}
	p.Add(markLines{marks: marksOnAxis(s, xmax), labels: true})
	return p, nil
}

func secondsOf(tl []Second) []float64 {
	out := make([]float64, len(tl))
	for i, sec := range tl {
		out[i] = float64(sec.Second)
	}
	return out
}

var latencySeries = []struct {
	name  string
	value func(Second) float64
	color color.RGBA
}{
	{"latency p50", func(s Second) float64 { return s.P50 }, rgb(44, 160, 44)},
	{"latency p99", func(s Second) float64 { return s.P99 }, rgb(255, 127, 14)},
	{"latency max", func(s Second) float64 { return s.Max }, rgb(214, 39, 40)},
}

// latencyPlot: p50, p99 and max per second on a log scale.
func latencyPlot(s Scenario, xmax float64) (*plot.Plot, error) {
	p := plot.New()
	p.X.Label.Text = "seconds from load start"
	p.Y.Label.Text = "latency ms (log)"
	p.X.Min, p.X.Max = 0, xmax
	p.X.Tick.Marker = plainTicks{}
	p.Add(windows{spans: rolloutWindows(s)})
	p.Add(plotter.NewGrid())
	lo, hi := math.Inf(1), math.Inf(-1)
	if s.Result != nil {
		for _, ser := range latencySeries {
			// A second without an answered request has no point (a log axis cannot show 0),
			// and the line breaks there rather than drawing a slope nobody measured.
			var runs []plotter.XYs
			prev := -2
			for _, sec := range s.Timeline {
				v := ser.value(sec)
				if !(v > 0) || math.IsInf(v, 0) {
					continue
				}
				if sec.Second != prev+1 || len(runs) == 0 {
					runs = append(runs, nil)
				}
				prev = sec.Second
				runs[len(runs)-1] = append(runs[len(runs)-1], plotter.XY{X: float64(sec.Second) + 0.5, Y: v})
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
			for _, xys := range runs {
				line, err := plotter.NewLine(xys)
				if err != nil {
					return nil, err
				}
				line.Color = ser.color
				line.Width = vg.Points(1.2)
				p.Add(line)
				if len(xys) == 1 { // a lone second: a dot, since a line of one point is invisible
					sc, err := plotter.NewScatter(xys)
					if err != nil {
						return nil, err
					}
					sc.GlyphStyle = draw.GlyphStyle{Color: ser.color, Radius: vg.Points(2), Shape: draw.CircleGlyph{}}
					p.Add(sc)
				}
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 1, 10
	}
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = logTicks{}
	p.Y.Min = math.Pow(10, math.Floor(math.Log10(lo)))
	p.Y.Max = math.Pow(10, math.Ceil(math.Log10(hi*1.01)))
	p.Add(markLines{marks: marksOnAxis(s, xmax)})
	return p, nil
}

// legendEntry is one swatch of the legend strip.
type legendEntry struct {
	text  string
	color color.Color
	dash  []vg.Length
	fill  bool             // a filled box rather than a line
	glyph *draw.GlyphStyle // a glyph rather than a line
}

// legendFor lists what a set of scenarios' charts show.
func legendFor(scenarios []Scenario, detail bool) []legendEntry {
	out := []legendEntry{{text: "requests/s", color: requestsColor}}
	seen := map[string]bool{}
	for _, s := range scenarios {
		if s.Result == nil {
			continue
		}
		for _, sec := range s.Timeline {
			for k, v := range causeCounts(sec, s.UpstreamKinds) {
				seen[k] = seen[k] || v > 0
			}
		}
	}
	for _, c := range causes {
		if seen[c.key] {
			text := c.text
			if c.key == "upstream:unknown" {
				text = "5xx (older report: kinds not split per second" + runKinds(scenarios) + ")"
			}
			out = append(out, legendEntry{text: text, color: c.color, fill: true})
		}
	}
	marks := map[string]markStyle{}
	for _, s := range scenarios {
		for _, mk := range marksOnAxis(s, math.Inf(1)) {
			marks[mk.style.label] = mk.style
		}
	}
	var triggers []string // drawn alike: one entry names them all
	for _, k := range markOrder {
		st, ok := marks[markEvents[k].label]
		switch {
		case !ok:
		case cluster.IsTrigger(k):
			triggers = append(triggers, st.label)
		default:
			if len(triggers) > 0 {
				out = append(out, legendEntry{text: strings.Join(triggers, " / "), color: markEvents[cluster.RestartTriggered].color})
				triggers = nil
			}
			out = append(out, legendEntry{text: st.label, color: st.color, dash: st.dash})
		}
	}
	if len(triggers) > 0 {
		out = append(out, legendEntry{text: strings.Join(triggers, " / "), color: markEvents[cluster.RestartTriggered].color})
	}
	if !detail {
		return out
	}
	for _, ser := range latencySeries {
		out = append(out, legendEntry{text: ser.name, color: ser.color})
	}
	var pods []podLife
	for _, s := range scenarios {
		pods = append(pods, podLives(s)...)
	}
	if len(pods) == 0 {
		return out
	}
	var dead, gone, term, prestop bool
	for _, pod := range pods {
		dead = dead || len(pod.routedDead()) > 0
		for _, r := range pod.Routed {
			gone = gone || pod.NetRemoved < r.To
		}
		term = term || !math.IsNaN(pod.Terminating)
		prestop = prestop || !math.IsNaN(pod.PreStopStart)
	}
	out = append(out, legendEntry{text: "routed by the Service", color: routedColor, fill: true})
	if dead {
		out = append(out, legendEntry{text: "routed, process dead", color: deadColor, fill: true})
	}
	if gone {
		out = append(out, legendEntry{text: "routed, address gone", color: goneColor, fill: true})
	}
	out = append(out, legendEntry{text: "process running", color: processColor})
	if term {
		out = append(out, legendEntry{text: "terminating (grace period)", color: termColor})
	}
	if prestop {
		out = append(out, legendEntry{text: "preStop hook", color: preStopColor})
	}
	for _, mk := range podMarks {
		for _, pod := range pods {
			if len(mk.value(pod)) > 0 {
				g := mk.style
				out = append(out, legendEntry{text: mk.name, glyph: &g})
				break
			}
		}
	}
	return out
}

// drawLegend lays the entries out left to right, wrapping to new lines.
func drawLegend(c draw.Canvas, entries []legendEntry) {
	sty := draw.TextStyle{Color: color.Black, Font: labelFont, Handler: plot.DefaultTextHandler, YAlign: draw.YCenter}
	lineH := sty.Height("Xg") * 1.6
	swatch := vg.Points(16)
	x, y := c.Min.X+vg.Points(8), c.Max.Y-lineH/2-vg.Points(2)
	for _, e := range entries {
		w := swatch + vg.Points(4) + sty.Width(e.text) + vg.Points(12)
		if x+w > c.Max.X && x > c.Min.X+vg.Points(8) {
			x, y = c.Min.X+vg.Points(8), y-lineH
		}
		switch {
		case e.glyph != nil:
			c.DrawGlyph(*e.glyph, vg.Point{X: x + swatch/2, Y: y})
		case e.fill:
			h := vg.Points(5)
			c.FillPolygon(e.color, []vg.Point{{X: x, Y: y - h}, {X: x + swatch, Y: y - h}, {X: x + swatch, Y: y + h}, {X: x, Y: y + h}})
		default:
			c.StrokeLine2(draw.LineStyle{Color: e.color, Width: vg.Points(2), Dashes: e.dash}, x, y, x+swatch, y)
		}
		c.FillText(sty, vg.Point{X: x + swatch + vg.Points(4), Y: y}, e.text)
		x += w
	}
}

// canvas makes a canvas of the format and size; save writes it out.
func newCanvas(format Format, wpx, hpx int) (vg.CanvasWriterTo, error) {
	w, h := px(float64(wpx)), px(float64(hpx))
	switch format {
	case PNG:
		return vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(chartDPI))}, nil
	case SVG:
		return vgsvg.New(w, h), nil
	}
	return nil, fmt.Errorf("chart format %q is not supported: use png or svg", format)
}

// alignLeft crops the panels' canvases so their data areas start at the same x, whatever
// the width of each panel's y axis.
func alignLeft(plots []*plot.Plot, cs []draw.Canvas) {
	offs := make([]vg.Length, len(plots))
	var most vg.Length
	for i, p := range plots {
		offs[i] = p.DataCanvas(cs[i]).Min.X - cs[i].Min.X
		most = max(most, offs[i])
	}
	for i := range cs {
		cs[i] = draw.Crop(cs[i], most-offs[i], 0, 0, 0)
	}
}

// stack cuts c into rows of the given heights in pixels, top first, with a gap between.
func stack(c draw.Canvas, heights ...float64) []draw.Canvas {
	out := make([]draw.Canvas, len(heights))
	top := c.Max.Y - px(6)
	for i, h := range heights {
		bottom := top - px(h) + px(8)
		out[i] = draw.Canvas{Canvas: c.Canvas, Rectangle: vg.Rectangle{Min: vg.Point{X: c.Min.X + px(6), Y: bottom}, Max: vg.Point{X: c.Max.X - px(16), Y: top}}}
		top -= px(h)
	}
	return out
}

// WriteChart renders one scenario's timeline: traffic and errors by cause, a lane per pod of
// the disrupted Deployment, and latency, on one time axis.
func WriteChart(w io.Writer, s Scenario, format Format) (err error) {
	if s.Result == nil {
		return fmt.Errorf("scenario %s has no load results to chart", s.Scenario)
	}
	defer recoverPlot(&err)
	xmax := axisEnd(s)
	traffic, err := trafficPlot(s, xmax)
	if err != nil {
		return err
	}
	latency, err := latencyPlot(s, xmax)
	if err != nil {
		return err
	}
	pods := podLives(s)
	cv, err := newCanvas(format, ChartWidth, TimelineHeight(len(pods)))
	if err != nil {
		return err
	}
	dc := draw.New(cv)
	plots := []*plot.Plot{traffic}
	heights := []float64{trafficHeight}
	traffic.X.Label.Text = ""
	if len(pods) > 0 {
		plots = append(plots, podsPlot(s, pods, xmax))
		heights = append(heights, float64(len(pods)*laneHeight+lanesExtra))
	}
	plots = append(plots, latency)
	heights = append(heights, latencyHeight, legendHeight)
	canvases := stack(dc, heights...)
	alignLeft(plots, canvases[:len(plots)])
	for i, p := range plots {
		p.Draw(canvases[i])
	}
	drawLegend(canvases[len(plots)], legendFor([]Scenario{s}, true))
	_, err = cv.WriteTo(w)
	return err
}

// WriteCombinedChart renders every scenario's traffic panel one above the other on the same
// time axis and the same y scale, so v1's error spikes and v2/v3's calm compare at a glance.
func WriteCombinedChart(w io.Writer, r *Report, format Format) (err error) {
	if len(r.Scenarios) == 0 {
		return errors.New("no scenarios to chart")
	}
	defer recoverPlot(&err)
	xmax, ymax := 1.0, 1.0
	for _, s := range r.Scenarios {
		xmax = math.Max(xmax, axisEnd(s))
	}
	var plots []*plot.Plot
	var heights []float64
	for i, s := range r.Scenarios {
		p, err := trafficPlot(s, xmax)
		if err != nil {
			return err
		}
		if i < len(r.Scenarios)-1 {
			p.X.Label.Text = "" // one axis title, under the last panel
		}
		ymax = math.Max(ymax, p.Y.Max)
		plots = append(plots, p)
		heights = append(heights, CombinedRowHeight)
	}
	for _, p := range plots {
		p.Y.Max = ymax
	}
	cv, err := newCanvas(format, ChartWidth, CombinedHeight(len(plots)))
	if err != nil {
		return err
	}
	canvases := stack(draw.New(cv), append(heights, legendHeight)...)
	alignLeft(plots, canvases[:len(plots)])
	for i, p := range plots {
		p.Draw(canvases[i])
	}
	drawLegend(canvases[len(plots)], legendFor(r.Scenarios, false))
	_, err = cv.WriteTo(w)
	return err
}

// CombinedHeight is the combined chart's height in pixels for n scenarios.
func CombinedHeight(n int) int { return n*CombinedRowHeight + legendHeight }

// recoverPlot turns a panic inside gonum/plot (it panics on some degenerate ranges) into an
// error, so odd data gives a message rather than a crash.
func recoverPlot(err *error) {
	if v := recover(); v != nil {
		*err = fmt.Errorf("drawing the chart failed: %v", v)
	}
}
