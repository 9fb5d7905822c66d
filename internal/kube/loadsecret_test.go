package kube

import (
	"net/http"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gracelab/gracelab/internal/kube/kubetest"
	"github.com/gracelab/gracelab/internal/load"
)

// Request headers and body reach the load pods through a Secret mounted as files: the Job's
// arguments name the files, never a header's value; the Secret is owned by the Job and
// deleted with it.
func TestRequestShippedInSecret(t *testing.T) {
	ctx := testContext(t)
	cfg := load.Config{URL: "http://checkout.shop:8080/", Model: load.Open, Rate: 10, Duration: time.Minute, Method: "POST",
		Header: http.Header{"Authorization": {"Bearer s3cret"}, "X-Tenant": {"a", "b"}}, Body: []byte(`{"cart":42}`),
		Expect: load.Expect{Status: "200,204", Body: "ok"}}
	opts := LoadJobOptions{Namespace: "shop", Name: "gracelab-load-1", Pods: 1, Load: cfg}
	job, err := LoadJob(opts)
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Join(job.Spec.Template.Spec.Containers[0].Args, " ")
	for _, w := range []string{"--header @/etc/gracelab-request/headers", "--body @/etc/gracelab-request/body", "--expect-status 200,204", "--expect-body ok"} {
		if !strings.Contains(args, w) {
			t.Errorf("args %q lack %q", args, w)
		}
	}
	if strings.Contains(args, "s3cret") || strings.Contains(args, "cart") {
		t.Errorf("args carry the request: %q", args)
	}
	mounted := false
	for _, v := range job.Spec.Template.Spec.Volumes {
		mounted = mounted || v.Secret != nil && v.Secret.SecretName == "gracelab-load-1-request"
	}
	if !mounted {
		t.Errorf("volumes %+v: want the request Secret", job.Spec.Template.Spec.Volumes)
	}
	secret, err := RequestSecret(opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(secret.Data["headers"]); got != "Authorization: Bearer s3cret\nX-Tenant: a\nX-Tenant: b\n" {
		t.Errorf("headers file %q", got)
	}
	if got := string(secret.Data["body"]); got != `{"cart":42}` {
		t.Errorf("body file %q", got)
	}
	// What gracelab load reads back is what was given.
	if got := RequestSummary(cfg); got != "headers Authorization, X-Tenant and a body of 11 bytes" {
		t.Errorf("summary %q", got)
	}

	cs := kubetest.NewClientset()
	run, err := StartLoadJob(ctx, cs, job, secret)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cs.CoreV1().Secrets("shop").Get(ctx, "gracelab-load-1-request", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if refs := got.OwnerReferences; len(refs) != 1 || refs[0].Kind != "Job" || refs[0].Name != job.Name {
		t.Errorf("owner references %+v: want the Job, so its TTL deletes the Secret too", refs)
	}
	if err := run.Delete(ctx, 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets("shop").Get(ctx, "gracelab-load-1-request", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Secret after Delete: %v", err)
	}

	// Without headers or body there is no Secret; too large a body is refused before anything.
	plain := opts
	plain.Load.Header, plain.Load.Body = nil, nil
	if s, err := RequestSecret(plain); s != nil || err != nil {
		t.Errorf("RequestSecret without request: %v, %v", s, err)
	}
	big := opts
	big.Load.Body = make([]byte, MaxRequestBytes+1)
	if _, err := LoadJob(big); err == nil || !strings.Contains(err.Error(), "Secret") {
		t.Errorf("a body over the Secret's size: %v", err)
	}
}
