# konductor — build, test and lint every module of the go.work monorepo.
MODULES    := controller sim chaos e2e cmd
PKGS       := $(foreach m,$(MODULES),./$(m)/...)
GO         ?= go
BIN        ?= bin
TEST_FLAGS ?= -count=1 -timeout 30m
BENCH      ?= .
SEEDS      ?= 1000
SOAK_RUNS  ?= 200
E2E_FLAGS  ?= -count=1 -timeout 60m -v

MUTANT_FLAGS ?=

.PHONY: all build test lint bench footprint run kongsim-demo sim soak mutants e2e e2e-local drill drill-smoke drill-suite images k8s-binaries metrics-binaries postgres-start postgres-stop help

all: lint build test

help: ## list the targets
	@grep -hE '^[a-z][a-zA-Z0-9_-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build every module and the binaries into ./bin
	$(GO) build $(PKGS)
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/... ./sim/cluster/echoserver ./sim/cluster/pgentry

test: ## run every module's tests (PostgreSQL is installed and started on demand)
	$(GO) test $(TEST_FLAGS) $(PKGS)

lint: ## gofmt and go vet over every module
	@out="$$(gofmt -l $(MODULES))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags e2e ./e2e/...
	$(GO) vet -tags drills ./chaos/suite/

bench: ## run the benchmarks (BENCH=regexp to choose)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem $(PKGS)

footprint: ## memory of the konductor binary with 10k Ingresses/Services/EndpointSlices on the local control plane (root, minutes)
	KONDUCTOR_FOOTPRINT=1 $(GO) test -count=1 -timeout=90m -run TestFootprint10k -v ./sim/footprint/

run: ## the main job: the simulator runs the real controller through 20 seeded fault schedules and reports
	$(GO) run ./cmd/konductor-sim -seeds 20

kongsim-demo: ## start kongsim on loopback, load a sample configuration, show what it reports
	hack/kongsim-demo.sh

sim: ## run SEEDS random nemesis seeds of the simulator and print its report
	$(GO) run ./cmd/konductor-sim -seeds $(SEEDS)

soak: ## run the nemesis seeds make test runs SOAK_RUNS times in a row (default 200); stops at the first failure with its seed, run number and replay line
	$(GO) run ./cmd/konductor-sim -soak $(SOAK_RUNS)

mutants: ## run the mutant catalogue (sim/mutants) against the simulator and the specs: mutant → caught by (oracle, seed) / survived, and the score
	$(GO) run ./cmd/konductor-mutants $(MUTANT_FLAGS)

e2e: ## e2e suite on kind (needs Docker; without it: SKIPPED, not passed)
	@if ! docker info >/dev/null 2>&1; then \
		echo "e2e: SKIPPED (not passed): no reachable Docker engine ('docker info' failed). Start Docker, or run 'make e2e-local'."; \
	else \
		KONDUCTOR_E2E_PROVIDER=kind $(GO) test -tags e2e $(E2E_FLAGS) ./e2e/suite/; \
	fi

e2e-local: build k8s-binaries ## e2e suite on the local process cluster (no Docker; needs root)
	hack/postgres.sh install
	METRICS_COMPONENTS="metrics-server prometheus keda keda-adapter" hack/build-metrics.sh >/dev/null
	KONDUCTOR_E2E_PROVIDER=local KONDUCTOR_E2E_BIN=$(abspath $(BIN)) KONDUCTOR_K8S_BIN="$$(hack/build-k8s.sh)" $(GO) test -tags e2e $(E2E_FLAGS) ./e2e/suite/

DRILLS      ?= chaos/drills
DRILL_FLAGS ?=
DRILL_RUNS  ?= 1

drill: build k8s-binaries ## the standard drills on a local process cluster (root; about 20 minutes a run; DRILL_RUNS=3 for three in a row); prints where the reports are
	BIN=$(BIN) DRILL_RUNS=$(DRILL_RUNS) hack/drill.sh $(DRILL_FLAGS) $(DRILLS)

drill-smoke: build k8s-binaries ## a short drill for CI: leader crash and Kong restart under traffic (root; a few minutes)
	BIN=$(BIN) hack/drill.sh $(DRILL_FLAGS) chaos/drills/smoke

drill-suite: build k8s-binaries ## the drills as Ginkgo specs on a running cluster (KONDUCTOR_DRILL_KUBECONFIG, KONDUCTOR_DRILL_PROVIDER)
	$(GO) test -tags drills -count=1 -timeout 120m -v ./chaos/suite/

images: ## container images konductor:dev, kongsim:dev, konductor.dev/echo:dev
	docker build -f build/konductor.Dockerfile -t konductor:dev .
	docker build -f build/kongsim.Dockerfile -t kongsim:dev .
	docker build -f build/echo.Dockerfile -t konductor.dev/echo:dev .

k8s-binaries: ## build (once, cached) etcd, kube-apiserver, kube-controller-manager, kube-scheduler
	hack/build-k8s.sh

metrics-binaries: ## build (once, cached) metrics-server, Prometheus and KEDA for the local cluster's autoscaling (METRICS_COMPONENTS=metrics-server for the CPU HPA alone)
	hack/build-metrics.sh

postgres-start: ## install (if needed) and start PostgreSQL on 127.0.0.1 for DB-mode tests
	hack/postgres.sh start

postgres-stop: ## stop the test PostgreSQL
	hack/postgres.sh stop
