// Package k8s holds the manifests of the built-in scenarios (v1, v2, v3, and the pooled-POST
// pair v2race and v2pooled of docs/keepalive.md), the single source of truth for both
// the embedded cluster and a real one, embedded so an installed gracelab binary has them too.
// Each directory holds upstream.yaml and downstream.yaml (a Deployment and a Service each).
package k8s

import "embed"

// FS holds the scenario directories listed in Scenarios.
//
//go:embed v1-no-graceful v2-graceful v3-graceful-retry v2pooled-post v2race-post-unfixed
var FS embed.FS

// Scenarios are the manifest directories in FS, in the order a drill runs them.
var Scenarios = []string{"v1-no-graceful", "v2-graceful", "v2pooled-post", "v2race-post-unfixed", "v3-graceful-retry"}
