#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine and runs the whole test suite:
# formatting, lints, unit tests and end-to-end tests (real GStreamer
# pipelines, real compiled strategy components).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bash scripts/setup.sh --tests
# One fixed target directory outside the checkout, so fresh clones on the same
# machine reuse earlier builds. Safe: cargo fingerprints everything it reuses.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dshost/target}"

bash scripts/build-strategies.sh
# ONNX Runtime, the demo model, vtest.avi and the photos for tests/onnx.rs
# (cached; a failed download fails the run: those tests must not skip).
bash scripts/fetch-models.sh >/dev/null
# NVIDIA's real DeepStream 9.0.2 metadata libraries for tests/deepstream_meta.rs
# (downloaded once, cached; a failed download fails the run).
DSHOST_DEEPSTREAM_TEST_LIBS="$(bash scripts/fetch-deepstream-libs.sh)"
export DSHOST_DEEPSTREAM_TEST_LIBS
cargo fmt --all -- --check
# The stages never import each other (docs/architecture.md).
bash scripts/check-layers.sh
cargo clippy --quiet --workspace --all-targets -- -D warnings
# cargo prints one summary per test binary (the last is often an empty
# doc-test run); close with the total.
log="$(mktemp)"
set +e
cargo test --workspace 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# The fuzz targets (fuzz/), briefly, so they keep building and the small
# corpus keeps passing; DSHOST_FUZZ_SECONDS=0 skips them.
fuzz_seconds="${DSHOST_FUZZ_SECONDS:-20}"
fuzz_status=0
if [ "$fuzz_seconds" != 0 ]; then
  bash scripts/fuzz.sh "$fuzz_seconds" || fuzz_status=$?
fi
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
if [ "$status" -eq 0 ] && [ "$fuzz_status" -ne 0 ]; then
  echo "tests: the fuzz run failed" >&2
  exit "$fuzz_status"
fi
exit "$status"
