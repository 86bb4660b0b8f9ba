# istio-demo: the two commands a user needs are `make sandbox` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT        := $(CURDIR)
VENV        := $(ROOT)/.venv
export PATH := $(VENV)/bin:$(PATH)

WASM_TARGET := wasm32-wasip1
WASM_BUILD  := $(ROOT)/target/$(WASM_TARGET)/release/rfma_filter.wasm
# The module that ships (post-processed by wasm-opt); tests, sandbox and packaging use this one.
WASM        := $(ROOT)/target/rfma_filter.wasm
# A test-only build that traps on a marker header, to prove the proxy fails closed.
TRAP_DIR    := $(ROOT)/target/trap
TRAP_WASM   := $(ROOT)/target/rfma_filter_trap.wasm

export RFMA_WASM      := $(WASM)
export RFMA_TRAP_WASM := $(TRAP_WASM)
export ENVOY_BIN      ?= $(VENV)/bin/envoy

.PHONY: help deps wasm wasm-trap sandbox test lint lint-filter validate bench bench-deps

help:
	@echo "make sandbox   install what is missing, build the filter, run it in a local Envoy in front of httpbin"
	@echo "make test      install what is missing, then run every test"
	@echo "make wasm      build the shipped module and print its path"
	@echo "make bench     benchmark the gate against RBAC and Lua in Envoy, soak it, write docs/performance.*"

deps:
	@bash scripts/install-deps.sh

# The SDK exports every Proxy-Wasm callback, and Envoy calls each exported one on every
# request; wasm-metadce keeps only the exports in filter/exports.json (the callbacks the filter
# implements), so Envoy skips the rest and their code goes. Then wasm-opt shrinks the module.
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int --enable-mutable-globals
WASM_EXPORTS  := $(ROOT)/filter/exports.json

wasm: deps
	@cargo build --quiet --release --target $(WASM_TARGET) -p rfma-filter
	@wasm-metadce $(WASM_FEATURES) -f $(WASM_EXPORTS) $(WASM_BUILD) -o $(WASM).dce >/dev/null
	@wasm-opt -Oz $(WASM_FEATURES) --strip-debug --strip-producers $(WASM).dce -o $(WASM)
	@rm -f $(WASM).dce
	@echo "$(WASM)"

wasm-trap: deps
	@CARGO_TARGET_DIR=$(TRAP_DIR) cargo build --quiet --release --target $(WASM_TARGET) -p rfma-filter --features test-trap
	@wasm-metadce $(WASM_FEATURES) -f $(WASM_EXPORTS) $(TRAP_DIR)/$(WASM_TARGET)/release/rfma_filter.wasm -o $(TRAP_WASM).dce >/dev/null
	@wasm-opt -Oz $(WASM_FEATURES) --strip-debug --strip-producers $(TRAP_WASM).dce -o $(TRAP_WASM)
	@rm -f $(TRAP_WASM).dce

# Offline checks of every manifest directory (needs kubectl with kustomize, and ../shared/schemas).
validate:
	cargo run -q -p istio-demo -- validate

lint: deps lint-filter
	cargo clippy --workspace --all-targets -- -D warnings

# The filter's no-panic rules (no unwrap/expect/panic/indexing), natively and for the module.
lint-filter: deps
	cargo clippy -q -p rfma-filter --all-targets -- -D warnings
	cargo clippy -q -p rfma-filter --target $(WASM_TARGET) --all-features -- -D warnings

sandbox: wasm
	cargo run --quiet -p istio-demo -- sandbox --wasm $(WASM)

test: wasm wasm-trap lint-filter
	cargo test --workspace --no-fail-fast
	@# The binaries the test build just made: `cargo run` would resolve features without the
	@# dev-dependencies and rebuild half the dependency tree for nothing.
	@# Cost per request in wasmtime fuel, for each path through the gate (tests/src/fuel.rs).
	$(ROOT)/target/debug/fuel
	@# The filter's pure logic as wasm-bindgen tests in Node.js (V8, Istio's engine).
	@$(MAKE) --no-print-directory test-wasm-bindgen
	@# The GitOps manifests: kustomize build, strict schemas (../shared/schemas), project lints.
	$(ROOT)/target/debug/istio-demo validate
	@# A bounded run of each fuzz target (fuzz/, issue 8).
	@$(MAKE) --no-print-directory fuzz-smoke

# filter/tests/node_logic.rs for wasm32-unknown-unknown, run in Node.js by wasm-bindgen-test-runner,
# installed at the wasm-bindgen version Cargo.lock pins. tests/node/env.js stands in for the
# Proxy-Wasm host imports, which these tests never call.
.PHONY: test-wasm-bindgen
WASM_BINDGEN_VERSION = $(shell awk '/^name = "wasm-bindgen"$$/ {getline; gsub(/"/, "", $$3); print $$3}' Cargo.lock)

test-wasm-bindgen: deps
	@v="$(WASM_BINDGEN_VERSION)"; test -n "$$v" || { echo "wasm-bindgen is not in Cargo.lock" >&2; exit 1; }; \
	if [ "$$(wasm-bindgen-test-runner --version 2>/dev/null)" != "wasm-bindgen-test-runner $$v" ]; then \
	  echo "installing wasm-bindgen-cli $$v" >&2; cargo install --quiet --force wasm-bindgen-cli --version "$$v"; \
	fi
	NODE_PATH=$(ROOT)/tests/node CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
	  cargo test -p rfma-filter --target wasm32-unknown-unknown --test node_logic

# The benchmark (CPU in alternating rounds, then Envoy's instructions per request under
# callgrind) and the soak run: docs/performance.md, .json, .png; about 20 minutes.
# More: make bench BENCH_ARGS="--profile" (variants and probes that split the filter's cost;
# about 40 minutes), --help lists all.
BENCH_ARGS ?=
BENCH_STAMP := $(VENV)/.bench-requirements.sha256

bench-deps: deps
	@want=$$(sha256sum scripts/bench-requirements.txt | cut -d' ' -f1); \
	if [ "$$(cat $(BENCH_STAMP) 2>/dev/null)" != "$$want" ]; then \
	  $(VENV)/bin/pip install -q --disable-pip-version-check -r scripts/bench-requirements.txt && echo "$$want" > $(BENCH_STAMP); \
	fi

bench: wasm bench-deps
	cargo build -q -p rfma-bench
	RFMA_BENCH_COMMAND="make bench $(BENCH_ARGS)" $(ROOT)/target/debug/rfma-bench --out docs $(BENCH_ARGS)
	$(VENV)/bin/python scripts/bench-plot.py docs/performance.json docs/performance.png

# Fuzzing (fuzz/, its own cargo project and target dir): the model/corpus tests, then each
# cargo-fuzz target for FUZZ_TIME seconds. cargo fuzz needs nightly-only flags, which
# RUSTC_BOOTSTRAP=1 lets the stable toolchain take. New inputs go to fuzz/target/corpus/
# (git-ignored), never into the checked-in seeds; a crash lands in fuzz/artifacts/.
.PHONY: fuzz-smoke
FUZZ_TARGETS := config decide record
FUZZ_TIME    ?= 60
FUZZ_OPTIONS := -max_total_time=$(FUZZ_TIME) -max_len=8192 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
FUZZ_CARGO   := RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$(ROOT)/fuzz/target

fuzz-smoke: deps
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
