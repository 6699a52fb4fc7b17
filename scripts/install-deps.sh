#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages BoxRun's tests and drivers use:
#   busybox-static          test and demo images (a static busybox)
#   qemu-system-x86,
#   linux-image-cloud-amd64,
#   e2fsprogs               the QEMU driver (micro-VM, guest kernel, mkfs.ext4 -d)
#   chromium                the web UI's real-browser test
#   iproute2, nftables      per-box network namespaces, NAT and egress policy
# Needs root (or sudo). Idempotent: installs only what is missing.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

want=(busybox-static qemu-system-x86 e2fsprogs chromium python3 iproute2 nftables)
if [ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ] && grep -qi debian /etc/os-release; then
	want+=(linux-image-cloud-amd64)
fi
missing=()
for p in "${want[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all present"
	exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
