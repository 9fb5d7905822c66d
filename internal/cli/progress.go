package cli

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/gracelab/gracelab/internal/experiment"
	"github.com/gracelab/gracelab/internal/load"
)

// The progress displays draw on stderr while a command runs: progressBar for one load run,
// drillProgress for a drill's scenarios.

// progressBar shows elapsed time, requests and errors on stderr. A nil *progressBar is off.
type progressBar struct {
	bar    *progressbar.ProgressBar
	run    *load.Run
	ticker *time.Ticker
	total  time.Duration
}

func newProgressBar(w io.Writer, run *load.Run) *progressBar {
	total := run.Config().Duration
	max := int64(-1) // unknown length: a spinner with the elapsed time
	if total > 0 {
		max = total.Milliseconds()
	}
	b := &progressBar{run: run, total: total, ticker: time.NewTicker(200 * time.Millisecond)}
	b.bar = progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(total > 0),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionClearOnFinish(),
	)
	b.update()
	return b
}

func (b *progressBar) tick() <-chan time.Time {
	if b == nil {
		return nil // blocks forever: no ticks when the bar is off
	}
	return b.ticker.C
}

func (b *progressBar) update() {
	p := b.run.Progress()
	b.bar.Describe(fmt.Sprintf("%d requests, %d errors, %d in flight", p.Requests, p.Errors, p.InFlight))
	if b.total > 0 {
		_ = b.bar.Set64(min(p.Elapsed, b.total).Milliseconds())
	}
}

// pause clears the bar so a message can be printed; the next update redraws it.
func (b *progressBar) pause() {
	if b != nil {
		_ = b.bar.Clear()
	}
}

func (b *progressBar) close() {
	if b == nil {
		return
	}
	b.ticker.Stop()
	_ = b.bar.Finish() // with ClearOnFinish: erased, and the spinner goroutine ends
	_ = b.bar.Clear()
}

// drillProgress shows a drill's progress: on a terminal a progress bar per scenario
// (the load's elapsed time against its planned length), elsewhere plain lines, one per
// phase change and one every plainEvery while load runs.
type drillProgress struct {
	w        io.Writer
	terminal bool

	now func() time.Time // the clock of plain-line mode's repeats

	mu        sync.Mutex
	bar       *progressbar.ProgressBar
	last      experiment.Progress
	lastPrint time.Time
}

// plainEvery is how often plain-line mode repeats a line while nothing else changes.
const plainEvery = 5 * time.Second

// newDrillProgress writes to w; terminal selects the progress bar.
func newDrillProgress(w io.Writer, terminal bool) *drillProgress {
	return &drillProgress{w: w, terminal: terminal, now: time.Now}
}

// update shows p; it is the experiment's Config.Progress.
func (pp *drillProgress) update(p experiment.Progress) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	changed := p.Phase != pp.last.Phase || p.Scenario != pp.last.Scenario
	pp.last = p
	if pp.terminal {
		pp.updateBar(p, changed)
		return
	}
	if now := pp.now(); changed || now.Sub(pp.lastPrint) >= plainEvery {
		pp.lastPrint = now
		fmt.Fprintln(pp.w, progressLine(p))
	}
}

func progressLine(p experiment.Progress) string {
	s := fmt.Sprintf("[%d/%d] %s: %s", p.Index, p.Total, p.Scenario, p.Phase)
	if p.Rollouts > 1 && p.Rollout > 0 {
		unit := "rollout"
		if p.Disruption != "" {
			unit = string(p.Disruption)
		}
		s += fmt.Sprintf(" (%s %d/%d)", unit, p.Rollout, p.Rollouts)
	}
	if p.Elapsed > 0 {
		s += fmt.Sprintf(", %.1fs", p.Elapsed.Seconds())
		if p.Planned > 0 {
			s += fmt.Sprintf(" of %s", p.Planned.Round(100*time.Millisecond))
		}
		s += fmt.Sprintf(", %d requests, %d errors", p.Requests, p.Errors)
	}
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

func (pp *drillProgress) updateBar(p experiment.Progress, changed bool) {
	end := p.Phase == experiment.PhaseDone || p.Phase == experiment.PhaseFailed
	if pp.bar == nil {
		if p.Elapsed == 0 || end {
			if changed {
				fmt.Fprintln(pp.w, progressLine(p))
			}
			return
		}
		pp.bar = progressbar.NewOptions64(p.Planned.Milliseconds(),
			progressbar.OptionSetWriter(pp.w),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionShowDescriptionAtLineEnd(),
		)
	}
	if end {
		_ = pp.bar.Finish()
		pp.bar = nil
		fmt.Fprintln(pp.w)
		fmt.Fprintln(pp.w, progressLine(p))
		return
	}
	if max := p.Planned.Milliseconds(); max > 0 && max != pp.bar.GetMax64() {
		pp.bar.ChangeMax64(max)
	}
	// No render throttle: updates come every experiment.DefaultProgressEvery anyway.
	_ = pp.bar.Set64(min(p.Elapsed.Milliseconds(), pp.bar.GetMax64()))
	pp.bar.Describe(fmt.Sprintf("[%d/%d] %s %s: %d requests, %d errors", p.Index, p.Total, p.Scenario, p.Phase, p.Requests, p.Errors))
}
