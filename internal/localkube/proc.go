package localkube

import (
	"errors"
	"os/exec"
	"runtime"
	"sync"
)

// spawner starts every child process (pods, exec probes, exec hooks) from one goroutine locked
// to its OS thread. Pdeathsig fires when the thread that forked a child exits, not the process,
// so forking from arbitrary goroutines would kill children whenever the Go runtime retires a
// thread. The thread lives until stop; it is never unlocked, so it exits with the goroutine and
// anything it forked that is somehow still alive then gets SIGKILL.
type spawner struct {
	mu     sync.RWMutex
	closed bool
	reqs   chan spawnReq
	done   chan struct{}
}

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

var errSpawnerStopped = errors.New("the embedded cluster is shutting down")

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq), done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		close(ready)
		for r := range s.reqs {
			setProcAttr(r.cmd)
			r.errc <- r.cmd.Start()
		}
		close(s.done)
	}()
	<-ready
	return s
}

// start starts cmd on the spawner's thread, in its own process group, with Pdeathsig on Linux.
func (s *spawner) start(cmd *exec.Cmd) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errSpawnerStopped
	}
	errc := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, errc: errc}
	return <-errc
}

// stop ends the spawner goroutine and its thread. Idempotent.
func (s *spawner) stop() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.reqs)
	}
	s.mu.Unlock()
	<-s.done
}
