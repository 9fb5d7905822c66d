package cli

import (
	"os"
	"syscall"
	"testing"
)

func TestInterruptsFirstCancelsSecondIsHard(t *testing.T) {
	signals := make(chan os.Signal)
	in, stop := watchInterrupts(Streams{Signals: signals})
	defer stop()
	select {
	case <-in.ctx.Done():
		t.Fatal("cancelled before any signal")
	default:
	}
	signals <- syscall.SIGTERM
	<-in.ctx.Done()
	if !in.interrupted() {
		t.Fatal("ctx ended by a signal, yet interrupted() is false")
	}
	select {
	case <-in.hard:
		t.Fatal("hard after one signal")
	default:
	}
	signals <- os.Interrupt
	<-in.hard
	if _, err := await(in, make(chan int)); err != errInterruptedTwice {
		t.Fatalf("await after the second signal: %v", err)
	}
}

func TestInterruptsStopIsNoInterrupt(t *testing.T) {
	in, stop := watchInterrupts(Streams{Signals: make(chan os.Signal)})
	done := make(chan int, 1)
	done <- 7
	if v, err := await(in, done); v != 7 || err != nil {
		t.Fatalf("await = %d, %v; want 7, nil", v, err)
	}
	stop()
	<-in.ctx.Done() // stop releases whatever waits on ctx
	if in.interrupted() {
		t.Fatal("stop is not an interrupt")
	}
}
