package report

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/gracelab/gracelab/internal/cluster"
	"github.com/gracelab/gracelab/internal/load"
)

// Chart sizes in pixels; the PNG is exactly this size (96 dpi), the SVG the same in CSS pixels.
const (
	ChartWidth        = 1200
	ChartHeight       = 760
	CombinedRowHeight = 260 // per scenario in the combined chart, plus the legend strip
	legendHeight      = 70
	chartDPI          = 96
)

// Format is a chart's file format.
type Format string

const (
	PNG Format = "png"
	SVG Format = "svg"
)

// px converts pixels to vg lengths at chartDPI.
func px(n float64) vg.Length { return vg.Length(n) * vg.Inch / chartDPI }

// classColors give each error class one colour in every chart.
var classColors = map[load.Outcome]color.RGBA{
	load.HTTP5xx:    {R: 214, G: 39, B: 40, A: 255},
	load.EOF:        {R: 255, G: 127, B: 14, A: 255},
	load.Reset:      {R: 148, G: 103, B: 189, A: 255},
	load.Refused:    {R: 140, G: 86, B: 75, A: 255},
	load.Timeout:    {R: 227, G: 119, B: 194, A: 255},
	load.HTTP4xx:    {R: 188, G: 189, B: 34, A: 255},
	load.BodyNotOK:  {R: 23, G: 190, B: 207, A: 255},
	load.Dropped:    {R: 127, G: 127, B: 127, A: 255},
	load.Unexpected: {R: 31, G: 119, B: 180, A: 255},
	load.Other:      {R: 60, G: 60, B: 60, A: 255},
}

// eventStyle is how one kind of cluster event is drawn.
type eventStyle struct {
	short string // label text on the chart
	name  string // legend text
	color color.RGBA
	dash  []vg.Length
}

// chartEvents are the event kinds drawn as vertical lines, in legend order.
var chartEvents = []cluster.EventKind{
	cluster.RestartTriggered, cluster.PodReady, cluster.PodTerminating, cluster.PreStopStarted,
	cluster.PreStopFinished, cluster.SIGTERMSent, cluster.SIGKILLSent, cluster.PodExited,
	cluster.PodNetworkRemoved, cluster.EndpointRemoved, cluster.EndpointNotReady,
	cluster.PodDeleted, cluster.RolloutComplete,
}

var eventStyles = map[cluster.EventKind]eventStyle{
	cluster.RestartTriggered:  {"restart", "restart triggered", color.RGBA{0, 0, 0, 255}, nil},
	cluster.PodReady:          {"ready", "new pod ready", color.RGBA{44, 160, 44, 255}, nil},
	cluster.PodTerminating:    {"terminating", "pod terminating", color.RGBA{255, 127, 14, 255}, []vg.Length{vg.Points(4), vg.Points(2)}},
	cluster.PreStopStarted:    {"preStop", "preStop start", color.RGBA{31, 119, 180, 255}, []vg.Length{vg.Points(1), vg.Points(2)}},
	cluster.PreStopFinished:   {"preStop end", "preStop end", color.RGBA{31, 119, 180, 255}, []vg.Length{vg.Points(4), vg.Points(2)}},
	cluster.SIGTERMSent:       {"SIGTERM", "SIGTERM", color.RGBA{214, 39, 40, 255}, nil},
	cluster.SIGKILLSent:       {"SIGKILL", "SIGKILL", color.RGBA{120, 0, 0, 255}, nil},
	cluster.PodExited:         {"exit", "process exited", color.RGBA{148, 103, 189, 255}, []vg.Length{vg.Points(4), vg.Points(2)}},
	cluster.PodNetworkRemoved: {"net gone", "pod network removed", color.RGBA{140, 86, 75, 255}, []vg.Length{vg.Points(1), vg.Points(2)}},
	cluster.EndpointRemoved:   {"endpoint gone", "endpoint removed", color.RGBA{23, 190, 207, 255}, nil},
	cluster.EndpointNotReady:  {"not ready", "endpoint not ready", color.RGBA{23, 190, 207, 255}, []vg.Length{vg.Points(4), vg.Points(2)}},
	cluster.PodDeleted:        {"deleted", "pod deleted", color.RGBA{127, 127, 127, 255}, []vg.Length{vg.Points(4), vg.Points(2)}},
	cluster.RolloutComplete:   {"rolled out", "rollout complete", color.RGBA{0, 0, 0, 255}, []vg.Length{vg.Points(6), vg.Points(3)}},
}

