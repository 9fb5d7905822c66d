// Package k8s holds the manifests of the three scenarios, the single source of truth for both
// the embedded cluster and a real one, embedded so an installed gracelab binary has them too.
// Each directory holds upstream.yaml and downstream.yaml (a Deployment and a Service each).
package k8s

import "embed"

// FS holds the scenario directories listed in Scenarios.
//
//go:embed v1-no-graceful v2-graceful v3-graceful-retry
var FS embed.FS

// Scenarios are the manifest directories in FS, in the order a drill runs them.
var Scenarios = []string{"v1-no-graceful", "v2-graceful", "v3-graceful-retry"}
