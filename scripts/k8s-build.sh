#!/usr/bin/env bash
# k8s-build.sh — builds the binaries of the single-node test cluster from the
# Go module proxy (no other downloads), pinned by the wrapper modules in
# tools/k8s (Kubernetes v1.37.2 + etcd), tools/containerd (containerd, ctr to
# import images, CNI plugins) and tools/shim (gVisor's containerd-shim-runsc-v1, same gVisor as
# runsc in tools/go.mod).
#
# Binaries are cached outside the clone under $BOXRUN_K8S_CACHE (default
# /var/cache/boxrun-k8s), one directory per wrapper module keyed by a hash of
# its go.mod, go.sum and the build flags, so a warm machine (or a second clone)
# does not rebuild. The last line printed is the directory holding all
# binaries (a symlink farm, $BOXRUN_K8S_CACHE/bin). Builds run under nice.
#
# Usage: scripts/k8s-build.sh            build what is missing, print bin dir
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export CGO_ENABLED=0
cache=${BOXRUN_K8S_CACHE:-/var/cache/boxrun-k8s}
mkdir -p "$cache"

k8s_version=$(cd tools/k8s && go list -m -f '{{.Version}}' k8s.io/kubernetes)
ctrd_version=$(cd tools/containerd && go list -m -f '{{.Version}}' github.com/containerd/containerd/v2)
cni_version=$(cd tools/containerd && go list -m -f '{{.Version}}' github.com/containernetworking/plugins)
gv_runsc=$(cd tools && go list -m -f '{{.Version}}' gvisor.dev/gvisor)
gv_shim=$(cd tools/shim && go list -m -f '{{.Version}}' gvisor.dev/gvisor)
if [ "$gv_runsc" != "$gv_shim" ]; then
	echo "k8s-build: tools/shim pins gVisor $gv_shim but runsc (tools/go.mod) is $gv_runsc; align them" >&2
	exit 1
fi

# key MODULE ARGS...: a short hash of the module's pins and the build arguments.
key() { local m=$1; shift; { cat "tools/$m/go.mod" "tools/$m/go.sum"; echo "$*"; } | sha256sum | cut -c1-16; }

# build MODULE NAMES... -- GO BUILD ARGS: builds into $cache/MODULE-KEY unless
# every NAME is already there.
build() {
	local mod=$1; shift
	local names=()
	while [ "$1" != "--" ]; do names+=("$1"); shift; done
	shift
	local dir="$cache/$mod-$(key "$mod" "${names[@]}" "$@")"
	local missing=0 n
	for n in "${names[@]}"; do [ -x "$dir/$n" ] || missing=1; done
	if [ $missing = 1 ]; then
		echo "k8s-build: building ${names[*]} into $dir (cold: tens of minutes)" >&2
		local start=$SECONDS
		mkdir -p "$dir.tmp"
		(cd "${src_dir:-tools/$mod}" && nice -n 19 go build -trimpath -o "$dir.tmp/" "$@")
		rm -rf "$dir" && mv "$dir.tmp" "$dir"
		echo "k8s-build: $mod built in $((SECONDS - start)) s" >&2
	fi
	mkdir -p "$cache/bin"
	for n in "${names[@]}"; do ln -sfn "$dir/$n" "$cache/bin/$n"; done
}

kv="k8s.io/component-base/version"
cv="k8s.io/client-go/pkg/version"
major=$(echo "${k8s_version#v}" | cut -d. -f1)
minor=$(echo "${k8s_version#v}" | cut -d. -f2)
kflags="-s -w"
for p in $kv $cv; do
	kflags="$kflags -X $p.gitVersion=$k8s_version -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done

build k8s kube-apiserver kube-controller-manager kube-scheduler kubelet server -- \
	-ldflags "$kflags" \
	k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
	k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
	go.etcd.io/etcd/server/v3
# etcd's main package is the module root (go.etcd.io/etcd/server/v3): go build names it "server".
ln -sfn "$(readlink "$cache/bin/server")" "$cache/bin/etcd" && rm -f "$cache/bin/server"

build containerd containerd ctr bridge host-local loopback -- \
	-tags "no_btrfs no_devmapper no_zfs no_aufs" \
	-ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$ctrd_version -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$cni_version" \
	github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/ctr \
	github.com/containernetworking/plugins/plugins/main/bridge \
	github.com/containernetworking/plugins/plugins/ipam/host-local \
	github.com/containernetworking/plugins/plugins/main/loopback

# The shim lowers its own OOM score to -999 and fails when it may not: a
# host (or container) without CAP_SYS_RESOURCE, as these machines are. The
# build patches that one call to keep the inherited score on EACCES (any
# other error still fails the shim): the wrapper module is vendored into a
# build directory under the cache (from the module cache: nothing is
# downloaded, nothing is kept in this repository) and the vendored file
# patched there.
shim_build="$cache/shim-src"
if [ ! -f "$shim_build/.patched" ] || ! cmp -s tools/shim/go.mod "$shim_build/go.mod" || ! cmp -s tools/shim/go.sum "$shim_build/go.sum"; then
	rm -rf "$shim_build" && mkdir -p "$shim_build"
	cp tools/shim/go.mod tools/shim/go.sum "$shim_build/"
	(cd "$shim_build" && go mod vendor)
	python3 - "$shim_build/vendor/gvisor.dev/gvisor/pkg/shim/v1/manager.go" <<'EOF_PY'
import sys
path = sys.argv[1]
call = "if err := sys.SetOOMScore(cmd.Process.Pid, oomScoreMax); err != nil {"
text = open(path).read()
if text.count(call) != 1:
    sys.exit("k8s-build: the shim's OOM score call changed in " + path + "; update the patch")
open(path, "w").write(text.replace(call, call[:-2] + " && !os.IsPermission(err) {"))
EOF_PY
	touch "$shim_build/.patched"
fi
src_dir="$shim_build" build shim shim -- -mod=vendor -ldflags "-s -w" gvisor.dev/gvisor/shim
ln -sfn "$(readlink "$cache/bin/shim")" "$cache/bin/containerd-shim-runsc-v1" && rm -f "$cache/bin/shim"

echo "$cache/bin"
