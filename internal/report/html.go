package report

import (
	"encoding/base64"
	"html/template"
	"io"
	"time"
)

// htmlPage is report.html: one file with inline CSS and the charts as data: URLs, so it opens
// anywhere without a network or the files beside it.
var htmlPage = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>gracelab report {{.Created}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1260px; padding: 0 1rem; color: #222; line-height: 1.45; }
h1, h2, h3 { line-height: 1.2; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: .3rem .7rem; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.sub { padding-left: 1.6rem; color: #555; }
th { background: #f3f3f3; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
.warning { background: #fff4d6; padding: .4rem .7rem; border-left: 4px solid #e0a800; }
.failure { background: #fde2e2; padding: .4rem .7rem; border-left: 4px solid #c00; }
code { background: #f3f3f3; padding: 0 .2rem; }
</style>
</head>
<body>
<h1>gracelab report</h1>
<p>Created {{.Created}}. Each scenario ran load against the downstream while the upstream Deployment went through a {{.Disruption}}; every request has exactly one outcome, and any non-2xx answer or body whose status is not ok counts as an error.</p>
<h2>Settings</h2>
<table>
{{range .Settings}}<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>
{{end}}</table>
<h2>Results</h2>
<table>
<tr><th></th>{{range .Titles}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr><td{{if .Indent}} class="sub"{{end}}>{{.Label}}</td>{{range .Cells}}<td class="num">{{.}}</td>{{end}}</tr>
{{end}}</table>
{{with .Combined}}<p><img src="{{.}}" alt="Requests and errors per second, every scenario on one time axis"></p>{{end}}
{{with .RolloutsChart}}<p><img src="{{.}}" alt="Errors per {{$.Unit}}, per scenario"></p>{{end}}
{{with .Comparisons}}<h2>Comparisons</h2>
<ul>{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{with .Breaches}}<h2>Thresholds breached</h2>
<ul>{{range .}}<li class="failure">{{.}}</li>{{end}}</ul>{{end}}
<h2>What happened</h2>
{{range .Scenarios}}<h3>{{.Title}}</h3>
{{if .Manifests}}<p>Manifests: <code>{{.Manifests}}</code></p>{{end}}
{{range .Warnings}}<p class="warning">Warning: {{.}}</p>
{{end}}{{if .Failure}}<p class="failure">The run failed: {{.Failure}}</p>
{{end}}{{range .Story}}<p>{{.}}</p>
{{end}}{{with .Mechanisms}}<p>How the requests were lost:</p>
<ul>{{range .}}<li>{{.}}</li>{{end}}</ul>
{{end}}{{range .Tables}}<table>
<tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
{{end}}{{with .Chart}}<p><img src="{{.}}" alt="timeline chart"></p>{{end}}
{{end}}
<p>The time axis counts seconds from the start of the load. Top panels: requests sent per second (line) and failed requests per second by class (bars). Lower panel: p50, p99 and max latency per second, log scale. Vertical lines: cluster events.</p>
</body>
</html>
`))

type htmlRow struct {
	Label  string
	Indent bool
	Cells  []string
}

type htmlScenario struct {
	Title, Manifests, Failure   string
	Warnings, Story, Mechanisms []string
	Tables                      []htmlTable
	Chart                       template.URL
}

type htmlTable struct {
	Header []string
	Rows   [][]string
}

// WriteHTML writes report.html. images maps chart PNG names (as in charts) to their bytes.
func WriteHTML(w io.Writer, r *Report, charts *ChartFiles, images map[string][]byte) error {
	dataURL := func(name string) template.URL {
		b, ok := images[name]
		if name == "" || !ok {
			return ""
		}
		// The bytes are our own PNG, so the data: URL is safe to mark as such.
		return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b))
	}
	page := struct {
		Created       string
		Disruption    string
		Settings      [][2]string
		Titles        []string
		Rows          []htmlRow
		Combined      template.URL
		RolloutsChart template.URL
		Unit          string
		Comparisons   []string
		Breaches      []string
		Scenarios     []htmlScenario
	}{Created: r.Created.UTC().Format(time.RFC3339), Disruption: disruptionNoun(r.Settings.Disruption), Settings: settingsLines(r),
		Unit: wordsFor(r.Scenarios...).unit}
	page.Comparisons = comparisonLines(r.Comparisons)
	for _, b := range r.Breaches {
		page.Breaches = append(page.Breaches, breachLine(b))
	}
	for _, s := range r.Scenarios {
		page.Titles = append(page.Titles, titleOf(s))
	}
	for _, rw := range tableRows(r) {
		page.Rows = append(page.Rows, htmlRow{Label: rw.label, Indent: rw.indent, Cells: rw.cells})
	}
	if charts != nil {
		page.Combined = dataURL(charts.Combined.PNG)
		page.RolloutsChart = dataURL(charts.Rollouts.PNG)
	}
	for i, s := range r.Scenarios {
		hs := htmlScenario{Title: titleOf(s), Manifests: s.Manifests, Warnings: s.Warnings}
		story := Story(s)
		if s.Failure != "" && len(story) > 0 {
			hs.Failure, story = s.Failure, story[1:] // shown in its own box
		}
		hs.Story = story
		hs.Mechanisms = Mechanisms(s)
		if header, rows := podRows(s); len(rows) > 0 {
			hs.Tables = append(hs.Tables, htmlTable{Header: header, Rows: rows})
		}
		if len(s.Rollouts) > 0 {
			hs.Tables = append(hs.Tables, htmlTable{Header: rolloutHeader(s), Rows: rolloutCells(s)})
		}
		if charts != nil && i < len(charts.Scenarios) {
			hs.Chart = dataURL(charts.Scenarios[i].PNG)
		}
		page.Scenarios = append(page.Scenarios, hs)
	}
	return htmlPage.Execute(w, page)
}
