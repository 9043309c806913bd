#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine and runs the whole test suite:
# formatting, lints, unit tests and end-to-end tests (real GStreamer
# pipelines, real compiled strategy components).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bash scripts/setup.sh
# One fixed target directory outside the checkout, so fresh clones on the same
# machine reuse earlier builds. Safe: cargo fingerprints everything it reuses.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dshost/target}"

bash scripts/build-strategies.sh
cargo fmt --all -- --check
cargo clippy --quiet --workspace --all-targets -- -D warnings
cargo test --workspace
