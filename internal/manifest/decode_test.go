package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func names(files []File, root string) []string {
	var out []string
	for _, f := range files {
		out = append(out, strings.TrimPrefix(f.Name, root+"/"))
	}
	return out
}

func TestCollectFilesDirectoriesAndStdin(t *testing.T) {
	root := writeTree(t, map[string]string{
		"deploy/b.yaml":       service,
		"deploy/a.yml":        deployment,
		"deploy/c.json":       `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}`,
		"deploy/notes.txt":    "not a manifest",
		"deploy/sub/d.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\n",
		"deploy/sub/x/e.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: e}\n",
		"single.txt":          service, // a file named explicitly is read whatever its name
	})
	files, err := Collect([]string{root + "/deploy", root + "/single.txt"}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(files, root), []string{"deploy/a.yml", "deploy/b.yaml", "deploy/c.json", "single.txt"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	files, err = Collect([]string{root + "/deploy"}, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(files, root), []string{"deploy/a.yml", "deploy/b.yaml", "deploy/c.json", "deploy/sub/d.yaml", "deploy/sub/x/e.yaml"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("recursive files %v, want %v", got, want)
	}

	// stdin is read once; decoding the same Files twice gives the same objects.
	stdin := strings.NewReader(deployment + "---\n" + service)
	files, err = Collect([]string{"-"}, false, stdin)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		docs, err := Decode(files, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(docs) != 2 || docs[0].File != Stdin || docs[1].Line != 12 {
			t.Fatalf("stdin documents %+v", docs)
		}
	}
	if stdin.Len() != 0 {
		t.Fatal("stdin not read to the end")
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no manifests given"},
		{[]string{"-", "-"}, "-f -: stdin can be given once"},
		{[]string{root + "/missing.yaml"}, "missing.yaml: no such file or directory"},
		{[]string{"https://example.com/x.yaml"}, "URLs are not fetched"},
	} {
		_, err := Collect(tc.args, false, strings.NewReader(""))
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Collect(%q): %v, want one line with %q", tc.args, err, tc.want)
		}
	}
}

func file(data string) []File { return []File{{Name: "m.yaml", Data: []byte(data)}} }

func TestDecodeEveryKindTypedWithLines(t *testing.T) {
	src := "# header comment\n" + // 1
		deployment + // 2-11
		"--- # separator with a comment\n" + // 12
		"\n" + // 13
		"# leading comment\n" + // 14
		service + // 15-20
		"---\n" + // 21
		`apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings}
  data: {GREETING: hi}
- apiVersion: v1
  kind: Secret
  metadata: {name: creds}
  stringData: {TOKEN: s3cret}
- {apiVersion: policy/v1, kind: PodDisruptionBudget, metadata: {name: web}, spec: {minAvailable: 1}}
- apiVersion: monitoring.coreos.com/v1
  kind: ServiceMonitor
  metadata: {name: web}
  spec: {endpoints: [{port: http}]}
` + // 22-37
		"---\n" + // 38
		"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\n" + // 39-41
		"---\n" + // 42
		"apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec: {maxReplicas: 3, scaleTargetRef: {kind: Deployment, name: web}}\n" + // 43-46
		"---\n" + // 47
		"apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: shop}\n" // 48
	docs, err := Decode(file(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Index, Line, Item int
		Kind              string
		Known             bool
		Type              string
	}
	var got []row
	for _, d := range docs {
		got = append(got, row{d.Index, d.Line, d.Item, d.Kind(), d.Known, reflect.TypeOf(d.Object).String()})
	}
	want := []row{
		{1, 2, 0, "Deployment", true, "*v1.Deployment"},
		{2, 15, 0, "Service", true, "*v1.Service"},
		{3, 25, 1, "ConfigMap", true, "*v1.ConfigMap"},
		{3, 29, 2, "Secret", true, "*v1.Secret"},
		{3, 33, 3, "PodDisruptionBudget", true, "*v1.PodDisruptionBudget"},
		{3, 34, 4, "ServiceMonitor", false, "*unstructured.Unstructured"},
		{4, 39, 0, "Ingress", true, "*v1.Ingress"},
		{5, 43, 0, "HorizontalPodAutoscaler", true, "*v2.HorizontalPodAutoscaler"},
		{6, 48, 0, "Role", true, "*v1.Role"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("documents\n got %+v\nwant %+v", got, want)
	}
	if s := docs[3].Object.(*corev1.Secret); s.StringData["TOKEN"] != "s3cret" {
		t.Errorf("secret %+v", s)
	}
	if p := docs[4].Object.(*policyv1.PodDisruptionBudget); p.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("pdb %+v", p)
	}
	if u := docs[5].Object.(*unstructured.Unstructured); u.GetName() != "web" || docs[5].GVK.Group != "monitoring.coreos.com" {
		t.Errorf("custom resource %+v", u)
	}
	_ = docs[6].Object.(*networkingv1.Ingress)
	if h := docs[7].Object.(*autoscalingv2.HorizontalPodAutoscaler); h.Spec.MaxReplicas != 3 {
		t.Errorf("hpa %+v", h)
	}
	if r := docs[8].Object.(*rbacv1.Role); r.Namespace != "shop" || docs[8].String() != "Role shop/r" {
		t.Errorf("role %+v %s", r, docs[8])
	}
	if d := docs[0].Object.(*appsv1.Deployment); d.APIVersion != "apps/v1" || d.Kind != "Deployment" {
		t.Errorf("type meta lost: %+v", d.TypeMeta)
	}
	if docs[1].Where() != "m.yaml:15" || docs[1].String() != "Service web" {
		t.Errorf("where %s, string %s", docs[1].Where(), docs[1])
	}
}

func TestDecodeStrictAndLenient(t *testing.T) {
	src := service + "---\n" + strings.Replace(deployment, "replicas: 2", "replcas: 2", 1)
	_, err := Decode(file(src), Options{})
	var me *Error
	if !errors.As(err, &me) || me.Index != 2 || me.Line != 8 || !reflect.DeepEqual(me.UnknownFields, []string{"spec.replcas"}) {
		t.Fatalf("strict: %#v", err)
	}
	docs, err := Decode(file(src), Options{Lenient: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || !reflect.DeepEqual(docs[1].Warnings, []string{`unknown field "spec.replcas"`}) || len(docs[0].Warnings) != 0 {
		t.Fatalf("lenient warnings %+v", docs)
	}
	if d := docs[1].Object.(*appsv1.Deployment); d.Spec.Selector.MatchLabels["app"] != "web" {
		t.Fatalf("lenient object not decoded: %+v", d)
	}
}

func TestDecodeErrorsNameFileAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
		line            int
	}{
		{"syntax error counts lines in the file", service + "---\napiVersion: v1\nkind: Service\nmetadata: {name: x\n", "m.yaml: document 2: line 10: did not find expected ',' or '}'", 10},
		{"bad separator", service + "--- kind: x\n", "m.yaml: document 2: line 7: invalid YAML document separator: kind: x", 7},
		{"scalar", "\n\nhello\n", "m.yaml: document 1: line 3: not a Kubernetes object", 3},
		{"missing apiVersion", "kind: Service\nmetadata: {name: x}\n", "m.yaml: document 1: Service without apiVersion", 1},
		{"missing name in a list item", "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap}\n", "m.yaml: document 1 (ConfigMap): List item 1: ConfigMap without metadata.name", 4},
		{"unknown field in a list item", "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}, date: {}}\n", `List item 2: unknown field "date"`, 5},
		{"duplicate in a namespace", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: ns}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: ns}\n", `ConfigMap "a" is defined twice (also in m.yaml document 1)`, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(file(tc.src), Options{})
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || me.Line != tc.line || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v (line %d), want %q at line %d", err, me.Line, tc.want, tc.line)
			}
		})
	}
	// Same name in two namespaces is two objects.
	if _, err := Decode(file("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: ns}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"), Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(file("# nothing\n---\n"), Options{}); !errors.Is(err, ErrNoObjects) {
		t.Fatalf("empty: %v", err)
	}
}