func isChartKind(k cluster.EventKind) bool {
	_, ok := eventStyles[k]
	return ok
}

// chartEvent is an event placed on the time axis.
type chartEvent struct {
	x     float64 // seconds from the load's start
	kind  cluster.EventKind
	label string
}

// eventsOnAxis places a scenario's drawable events on its load's time axis, within [0, xmax].
func eventsOnAxis(s Scenario, xmax float64) []chartEvent {
	if s.Result == nil {
		return nil
	}
	var out []chartEvent
	for _, e := range s.Events {
		st, ok := eventStyles[e.Kind]
		if !ok {
			continue
		}
		x := e.Time.Sub(s.Start).Seconds()
		if x < 0 || x > xmax {
			continue
		}
		label := st.short
		if e.Pod != "" {
			label += " " + shortPod(e.Pod)
		}
		out = append(out, chartEvent{x: x, kind: e.Kind, label: label})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].x < out[j].x })
	return out
}

// shortPod keeps the distinguishing tail of a pod name: upstream-7d9f8-abc12 -> abc12.
func shortPod(name string) string {
	if i := strings.LastIndexByte(name, '-'); i >= 0 && i < len(name)-1 {
		return name[i+1:]
	}
	return name
}

// axisEnd is where a scenario's time axis ends: the last recorded outcome.
func axisEnd(s Scenario) float64 {
	if s.Result == nil {
		return 0
	}
	end := s.End.Sub(s.Start).Seconds()
	if n := len(s.Timeline); n > 0 {
		end = math.Max(end, float64(s.Timeline[n-1].Second+1))
	}
	return math.Max(1, math.Ceil(end))
}

// trafficPlot: requests per second as a step line, errors per second stacked by class.
func trafficPlot(s Scenario, xmax float64, labels bool) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = titleOf(s)
	p.X.Label.Text = "seconds from load start"
	p.Y.Label.Text = "requests / s"
	p.X.Min, p.X.Max = 0, xmax
	p.Y.Min = 0
	p.Y.Tick.Marker = plainTicks{}
	p.Add(plotter.NewGrid())
	if s.Result == nil {
		p.Title.Text += " (failed: no load ran)"
		p.Y.Max = 1
		return p, nil
	}
	tl := s.Timeline
	if len(tl) > 0 {
		bars := stackedBars{}
		for _, c := range load.ErrorClasses {
			vals := make([]float64, len(tl))
			nonzero := false
			for i, sec := range tl {
				vals[i] = float64(sec.ErrorsByKind[c])
				nonzero = nonzero || vals[i] > 0
			}
			if nonzero {
				bars.layers = append(bars.layers, barLayer{x0: secondsOf(tl), vals: vals, color: classColors[c]})
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
		line.Color = color.RGBA{R: 31, G: 119, B: 180, A: 255}
		line.Width = vg.Points(1.5)
		p.Add(line)
		ymax := 0.0
		for _, sec := range tl {
			ymax = math.Max(ymax, float64(sec.Requests))
		}
		p.Y.Max = math.Max(1, ymax*1.25) // headroom for the event labels
	} else {
		p.Y.Max = 1
	}
	p.Add(eventLines{events: eventsOnAxis(s, xmax), labels: labels})
	return p, nil
}

func secondsOf(tl []load.Second) []float64 {
	out := make([]float64, len(tl))
	for i, sec := range tl {
		out[i] = float64(sec.Second)
	}
	return out
}

// latencyPlot: p50, p99 and max per second on a log scale.
func latencyPlot(s Scenario, xmax float64) (*plot.Plot, error) {
	p := plot.New()
	p.X.Label.Text = "seconds from load start"
	p.Y.Label.Text = "latency ms (log)"
	p.X.Min, p.X.Max = 0, xmax
	p.Add(plotter.NewGrid())
	lo, hi := math.Inf(1), math.Inf(-1)
	series := []struct {
		name  string
		value func(load.Second) float64
		color color.RGBA
	}{
		{"p50", func(s load.Second) float64 { return s.P50 }, color.RGBA{44, 160, 44, 255}},
		{"p99", func(s load.Second) float64 { return s.P99 }, color.RGBA{255, 127, 14, 255}},
		{"max", func(s load.Second) float64 { return s.Max }, color.RGBA{214, 39, 40, 255}},
	}
	if s.Result != nil {
		for _, ser := range series {
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
	p.Add(eventLines{events: eventsOnAxis(s, xmax)})
	return p, nil
}

// plainTicks are gonum's default ticks labelled without trailing zeros: 75, not 75.00.
type plainTicks struct{}

func (plainTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64)
		}
	}
	return ticks
}

