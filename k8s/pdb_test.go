package k8s

import (
	"io/fs"
	"testing"
	"testing/fstest"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/gracelab/gracelab/internal/manifest"
)

// withBudget: the scenarios whose upstream has a PodDisruptionBudget (upstream-pdb.yaml).
var withBudget = map[string]bool{"v2-graceful": true, "v3-graceful-retry": true}

// TestBudgetsKeepOneUpstreamPod: v2's and v3's budget selects exactly the upstream's pods and
// keeps one of its two replicas through evictions.
func TestBudgetsKeepOneUpstreamPod(t *testing.T) {
	for dir := range withBudget {
		data, err := fs.ReadFile(FS, dir+"/upstream-pdb.yaml")
		if err != nil {
			t.Fatal(err)
		}
		docs, err := manifest.Read(fstest.MapFS{"pdb.yaml": {Data: data}})
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		pdb, ok := docs[0].Object.(*policyv1.PodDisruptionBudget)
		if len(docs) != 1 || !ok {
			t.Fatalf("%s: want one PodDisruptionBudget, got %v", dir, docs)
		}
		up := load(t, dir, "upstream").deploy
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		depSel, err := metav1.LabelSelectorAsSelector(up.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		if !sel.Matches(labels.Set(up.Spec.Template.Labels)) || sel.String() != depSel.String() {
			t.Errorf("%s: the budget's selector %s is not the upstream Deployment's", dir, sel)
		}
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || *up.Spec.Replicas < 2 {
			t.Errorf("%s: minAvailable %v with %d replicas: one eviction at a time must be possible", dir, pdb.Spec.MinAvailable, *up.Spec.Replicas)
		}
	}
}
