package localkube

import (
	"time"

	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/clock"
)

// The kubelet's restart back-off for a container that died (restartPolicy Always), with
// client-go's flowcontrol.Backoff as the kubelet uses it: the first restart is at once; a
// container that dies again within its back-off waits 10s, then 20s, 40s ... up to 5 minutes,
// counted from its exit; once it has run for 10 minutes the back-off starts over. Meanwhile
// the pod keeps its address and network, so callers are refused rather than black-holed.
// The kubelet backs off every container alike (kuberuntime's doBackOff, keyed by pod and
// container): init containers, which a Deployment's restartPolicy Always restarts until they
// succeed, sidecars and main containers; a container that failed to start (a StartError)
// counts as one that exited.

const (
	restartBackoffInitial = 10 * time.Second
	restartBackoffMax     = 5 * time.Minute
	restartBackoffReset   = 10 * time.Minute // running this long without a crash resets it
)

// restartBackoff is one container's back-off.
type restartBackoff struct {
	bo       *flowcontrol.Backoff
	exitedAt time.Time
}

func newRestartBackoff(clk clock.Clock) *restartBackoff {
	bo := flowcontrol.NewFakeBackOff(restartBackoffInitial, restartBackoffMax, clk)
	bo.HasExpiredFunc = func(eventTime, lastUpdate time.Time, _ time.Duration) bool {
		return eventTime.Sub(lastUpdate) > restartBackoffReset
	}
	return &restartBackoff{bo: bo}
}

const restartKey = "container"

// exited returns how long to wait before restarting a container that exited at t.
func (r *restartBackoff) exited(t time.Time) time.Duration {
	r.exitedAt = t
	if !r.bo.IsInBackOffSince(restartKey, t) {
		return 0
	}
	return max(r.bo.Get(restartKey)-r.bo.Clock.Since(t), 0)
}

// restarting moves the back-off on as the container restarts, as the kubelet's sync does.
func (r *restartBackoff) restarting() {
	r.bo.Next(restartKey, r.exitedAt)
}

// restartLoop runs a container's starts with the back-off: run starts it once, waits for that
// run to end and says whether to start it again (it crashed, failed to start, or an init
// container failed); pause waits out the back-off and says whether the pod still wants the
// container. The first start and the first restart are at once.
func restartLoop(clk clock.Clock, pause func(time.Duration) bool, run func() (again bool)) {
	r := newRestartBackoff(clk)
	wait, restarting := time.Duration(0), false
	for pause(wait) {
		if restarting {
			r.restarting()
		}
		if !run() {
			return
		}
		wait, restarting = r.exited(clk.Now()), true
	}
}
