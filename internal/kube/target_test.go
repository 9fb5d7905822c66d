package kube

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func downstreamService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "downstream"},
		Spec: corev1.ServiceSpec{
			ClusterIP:  "127.3.0.10",
			ClusterIPs: []string{"127.3.0.10", "fd00::10"},
			Ports:      []corev1.ServicePort{{Port: 8000, NodePort: 30080}},
		},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
			{Hostname: "localhost"}, {IP: "127.4.0.1"},
		}}},
	}
}

func TestTargetWarning(t *testing.T) {
	cases := []struct {
		target string
		match  bool
	}{
		{"http://127.3.0.10:8000/", true},             // ClusterIP
		{"http://[fd00::10]:8000/", true},             // second ClusterIP (dual stack)
		{"http://localhost:8000/", true},              // Docker Desktop's LoadBalancer
		{"http://127.0.0.1:8000/", true},              // same, as users type it
		{"http://127.4.0.1:8000/x", true},             // LoadBalancer IP
		{"http://node-1.example:30080/", true},        // NodePort on any host
		{"http://127.0.0.1:30080", true},              // NodePort on a local node
		{"http://localhost:8080/", false},             // a port-forward
		{"http://127.3.0.10:80/", false},              // right host, wrong port
		{"http://127.3.0.11:8000/", false},            // wrong ClusterIP
		{"https://127.3.0.10/", false},                // https default port 443
		{"http://downstream.default.svc:8000", false}, // a name we do not resolve
	}
	for _, tc := range cases {
		t.Run(tc.target, func(t *testing.T) {
			w := TargetWarning(tc.target, downstreamService())
			if tc.match && w != "" {
				t.Errorf("warning %q, want a match", w)
			}
			if !tc.match {
				for _, want := range []string{"matches no address of Service downstream", "port-forward pins one pod and bypasses the Service", "may be meaningless", "127.3.0.10:8000", "*:30080 (NodePort)", "localhost:8000"} {
					if !strings.Contains(w, want) {
						t.Errorf("warning %q does not mention %q", w, want)
					}
				}
			}
		})
	}
}

func TestTargetWarningOnBadURL(t *testing.T) {
	if w := TargetWarning("::not a url", downstreamService()); w == "" {
		t.Error("no warning for a bad URL")
	}
}

func TestDefaultTarget(t *testing.T) {
	svc := downstreamService()
	if got, _ := defaultTarget(svc); got != "http://localhost:8000/" {
		t.Errorf("with a LoadBalancer: %q, want its ingress", got)
	}
	svc.Status.LoadBalancer.Ingress = nil
	if got, _ := defaultTarget(svc); got != "http://127.3.0.10:8000/" {
		t.Errorf("without a LoadBalancer: %q, want the ClusterIP", got)
	}
	svc.Spec.ClusterIP = corev1.ClusterIPNone
	if _, err := defaultTarget(svc); err == nil || !strings.Contains(err.Error(), "pass --target") {
		t.Errorf("headless Service: %v, want an error asking for --target", err)
	}
}

func TestParseTarget(t *testing.T) {
	for _, bad := range []string{"localhost:8000", "ftp://x/", "http://", "http://x:99999/", "http://x:abc/"} {
		if _, _, err := parseTarget(bad); err == nil {
			t.Errorf("parseTarget(%q) accepted", bad)
		}
	}
	if h, p, err := parseTarget("https://example.test/"); err != nil || h != "example.test" || p != 443 {
		t.Errorf("parseTarget https = %q %d %v", h, p, err)
	}
}