func TestClassify(t *testing.T) {
	src := deployment + "---\n" + service + "---\n" + `apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}
- {apiVersion: v1, kind: Secret, metadata: {name: s}}
- {apiVersion: v1, kind: ServiceAccount, metadata: {name: sa}}
- {apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRoleBinding, metadata: {name: b}, roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: r}}
- {apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, metadata: {name: h}, spec: {maxReplicas: 2, scaleTargetRef: {kind: Deployment, name: web}}}
- {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: np}}
- {apiVersion: networking.k8s.io/v1, kind: Ingress, metadata: {name: i}}
- {apiVersion: policy/v1, kind: PodDisruptionBudget, metadata: {name: p}}
- {apiVersion: monitoring.coreos.com/v1, kind: ServiceMonitor, metadata: {name: m}}
- {apiVersion: example.com/v1alpha1, kind: Widget, metadata: {name: w}}
- {apiVersion: apps/v1, kind: StatefulSet, metadata: {name: db}}
- {apiVersion: apps/v1, kind: DaemonSet, metadata: {name: agent}}
- {apiVersion: v1, kind: Pod, metadata: {name: pod}}
- {apiVersion: discovery.k8s.io/v1, kind: EndpointSlice, metadata: {name: es}, addressType: IPv4, endpoints: []}
- {apiVersion: apps/v1, kind: Deploymnet, metadata: {name: typo}}
- {apiVersion: apps/v1beta1, kind: Deployment, metadata: {name: old}}
- {apiVersion: batch/v1, kind: CronJob, metadata: {name: cron}}
`
	docs, err := Decode(file(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range docs {
		v := Classify(d)
		got[d.Kind()+"/"+d.Name()] = v.Class.String() + " " + v.Field
		if v.Class != Honoured && v.Reason == "" {
			t.Errorf("%s: %s without a reason", d, v.Class)
		}
		if v.Class == Refused && (v.Remedy == "" || v.Field == "") {
			t.Errorf("%s: refused without field or remedy: %+v", d, v)
		}
	}
	want := map[string]string{
		"Deployment/web": "honoured ", "Service/web": "honoured ", "ConfigMap/c": "honoured ", "Secret/s": "honoured ",
		"ServiceAccount/sa": "skipped ", "ClusterRoleBinding/b": "skipped ", "HorizontalPodAutoscaler/h": "skipped ",
		"NetworkPolicy/np": "skipped ", "Ingress/i": "skipped ", "PodDisruptionBudget/p": "honoured ",
		"ServiceMonitor/m": "skipped ", "Widget/w": "skipped ", "CronJob/cron": "skipped ",
		"StatefulSet/db": "refused kind", "DaemonSet/agent": "refused kind", "Pod/pod": "refused kind", "EndpointSlice/es": "refused kind",
		"Deploymnet/typo": "unknown ", "Deployment/old": "refused apiVersion",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("classes\n got %v\nwant %v", got, want)
	}
	for _, d := range docs {
		if d.Name() == "db" {
			msg := Refusal(d, Classify(d)).Error()
			if !strings.HasPrefix(msg, "m.yaml:32: StatefulSet db: kind: ") || !strings.Contains(msg, "run it as an apps/v1 Deployment") {
				t.Fatalf("refusal %q", msg)
			}
		}
	}
}

func TestTriage(t *testing.T) {
	base := deployment + "---\n" + service + "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: api}\n---\napiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: api}\n"
	docs, err := Decode(file(base), Options{})
	if err != nil {
		t.Fatal(err)
	}
	honoured, skipped, err := Triage(docs, false)
	if err != nil || len(honoured) != 2 || len(skipped) != 2 {
		t.Fatalf("Triage: %d honoured, %d skipped, %v", len(honoured), len(skipped), err)
	}
	if got := SkippedLine(skipped); got != "skipped 2 objects that do not change how traffic reaches pods during a rollout: ServiceAccount api, ServiceMonitor api (see docs/manifests.md)" {
		t.Errorf("SkippedLine: %q", got)
	}
	docs, err = Decode(file(base+"---\napiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: typo}\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Triage(docs, false); err == nil || err.Error() != "m.yaml:27: Deploymnet typo: kind: Kubernetes has no apps/v1 Deploymnet (a typo, or an API that was removed); correct apiVersion and kind, or leave the object out of -f" {
		t.Fatalf("unknown kind: %v", err)
	}
	if _, _, err := Triage(docs, true); err == nil || !strings.HasPrefix(err.Error(), "m.yaml:31: StatefulSet db: kind: ") {
		t.Fatalf("refused kind: %v", err)
	}
}
