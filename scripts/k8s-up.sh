#!/usr/bin/env bash
# k8s-up.sh — brings up a single-node Kubernetes cluster on this machine for
# driver/kubernetes (as root; idempotent: running components are kept).
#
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
#   containerd with gVisor's shim as its only runtime (handler "runsc"), CNI
#   bridge + host-local on their own bridge and pod range, RuntimeClass
#   "gvisor", StorageClass "boxrun-hostpath" (the controller-manager's
#   hostPath provisioner), and images imported from local tarballs: the
#   pause image and the busybox test image (Debian's busybox-static).
#
# Binaries come from scripts/k8s-build.sh (cached). Nothing is downloaded.
# Everything lives under fixed places that scripts/k8s-down.sh removes:
#
#   /var/lib/boxrun-k8s    state (etcd data, pki, kubelet, containerd, CNI)
#   /run/boxrun-k8s        sockets, pid files, runsc state
#   /var/log/boxrun-k8s    component logs
#   /tmp/hostpath_provisioner   volumes of the hostPath provisioner
#   bridge brk8s0, nft table inet boxrun_k8s, cgroups named kubepods*,
#   the kubelet's mounts
#
# Ranges: pods 172.31.200.0/24 on brk8s0, services 172.31.201.0/24 (no
# kube-proxy: nothing on the host is rewritten), well away from boxnet's
# 10.223.0.0/16. Listeners are on 127.0.0.1 (etcd 23790/23800, API 16443,
# containerd's stream server on a free port), the kubelet on the bridge's
# gateway 172.31.200.1:10250 (the node IP; client certificates of the
# cluster's CA only).
#
# It prints the admin kubeconfig path (/var/lib/boxrun-k8s/admin.kubeconfig)
# as its last line. BOXRUN_RUNSC names runsc (default: bin/runsc of this
# clone, then /work/bin/runsc).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ "$(id -u)" = 0 ] || { echo "k8s-up: run as root" >&2; exit 1; }

state=/var/lib/boxrun-k8s
run=/run/boxrun-k8s
logs=/var/log/boxrun-k8s
pki=$state/pki
node=boxrun-node
api=https://127.0.0.1:16443
pod_cidr=172.31.200.0/24
svc_cidr=172.31.201.0/24
start=$SECONDS

bin=$(scripts/k8s-build.sh | tail -1)
export PATH="$bin:$PATH"
runsc=${BOXRUN_RUNSC:-}
if [ -z "$runsc" ]; then
	if [ -x bin/runsc ]; then runsc=$root/bin/runsc; else runsc=/work/bin/runsc; fi
fi
[ -x "$runsc" ] || { echo "k8s-up: runsc not found (make runsc or set BOXRUN_RUNSC)" >&2; exit 1; }

mkdir -p "$state" "$run/pids" "$logs" "$pki" "$state/cni/bin" "$state/cni/net.d" "$state/images"
chmod 700 "$state" "$pki"

# --- PKI (openssl; kept across restarts) -------------------------------------
cert() { # name CN O SANS(ext string or "")
	local n=$1 cn=$2 o=$3 san=$4
	[ -s "$pki/$n.crt" ] && return 0
	openssl genrsa -out "$pki/$n.key" 2048 2>/dev/null
	local subj="/CN=$cn"
	[ -n "$o" ] && subj="/O=$o/CN=$cn"
	openssl req -new -key "$pki/$n.key" -subj "$subj" -out "$pki/$n.csr" 2>/dev/null
	local ext="$pki/$n.ext"
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=serverAuth,clientAuth"
		[ -n "$san" ] && echo "subjectAltName=$san"
	} >"$ext"
	openssl x509 -req -in "$pki/$n.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
		-days 3650 -extfile "$ext" -out "$pki/$n.crt" 2>/dev/null
	rm -f "$pki/$n.csr" "$ext"
}
if [ ! -s "$pki/ca.crt" ]; then
	openssl genrsa -out "$pki/ca.key" 2048 2>/dev/null
	openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=boxrun-k8s-ca" -days 3650 -out "$pki/ca.crt" 2>/dev/null
fi
[ -s "$pki/sa.key" ] || { openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null; openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null; }
cert apiserver kube-apiserver "" "IP:127.0.0.1,IP:172.31.201.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
cert admin admin system:masters ""
cert apiserver-kubelet kube-apiserver-kubelet-client system:masters ""
cert kubelet "system:node:$node" system:nodes "IP:127.0.0.1,IP:172.31.200.1,DNS:$node,DNS:localhost"

kubeconfig() { # file cert
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: boxrun-k8s
  cluster:
    server: $api
    certificate-authority: $pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $pki/$2.crt
    client-key: $pki/$2.key
contexts:
- name: boxrun-k8s
  context: {cluster: boxrun-k8s, user: $2}
current-context: boxrun-k8s
EOF
	chmod 600 "$1"
}
kubeconfig "$state/admin.kubeconfig" admin
kubeconfig "$state/kubelet.kubeconfig" kubelet

