# konductor — build, test and lint every module of the go.work monorepo.
MODULES    := controller sim chaos e2e cmd
PKGS       := $(foreach m,$(MODULES),./$(m)/...)
GO         ?= go
BIN        ?= bin
TEST_FLAGS ?= -count=1 -timeout 30m
BENCH      ?= .
SEEDS      ?= 1000

.PHONY: all build test lint bench run postgres-start postgres-stop help

all: lint build test

help: ## list the targets
	@grep -hE '^[a-z][a-zA-Z0-9_-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build every module and the binaries into ./bin
	$(GO) build $(PKGS)
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

test: ## run every module's tests (PostgreSQL is installed and started on demand)
	$(GO) test $(TEST_FLAGS) $(PKGS)

lint: ## gofmt and go vet over every module
	@out="$$(gofmt -l $(MODULES))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

bench: ## run the benchmarks (BENCH=regexp to choose)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem $(PKGS)

run: ## the main job: start kongsim on loopback and load a sample configuration into it
	hack/kongsim-demo.sh

postgres-start: ## install (if needed) and start PostgreSQL on 127.0.0.1 for DB-mode tests
	hack/postgres.sh start

postgres-stop: ## stop the test PostgreSQL
	hack/postgres.sh stop
