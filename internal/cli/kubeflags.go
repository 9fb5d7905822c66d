package cli

import (
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/gracelab/gracelab/internal/kube"
)

// kubeFlags select a real cluster: `--cluster` and the kubectl-like flags demo and restart
// share.
type kubeFlags struct {
	cluster    bool
	kubeconfig string
	context    string
	namespace  string
}

func (k *kubeFlags) register(cmd *cobra.Command, clusterHelp, namespaceHelp string) {
	f := cmd.Flags()
	f.BoolVar(&k.cluster, "cluster", false, clusterHelp)
	f.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config); with --cluster")
	f.StringVar(&k.context, "context", "", "kubeconfig context (default: the current one); with --cluster")
	f.StringVarP(&k.namespace, "namespace", "n", "", namespaceHelp)
}

// needCluster is a usage error for the first of flags set without --cluster.
func (k *kubeFlags) needCluster(cmd *cobra.Command, flags ...string) error {
	if k.cluster {
		return nil
	}
	for _, name := range flags {
		if cmd.Flags().Changed(name) {
			return usageError("--%s works only with --cluster (a real Kubernetes cluster): add --cluster, or drop --%s", name, name)
		}
	}
	return nil
}

// client builds the Kubernetes client without contacting the cluster; a kubeconfig that
// cannot be used is bad input. It returns the context's name for the report too.
func (k *kubeFlags) client() (kubernetes.Interface, string, error) {
	client, _, err := kube.NewClientFromKubeconfig(k.kubeconfig, k.context)
	if err != nil {
		return nil, "", usageError("--cluster: %v", err)
	}
	name, err := kube.ContextName(k.kubeconfig, k.context)
	if err != nil {
		// In-cluster credentials have no context name.
		name = "in-cluster"
	}
	return client, name, nil
}

// nonEmpty is a usage error when a flag was given an empty or blank value.
func nonEmpty(cmd *cobra.Command, name, value string) error {
	if cmd.Flags().Changed(name) && strings.TrimSpace(value) == "" {
		return usageError("--%s is empty: give a value, or drop the flag", name)
	}
	return nil
}
