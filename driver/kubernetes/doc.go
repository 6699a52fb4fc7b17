// Package kubernetes is a sandbox.Driver that runs each box as a pod of a
// Kubernetes cluster under a gVisor RuntimeClass, through client-go, so the
// same Manager, API, SDK and CLI drive boxes on a cluster.
//
// # Objects
//
// One box is, in Config.Namespace:
//
//   - a PersistentVolumeClaim named after the handle ("boxrun-" and 16 hex
//     digits), of Spec.DiskSizeGB (1 GiB when 0) in Config.StorageClass. It
//     is the box's identity: its annotation boxrun.dev/box holds what the
//     driver needs to start the box again (image, env, workdir, user,
//     limits, volumes). A box exists while its claim does.
//   - a pod of the same name while the box runs (RuntimeClass
//     Config.RuntimeClass, restartPolicy Never, no service account token,
//     no service links). Its init container runs Config.HelperImage (an
//     image holding the boxrun binary at /boxrun-init) to copy that binary
//     into an emptyDir mounted at /.boxrun, so boxes work with images that
//     have no shell and no tar; the box container runs the box's image with
//     /.boxrun/init as PID 1 (package boxinit: reaping, stop grace, and the
//     box's agent). CPU and MemoryMB become the container's limits and
//     requests.
//
// Both carry the labels app.kubernetes.io/managed-by=boxrun,
// boxrun.dev/instance=Config.Instance and boxrun.dev/handle, and the box ID
// as an annotation: Prune lists by the first two and deletes every pod and
// claim whose handle is not kept.
//
// # Exec and copy
//
// The driver reaches a box's agent (package agentproto, the protocol of the
// gVisor and QEMU drivers) through the pods/exec subresource: one
// long-lived exec of `/.boxrun/init relay` per box, whose stdin and stdout
// carry the agent session. Every exec (stdin, TTY, resize, signals, exit
// codes), CopyIn and CopyOut is a stream of that session; the agent runs
// processes as the box's user (resolved on the server from the image's
// /etc/passwd and /etc/group, as the gVisor driver does). The agent's
// directory is root's with mode 0700 inside the box, so a non-root box
// user cannot reach it. File watches and directory listings
// (sandbox.FileWatcher, sandbox.Lister) and stats (sandbox.Statser) go
// through the same agent. Stats are the box's own view from inside its
// pod (gVisor's /proc: CPU time, memory in use, processes; the limit is
// the pod's), since a driver limited to pods and pods/exec in one
// namespace reaches no node cgroup or metrics API: for display only, a
// box can lie about them. Disk, network and the memory peak are unknown.
//
// # Stop, start and what persists
//
// Stop deletes the pod and keeps the claim; Start creates the pod again
// from the claim's annotation. The claim is mounted at the box's working
// directory (Spec.Workdir, through subPath "workdir"): the files there
// survive Stop and Start, everything else in the root filesystem is the
// image's again after Start (the container's writable layer goes with the
// pod). Processes do not survive Stop. Volumes are host directories of the
// node (hostPath) and are refused with ErrInvalid unless
// Config.AllowHostPath is set; they only make sense on a single-node
// cluster or with directories every node has.
//
// # What differs from the conformance rules
//
//   - Network false cannot give a pod loopback only: every pod has the
//     cluster's pod network. Boxes without network get the label
//     boxrun.dev/network=none, and Config.IsolateNetwork makes New create a
//     NetworkPolicy denying all traffic to and from such pods, which the
//     cluster's network plugin must enforce. The test cluster of
//     scripts/k8s-up.sh enforces no NetworkPolicy; instead it gives every
//     pod no network at all: its bridge isolates pods from each other
//     (port isolation) and an nftables table drops what pods send to the
//     host or beyond (TestPodIsolation). Ports and egress policies are
//     refused (ErrInvalid).
//   - Images are the cluster's: the pod runs Spec.Image.Ref (pinned to
//     Spec.Image.Remote, the registry's digest, when the server pulled it
//     from a registry; a name the server loaded or built is used as is, and
//     the node must have it, e.g. imported into its runtime), pulled per
//     Config.PullPolicy. The server's own copy of the image is used only to
//     resolve the box's user.
//
// # Requirements
//
// New checks at once, so `boxrun serve --driver kubernetes` fails at start
// rather than at the first box: the kubeconfig loads (or the in-cluster
// config exists), the API server answers, the RuntimeClass exists, and the
// identity may do in the namespace what the driver does (pods, pods/exec,
// persistentvolumeclaims). It needs nothing cluster-wide.
//
// # Tests
//
// The package's tests run the conformance suite against a real cluster:
// scripts/k8s-up.sh builds and starts one on this machine (see `make
// e2e-k8s`); without BOXRUN_K8S_KUBECONFIG they skip.
package kubernetes