// logTicks label 1, 2 and 5 of every decade (a decade or two is all a latency axis spans)
// and mark the other integers.
type logTicks struct{}

func (logTicks) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	for dec := math.Pow(10, math.Floor(math.Log10(min))); dec <= max; dec *= 10 {
		for i := 1; i < 10; i++ {
			v := dec * float64(i)
			if v < min || v > max {
				continue
			}
			t := plot.Tick{Value: v}
			if i == 1 || i == 2 || i == 5 {
				t.Label = strconv.FormatFloat(v, 'f', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// barLayer is one error class: a count per timeline second.
type barLayer struct {
	x0    []float64
	vals  []float64
	color color.Color
}

// stackedBars draws each second as a bar one second wide, classes stacked.
type stackedBars struct{ layers []barLayer }

func (b stackedBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	if len(b.layers) == 0 {
		return
	}
	base := make([]float64, len(b.layers[0].vals))
	for _, l := range b.layers {
		for i, v := range l.vals {
			if v <= 0 {
				continue
			}
			x0, x1 := trX(l.x0[i]), trX(l.x0[i]+1)
			y0, y1 := trY(base[i]), trY(base[i]+v)
			pts := []vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}}
			c.FillPolygon(l.color, c.ClipPolygonXY(pts))
			base[i] += v
		}
	}
}

// eventLines draws events as vertical lines across the whole panel, optionally labelled.
type eventLines struct {
	events []chartEvent
	labels bool
}

func (e eventLines) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	for _, ev := range e.events {
		st := eventStyles[ev.kind]
		x := trX(ev.x)
		if x < c.Min.X || x > c.Max.X {
			continue
		}
		c.StrokeLine2(draw.LineStyle{Color: st.color, Width: vg.Points(1), Dashes: st.dash}, x, c.Min.Y, x, c.Max.Y)
	}
	if !e.labels {
		return
	}
	// Labels run upwards from the panel's top; events closer than one text line share one.
	sty := draw.TextStyle{
		Color: color.RGBA{50, 50, 50, 255}, Font: font.From(plot.DefaultFont, vg.Points(7)),
		Rotation: math.Pi / 2, XAlign: draw.XRight, YAlign: draw.YBottom, Handler: plot.DefaultTextHandler,
	}
	minGap := sty.Height("Xg") * 1.1
	type group struct {
		x     vg.Length
		texts []string
	}
	var groups []group
	for _, ev := range e.events {
		x := trX(ev.x)
		if x < c.Min.X || x > c.Max.X {
			continue
		}
		if n := len(groups); n > 0 && x-groups[n-1].x < minGap {
			g := &groups[n-1]
			if len(g.texts) < 3 {
				g.texts = append(g.texts, ev.label)
			} else if len(g.texts) == 3 {
				g.texts = append(g.texts, "…")
			}
			continue
		}
		groups = append(groups, group{x: x, texts: []string{ev.label}})
	}
	for _, g := range groups {
		c.FillText(sty, vg.Point{X: g.x - vg.Points(1), Y: c.Max.Y - vg.Points(2)}, strings.Join(g.texts, ", "))
	}
}

// legendEntry is one swatch of the legend strip.
type legendEntry struct {
	text  string
	color color.Color
	dash  []vg.Length
	fill  bool // a filled box (error class) rather than a line
}

// legendFor lists what a set of scenarios' charts show.
func legendFor(scenarios []Scenario, latency bool) []legendEntry {
	out := []legendEntry{{text: "requests/s", color: color.RGBA{31, 119, 180, 255}}}
	classes := errorClassesSeen(&Report{Scenarios: scenarios})
	for _, c := range classes {
		out = append(out, legendEntry{text: "errors: " + string(c), color: classColors[c], fill: true})
	}
	if latency {
		out = append(out,
			legendEntry{text: "p50", color: color.RGBA{44, 160, 44, 255}},
			legendEntry{text: "p99", color: color.RGBA{255, 127, 14, 255}},
			legendEntry{text: "max", color: color.RGBA{214, 39, 40, 255}})
	}
	seen := map[cluster.EventKind]bool{}
	for _, s := range scenarios {
		for _, ev := range eventsOnAxis(s, math.Inf(1)) {
			seen[ev.kind] = true
		}
	}
	for _, k := range chartEvents {
		if seen[k] {
			st := eventStyles[k]
			out = append(out, legendEntry{text: st.name, color: st.color, dash: st.dash})
		}
	}
	return out
}

// drawLegend lays the entries out left to right, wrapping to new lines.
func drawLegend(c draw.Canvas, entries []legendEntry) {
	sty := draw.TextStyle{Color: color.Black, Font: font.From(plot.DefaultFont, vg.Points(8)), Handler: plot.DefaultTextHandler, YAlign: draw.YCenter}
	lineH := sty.Height("Xg") * 1.6
	swatch := vg.Points(16)
	x, y := c.Min.X+vg.Points(8), c.Max.Y-lineH/2-vg.Points(2)
	for _, e := range entries {
		w := swatch + vg.Points(4) + sty.Width(e.text) + vg.Points(12)
		if x+w > c.Max.X && x > c.Min.X+vg.Points(8) {
			x, y = c.Min.X+vg.Points(8), y-lineH
		}
		if e.fill {
			h := vg.Points(6)
			c.FillPolygon(e.color, []vg.Point{{X: x, Y: y - h}, {X: x + swatch, Y: y - h}, {X: x + swatch, Y: y + h}, {X: x, Y: y + h}})
		} else {
			c.StrokeLine2(draw.LineStyle{Color: e.color, Width: vg.Points(1.5), Dashes: e.dash}, x, y, x+swatch, y)
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

// WriteChart renders one scenario's timeline: traffic and errors, latency, and the cluster
// events across both, on one time axis.
func WriteChart(w io.Writer, s Scenario, format Format) (err error) {
	if s.Result == nil {
		return fmt.Errorf("scenario %s has no load results to chart", s.Scenario)
	}
	defer recoverPlot(&err)
	xmax := axisEnd(s)
	traffic, err := trafficPlot(s, xmax, true)
	if err != nil {
		return err
	}
	latency, err := latencyPlot(s, xmax)
	if err != nil {
		return err
	}
	cv, err := newCanvas(format, ChartWidth, ChartHeight)
	if err != nil {
		return err
	}
	dc := draw.New(cv)
	plots, legend := splitLegend(dc, px(legendHeight))
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(12), PadY: vg.Points(6)}
	canvases := plot.Align([][]*plot.Plot{{traffic}, {latency}}, tiles, plots)
	traffic.Draw(canvases[0][0])
	latency.Draw(canvases[1][0])
	drawLegend(legend, legendFor([]Scenario{s}, true))
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
	var rows [][]*plot.Plot
	for _, s := range r.Scenarios {
		p, err := trafficPlot(s, xmax, true)
		if err != nil {
			return err
		}
		ymax = math.Max(ymax, p.Y.Max)
		rows = append(rows, []*plot.Plot{p})
	}
	for _, row := range rows {
		row[0].Y.Max = ymax
	}
	cv, err := newCanvas(format, ChartWidth, CombinedHeight(len(rows)))
	if err != nil {
		return err
	}
	dc := draw.New(cv)
	plots, legend := splitLegend(dc, px(legendHeight))
	tiles := draw.Tiles{Rows: len(rows), Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(12), PadY: vg.Points(6)}
	canvases := plot.Align(rows, tiles, plots)
	for i, row := range rows {
		if i < len(rows)-1 {
			row[0].X.Label.Text = "" // one axis title, under the last panel
		}
		row[0].Draw(canvases[i][0])
	}
	drawLegend(legend, legendFor(r.Scenarios, false))
	_, err = cv.WriteTo(w)
	return err
}

// CombinedHeight is the combined chart's height in pixels for n scenarios.
func CombinedHeight(n int) int { return n*CombinedRowHeight + legendHeight }

// splitLegend cuts the legend strip off the bottom of c.
func splitLegend(c draw.Canvas, h vg.Length) (plots, legend draw.Canvas) {
	full := c.Max.Y - c.Min.Y
	return draw.Crop(c, 0, 0, h, 0), draw.Crop(c, 0, 0, 0, -(full - h))
}

// recoverPlot turns a panic inside gonum/plot (it panics on some degenerate ranges) into an
// error, so odd data gives a message rather than a crash.
func recoverPlot(err *error) {
	if v := recover(); v != nil {
		*err = fmt.Errorf("drawing the chart failed: %v", v)
	}
}
