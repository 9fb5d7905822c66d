package localkube

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/gracelab/gracelab/internal/cluster"
)

// The Deployment controller, modelled on Kubernetes' pkg/controller/deployment (rolling.go:
// reconcileNewReplicaSet, reconcileOldReplicaSets, cleanupUnhealthyReplicas,
// scaleDownOldReplicaSetsForRollingUpdate; recreate.go) and the ReplicaSet controller's choice
// of pods to delete. As there: pods being deleted (terminating) are not counted, so a long
// preStop never blocks the next surge; available pods never drop below replicas-maxUnavailable
// and non-terminating pods never exceed replicas+maxSurge.

type deployment struct {
	spec     *deploySpec
	template corev1.PodTemplateSpec // current revision's template
	sets     []*replicaSet          // in creation order
	current  *replicaSet
	complete bool // last rollout state recorded
}

type replicaSet struct {
	hash     string
	template corev1.PodTemplateSpec
	desired  int32
	created  time.Time
	pods     []*pod // not yet deleted, including terminating ones
}

func labelSet(m map[string]string) labels.Set { return labels.Set(m) }

// setTemplate makes t the current revision, reusing a ReplicaSet whose template hash matches
// (as a rollback would) or creating one with 0 replicas.
func (d *deployment) setTemplate(t corev1.PodTemplateSpec) {
	d.template = t
	hash := templateHash(t)
	for _, rs := range d.sets {
		if rs.hash == hash {
			d.current = rs
			return
		}
	}
	t = *t.DeepCopy()
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	t.Labels[templateHashLabel] = hash
	rs := &replicaSet{hash: hash, template: t, created: time.Now()}
	d.sets = append(d.sets, rs)
	d.current = rs
}

// old returns the ReplicaSets that are not current, oldest first.
func (d *deployment) old() []*replicaSet {
	var out []*replicaSet
	for _, rs := range d.sets {
		if rs != d.current {
			out = append(out, rs)
		}
	}
	return out
}

func (rs *replicaSet) active() []*pod {
	var out []*pod
	for _, p := range rs.pods {
		if !p.terminating {
			out = append(out, p)
		}
	}
	return out
}

func (rs *replicaSet) available(minReady time.Duration, now time.Time) int32 {
	var n int32
	for _, p := range rs.active() {
		if p.available(minReady, now) {
			n++
		}
	}
	return n
}

// status is what `kubectl rollout status` reads: non-terminating pods, those of the current
// revision, ready ones and available ones (ready for minReadySeconds).
func (d *deployment) status() (replicas, updated, ready, available int32) {
	now := time.Now()
	for _, rs := range d.sets {
		for _, p := range rs.active() {
			replicas++
			if rs == d.current {
				updated++
				if p.ready {
					ready++
				}
				if p.available(d.spec.minReady, now) {
					available++
				}
			}
		}
	}
	return
}

// rolledOut is kubectl's verdict: updated = replicas, no old replica left that is not
// terminating, all updated ones available.
func (d *deployment) rolledOut() bool {
	if d.current == nil {
		return false
	}
	replicas, updated, _, available := d.status()
	return updated >= d.spec.replicas && replicas <= updated && available >= updated
}

// settled: rolled out, and no pod of another revision exists any more, terminating or not.
func (d *deployment) settled() bool {
	if !d.rolledOut() {
		return false
	}
	for _, rs := range d.old() {
		if len(rs.pods) > 0 {
			return false
		}
	}
	return true
}

// rsCount is one ReplicaSet as the rollout arithmetic sees it.
type rsCount struct{ desired, available int32 }

