package check

import (
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// thousand is 1,000 objects: 400 Deployments (half of them without preStop), their 400
// Services and 200 PDBs, all in one namespace, so every Service and PDB is matched against
// every Deployment.
func thousand() []Object {
	var objs []runtime.Object
	for i := range 400 {
		labels := map[string]string{"app": fmt.Sprintf("app-%d", i)}
		d := deployment(func(d *appsv1.Deployment) {
			d.Name = fmt.Sprintf("app-%d", i)
			d.Spec.Template.Labels = labels
			if i%2 == 0 {
				d.Spec.Template.Spec.Containers[0].Lifecycle = nil
			}
		})
		s := service(func(s *corev1.Service) { s.Name, s.Spec.Selector = d.Name, labels })
		objs = append(objs, d, s)
		if i%2 == 0 {
			objs = append(objs, pdb(func(p *policyv1.PodDisruptionBudget) { p.Name, p.Spec.Selector.MatchLabels = d.Name, labels }))
		}
	}
	return objects(objs...)
}

func BenchmarkRun1000Objects(b *testing.B) {
	objs := thousand()
	if len(objs) != 1000 {
		b.Fatalf("%d objects", len(objs))
	}
	b.ReportAllocs()
	for b.Loop() {
		res := Run(objs, Options{})
		if res.Workloads != 400 {
			b.Fatal(res.Workloads)
		}
	}
}
