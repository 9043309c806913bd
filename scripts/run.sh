#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine, builds dshost and the example
# strategies, and runs the main job: the pedestrian clip vtest.avi (Debian's
# opencv-doc) through the YOLOv12n COCO demo model (ONNX Runtime on the CPU,
# AGPL-3.0 weights fetched into ~/.cache/dshost, never committed) and
# yolo_filter (person, bicycle, car), printing alerts with stable object ids
# and a snapshot of each. When the model or the clip could not be fetched it
# runs the embedded default instead (a SYNTHETIC street scene) and says so.
# Extra arguments go to dshost, e.g. `scripts/run.sh --duration 10 --alerts-jsonl -`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# Setup and build talk on stderr: stdout carries only alerts.
bash scripts/setup.sh >&2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dshost/target}"
bash scripts/prune-target.sh "$CARGO_TARGET_DIR" >&2
bash scripts/build-strategies.sh >&2
cargo build --quiet --release -p dshost
dshost="$CARGO_TARGET_DIR/release/dshost"

if assets="$(bash scripts/fetch-models.sh 2>/dev/null)"; then
  model="$(sed -n 's/^DSHOST_DEMO_MODEL=//p' <<<"$assets")"
  clip="$(sed -n 's/^DSHOST_VTEST=//p' <<<"$assets")"
  DSHOST_ORT_LIB="$(sed -n 's/^DSHOST_ORT_LIB=//p' <<<"$assets")"
  export DSHOST_ORT_LIB
fi
if [ -n "${model:-}" ] && [ -f "$model" ] && [ -n "${clip:-}" ] && [ -f "$clip" ]; then
  echo "run.sh: real footage: $clip through $model (YOLOv12n COCO demo weights, AGPL-3.0) and yolo_filter" >&2
  exec "$dshost" --strategy target/strategies/yolo_filter.wasm --model "$model" --source "$clip" "$@"
fi
echo "run.sh: the demo model or clip could not be fetched (see scripts/fetch-models.sh);" \
     "running the SYNTHETIC street scene of the embedded default instead" >&2
exec "$dshost" --strategy target/strategies/yolo_filter.wasm "$@"