// rollingStep is one sync of a RollingUpdate Deployment: it returns the new desired replica
// counts of the new ReplicaSet and of the old ones (oldest first).
func rollingStep(replicas, maxSurge, maxUnavailable int32, newRS rsCount, old []rsCount) (int32, []int32) {
	oldDesired := make([]int32, len(old))
	var oldCount int32
	for i, o := range old {
		oldDesired[i] = o.desired
		oldCount += o.desired
	}
	// reconcileNewReplicaSet: scale up within replicas+maxSurge.
	if newRS.desired > replicas {
		return replicas, oldDesired
	}
	if newRS.desired < replicas {
		maxTotal := replicas + maxSurge
		if current := newRS.desired + oldCount; current < maxTotal {
			up := min(maxTotal-current, replicas-newRS.desired)
			return newRS.desired + up, oldDesired
		}
	}
	// reconcileOldReplicaSets: scale down within replicas-maxUnavailable.
	if oldCount == 0 {
		return newRS.desired, oldDesired
	}
	minAvailable := replicas - maxUnavailable
	newUnavailable := newRS.desired - newRS.available
	maxScaledDown := newRS.desired + oldCount - minAvailable - newUnavailable
	if maxScaledDown <= 0 {
		return newRS.desired, oldDesired
	}
	// cleanupUnhealthyReplicas: unavailable old pods go first; they cost no availability.
	var cleaned int32
	for i, o := range old {
		if cleaned >= maxScaledDown {
			break
		}
		if oldDesired[i] == 0 || oldDesired[i] == o.available {
			continue
		}
		n := min(maxScaledDown-cleaned, oldDesired[i]-o.available)
		oldDesired[i] -= n
		cleaned += n
	}
	// scaleDownOldReplicaSetsForRollingUpdate
	available := newRS.available
	for _, o := range old {
		available += o.available
	}
	if available <= minAvailable {
		return newRS.desired, oldDesired
	}
	total := available - minAvailable
	var scaled int32
	for i := range old {
		if scaled >= total {
			break
		}
		if oldDesired[i] == 0 {
			continue
		}
		n := min(oldDesired[i], total-scaled)
		oldDesired[i] -= n
		scaled += n
	}
	return newRS.desired, oldDesired
}

// controllerLoop runs the Deployment and ReplicaSet controllers' syncs. A sync acts a drawn
// reaction time after the change that triggered it (watch delivery, work queue, API write on
// a real control plane; measuredControllerReaction) and does one step: it scales one way and
// creates or deletes pods for it. What that step wrote triggers the next sync. So a new pod's
// readiness deletes an old pod one reaction later, and the next new pod is created one more
// reaction after that, as on a real cluster (before, both happened in the same instant).
// Changes during the wait are coalesced into the sync, as a work queue does.
func (c *Cluster) controllerLoop() {
	defer c.bgWG.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.kick:
		}
		t := time.NewTimer(c.reactions.next())
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		c.mu.Lock()
		if c.state == stateStarting || c.state == stateUp {
			changed := false
			for _, d := range c.deploys {
				changed = c.syncLocked(d) || changed
			}
			if changed {
				c.kickLocked()
			}
			c.notifyLocked()
		}
		c.mu.Unlock()
	}
}

// reconcileLocked runs syncs at once until nothing changes, for Scale, which acts before it
// returns.
func (c *Cluster) reconcileLocked(d *deployment) {
	for range 20 { // each sync changes at least one count; 20 is far more than a rollout needs
		if !c.syncLocked(d) {
			return
		}
	}
}

// syncLocked is one sync of a Deployment and its ReplicaSets: one step of the rollout, then
// pods created or deleted to match. It reports whether it changed anything.
func (c *Cluster) syncLocked(d *deployment) bool {
	changed := false
	if d.spec.recreate {
		changed = c.recreateStepLocked(d)
	} else {
		changed = c.rollingStepLocked(d)
	}
	for _, rs := range d.sets {
		if c.syncReplicaSetLocked(d, rs) {
			changed = true
		}
	}
	done := d.rolledOut()
	if done && !d.complete {
		c.record(cluster.RolloutComplete, d, nil, "")
	}
	d.complete = done
	return changed
}

func (c *Cluster) rollingStepLocked(d *deployment) bool {
	now := time.Now()
	old := d.old()
	counts := make([]rsCount, len(old))
	for i, rs := range old {
		counts[i] = rsCount{rs.desired, rs.available(d.spec.minReady, now)}
	}
	nd, od := rollingStep(d.spec.replicas, d.spec.maxSurge, d.spec.maxUnavailable,
		rsCount{d.current.desired, d.current.available(d.spec.minReady, now)}, counts)
	changed := nd != d.current.desired
	d.current.desired = nd
	for i, rs := range old {
		if od[i] != rs.desired {
			rs.desired = od[i]
			changed = true
		}
	}
	return changed
}

// recreateStepLocked: scale every old ReplicaSet to 0, wait until none of their processes
// runs any more, then scale the new one up.
func (c *Cluster) recreateStepLocked(d *deployment) bool {
	changed := false
	for _, rs := range d.old() {
		if rs.desired != 0 {
			rs.desired = 0
			changed = true
		}
	}
	if changed {
		return true
	}
	for _, rs := range d.old() {
		for _, p := range rs.pods {
			if p.running || !p.exitedFinal {
				return false
			}
		}
	}
	if d.current.desired != d.spec.replicas {
		d.current.desired = d.spec.replicas
		return true
	}
	return false
}

