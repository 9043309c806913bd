#!/usr/bin/env bash
# Runs dshost's fuzz targets (fuzz/, cargo fuzz with libFuzzer), each for a
# fixed time, starting from the small corpus kept in fuzz/corpus/<target>.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 20 s each, every target
#   scripts/fuzz.sh --replay                  what CI runs: a plain (not
#       instrumented) build of every target, each run once over its corpus,
#       so the targets keep building and every kept input keeps passing
#       without the instrumented build of wasmtime, GStreamer and SQLite.
#
# New inputs go to a scratch directory, not the repository (copy an
# interesting one into fuzz/corpus/ by hand). A crash fails the run and leaves
# the input under $DSHOST_FUZZ_OUT (default: a temporary directory).
# cargo fuzz needs nightly flags (-Z sanitizer); RUSTC_BOOTSTRAP=1 allows them
# on the stable toolchain. No sanitizer (the targets are safe Rust) and a dev
# build with overflow checks: the instrumented build of everything the host
# links (wasmtime, GStreamer bindings, SQLite) is most of the cost, and an
# optimised one takes about twice as long on 2 cores.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ "${1:-}" = "--replay" ]; then
  cd "$root/fuzz"
  targets=(frames_jsonl config_yaml sdk_compact_frame journal_replay guest_output)
  cargo build --quiet --bins
  bin="${CARGO_TARGET_DIR:-$root/fuzz/target}/debug"
  for target in "${targets[@]}"; do
    # libFuzzer's driver runs each file once with -runs=0.
    if ! "$bin/$target" -runs=0 "corpus/$target" >"${TMPDIR:-/tmp}/fuzz-replay-$target.log" 2>&1; then
      tail -n 30 "${TMPDIR:-/tmp}/fuzz-replay-$target.log" >&2
      echo "fuzz: replaying corpus/$target FAILED" >&2
      exit 1
    fi
    echo "fuzz: corpus/$target replayed ($(ls "corpus/$target" | wc -l) inputs)"
  done
  exit 0
fi
seconds="${1:-20}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(frames_jsonl config_yaml sdk_compact_frame journal_replay guest_output)
fi
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
export RUSTC_BOOTSTRAP=1
# Its own target directory: instrumented builds never mix with normal ones.
base="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_TARGET_DIR="$base/fuzz"
out="${DSHOST_FUZZ_OUT:-$(mktemp -d)}"
mkdir -p "$out"
cd "$root/fuzz"
started=$(date +%s)
for target in "${targets[@]}"; do
  cargo fuzz build --sanitizer none --dev "$target" 2>&1 | { grep -v '^ *Compiling' || true; }
done
built=$(date +%s)
for target in "${targets[@]}"; do
  mkdir -p "$out/corpus/$target"
  echo "fuzz: $target for ${seconds} s"
  if ! cargo fuzz run --sanitizer none --dev "$target" "$out/corpus/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=4096 -artifact_prefix="$out/" -print_final_stats=1 \
      >"$out/$target.log" 2>&1; then
    tail -n 40 "$out/$target.log" >&2
    echo "fuzz: $target FAILED; the input is in $out" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|new_units_added)' "$out/$target.log" | tr '\n' ' '
  echo
done
echo "fuzz: ${#targets[@]} targets passed (build $((built - started)) s, runs $(( $(date +%s) - built )) s)"
