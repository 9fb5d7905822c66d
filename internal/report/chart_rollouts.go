package report

// The rollouts chart: errors per rollout, one bar per scenario.

import (
	"errors"
	"image/color"
	"io"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// hasRollouts reports whether any scenario ran rollouts to chart one by one.
func hasRollouts(r *Report) bool {
	for _, s := range r.Scenarios {
		if len(s.Rollouts) > 0 {
			return true
		}
	}
	return false
}

// scenarioColors tell scenarios apart in the rollouts chart.
var scenarioColors = []color.RGBA{rgb(214, 39, 40), rgb(31, 119, 180), rgb(44, 160, 44), rgb(148, 103, 189), rgb(255, 127, 14), rgb(140, 86, 75)}

// WriteRolloutChart renders the errors of each rollout, a group of bars per rollout with one
// bar per scenario: a rare loss shows as one bar among many empty slots.
func WriteRolloutChart(w io.Writer, r *Report, format Format) (err error) {
	if !hasRollouts(r) {
		return errors.New("no scenario ran rollouts to chart")
	}
	defer recoverPlot(&err)
	p := plot.New()
	unit := wordsFor(r.Scenarios...).unit
	p.Title.Text = "Errors per " + unit
	p.X.Label.Text = unit
	p.Y.Label.Text = "failed requests"
	p.Y.Min = 0
	p.Y.Tick.Marker = plainTicks{}
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.TextStyle.Font = font.From(plot.DefaultFont, vg.Points(10))
	most, n := 0, len(r.Scenarios)
	for _, s := range r.Scenarios {
		most = max(most, len(s.Rollouts))
	}
	width := px(math.Min(40, 900/float64(most*n+most)))
	ymax := 1.0
	for i, s := range r.Scenarios {
		vals := make(plotter.Values, most)
		for _, ro := range s.Rollouts {
			if ro.Index >= 1 && ro.Index <= most {
				vals[ro.Index-1] = float64(ro.Errors)
				ymax = math.Max(ymax, float64(ro.Errors))
			}
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return err
		}
		bars.Color = scenarioColors[i%len(scenarioColors)]
		bars.LineStyle.Width = 0
		bars.Offset = width * vg.Length(float64(i)-float64(n-1)/2)
		p.Add(bars)
		p.Legend.Add(titleOf(s), bars)
	}
	p.Y.Max = ymax * 1.25 // room for the legend
	labels := make([]string, most)
	for i := range labels {
		labels[i] = strconv.Itoa(i + 1)
	}
	p.NominalX(labels...)
	p.X.Min, p.X.Max = -0.6, float64(most)-0.4 // room for the outer bars of each group
	p.Legend.Left = true
	p.Legend.XOffs, p.Legend.YOffs = px(8), -px(4)
	cv, err := newCanvas(format, ChartWidth, RolloutsHeight)
	if err != nil {
		return err
	}
	p.Draw(draw.New(cv))
	_, err = cv.WriteTo(w)
	return err
}
