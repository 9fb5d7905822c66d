package check

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"
)

func TestFromClusterReadsOnly(t *testing.T) {
	d, s, p := baseline()
	d.Namespace, s.Namespace, p.Namespace = "shop", "shop", "shop"
	other := deployment(nil)
	other.Namespace, other.Name = "elsewhere", "other"
	client := fake.NewClientset([]runtime.Object{d, s, p, other}...)
	objs, err := FromCluster(context.Background(), client, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 3 {
		t.Fatalf("read %d objects from namespace shop, want 3", len(objs))
	}
	for _, a := range client.Actions() {
		if a.GetVerb() != "list" && a.GetVerb() != "get" {
			t.Errorf("--cluster must only read: %s %s", a.GetVerb(), a.GetResource().Resource)
		}
		if a.GetNamespace() != "shop" {
			t.Errorf("%s %s in namespace %q", a.GetVerb(), a.GetResource().Resource, a.GetNamespace())
		}
	}
	res := Run(objs, Options{})
	if len(res.Findings) != 0 || res.Workloads != 1 {
		t.Errorf("compliant live objects: %+v", res)
	}
	// A live object without preStop is found as it is in a file.
	d.Spec.Template.Spec.Containers[0].Lifecycle = nil
	objs, _ = FromCluster(context.Background(), fake.NewClientset(d, s, p), "shop")
	if f := fired(t, objs, Options{}, RuleNoPrestop); len(f) != 1 || f[0].Object.Namespace != "shop" {
		t.Errorf("want no-prestop on shop/web: %+v", f)
	}
}

func TestServerMinor(t *testing.T) {
	client := fake.NewClientset()
	client.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{Major: "1", Minor: "29+"}
	n, err := ServerMinor(client)
	if err != nil || n != 29 {
		t.Fatalf("ServerMinor = %d, %v; want 29", n, err)
	}
	for in, want := range map[string]int{"1.34": 34, "v1.30.2": 30, "1.28+": 28} {
		if got, err := ParseMinor(in); err != nil || got != want {
			t.Errorf("ParseMinor(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "2.1", "1", "1.x", "latest"} {
		if _, err := ParseMinor(in); err == nil {
			t.Errorf("ParseMinor(%q) accepted", in)
		}
	}
}
