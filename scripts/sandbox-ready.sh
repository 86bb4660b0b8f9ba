#!/usr/bin/env bash
# How long `make sandbox` takes, on a fresh clone, until the sandbox prints its banner; then it
# stops the sandbox. The README's "Set-up" and docs/testing.md ("How long each takes") quote it.
#   scripts/sandbox-ready.sh [REV]      (default HEAD)
# Fresh: the clone, its target dir, its .venv, pip's cache (PIP_NO_CACHE_DIR) and, unless
# KEEP_CARGO_HOME=1, cargo's registry (a new CARGO_HOME, so every crate is downloaded again).
# Not fresh: the Rust toolchain and its wasm target (rustup's own downloads), and python3.
# Linux only (setsid); it starts nothing it does not stop.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
rev=${1:-HEAD}
limit=${SANDBOX_READY_LIMIT:-1200}

work=$(mktemp -d "${TMPDIR:-/tmp}/sandbox-ready.XXXXXX")
git clone -q "$repo" "$work/clone"
git -C "$work/clone" checkout -q "$rev"
export PIP_NO_CACHE_DIR=1
unset CARGO_TARGET_DIR
if [ "${KEEP_CARGO_HOME:-0}" != 1 ]; then
  # The rustup proxies (cargo, rustc) stay on PATH; only the registry and git caches are new.
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
  export CARGO_HOME="$work/cargo-home"
fi

log="$work/sandbox.log"
SECONDS=0
# Its own session, so the stop below reaches make, cargo and the sandbox and nothing else.
(cd "$work/clone" && exec setsid timeout "$limit" make sandbox) >"$log" 2>&1 &
pid=$!
ready="" venv="" module=""
while kill -0 "$pid" 2>/dev/null; do
  # When each step was done: the virtualenv's Envoy, the shipped module, the banner.
  [ -n "$venv" ] || [ ! -f "$work/clone/.venv/.requirements.sha256" ] || venv=$SECONDS
  [ -n "$module" ] || [ ! -f "$work/clone/target/rfma_filter.wasm" ] || module=$SECONDS
  if grep -q '^rfma sandbox: Envoy on ' "$log"; then
    ready=$SECONDS
    break
  fi
  sleep 0.5
done
# SIGTERM: the sandbox stops Envoy and httpbin and exits 0.
kill -TERM -- "-$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
stopped=$SECONDS

if [ -z "$ready" ]; then
  echo "sandbox-ready: no banner (log: $log)" >&2
  tail -n 30 "$log" >&2
  exit 1
fi
printf 'sandbox-ready: %d s from a fresh clone of %s to the banner (.venv ready at %s s, module at %s s; stopped %s s later; %s CARGO_HOME; load average at the end: %s)\n' \
  "$ready" "$(git -C "$work/clone" rev-parse --short HEAD)" "$venv" "$module" "$((stopped - ready))" \
  "$([ "${KEEP_CARGO_HOME:-0}" = 1 ] && echo warm || echo fresh)" "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"
rm -rf "$work"
