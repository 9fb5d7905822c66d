package kube

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// apiError turns a failed API call into one line that says what was attempted and what to do.
// The original error stays wrapped, so apierrors.IsForbidden and friends still work.
func apiError(err error, verb, resource, namespace string) error {
	if err == nil {
		return nil
	}
	where := "cluster-wide"
	if namespace != "" {
		where = fmt.Sprintf("in namespace %q", namespace)
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s %s %s: %w", verb, resource, where, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("permission denied: the current user may not %s %s %s (RBAC); ask for a Role granting %q on %s (see docs/real-cluster.md, RBAC): %w",
			verb, resource, where, verb, resource, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the API server rejected the credentials of the current context while trying to %s %s; log in again or choose another --context: %w", verb, resource, err)
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return fmt.Errorf("cannot reach the Kubernetes API server to %s %s (is the cluster running, is --context right?): %w", verb, resource, err)
	}
	return fmt.Errorf("%s %s %s: %w", verb, resource, where, err)
}