// syncReplicaSetLocked creates or deletes pods until the ReplicaSet's non-terminating pods
// match its desired count.
func (c *Cluster) syncReplicaSetLocked(d *deployment, rs *replicaSet) bool {
	active := rs.active()
	diff := int(rs.desired) - len(active)
	switch {
	case diff > 0:
		for range diff {
			c.createPodLocked(d, rs)
		}
		return true
	case diff < 0:
		c.rankForDeletionLocked(d, active)
		for _, p := range active[:-diff] {
			c.deletePodLocked(p, "scaled down")
		}
		return true
	}
	return false
}

// createPodLocked creates a pod of rs and starts its kubelet.
func (c *Cluster) createPodLocked(d *deployment, rs *replicaSet) {
	var ports []int32
	for _, p := range templatePorts(&rs.template.Spec) {
		ports = append(ports, p.ContainerPort)
	}
	inUse := map[string]bool{}
	for _, p := range c.pods {
		inUse[p.ip] = true
	}
	name := d.spec.name + "-" + rs.hash + "-" + rand.String(5)
	p := &pod{
		name:      name,
		uid:       string(uuid.NewUUID()),
		d:         d,
		rs:        rs,
		labels:    rs.template.Labels,
		created:   time.Now(),
		deleteCh:  make(chan struct{}),
		net:       &podNet{},
		logPath:   c.logPathFor(name),
		grace:     defaultGrace,
		scheduled: make(chan struct{}),
	}
	c.bindLocked(p)
	if g := rs.template.Spec.TerminationGracePeriodSeconds; g != nil {
		p.grace = time.Duration(*g) * time.Second
	}
	ip, portMap, err := c.addrs.allocPod(ports, inUse)
	rs.pods = append(rs.pods, p)
	c.pods[name] = p
	if err != nil {
		// No address: the pod exists but cannot run, as a pod stuck in ContainerCreating.
		p.lastExit = "no pod address: " + err.Error()
		c.record(cluster.PodCreated, nil, p, "no address: "+err.Error())
		if c.state == stateStarting {
			c.upErr = err
		}
		c.podWG.Add(1)
		go c.runPod(p)
		return
	}
	p.ip, p.portMap = ip, portMap
	if err := c.podEnvsLocked(p, d); err != nil {
		// Checked by New for a stand-in pod: only this pod's own fields could fail here.
		p.ip = ""
		p.lastExit = err.Error()
		c.record(cluster.PodCreated, nil, p, "cannot run: "+err.Error())
		if c.state == stateStarting {
			c.upErr = fmt.Errorf("pod %s: %w", p.name, err)
		}
		c.podWG.Add(1)
		go c.runPod(p)
		return
	}
	c.record(cluster.PodCreated, nil, p, "ip "+ip+pendingNote(p))
	c.podWG.Add(1)
	go c.runPod(p)
}

// deletePodLocked starts a graceful deletion: the grace period counts from now.
func (c *Cluster) deletePodLocked(p *pod, reason string) {
	if p.terminating {
		return
	}
	p.terminating = true
	p.deletedAt = time.Now()
	c.record(cluster.PodTerminating, nil, p, strings.TrimSpace(reason+", grace period "+p.grace.String()))
	close(p.deleteCh)
	c.syncEndpointsLocked()
}

// podEnvsLocked resolves the command line and environment of the pod's init containers
// (sidecars among them) and containers.
func (c *Cluster) podEnvsLocked(p *pod, d *deployment) error {
	spec := &p.rs.template.Spec
	add := func(ct corev1.Container, role ctrRole, imageArgs []string) error {
		x := newCtr(ct, role)
		env, resolved, err := c.podEnvLocked(p, &x.spec)
		if err != nil {
			return err
		}
		if x.argv, err = c.argvLocked(&x.spec, resolved, imageArgs); err != nil {
			return err
		}
		x.env = env
		p.ctrs = append(p.ctrs, x)
		return nil
	}
	for i, ic := range spec.InitContainers {
		role := roleInit
		if ic.RestartPolicy != nil && *ic.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			role = roleSidecar
		}
		if err := add(ic, role, d.spec.initArgs[i]); err != nil {
			return err
		}
	}
	for i, ct := range spec.Containers {
		if err := add(ct, roleMain, d.spec.args[i]); err != nil {
			return err
		}
	}
	return nil
}