# kapi PATH [curl args]: the API as admin (no kubectl is built).
kapi() {
	local p=$1
	shift
	curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$api$p" "$@"
}
# kcreate PATH JSON: creates an object; one that exists is kept.
kcreate() {
	local code
	code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
		-X POST -H 'Content-Type: application/json' --data "$2" "$api$1")
	case $code in 201 | 409) ;; *) echo "k8s-up: create $1: HTTP $code" >&2; return 1 ;; esac
}
node_ready() {
	kapi "/api/v1/nodes/$node" | python3 -c 'import json,sys; c=json.load(sys.stdin)["status"].get("conditions",[]); sys.exit(0 if any(x["type"]=="Ready" and x["status"]=="True" for x in c) else 1)'
}

# --- process helpers ---------------------------------------------------------
alive() { # name: 0 when its pid file names a live process of that binary
	local p
	p=$(cat "$run/pids/$1.pid" 2>/dev/null) || return 1
	[ -n "$p" ] && [ -d "/proc/$p" ] && [ "$(basename "$(readlink "/proc/$p/exe" 2>/dev/null)")" = "$2" ]
}
launch() { # name binary args...
	local name=$1 b=$2
	shift 2
	if alive "$name" "$(basename "$(readlink -f "$bin/$b")")"; then return 0; fi
	setsid "$bin/$b" "$@" >>"$logs/$name.log" 2>&1 </dev/null &
	echo $! >"$run/pids/$name.pid"
}
wait_for() { # what seconds command...
	local what=$1 limit=$2
	shift 2
	local deadline=$((SECONDS + limit))
	until "$@" >/dev/null 2>&1; do
		if [ $SECONDS -ge $deadline ]; then
			echo "k8s-up: $what not ready after ${limit}s; logs in $logs" >&2
			return 1
		fi
		sleep 0.5
	done
}

# --- node address: the pod bridge's gateway ----------------------------------
# The kubelet refuses a loopback node IP, so the node's address is the
# gateway of the pod bridge, made here (the bridge plugin then finds it):
# local to this host, reachable by the API server, never on eth0.
node_ip=172.31.200.1
if ! ip link show brk8s0 >/dev/null 2>&1; then
	ip link add brk8s0 type bridge
fi
ip addr show dev brk8s0 | grep -q "inet $node_ip/" || ip addr add "$node_ip/24" dev brk8s0
ip link set brk8s0 up

# Pods are hostile: nothing on this host is theirs to reach. Traffic from the
# pod bridge to the host (the node IP included: the kubelet is reached by
# the API server over loopback, never by pods) and forwarding off the bridge
# are dropped; only replies to what the host opened pass. One table of our
# own, replaced whole (k8s-down.sh deletes it); no rules elsewhere.
nft -f - <<EOF_NFT
add table inet boxrun_k8s
delete table inet boxrun_k8s
table inet boxrun_k8s {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "brk8s0" ct state established,related accept
		iifname "brk8s0" drop
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "brk8s0" oifname "brk8s0" accept
		iifname "brk8s0" drop
		oifname "brk8s0" ct state established,related accept
		oifname "brk8s0" drop
	}
}
EOF_NFT

# --- containerd + CNI + gVisor shim ------------------------------------------
for p in bridge host-local loopback; do ln -sfn "$bin/$p" "$state/cni/bin/$p"; done
cat >"$state/cni/net.d/10-boxrun-k8s.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "boxrun-k8s",
  "plugins": [{
    "type": "bridge", "bridge": "brk8s0", "isGateway": true, "ipMasq": false, "hairpinMode": false, "portIsolation": true,
    "ipam": {"type": "host-local", "dataDir": "$state/cni/ipam", "ranges": [[{"subnet": "$pod_cidr"}]]}
  }]
}
EOF
cat >"$state/runsc.toml" <<EOF
binary_name = "$runsc"
root = "$run/runsc"
EOF
cat >"$state/containerd.toml" <<EOF
version = 3
root = "$state/containerd"
state = "$run/containerd"
[grpc]
  address = "$run/containerd.sock"
[metrics]
  address = ""
[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  # No container may get a lower OOM score than containerd's own: these
  # machines lack CAP_SYS_RESOURCE, so runsc could not set the kubelet's
  # -998 (pod sandbox) or -997 (Guaranteed pods) and every pod would fail.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runsc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runsc]
      runtime_type = "io.containerd.runsc.v1"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runsc.options]
        TypeUrl = "io.containerd.runsc.v1.options"
        ConfigPath = "$state/runsc.toml"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$state/cni/bin"]
    conf_dir = "$state/cni/net.d"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "boxrun.local/pause:1"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOF
launch containerd containerd --config "$state/containerd.toml"
wait_for containerd 60 ctr -a "$run/containerd.sock" version

