#!/usr/bin/env bash
# demo.sh — from a fresh clone to a box printing output, offline-friendly.
#
# On Debian/Ubuntu with Go installed, as root (the gVisor driver needs it):
#   scripts/demo.sh
# It installs busybox-static if missing (apt), builds runsc (gVisor), the
# boxrun binary and its in-box helper into bin/, writes a tiny busybox image
# as an OCI layout (no registry needed), and runs a command in a box. The
# first boxrun command starts the server in the background on
# $BOXRUN_STATE_DIR/boxrun.sock (default ~/.boxrun).
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
state=${BOXRUN_STATE_DIR:-${HOME:-/root}/.boxrun}
image_dir="$state/demo-image"
busybox=${BUSYBOX:-/bin/busybox}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
	echo "demo.sh: the gVisor driver needs root; re-running with sudo" >&2
	exec sudo --preserve-env=PATH,GOPATH,GOCACHE,GOMODCACHE,GOTOOLCHAIN,BOXRUN_STATE_DIR,BUSYBOX "$0" "$@"
fi
command -v go >/dev/null || { echo "demo.sh: Go is required (https://go.dev/dl/)" >&2; exit 1; }

# A static busybox: the demo image's only binary.
if [ -z "${BUSYBOX:-}" ] && command -v dpkg >/dev/null && ! dpkg -s busybox-static >/dev/null 2>&1; then
	step "Installing busybox-static (apt)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static
fi
[ -x "$busybox" ] || { echo "demo.sh: no static busybox at $busybox (set BUSYBOX=/path/to/static/busybox)" >&2; exit 1; }

mkdir -p bin
step "Checking runsc (gVisor) — built from tools/go.mod the first time: a few minutes"
./scripts/ensure-runsc.sh
step "Building bin/boxrun (also the in-box init of every box)"
CGO_ENABLED=0 go build -o bin/boxrun ./cmd/boxrun

step "Writing a busybox image (OCI layout) to $image_dir"
bin/boxrun images build-busybox --busybox "$busybox" "$image_dir"

export BOXRUN_STATE_DIR="$state"
step "boxrun run oci:$image_dir echo ..."
bin/boxrun run "oci:$image_dir" sh -c 'echo "Hello from a BoxRun box: $(uname -sr), $(id -un)@$(hostname)"'

step "A persistent box: create, exec, copy, remove"
name="demo-$$"
bin/boxrun create --name "$name" --cpus 1 --memory 256 "oci:$image_dir"
bin/boxrun exec "$name" sh -c 'echo "6*7 = $((6*7))"; ls /'
echo "a file from the host" > "$state/demo-note.txt"
bin/boxrun cp "$state/demo-note.txt" "$name:/root/note.txt"
bin/boxrun exec "$name" cat /root/note.txt
bin/boxrun ls
bin/boxrun rm -f "$name"

cat <<EOF

Done. Try:
  $repo/bin/boxrun shell oci:$image_dir     # an interactive shell in a new box
  $repo/bin/boxrun --help
With internet access, registry images work too:  bin/boxrun run alpine echo hi
The server keeps running in the background (socket $state/boxrun.sock,
log $state/boxrun.log); stop it with:  kill \$(pgrep -f "boxrun serve --socket $state/boxrun.sock")
EOF
