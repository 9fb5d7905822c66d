package experiment

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// ProgressPrinter shows a drill's progress: on a terminal a progress bar per scenario
// (the load's elapsed time against its planned length), elsewhere plain lines, one per
// phase change and one every PlainEvery while load runs.
type ProgressPrinter struct {
	w        io.Writer
	terminal bool

	mu        sync.Mutex
	bar       *progressbar.ProgressBar
	last      Progress
	lastPrint time.Time
}

// PlainEvery is how often plain-line mode repeats a line while nothing else changes.
const PlainEvery = 5 * time.Second

// NewProgressPrinter writes to w; terminal selects the progress bar.
func NewProgressPrinter(w io.Writer, terminal bool) *ProgressPrinter {
	return &ProgressPrinter{w: w, terminal: terminal}
}

// Update shows p. Use it as Config.Progress.
func (pp *ProgressPrinter) Update(p Progress) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	changed := p.Phase != pp.last.Phase || p.Scenario != pp.last.Scenario
	pp.last = p
	if pp.terminal {
		pp.updateBar(p, changed)
		return
	}
	if changed || time.Since(pp.lastPrint) >= PlainEvery {
		pp.lastPrint = time.Now()
		fmt.Fprintln(pp.w, line(p))
	}
}

func line(p Progress) string {
	s := fmt.Sprintf("[%d/%d] %s: %s", p.Index, p.Total, p.Scenario, p.Phase)
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

func (pp *ProgressPrinter) updateBar(p Progress, changed bool) {
	end := p.Phase == PhaseDone || p.Phase == PhaseFailed
	if pp.bar == nil {
		if p.Elapsed == 0 || end {
			if changed {
				fmt.Fprintln(pp.w, line(p))
			}
			return
		}
		pp.bar = progressbar.NewOptions64(p.Planned.Milliseconds(),
			progressbar.OptionSetWriter(pp.w),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionShowDescriptionAtLineEnd(),
		)
	}
	if end {
		_ = pp.bar.Finish()
		pp.bar = nil
		fmt.Fprintln(pp.w)
		fmt.Fprintln(pp.w, line(p))
		return
	}
	if max := p.Planned.Milliseconds(); max > 0 && max != pp.bar.GetMax64() {
		pp.bar.ChangeMax64(max)
	}
	// Set first: Describe renders, and Set alone is throttled.
	_ = pp.bar.Set64(min(p.Elapsed.Milliseconds(), pp.bar.GetMax64()))
	pp.bar.Describe(fmt.Sprintf("[%d/%d] %s %s: %d requests, %d errors", p.Index, p.Total, p.Scenario, p.Phase, p.Requests, p.Errors))
}
