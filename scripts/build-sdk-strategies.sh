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

# JavaScript: componentize-qjs (QuickJS), non-async runtime, WASI stubbed.
# The SDK module is copied next to the strategy so its relative import resolves.
js_build() {
  local dir="$work/js/$1"
  rm -rf "$dir" && mkdir -p "$dir"
  cp "strategies/$1/"*.js sdk/js/dshost_strategy.js "$dir/"
  "$npm_bin/componentize-qjs" --wit wit --js "$dir/strategy.js" --module-root "$dir" -n strategy --sync --stub-wasi \
    -o "$work/$1.wasm" >/dev/null
}
js_label="componentize-qjs $(node -p 'require(process.argv[1]).version' "$tools/npm/node_modules/componentize-qjs/package.json")"
build yolo_filter_js "$(inputs_hash "$js_label" sdk/js/dshost_strategy.js strategies/yolo_filter_js wit)" \
  js_build yolo_filter_js

if [ "${#built[@]}" -gt 0 ]; then
  echo "strategies: ${built[*]} -> $out"
fi
