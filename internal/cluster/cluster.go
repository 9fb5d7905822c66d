// Package cluster is the seam between a drill and the cluster it runs on: the embedded one
// (internal/localkube) or a real Kubernetes (internal/kube). The experiment code sees only
// this interface and the events both implementations record in the same form.
package cluster

import (
	"context"
	"time"
)

// Cluster runs one scenario's manifests and performs the rolling restart under test.
type Cluster interface {
	// Up deploys the manifests and returns once every Deployment is fully available.
	Up(ctx context.Context) error
	// Restart starts a rolling restart of a Deployment exactly as `kubectl rollout restart`:
	// a new pod-template revision. It returns once the restart has been triggered.
	Restart(ctx context.Context, deployment string) error
	// WaitSettled blocks until the Deployment's rollout is complete (as `kubectl rollout
	// status` judges it) and no pod of an old revision is left, terminating or not.
	WaitSettled(ctx context.Context, deployment string) error
	// Target is the URL of the downstream Service that load should be sent to.
	Target() string
	// Events returns every event recorded so far, in the order they happened.
	Events() []Event
	// Down removes everything Up created; it must leave nothing running.
	Down(ctx context.Context) error
}

// EventKind names one observable change of a pod, an endpoint or the rollout.
type EventKind string

// The event kinds. Kinds marked "embedded only" are seen only by the embedded cluster,
// which owns the kubelet and the proxy; a real cluster's API does not report them.
const (
	RestartTriggered  EventKind = "restart_triggered"
	RolloutComplete   EventKind = "rollout_complete"
	PodCreated        EventKind = "pod_created"
	PodStarted        EventKind = "pod_started"
	PodReady          EventKind = "pod_ready"
	PodNotReady       EventKind = "pod_not_ready"
	PodTerminating    EventKind = "pod_terminating"  // deletion requested: grace period starts
	PreStopStarted    EventKind = "prestop_started"  // embedded only
	PreStopFinished   EventKind = "prestop_finished" // embedded only
	SIGTERMSent       EventKind = "sigterm"          // embedded only
	SIGKILLSent       EventKind = "sigkill"          // embedded only
	PodExited         EventKind = "pod_exited"
	PodDeleted        EventKind = "pod_deleted"
	EndpointAdded     EventKind = "endpoint_added"     // a ready endpoint now receives new connections
	EndpointRemoved   EventKind = "endpoint_removed"   // no longer receives new connections
	EndpointNotReady  EventKind = "endpoint_not_ready" // API view: ready=false (may still be serving)
	PodNetworkRemoved EventKind = "pod_network_removed"
)

// EndpointTerminating is the API view of an endpoint whose pod's deletion began
// (conditions.terminating=true); a real cluster reports it, the embedded one may too.
const EndpointTerminating EventKind = "endpoint_terminating"

// The kinds of disruptions other than the rolling restart: eviction (alone or in a node
// drain), a container's crash and restart, and scaling.
const (
	PodEvicted         EventKind = "pod_evicted"         // the Eviction API accepted an eviction
	EvictionRefused    EventKind = "eviction_refused"    // HTTP 429: a PodDisruptionBudget refused it; Detail says why
	NodeCordoned       EventKind = "node_cordoned"       // Node names the node
	NodeUncordoned     EventKind = "node_uncordoned"     // Node names the node
	ContainerRestarted EventKind = "container_restarted" // the kubelet restarted a dead container; Detail holds restartCount
	Scaled             EventKind = "scaled"              // a Deployment's replicas changed; Detail "3 -> 2"
)

// Source says who observed an event.
type Source string

const (
	SourceEmbedded Source = "embedded" // the embedded cluster's own kubelet, controller or proxy
	SourceAPI      Source = "api"      // a watch on a real cluster's API, timestamped on delivery
	SourceDrill    Source = "drill"    // the drill itself (for example, when it triggered the restart)
)

// Event is one timestamped change, the unit of the report's timeline.
type Event struct {
	Time       time.Time `json:"time"`
	Kind       EventKind `json:"kind"`
	Deployment string    `json:"deployment,omitempty"`
	Pod        string    `json:"pod,omitempty"`
	Revision   string    `json:"revision,omitempty"` // pod-template hash or revision number
	Node       string    `json:"node,omitempty"`     // the node, for node events and where known
	Detail     string    `json:"detail,omitempty"`   // exit code, endpoint address, reason
	Source     Source    `json:"source"`
}
