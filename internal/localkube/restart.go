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
