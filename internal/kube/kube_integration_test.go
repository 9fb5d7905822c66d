package kube

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gracelab/gracelab/internal/kube/kubetest"
)

// These tests drive the real client-go stack (kubeconfig loading, REST client, HTTP, status
// decoding) against a small HTTP server on 127.0.0.1 that answers as an API server would for
// the few requests involved.

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
}

func writeStatus(w http.ResponseWriter, err *apierrors.StatusError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(err.ErrStatus.Code))
	st := err.ErrStatus
	st.Kind, st.APIVersion = "Status", "v1"
	_ = json.NewEncoder(w).Encode(st)
}

func TestIntegrationForbiddenNamespaceOverHTTP(t *testing.T) {
	skipShort(t)
	srv := kubetest.NewAPIServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		writeStatus(w, apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "",
			errFake(`User "dev" cannot create resource "namespaces" in API group "" at the cluster scope`)))
	})
	client, _, err := NewClientFromKubeconfig(writeKubeconfig(t, srv.URL, "lab", "lab"), "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(client, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = c.Up(ctx)
	if err == nil || !apierrors.IsForbidden(err) {
		t.Fatalf("Up error %v, want Forbidden", err)
	}
	for _, want := range []string{"permission denied", "may not create namespaces cluster-wide", `User "dev" cannot create resource "namespaces"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	reqs := srv.Seen()
	// client-go sends built-in types as protobuf: look for the strings, not the JSON.
	if len(reqs) != 1 || reqs[0].Method != http.MethodPost || reqs[0].Path != "/api/v1/namespaces" || !strings.Contains(reqs[0].Body, "gracelab-") {
		t.Errorf("requests %+v, want one POST of a generateName namespace", reqs)
	}
	if !strings.Contains(reqs[0].Body, managedByLabel) {
		t.Errorf("namespace body %s lacks the ownership label", reqs[0].Body)
	}
}

func TestIntegrationUnreachableAPIServer(t *testing.T) {
	skipShort(t)
	// A port that was just free: nothing listens there any more.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	client, _, err := NewClientFromKubeconfig(writeKubeconfig(t, "http://"+addr, "lab", "lab"), "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(client, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = c.Up(ctx)
	if err == nil || !strings.Contains(err.Error(), "cannot reach the Kubernetes API server") {
		t.Fatalf("Up error %v, want an unreachable API server", err)
	}
}

// The restart goes over the wire exactly as kubectl's: a PATCH with content type
// application/strategic-merge-patch+json whose body sets only the template annotation.
func TestIntegrationRolloutRestartOverHTTP(t *testing.T) {
	skipShort(t)
	dep := existingDeployment("work")
	dep.APIVersion, dep.Kind = "apps/v1", "Deployment"
	srv := kubetest.NewAPIServer(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		if r.URL.Path != "/apis/apps/v1/namespaces/work/deployments/upstream" {
			writeStatus(w, apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "deployments"}, "x"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(dep)
	})
	client, _, err := NewClientFromKubeconfig(writeKubeconfig(t, srv.URL, "lab", "lab"), "lab")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := RolloutRestart(ctx, client, "work", "upstream"); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Seen()
	if len(reqs) != 2 || reqs[0].Method != http.MethodGet || reqs[1].Method != http.MethodPatch {
		t.Fatalf("requests %+v, want GET then PATCH", reqs)
	}
	p := reqs[1]
	if p.ContentType != "application/strategic-merge-patch+json" {
		t.Errorf("patch content type %q", p.ContentType)
	}
	if !strings.Contains(p.Query, "fieldManager=gracelab") {
		t.Errorf("patch query %q, want fieldManager=gracelab", p.Query)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(p.Body), &body); err != nil {
		t.Fatalf("patch body %s: %v", p.Body, err)
	}
	stamp := restartedAtFrom(body)
	if _, err := time.Parse(time.RFC3339, stamp); err != nil {
		t.Fatalf("restartedAt %q is not RFC 3339: %v", stamp, err)
	}
	want := map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]any{restartedAtAnnotation: stamp}}}}}
	if !reflect.DeepEqual(body, want) {
		t.Errorf("patch body %s, want only the restartedAt annotation", p.Body)
	}
}

func restartedAtFrom(body map[string]any) string {
	var cur any = body
	for _, key := range []string{"spec", "template", "metadata", "annotations", restartedAtAnnotation} {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[key]
	}
	s, _ := cur.(string)
	return s
}
