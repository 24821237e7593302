# Nylon Functions. Needs only Go (and git for version stamping).
#
#   make run        build the example functions, then run `nylon serve`
#   make test       vet, compile the wasm guests, then race tests on the concurrent packages and the rest
#   make help       list every target

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build
MAKEFLAGS += --no-print-directory

GO           ?= go
BIN          ?= bin/nylon
WASM_DIR     ?= build/wasm
TEST_TIMEOUT ?= 10m
FUZZTIME     ?= 30s
BENCHFLAGS   ?=
ARGS         ?=
NATSCLI_VERSION ?= v0.5.0

# Packages with goroutines of their own run under the race detector; the
# directories that do not exist (yet) are skipped. wasmhost/internal/yield is
# a pure function of its input with no goroutines; its tests compile every Go
# guest in wazero, which -race makes several times slower (224 s vs ~25 s
# cold), so it runs with the rest.
RACE_DIRS := wasmhost registry platform gateway ws internal/natsconn internal/loadgen internal/logsample
RACE_SKIP := %/wasmhost/internal/yield

# Evaluated lazily (=), so `make clean` or `make help` do not run go list.
RACE_PKGS  = $(filter-out $(RACE_SKIP),$(if $(wildcard $(RACE_DIRS)),$(shell $(GO) list $(addsuffix /...,$(addprefix ./,$(wildcard $(RACE_DIRS)))))))
ALL_PKGS   = $(shell $(GO) list ./...)
OTHER_PKGS = $(filter-out $(RACE_PKGS),$(ALL_PKGS))
# Go files outside testdata/ that declare benchmarks or fuzz targets.
BENCH_DIRS = $(sort $(dir $(shell grep -rlE --include='*_test.go' '^func Benchmark[A-Z_0-9]' . | grep -v '/testdata/')))

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/nylon (stamped with the git commit: see `bin/nylon version`)
	$(GO) build -trimpath -buildvcs=auto -o $(BIN) ./cmd/nylon

.PHONY: functions
functions: ## build every functions/examples/<name> into build/wasm/functions_examples_<name>.wasm
	@mkdir -p $(WASM_DIR)
	@for dir in functions/examples/*/; do \
		ls "$$dir"*.go >/dev/null 2>&1 || continue; \
		name=$$(basename "$$dir"); \
		echo "wasm  $(WASM_DIR)/functions_examples_$$name.wasm"; \
		GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath \
			-o $(WASM_DIR)/functions_examples_$$name.wasm ./functions/examples/$$name; \
	done

.PHONY: run
run: functions build ## build the example functions, run `nylon serve` and deploy the examples (serve flags: ARGS="...")
	./scripts/run.sh $(ARGS)

.PHONY: vet
vet: ## go vet for the host and, for the guest SDK and examples, for wasip1
	$(GO) vet ./...
	@if [ -d functions ]; then \
		echo "GOOS=wasip1 GOARCH=wasm $(GO) vet ./functions/sdk/... ./functions/internal/... ./functions/examples/..."; \
		GOOS=wasip1 GOARCH=wasm $(GO) vet ./functions/sdk/... ./functions/internal/... ./functions/examples/...; \
	fi

.PHONY: test-deps
test-deps: ## install what the tests need beyond Go: Debian's chromium (chat page browser test), the nats CLI (micro discovery test)
	@if [ ! -x build/bin/nats ]; then \
		echo "installing the nats CLI into build/bin (github.com/nats-io/natscli $(NATSCLI_VERSION))"; \
		GOBIN=$(CURDIR)/build/bin GOFLAGS= $(GO) install github.com/nats-io/natscli/nats@$(NATSCLI_VERSION); \
	fi
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing chromium (browser test of the chat page)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

.PHONY: test
test: test-deps functions vet ## vet, compile every wasm guest once, race tests on the concurrent packages, plain tests on the rest
	@# Builds every guest and compiles it into build/wazero-cache without
	@# -race, which slows wazero's compiler several times: the race tests
	@# then load machine code (see internal/testutil/guests_test.go).
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -run '^TestGuestsCompile$$' ./internal/testutil
	@if [ -n "$(strip $(RACE_PKGS))" ]; then \
		echo "$(GO) test -race -timeout $(TEST_TIMEOUT) $(RACE_PKGS)"; \
		$(GO) test -race -timeout $(TEST_TIMEOUT) $(RACE_PKGS); \
	fi
	$(GO) test -timeout $(TEST_TIMEOUT) $(OTHER_PKGS)

.PHONY: bench
bench: functions ## run every benchmark once; output also in build/bench.txt
	@mkdir -p build
	$(GO) test -run '^$$' -bench . -benchmem $(BENCHFLAGS) -timeout 30m $(patsubst %/,%,$(BENCH_DIRS)) | tee build/bench.txt

.PHONY: fuzz
fuzz: functions ## run each fuzz target for FUZZTIME (default 30s)
	@grep -rHE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . | grep -v '/testdata/' | \
	while IFS=: read -r file decl; do \
		name=$$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$$decl"); \
		dir=$$(dirname "$$file"); \
		echo "fuzz  $$dir $$name for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$dir" || exit 1; \
	done

.PHONY: lint
lint: vet ## gofmt must list nothing, and go vet
	@files=$$(gofmt -l .); \
	if [ -n "$$files" ]; then echo "gofmt needed on:"; echo "$$files"; exit 1; fi

.PHONY: clean
clean: ## remove bin/ and build/ (./data, the local registry, is kept)
	rm -rf bin build
