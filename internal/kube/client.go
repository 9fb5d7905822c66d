package kube

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// NewClientFromKubeconfig builds a client the way kubectl does: an explicit kubeconfig path, else
// $KUBECONFIG, else ~/.kube/config; the given context, else the current one. A missing file, a
// kubeconfig without contexts, an unknown context or one without a current context each get an
// error that says what to pass instead. It does not contact the cluster.
func NewClientFromKubeconfig(kubeconfig, context string) (kubernetes.Interface, *rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		if _, err := os.Stat(kubeconfig); err != nil {
			return nil, nil, fmt.Errorf("kubeconfig %s: %w (pass an existing file with --kubeconfig)", kubeconfig, err)
		}
		rules.ExplicitPath = kubeconfig
	}
	raw, err := rules.Load()
	if err != nil {
		return nil, nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	where := describeKubeconfig(rules)
	if len(raw.Contexts) == 0 {
		if kubeconfig == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
			return inCluster()
		}
		return nil, nil, fmt.Errorf("no kubeconfig context found (looked at %s); point --kubeconfig or KUBECONFIG at a kubeconfig, or create a cluster first (kind create cluster, minikube start)", where)
	}
	available := make([]string, 0, len(raw.Contexts))
	for name := range raw.Contexts {
		available = append(available, name)
	}
	sort.Strings(available)
	switch {
	case context != "":
		if _, ok := raw.Contexts[context]; !ok {
			return nil, nil, fmt.Errorf("kubeconfig context %q not found in %s; available: %s (kubectl config get-contexts)", context, where, strings.Join(available, ", "))
		}
	case raw.CurrentContext == "":
		return nil, nil, fmt.Errorf("kubeconfig %s has no current context; pass --context (available: %s)", where, strings.Join(available, ", "))
	case raw.Contexts[raw.CurrentContext] == nil:
		return nil, nil, fmt.Errorf("kubeconfig %s: current context %q does not exist; pass --context (available: %s)", where, raw.CurrentContext, strings.Join(available, ", "))
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: context}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig %s: %w", where, err)
	}
	return newClient(cfg)
}

func inCluster() (kubernetes.Interface, *rest.Config, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("no kubeconfig and no usable in-cluster service account: %w", err)
	}
	return newClient(cfg)
}

func newClient(cfg *rest.Config) (kubernetes.Interface, *rest.Config, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "gracelab"
	// The drill polls a handful of objects several times a second; the default 5 QPS would
	// throttle it and delay what it measures.
	cfg.QPS, cfg.Burst = 50, 100
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("create Kubernetes client: %w", err)
	}
	return client, cfg, nil
}

func describeKubeconfig(rules *clientcmd.ClientConfigLoadingRules) string {
	if rules.ExplicitPath != "" {
		return rules.ExplicitPath
	}
	if len(rules.Precedence) == 0 {
		return "(no kubeconfig path)"
	}
	if os.Getenv(clientcmd.RecommendedConfigPathEnvVar) != "" {
		return "KUBECONFIG=" + strings.Join(rules.Precedence, string(os.PathListSeparator))
	}
	return strings.Join(rules.Precedence, ", ")
}

// ContextName is the kubeconfig context that NewClientFromKubeconfig would use, for the
// report ("kubernetes (kind-kind)").
func ContextName(kubeconfig, context string) (string, error) {
	if context != "" {
		return context, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	raw, err := rules.Load()
	if err != nil {
		return "", fmt.Errorf("load kubeconfig: %w", err)
	}
	if raw.CurrentContext == "" {
		return "", fmt.Errorf("kubeconfig %s has no current context; pass --context", describeKubeconfig(rules))
	}
	return raw.CurrentContext, nil
}

// ContextNamespace is the namespace the kubeconfig context names ("" when it names none), the
// default of -n as for kubectl.
func ContextNamespace(kubeconfig, context string) (string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	ns, _, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).Namespace()
	if err != nil {
		return "", fmt.Errorf("load kubeconfig: %w", err)
	}
	raw, err := rules.Load()
	if err != nil {
		return "", fmt.Errorf("load kubeconfig: %w", err)
	}
	name := context
	if name == "" {
		name = raw.CurrentContext
	}
	if c := raw.Contexts[name]; c == nil || c.Namespace == "" {
		return "", nil // clientcmd says "default" then; gracelab keeps its own default
	}
	return ns, nil
}
