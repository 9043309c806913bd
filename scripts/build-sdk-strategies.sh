#!/usr/bin/env bash
# Builds the strategies written with the C, Python and JavaScript SDKs to
# target/strategies/<name>.wasm (called by scripts/build-strategies.sh).
# Incremental: a port is rebuilt only when a hash of its inputs (its sources,
# the SDK, wit/, and the toolchain versions) differs from the one recorded at
# its last build; the Python and JavaScript builds take 10-40 s each.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools="${DSHOST_SDK_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/dshost/sdk-tools}"
out="$root/target/strategies"
work="$root/target/sdk-build"
mkdir -p "$out" "$work"

venv_bin="$tools/venv/bin"
npm_bin="$tools/npm/node_modules/.bin"
adapter="$tools/wasi_snapshot_preview1.reactor-48.0.8.wasm" # version as in scripts/setup-sdk-toolchains.sh
for tool in "$venv_bin/wasm-tools" "$venv_bin/componentize-py" "$npm_bin/componentize-qjs" "$adapter"; do
  if [ ! -e "$tool" ]; then
    echo "build-strategies: $tool is missing; run scripts/setup.sh" >&2
    exit 1
  fi
done
if ! command -v clang-16 >/dev/null 2>&1; then
  echo "build-strategies: clang-16 is missing; run scripts/setup.sh" >&2
  exit 1
fi

# Hash of the given files' contents plus a toolchain label.
inputs_hash() {
  local label="$1"
  shift
  { echo "$label"; find "$@" -type f -not -name '*.pyc' -not -path '*/build/*' -not -path '*/__pycache__/*' \
      | LC_ALL=C sort | xargs sha256sum; } | sha256sum | cut -d' ' -f1
}

# build NAME HASH COMMAND...: runs COMMAND (which writes $work/NAME.wasm)
# unless NAME was last built from the same inputs, then installs the result.
build() {
  local name="$1" hash="$2"
  shift 2
  local stamp="$work/$name.inputs"
  if [ -f "$out/$name.wasm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then
    return 0
  fi
  rm -f "$stamp"
  "$@"
  cp "$work/$name.wasm" "$out/$name.wasm.tmp" && mv "$out/$name.wasm.tmp" "$out/$name.wasm"
  echo "$hash" >"$stamp"
  built+=("$name")
}
built=()

# C: clang-16 + wasi-libc, then wasm-tools component new with the reactor
# adapter (wasi-libc's printf family imports fd_write/fd_seek/fd_close).
c_label="$(clang-16 --version | head -n1); $("$venv_bin/wasm-tools" --version); $(basename "$adapter")"
build yolo_filter_c "$(inputs_hash "$c_label" sdk/c strategies/yolo_filter_c wit)" \
  make --no-print-directory -s -C strategies/yolo_filter_c BUILD="$work/c" OUT="$work/yolo_filter_c.wasm" \
  WASM_TOOLS="$venv_bin/wasm-tools" ADAPTER="$adapter"

# Python: componentize-py; --stub-wasi because the sandbox grants no WASI
# capability a strategy could use.
py_label="$("$venv_bin/componentize-py" --version)"
build yolo_filter_py "$(inputs_hash "$py_label" sdk/python/dshost_strategy.py strategies/yolo_filter_py wit)" \
  "$venv_bin/componentize-py" -q -d wit -w strategy componentize --stub-wasi \
  -p sdk/python -p strategies/yolo_filter_py app -o "$work/yolo_filter_py.wasm"

# JavaScript: componentize-qjs (QuickJS), non-async runtime, WASI stubbed
# (sdk/js/componentize.sh: the SDK module next to the strategy, and for 0.2.0
# the SDK's packing handler as the export).
js_label="componentize-qjs $(node -p 'require(process.argv[1]).version' "$tools/npm/node_modules/componentize-qjs/package.json")"
build yolo_filter_js "$(inputs_hash "$js_label" sdk/js/dshost_strategy.js sdk/js/componentize.sh strategies/yolo_filter_js wit)" \
  bash sdk/js/componentize.sh strategies/yolo_filter_js "$work/yolo_filter_js.wasm" wit

# The same ports built against the previous contract (dshost:strategy@0.1.0),
# which the host keeps accepting: the "before" of the packed-result change.
build yolo_filter_c_v0_1 "$(inputs_hash "$c_label" sdk/c strategies/yolo_filter_c wit)" \
  make --no-print-directory -s -C strategies/yolo_filter_c BUILD="$work/c_v0_1" OUT="$work/yolo_filter_c_v0_1.wasm" \
  CONTRACT=0.1.0 WASM_TOOLS="$venv_bin/wasm-tools" ADAPTER="$adapter"
build yolo_filter_py_v0_1 "$(inputs_hash "$py_label" sdk/python/dshost_strategy.py strategies/yolo_filter_py wit)" \
  "$venv_bin/componentize-py" -q -d wit/0.1.0 -w strategy componentize --stub-wasi \
  -p sdk/python -p strategies/yolo_filter_py app -o "$work/yolo_filter_py_v0_1.wasm"
build yolo_filter_js_v0_1 "$(inputs_hash "$js_label" sdk/js/dshost_strategy.js sdk/js/componentize.sh strategies/yolo_filter_js wit)" \
  bash sdk/js/componentize.sh strategies/yolo_filter_js "$work/yolo_filter_js_v0_1.wasm" wit/0.1.0

if [ "${#built[@]}" -gt 0 ]; then
  echo "strategies: ${built[*]} -> $out"
fi
