#!/usr/bin/env bash
# Builds every strategy (and the in-tree test guests) to WebAssembly components
# and copies them to target/strategies/<name>.wasm. Incremental: cargo skips
# what is up to date.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="$root/target/strategies"

crates=(yolo_filter zone_intrusion line_crossing hostile bench_records marker)
args=()
for c in "${crates[@]}"; do args+=(-p "$c"); done
cargo build --quiet --profile strategy --target wasm32-wasip2 "${args[@]}"

mkdir -p "$out"
for c in "${crates[@]}"; do
  src="$target_dir/wasm32-wasip2/strategy/$c.wasm"
  # Copy only on change so file watchers and caches see no needless writes.
  if ! cmp -s "$src" "$out/$c.wasm"; then
    cp "$src" "$out/$c.wasm.tmp" && mv "$out/$c.wasm.tmp" "$out/$c.wasm"
  fi
done
# The marker test guest in a second build (feature variant-b), so hot-reload
# tests can swap two builds whose detections differ.
cargo build --quiet --profile strategy --target wasm32-wasip2 -p marker --features variant-b
src="$target_dir/wasm32-wasip2/strategy/marker.wasm"
if ! cmp -s "$src" "$out/marker_b.wasm"; then
  cp "$src" "$out/marker_b.wasm.tmp" && mv "$out/marker_b.wasm.tmp" "$out/marker_b.wasm"
fi
# ...and back to the default build, so marker.wasm in the target dir stays variant a.
cargo build --quiet --profile strategy --target wasm32-wasip2 -p marker
cp -p "$out/marker.wasm" "$out/marker_a.wasm.tmp" && mv "$out/marker_a.wasm.tmp" "$out/marker_a.wasm"

# Builds against the previous contract (dshost:strategy@0.1.0), which the host
# keeps accepting: <name>_v0_1.wasm. Cargo keeps both feature sets' artifacts,
# so switching back to the default costs a copy, not a rebuild.
legacy=(yolo_filter hostile)
for c in "${legacy[@]}"; do
  cargo build --quiet --profile strategy --target wasm32-wasip2 -p "$c" --features contract-0-1
  src="$target_dir/wasm32-wasip2/strategy/$c.wasm"
  if ! cmp -s "$src" "$out/${c}_v0_1.wasm"; then
    cp "$src" "$out/${c}_v0_1.wasm.tmp" && mv "$out/${c}_v0_1.wasm.tmp" "$out/${c}_v0_1.wasm"
  fi
done
cargo build --quiet --profile strategy --target wasm32-wasip2 "${args[@]}"

echo "strategies: ${crates[*]} marker_b ${legacy[*]/%/_v0_1} -> $out"

# The yolo_filter ports written with the C, Python and JavaScript SDKs.
bash "$root/scripts/build-sdk-strategies.sh"
