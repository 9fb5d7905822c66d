package cli

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gracelab/gracelab/internal/kube"
	"github.com/gracelab/gracelab/internal/kube/kubetest"
)

// The cluster of drill --cluster -f on a fake cluster: Up creates a namespace of its own
// (its name reaches the load Job), the target from here is the Service's ClusterIP with the
// URL's path, Down deletes the namespace; an apply that fails and a cancelled Up delete it too.
func TestDrillClusterFilesNamespaceLifecycle(t *testing.T) {
	o := &drillOptions{files: []string{"../../k8s/v1-no-graceful"}}
	target, _ := url.Parse("http://downstream:8000/api/cart?x=1")
	files, deployment, err := o.readClusterFiles(strings.NewReader(""), "", target)
	if err != nil || deployment != "downstream" && deployment != "upstream" {
		t.Fatalf("readClusterFiles: %v, %q", err, deployment)
	}
	opts := kube.Options{Manifests: files.fsys, TargetService: files.service, RolloutTimeout: 5 * time.Second,
		DeleteTimeout: 5 * time.Second, PollInterval: 5 * time.Millisecond}
	gone := func(cs *fake.Clientset, ns string) bool {
		_, err := cs.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}
	newCluster := func(cs *fake.Clientset) (*appliedCluster, *string) {
		c, err := kube.New(cs, opts)
		if err != nil {
			t.Fatal(err)
		}
		known := new(string)
		return &appliedCluster{Cluster: c, client: cs, target: target, files: files, namespaceKnown: func(ns string) { *known = ns }}, known
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Success.
	cs := kubetest.NewClientset()
	kubetest.Start(t, cs)
	c, known := newCluster(cs)
	if err := c.Up(ctx); err != nil {
		t.Fatalf("Up: %v", err)
	}
	ns := c.Namespace()
	if !strings.HasPrefix(ns, "gracelab-") || *known != ns {
		t.Fatalf("namespace %q, told %q: want a generated one, told to the load", ns, *known)
	}
	if got := c.Target(); !strings.HasPrefix(got, "http://127.2.0.") || !strings.HasSuffix(got, ":8000/api/cart?x=1") {
		t.Errorf("target from here %q: want the Service's ClusterIP, port and the URL's path", got)
	}
	if err := c.Down(ctx); err != nil || !gone(cs, ns) {
		t.Errorf("Down: %v; namespace %s gone: %v", err, ns, gone(cs, ns))
	}

	// An apply the cluster refuses: Up fails and deletes the namespace it made.
	cs = kubetest.NewClientset()
	cs.PrependReactor("patch", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(metav1.SchemeGroupVersion.WithResource("deployments").GroupResource(), "upstream", errors.New("no"))
	})
	kubetest.Start(t, cs) // after the reactor: the fake's reactor chain is not safe to change while used
	c, known = newCluster(cs)
	if err := c.Up(ctx); err == nil {
		t.Fatal("Up succeeded although the apply was refused")
	}
	if ns := c.Namespace(); ns == "" || !gone(cs, ns) || *known != "" {
		t.Errorf("after a failed Up: namespace %q gone %v, told %q", ns, gone(cs, ns), *known)
	}

	// Ctrl-C while the Deployments roll out (no controller: they never do).
	cs = kubetest.NewClientset()
	c, _ = newCluster(cs)
	cctx, ccancel := context.WithCancel(ctx)
	cs.PrependReactor("patch", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		ccancel() // the interrupt arrives as the Deployments are applied
		return false, nil, nil
	})
	if err := c.Up(cctx); err == nil {
		t.Fatal("Up succeeded although cancelled")
	}
	ccancel()
	if ns := c.Namespace(); ns == "" || !gone(cs, ns) {
		t.Errorf("after a cancelled Up: namespace %q gone %v", ns, gone(cs, ns))
	}
}
