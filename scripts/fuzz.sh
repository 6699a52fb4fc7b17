#!/usr/bin/env bash
# Runs every Go fuzz target of the module (func FuzzXxx in *_test.go) for
# FUZZTIME each (default 3s; `make fuzz` uses 2m). New crashers are written
# to the package's testdata/fuzz/FuzzXxx/ and fail the run: commit them as
# seeds once fixed. Plain `go test` already replays every seed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-3s}"
GO="${GO:-go}"
fail=0
count=0
start=$(date +%s)
while IFS=: read -r file fn; do
	pkg="./$(dirname "$file")"
	count=$((count + 1))
	echo "fuzz: $pkg $fn ($FUZZTIME)"
	if ! "$GO" test -run '^$' -fuzz "^${fn}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 10s "$pkg"; then
		echo "fuzz: FAIL $pkg $fn"
		fail=1
	fi
done < <(grep -rHo --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+' . | sed -e 's|^\./||' -e 's|:func |:|' | sort)
echo "fuzz: $count targets in $(( $(date +%s) - start ))s"
exit $fail
