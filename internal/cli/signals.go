package cli

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
)

// interrupts is the one way every command handles SIGINT and SIGTERM. The first signal
// cancels ctx: the command stops what it is doing and still reports what it has. The second
// closes hard: the command returns at once, without a report.
type interrupts struct {
	ctx  context.Context
	hard <-chan struct{}
}

// errInterruptedTwice is what a command returns when hard closes.
var errInterruptedTwice = &ExitError{Code: ExitFailed, Err: errors.New("interrupted twice: exiting at once without a report")}

// watchInterrupts watches streams.Signals, or this process's SIGINT and SIGTERM when it is
// nil. stop releases the signals and the watcher; call it before returning.
func watchInterrupts(streams Streams) (in interrupts, stop func()) {
	signals := streams.Signals
	release := func() {}
	if signals == nil {
		ch := make(chan os.Signal, 2)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		signals, release = ch, func() { signal.Stop(ch) }
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	hard := make(chan struct{})
	done := make(chan struct{})
	go func() {
		select {
		case <-signals:
			cancel(errInterrupted)
		case <-done:
			return
		}
		select {
		case <-signals:
			close(hard)
		case <-done:
		}
	}()
	return interrupts{ctx: ctx, hard: hard}, func() {
		close(done)
		release()
		cancel(nil)
	}
}

// errInterrupted is ctx's cause after the first signal.
var errInterrupted = errors.New("interrupted")

// interrupted says whether ctx ended because of a signal rather than stop.
func (in interrupts) interrupted() bool {
	return errors.Is(context.Cause(in.ctx), errInterrupted)
}

// await returns what ch delivers, or errInterruptedTwice when the second signal comes first.
func await[T any](in interrupts, ch <-chan T) (T, error) {
	select {
	case v := <-ch:
		return v, nil
	case <-in.hard:
		var zero T
		return zero, errInterruptedTwice
	}
}
