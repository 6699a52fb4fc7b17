#!/usr/bin/env bash
# ensure-runsc.sh — builds bin/runsc from the gVisor version pinned in
# tools/go.mod when it is missing or was built from another version. The
# version built is stamped in bin/runsc.version (runsc built from the module
# proxy reports no version of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
want=$(cd tools && go list -m -f '{{.Version}}' gvisor.dev/gvisor)
have=$(cat bin/runsc.version 2>/dev/null || true)
if [ -x bin/runsc ] && [ "$have" = "$want" ]; then
	exit 0
fi
echo "ensure-runsc: building runsc $want (was: ${have:-none}) — a few minutes the first time" >&2
mkdir -p bin
(cd tools && CGO_ENABLED=0 go build -ldflags='-s -w' -o ../bin/runsc.tmp gvisor.dev/gvisor/runsc)
mv bin/runsc.tmp bin/runsc
echo "$want" > bin/runsc.version
