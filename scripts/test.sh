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
# A long-lived machine's shared target fills up with stale test binaries.
bash scripts/prune-target.sh "$CARGO_TARGET_DIR"

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
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# The Debian package, built from the debug binary just tested, installed
# and run as an operator would (scripts/test-package.sh).
set +e
bash scripts/test-package.sh 2>&1 | tee -a "$log"
package_status=${PIPESTATUS[0]}
set -e
if [ "$package_status" -eq 0 ]; then echo "test result: ok. 1 passed; 0 failed; (package)" >>"$log"; else
  echo "test result: FAILED. 0 passed; 1 failed; (package)" >>"$log"; fi
# The fuzz targets (fuzz/) replay their corpus, so they keep building and the
# small corpus keeps passing; DSHOST_FUZZ_SECONDS=N fuzzes each for N seconds
# instead (an instrumented build: about an hour cold on 2 cores).
set +e
if [ -n "${DSHOST_FUZZ_SECONDS:-}" ] && [ "${DSHOST_FUZZ_SECONDS}" != 0 ]; then
  bash scripts/fuzz.sh "$DSHOST_FUZZ_SECONDS" 2>&1 | tee -a "$log"
else
  bash scripts/fuzz.sh --replay 2>&1 | tee -a "$log"
fi
fuzz_status=${PIPESTATUS[0]}
set -e
if [ "$fuzz_status" -eq 0 ]; then echo "test result: ok. 1 passed; 0 failed; (fuzz corpus)" >>"$log"; else
  echo "test result: FAILED. 0 passed; 1 failed; (fuzz corpus)" >>"$log"; fi
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
if [ "$status" -eq 0 ]; then status=$package_status; fi
if [ "$status" -eq 0 ]; then status=$fuzz_status; fi
exit "$status"
