package report

// The plotters the charts are drawn with: axis ticks, stacked error bars, rollout windows,
// event marks and the pod lanes.

import (
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/gracelab/gracelab/internal/cluster"
)

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
	wide := math.Log10(max/min) > 2.5 // then 1s only, or the labels crowd
	var ticks []plot.Tick
	for dec := math.Pow(10, math.Floor(math.Log10(min))); dec <= max; dec *= 10 {
		for i := 1; i < 10; i++ {
			v := dec * float64(i)
			if v < min || v > max {
				continue
			}
			t := plot.Tick{Value: v}
			if i == 1 || (!wide && (i == 2 || i == 5)) {
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

// windows shades each rollout's window, so repeated rollouts read apart.
type windows struct{ spans []span }

func (w windows) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	for i, sp := range w.spans {
		shade := color.RGBA{R: 0, G: 0, B: 0, A: 14}
		if i%2 == 1 {
			shade.A = 24
		}
		x0, x1 := trX(math.Max(sp.From, p.X.Min)), trX(math.Min(sp.To, p.X.Max))
		if x1 <= x0 {
			continue
		}
		c.FillPolygon(shade, c.ClipPolygonXY([]vg.Point{{X: x0, Y: c.Min.Y}, {X: x1, Y: c.Min.Y}, {X: x1, Y: c.Max.Y}, {X: x0, Y: c.Max.Y}}))
	}
}

// markLines draws cluster-wide events as vertical lines across a panel and, when labels is
// set, their names at the panel's top: horizontal, moved down a row when they would overlap.
type markLines struct {
	marks  []chartMark
	labels bool
}

func (m markLines) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	sty := draw.TextStyle{Color: rgb(30, 30, 30), Font: labelFont, XAlign: draw.XLeft, YAlign: draw.YTop, Handler: plot.DefaultTextHandler}
	lineH := sty.Height("Xg") * 1.15
	var rowEnds []vg.Length // the right end of the last label in each row
	for _, mk := range m.marks {
		x := trX(mk.x)
		if x < c.Min.X || x > c.Max.X {
			continue
		}
		c.StrokeLine2(draw.LineStyle{Color: mk.style.color, Width: vg.Points(1.2), Dashes: mk.style.dash}, x, c.Min.Y, x, c.Max.Y)
		if !m.labels || mk.label == "" {
			continue
		}
		w := sty.Width(mk.label)
		tx := x + vg.Points(2)
		if tx+w > c.Max.X {
			tx = x - vg.Points(2) - w
		}
		row := 0
		for row < len(rowEnds) && rowEnds[row] > tx-vg.Points(3) {
			row++
		}
		if row == len(rowEnds) {
			rowEnds = append(rowEnds, 0)
		}
		rowEnds[row] = tx + w
		c.FillText(sty, vg.Point{X: tx, Y: c.Max.Y - vg.Points(2) - vg.Length(row)*lineH}, mk.label)
	}
}

// Pod lane colours and marks.
var (
	routedColor   = rgb(170, 222, 170)
	deadColor     = rgb(230, 85, 85)
	goneColor     = rgb(140, 0, 0)
	processColor  = rgb(40, 40, 40)
	termColor     = rgb(196, 150, 0)
	preStopColor  = rgb(31, 119, 180)
	podMarkRadius = vg.Points(4)
)

// podMark is one kind of pod event drawn as a glyph on its lane.
type podMark struct {
	name  string
	value func(podLife) []float64
	style draw.GlyphStyle
}

func one(v float64) []float64 {
	if math.IsNaN(v) {
		return nil
	}
	return []float64{v}
}

var podMarks = []podMark{
	{"created", func(p podLife) []float64 { return one(p.Created) }, draw.GlyphStyle{Color: rgb(110, 110, 110), Radius: podMarkRadius, Shape: draw.RingGlyph{}}},
	{"ready", func(p podLife) []float64 { return one(p.Ready) }, draw.GlyphStyle{Color: rgb(30, 140, 30), Radius: podMarkRadius, Shape: draw.CircleGlyph{}}},
	{"SIGTERM", func(p podLife) []float64 { return one(p.SIGTERM) }, draw.GlyphStyle{Color: rgb(214, 39, 40), Radius: podMarkRadius, Shape: draw.TriangleGlyph{}}},
	{"SIGKILL", func(p podLife) []float64 { return p.Kills }, draw.GlyphStyle{Color: goneColor, Radius: podMarkRadius, Shape: draw.PlusGlyph{}}},
	{"exited", func(p podLife) []float64 { return p.Exits }, draw.GlyphStyle{Color: rgb(0, 0, 0), Radius: podMarkRadius, Shape: draw.CrossGlyph{}}},
	{"evicted", func(p podLife) []float64 { return one(p.Evicted) }, draw.GlyphStyle{Color: rgb(148, 103, 189), Radius: podMarkRadius, Shape: draw.BoxGlyph{}}},
	{"eviction refused", func(p podLife) []float64 { return p.Refused }, draw.GlyphStyle{Color: rgb(148, 103, 189), Radius: podMarkRadius, Shape: draw.TriangleGlyph{}}},
	{"container restarted", func(p podLife) []float64 { return p.Restarts }, draw.GlyphStyle{Color: preStopColor, Radius: podMarkRadius, Shape: draw.RingGlyph{}}},
	{"deleted", func(p podLife) []float64 { return one(p.Deleted) }, draw.GlyphStyle{Color: rgb(120, 120, 120), Radius: podMarkRadius, Shape: draw.SquareGlyph{}}},
}

// podLanes draws a lane per pod: when the Service routed to it (red once its process was
// dead, dark red once its address was gone), its process running, its grace period, its
// preStop hook, and a glyph per event.
type podLanes struct {
	pods []podLife
	xmax float64
}

func (l podLanes) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	n := len(l.pods)
	clip := func(x float64) float64 { return math.Max(p.X.Min, math.Min(p.X.Max, x)) }
	box := func(col color.Color, from, to, yc, half float64) {
		if math.IsNaN(from) {
			return
		}
		if math.IsNaN(to) || math.IsInf(to, 1) {
			to = l.xmax
		}
		from, to = clip(from), clip(to)
		if to <= from {
			return
		}
		x0, x1, y0, y1 := trX(from), trX(to), trY(yc-half), trY(yc+half)
		c.FillPolygon(col, []vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
	}
	for i, pod := range l.pods {
		yc := float64(n-i) - 0.5
		gone := pod.NetRemoved
		for _, r := range pod.Routed {
			box(routedColor, r.From, r.To, yc, 0.32)
		}
		for _, d := range pod.routedDead() {
			box(deadColor, d.From, d.To, yc, 0.32)
		}
		for _, r := range pod.Routed {
			if !math.IsNaN(gone) && gone < r.To {
				box(goneColor, math.Max(gone, r.From), r.To, yc, 0.32)
			}
		}
		if len(pod.Runs) > 0 {
			for _, r := range pod.Runs { // each run of the process: a crash and restart break the bar
				box(processColor, r.From, r.To, yc, 0.06)
			}
		} else {
			started := pod.Started
			if math.IsNaN(started) {
				started = pod.Ready
			}
			box(processColor, started, pod.stopped(), yc, 0.06)
		}
		box(termColor, pod.Terminating, pod.Deleted, yc-0.4, 0.05)
		box(preStopColor, pod.PreStopStart, pod.PreStopEnd, yc+0.4, 0.05)
		for _, mk := range podMarks {
			for _, x := range mk.value(pod) {
				if x < p.X.Min || x > p.X.Max {
					continue
				}
				y := yc
				switch mk.name {
				case "SIGTERM", "SIGKILL":
					y += 0.22 // above the exit that often follows at once
				case "container restarted", "eviction refused":
					y -= 0.22 // below: a crashed container restarts at once, where it exited
				}
				c.DrawGlyph(mk.style, vg.Point{X: trX(x), Y: trY(y)})
			}
		}
	}
}

// laneTicks label each lane with its pod.
type laneTicks struct{ labels []string }

func (t laneTicks) Ticks(min, max float64) []plot.Tick {
	n := len(t.labels)
	ticks := make([]plot.Tick, n)
	for i, l := range t.labels {
		ticks[i] = plot.Tick{Value: float64(n-i) - 0.5, Label: l}
	}
	return ticks
}

// podsPlot is the pods panel: a lane per pod of the disrupted Deployment.
func podsPlot(s Scenario, pods []podLife, xmax float64) *plot.Plot {
	p := plot.New()
	p.X.Min, p.X.Max = 0, xmax
	p.Y.Min, p.Y.Max = 0, float64(len(pods))
	p.Y.Label.Text = "pods"
	revs := 0
	for _, pod := range pods {
		revs = max(revs, pod.Rev)
	}
	labels := make([]string, len(pods))
	for i, pod := range pods {
		labels[i] = shortPod(pod.Name)
		switch {
		case revs == 2 && pod.Rev == 1:
			labels[i] += " (old)"
		case revs == 2 && pod.Rev == 2:
			labels[i] += " (new)"
		case pod.Rev > 0:
			labels[i] += fmt.Sprintf(" (rev %d)", pod.Rev)
		}
	}
	p.Y.Tick.Marker = laneTicks{labels: labels}
	p.X.Tick.Label.Color = color.Transparent // the panels below carry the time axis
	p.Y.Tick.Label.Font = labelFont
	p.Add(windows{spans: rolloutWindows(s)})
	p.Add(plotter.NewGrid())
	p.Add(podLanes{pods: pods, xmax: xmax})
	// The pod events are glyphs in their lanes here; a line through them would hide them.
	var marks []chartMark
	for _, m := range marksOnAxis(s, xmax) {
		if !podMarkKinds[m.kind] {
			marks = append(marks, m)
		}
	}
	p.Add(markLines{marks: marks})
	return p
}

// podMarkKinds are the marks of pod events, which the pods panel draws in the pod's lane.
var podMarkKinds = map[cluster.EventKind]bool{cluster.PodEvicted: true, cluster.EvictionRefused: true, cluster.ContainerRestarted: true}
