package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gracelab/gracelab/internal/kube/kubetest"
)

var writeKubeconfig = kubetest.WriteKubeconfig

func TestNewClientFromKubeconfig(t *testing.T) {
	path := writeKubeconfig(t, "https://127.0.0.1:6443", "lab", "lab", "other")
	_, cfg, err := NewClientFromKubeconfig(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://127.0.0.1:6443" || cfg.BearerToken != "test-token" || cfg.UserAgent != "gracelab" {
		t.Errorf("config host %q token %q agent %q", cfg.Host, cfg.BearerToken, cfg.UserAgent)
	}
	if _, _, err := NewClientFromKubeconfig(path, "other"); err != nil {
		t.Errorf("explicit context: %v", err)
	}
}

func TestNewClientFromKubeconfigErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, kubeconfig, context string
		env                       string // KUBECONFIG
		want                      []string
	}{
		{name: "missing file", kubeconfig: filepath.Join(dir, "nope"), want: []string{"nope", "no such file", "--kubeconfig"}},
		{name: "unknown context", kubeconfig: writeKubeconfig(t, "https://127.0.0.1:6443", "lab", "lab", "other"), context: "prod",
			want: []string{`context "prod" not found`, "available: lab, other", "kubectl config get-contexts"}},
		{name: "no current context", kubeconfig: writeKubeconfig(t, "https://127.0.0.1:6443", "", "lab"),
			want: []string{"no current context", "--context", "available: lab"}},
		{name: "dangling current context", kubeconfig: writeKubeconfig(t, "https://127.0.0.1:6443", "gone", "lab"),
			want: []string{`current context "gone" does not exist`}},
		{name: "empty kubeconfig from KUBECONFIG", env: empty,
			want: []string{"no kubeconfig context found", "KUBECONFIG=" + empty, "kind create cluster"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.env)
			t.Setenv("KUBERNETES_SERVICE_HOST", "")
			t.Setenv("HOME", t.TempDir()) // no ~/.kube/config to fall back on
			_, _, err := NewClientFromKubeconfig(tc.kubeconfig, tc.context)
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestContextNameAndOpen(t *testing.T) {
	path := writeKubeconfig(t, "https://127.0.0.1:6443", "lab", "lab", "other")
	if name, err := ContextName(path, ""); err != nil || name != "lab" {
		t.Errorf("ContextName = %q, %v; want lab", name, err)
	}
	if name, err := ContextName(path, "other"); err != nil || name != "other" {
		t.Errorf("ContextName with --context = %q, %v; want other", name, err)
	}
	if _, err := ContextName(writeKubeconfig(t, "https://127.0.0.1:6443", "", "lab"), ""); err == nil {
		t.Error("ContextName without a current context succeeded")
	}
	opts := testOptions()
	opts.Kubeconfig, opts.Context = path, "nope"
	if _, err := Open(opts); err == nil || !strings.Contains(err.Error(), `context "nope" not found`) {
		t.Errorf("Open with a missing context: %v", err)
	}
	opts.Context = "other"
	c, err := Open(opts)
	if err != nil || c == nil {
		t.Fatalf("Open: %v", err)
	}
}

func TestContextNamespace(t *testing.T) {
	path := writeKubeconfig(t, "https://127.0.0.1:6443", "lab", "lab", "other")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The "other" context names a namespace; "lab" names none.
	withNS := strings.Replace(string(raw), "- name: other\n  context:\n    cluster: lab\n", "- name: other\n  context:\n    cluster: lab\n    namespace: shop\n", 1)
	if err := os.WriteFile(path, []byte(withNS), 0o600); err != nil {
		t.Fatal(err)
	}
	if ns, err := ContextNamespace(path, "other"); err != nil || ns != "shop" {
		t.Errorf("ContextNamespace(other) = %q, %v; want shop", ns, err)
	}
	if ns, err := ContextNamespace(path, ""); err != nil || ns != "" {
		t.Errorf("ContextNamespace(current lab) = %q, %v; want none", ns, err)
	}
}