# Images: pause (busybox sleeping, exits on TERM) and the busybox test image
# (the rootfs of boxruntest.BusyboxImage, named as its Ref resolves).
img() { # ref file args...
	local ref=$1 file=$2
	shift 2
	if ! ctr -a "$run/containerd.sock" -n k8s.io images ls -q | grep -qx "$ref"; then
		go run ./driver/kubernetes/internal/mkimage -ref "$ref" -o "$state/images/$file" "$@"
		ctr -a "$run/containerd.sock" -n k8s.io images import --no-unpack=false "$state/images/$file" >/dev/null
	fi
}
pausedir=$(mktemp -d)
mkdir -p "$pausedir/bin"
cp /bin/busybox "$pausedir/bin/busybox"
img boxrun.local/pause:1 pause.tar -rootfs "$pausedir" \
	-entrypoint '["/bin/busybox","sh","-c","trap \"exit 0\" TERM INT; while :; do /bin/busybox sleep 3600 & wait; done"]'
rm -rf "$pausedir"
img docker.io/library/busybox-test:latest busybox-test.tar -busybox -env PATH=/usr/sbin:/usr/bin:/sbin:/bin

# --- etcd + control plane ----------------------------------------------------
launch etcd etcd --name boxrun-k8s --data-dir "$state/etcd" \
	--listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
	--listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
	--initial-cluster boxrun-k8s=http://127.0.0.1:23800 --unsafe-no-fsync
wait_for etcd 60 curl -fsS http://127.0.0.1:23790/health

launch kube-apiserver kube-apiserver --etcd-servers=http://127.0.0.1:23790 \
	--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=16443 \
	--service-cluster-ip-range=$svc_cidr --anonymous-auth=false \
	--client-ca-file="$pki/ca.crt" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
	--kubelet-client-certificate="$pki/apiserver-kubelet.crt" --kubelet-client-key="$pki/apiserver-kubelet.key" \
	--kubelet-certificate-authority="$pki/ca.crt" --kubelet-preferred-address-types=InternalIP \
	--service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
	--service-account-issuer=https://kubernetes.default.svc \
	--authorization-mode=Node,RBAC --endpoint-reconciler-type=none
wait_for kube-apiserver 120 kapi /readyz

launch kube-controller-manager kube-controller-manager --kubeconfig="$state/admin.kubeconfig" \
	--authentication-kubeconfig="$state/admin.kubeconfig" --authorization-kubeconfig="$state/admin.kubeconfig" \
	--bind-address=127.0.0.1 --secure-port=0 --leader-elect=false \
	--service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
	--service-cluster-ip-range=$svc_cidr --enable-hostpath-provisioner=true
launch kube-scheduler kube-scheduler --kubeconfig="$state/admin.kubeconfig" \
	--authentication-kubeconfig="$state/admin.kubeconfig" --authorization-kubeconfig="$state/admin.kubeconfig" \
	--bind-address=127.0.0.1 --secure-port=0 --leader-elect=false

# --- kubelet (cgroup v1/v2 hybrid: the v1 hierarchy with cgroupfs) -----------
cgv1=true
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && cgv1=false
cat >"$state/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: AlwaysAllow}
tlsCertFile: $pki/kubelet.crt
tlsPrivateKeyFile: $pki/kubelet.key
containerRuntimeEndpoint: unix://$run/containerd.sock
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
enableServer: true
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
serializeImagePulls: false
resolvConf: ""
EOF
# The kubelet sets kernel tunables once at start (vm.overcommit_memory,
# kernel.panic, kernel.panic_on_oops, ...); they are put back right after it
# is up, so the host's behaviour is not changed for everyone else.
tunables="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes"
[ -s "$state/sysctl.orig" ] || sysctl $tunables | sed 's/ = /=/' >"$state/sysctl.orig"
launch kubelet kubelet --config="$state/kubelet.yaml" --kubeconfig="$state/kubelet.kubeconfig" \
	--root-dir="$state/kubelet" --cert-dir="$pki" --hostname-override=$node --node-ip=$node_ip
wait_for "node $node" 180 node_ready

sysctl -q $(cat "$state/sysctl.orig")

# --- cluster objects -----------------------------------------------------------
kcreate /apis/node.k8s.io/v1/runtimeclasses '{"apiVersion":"node.k8s.io/v1","kind":"RuntimeClass","metadata":{"name":"gvisor"},"handler":"runsc"}'
kcreate /apis/storage.k8s.io/v1/storageclasses '{"apiVersion":"storage.k8s.io/v1","kind":"StorageClass","metadata":{"name":"boxrun-hostpath","annotations":{"storageclass.kubernetes.io/is-default-class":"true"}},"provisioner":"kubernetes.io/host-path","reclaimPolicy":"Delete","volumeBindingMode":"Immediate"}'
wait_for "default service account" 60 kapi /api/v1/namespaces/default/serviceaccounts/default
echo "k8s-up: cluster ready in $((SECONDS - start)) s (cgroup v1: $cgv1)" >&2
echo "$state/admin.kubeconfig"
