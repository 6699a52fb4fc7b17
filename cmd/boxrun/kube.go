//go:build kubernetes

package main

import (
	"context"
	"flag"
	"log/slog"
	"time"

	"github.com/boxrun/boxrun/driver/kubernetes"
	"github.com/boxrun/boxrun/sandbox"
)

// kubeFlags are serve's flags for --driver kubernetes.
type kubeFlags struct {
	kubeconfig, namespace, runtimeClass, helperImage, storageClass, instance string
	allowHostPath, isolateNetwork                                            bool
}

func (k *kubeFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", envOr(getenv, "KUBECONFIG", ""), "kubernetes driver: kubeconfig file (env KUBECONFIG; default: the in-cluster config)")
	fs.StringVar(&k.namespace, "namespace", envOr(getenv, "BOXRUN_K8S_NAMESPACE", "default"), "kubernetes driver: namespace of the boxes' pods and claims (env BOXRUN_K8S_NAMESPACE)")
	fs.StringVar(&k.runtimeClass, "runtime-class", envOr(getenv, "BOXRUN_K8S_RUNTIME_CLASS", "gvisor"), "kubernetes driver: RuntimeClass of box pods (env BOXRUN_K8S_RUNTIME_CLASS)")
	fs.StringVar(&k.helperImage, "helper-image", getenv("BOXRUN_K8S_HELPER_IMAGE"), "kubernetes driver: image with this boxrun binary at /boxrun-init (env BOXRUN_K8S_HELPER_IMAGE; required)")
	fs.StringVar(&k.storageClass, "storage-class", getenv("BOXRUN_K8S_STORAGE_CLASS"), "kubernetes driver: StorageClass of the boxes' claims (default: the cluster's)")
	fs.StringVar(&k.instance, "instance", envOr(getenv, "BOXRUN_K8S_INSTANCE", "default"), "kubernetes driver: tells servers sharing a namespace apart (prune stays in its own)")
	fs.BoolVar(&k.allowHostPath, "allow-hostpath", false, "kubernetes driver: let boxes mount volumes (hostPath on the node)")
	fs.BoolVar(&k.isolateNetwork, "isolate-network", false, "kubernetes driver: create a NetworkPolicy denying all traffic of boxes without network")
}

// openKube connects the kubernetes driver; New checks the cluster, the
// RuntimeClass and the namespace's permissions now, not at the first box.
func openKube(k *kubeFlags, log *slog.Logger) (sandbox.Driver, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return kubernetes.New(ctx, kubernetes.Config{
		Kubeconfig: k.kubeconfig, Namespace: k.namespace, RuntimeClass: k.runtimeClass,
		HelperImage: k.helperImage, StorageClass: k.storageClass, Instance: k.instance,
		AllowHostPath: k.allowHostPath, IsolateNetwork: k.isolateNetwork, Logger: log,
	})
}
