#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine, builds dshost and the example
# strategies, and runs the main job on the embedded default config (a
# synthetic street scene) with yolo_filter. Extra arguments go to dshost,
# e.g. `scripts/run.sh --duration 10 --alerts-jsonl -`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# Setup and build talk on stderr: stdout carries only alerts.
bash scripts/setup.sh >&2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dshost/target}"
bash scripts/build-strategies.sh >&2
cargo build --quiet --release -p dshost
exec "$CARGO_TARGET_DIR/release/dshost" --strategy target/strategies/yolo_filter.wasm "$@"
