#!/usr/bin/env bash
# k8s-down.sh — stops the cluster of scripts/k8s-up.sh and removes everything
# it left on the host (as root; idempotent): its processes (components by
# pid file; gVisor shims, sandboxes and gofers by their state paths under
# /run/boxrun-k8s), mounts under its directories, network namespaces, the
# brk8s0 bridge, kubepods cgroups, /var/lib/boxrun-k8s, /run/boxrun-k8s,
# /var/log/boxrun-k8s and /tmp/hostpath_provisioner. The binary cache
# (/var/cache/boxrun-k8s) is kept. Kernel tunables the kubelet set were put
# back by k8s-up.sh already; they are put back here again if recorded.
set -uo pipefail
[ "$(id -u)" = 0 ] || { echo "k8s-down: run as root" >&2; exit 1; }
state=/var/lib/boxrun-k8s
run=/run/boxrun-k8s
logs=/var/log/boxrun-k8s

# stop PIDS...: TERM, then KILL what is left after 10 s.
stop() {
	[ $# -gt 0 ] || return 0
	kill -TERM "$@" 2>/dev/null
	for _ in $(seq 1 40); do
		local left=0 p
		for p in "$@"; do [ -d "/proc/$p" ] && left=1; done
		[ $left = 0 ] && return 0
		sleep 0.25
	done
	kill -KILL "$@" 2>/dev/null
	sleep 0.5
}
pidof_name() { cat "$run/pids/$1.pid" 2>/dev/null; }
# ours: processes whose command line names our state paths (shims, runsc
# sandboxes and gofers started for the cluster's pods).
ours() {
	local p
	for p in /proc/[0-9]*; do
		tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qE "$run/|$state/" && echo "${p#/proc/}"
	done
}

for c in kubelet kube-scheduler kube-controller-manager kube-apiserver; do
	p=$(pidof_name $c) && [ -n "$p" ] && stop $p
done
# Pod sandboxes: kill them before containerd (their shims outlive it).
stop $(ours | grep -vx "$(pidof_name containerd || echo none)")
for c in containerd etcd; do
	p=$(pidof_name $c) && [ -n "$p" ] && stop $p
done
stop $(ours)

# Mounts below our directories (deepest first), including network
# namespaces (containerd keeps them under its state dir).
for _ in 1 2 3; do
	mounts=$(awk -v a="$state" -v b="$run" -v c=/tmp/hostpath_provisioner \
		'index($5, a)==1 || index($5, b)==1 || index($5, c)==1 {print $5}' /proc/self/mountinfo | sort -r)
	[ -z "$mounts" ] && break
	for m in $mounts; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
done

ip link del brk8s0 2>/dev/null
nft delete table inet boxrun_k8s 2>/dev/null

# cgroups the kubelet and runsc made for pods (every v1 controller and v2).
for base in /sys/fs/cgroup/*/ /sys/fs/cgroup/unified/ /sys/fs/cgroup/; do
	for top in "$base"kubepods*; do
		[ -d "$top" ] || continue
		find "$top" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
done

if [ -s "$state/sysctl.orig" ]; then sysctl -q $(cat "$state/sysctl.orig"); fi
rm -rf "$state" "$run" "$logs" /tmp/hostpath_provisioner
echo "k8s-down: done" >&2
