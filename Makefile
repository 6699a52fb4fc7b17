# BoxRun build and test entry points. `make test` is the test command CI runs.
GO ?= go
export GOTOOLCHAIN := local

.PHONY: all build runsc deps mcp-ts-deps test vet fmt-check bench demo clean k8s-build k8s-up k8s-down e2e-k8s fuzz fuzz-short chaos chaos-short

all: build

deps: ## Debian packages the tests and the gVisor/QEMU drivers need (root).
	./scripts/install-deps.sh

# The TypeScript MCP SDK for the MCP interop test (cmd/boxrun TestCLI_MCP),
# pinned by tests/mcp-ts/package-lock.json. Without npm the test skips
# (fails under BOXRUN_REQUIRE_ALL=1).
mcp-ts-deps:
	@if ! command -v npm >/dev/null; then echo "npm not found: the TypeScript MCP test will skip"; \
	elif [ ! tests/mcp-ts/node_modules/.package-lock.json -nt tests/mcp-ts/package-lock.json ]; then \
		cd tests/mcp-ts && npm ci --no-audit --no-fund; fi

# runsc is rebuilt when missing or when tools/go.mod pins another gVisor
# version than the one stamped in bin/runsc.version.
runsc:
	./scripts/ensure-runsc.sh

build: runsc
	CGO_ENABLED=0 $(GO) build -o bin/boxrun ./cmd/boxrun
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags=-s -o bin/boxrun-qemu-agent ./driver/qemu/agent

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The kubernetes driver is linked only with -tags kubernetes: vet that build too.
vet:
	$(GO) vet ./...
	$(GO) vet -tags kubernetes ./cmd/boxrun

test: runsc mcp-ts-deps fmt-check vet
	BOXRUN_RUNSC=$(CURDIR)/bin/runsc $(GO) test -race -timeout 40m ./...

# Fuzz targets (every func FuzzXxx): `make fuzz` runs each for 2 minutes,
# `make fuzz-short` (CI) for 3 seconds. Seeds live in testdata/fuzz and in
# the targets; plain `go test` replays them.
fuzz:
	FUZZTIME=$${FUZZTIME:-2m} ./scripts/fuzz.sh

fuzz-short:
	FUZZTIME=$${FUZZTIME:-3s} ./scripts/fuzz.sh

# Crash suite: the server SIGKILLed at random moments of a mixed workload,
# checked after every restart (internal/chaostest): TestChaos of the root
# package (fake driver) and of driver/gvisor (real gVisor, root only). Every
# `go test` runs a short version with 3 kills.
chaos: runsc
	BOXRUN_CHAOS_KILLS=$${BOXRUN_CHAOS_KILLS:-50} $(GO) test -count=1 -run '^TestChaos$$' -v -timeout 60m .
	BOXRUN_CHAOS_KILLS=$${BOXRUN_CHAOS_KILLS:-50} BOXRUN_RUNSC=$(CURDIR)/bin/runsc $(GO) test -count=1 -run '^TestChaos$$' -v -timeout 60m ./driver/gvisor/

chaos-short: runsc
	BOXRUN_CHAOS_KILLS=3 $(GO) test -count=1 -run '^TestChaos$$' -v .
	BOXRUN_CHAOS_KILLS=3 BOXRUN_RUNSC=$(CURDIR)/bin/runsc $(GO) test -count=1 -run '^TestChaos$$' -v -timeout 20m ./driver/gvisor/

bench: runsc
	BOXRUN_RUNSC=$(CURDIR)/bin/runsc $(GO) test -run '^$$' -bench . -benchtime 5x ./...

# The single-node Kubernetes cluster of driver/kubernetes (root; see
# scripts/k8s-up.sh). Binaries are built once and cached in /var/cache/boxrun-k8s.
k8s-build:
	./scripts/k8s-build.sh

k8s-up: runsc
	BOXRUN_RUNSC=$(CURDIR)/bin/runsc ./scripts/k8s-up.sh

k8s-down:
	./scripts/k8s-down.sh

# The Kubernetes driver against the real cluster (brings it up if needed).
e2e-k8s: k8s-up
	$(GO) test -tags e2e_k8s -count=1 -timeout 30m ./driver/kubernetes/

demo:
	./scripts/demo.sh

clean:
	rm -rf bin
