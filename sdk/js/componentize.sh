#!/usr/bin/env bash
# Builds a JavaScript strategy into a component with componentize-qjs:
#   componentize.sh STRATEGY_DIR OUT.wasm [WIT_DIR]
# STRATEGY_DIR holds strategy.js (exporting `handler`) and any modules it
# imports; WIT_DIR defaults to the dshost wit/ directory (contract 0.2.0;
# pass wit/0.1.0 for the previous one). For 0.2.0 the component exports the
# SDK's packedHandler(handler), which packs what `process` returns, so the
# strategy source is the same for both versions.
set -euo pipefail
sdk="$(cd "$(dirname "$0")" && pwd)"
src="$1"
out="$2"
wit="${3:-$sdk/../../wit}"
npm_bin="${DSHOST_SDK_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/dshost/sdk-tools}/npm/node_modules/.bin"
# componentize-qjs resolves relative imports under --module-root: put the SDK
# module next to the strategy.
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
cp "$src"/*.js "$sdk/dshost_strategy.js" "$build/"
entry="$build/strategy.js"
if grep -qs 'package dshost:strategy@0\.2\.' "$wit"/*.wit; then
  entry="$build/dshost_entry.js"
  cat >"$entry" <<'JS'
import { handler as strategy } from "./strategy.js";
import { packedHandler } from "./dshost_strategy.js";
export const handler = packedHandler(strategy);
JS
fi
"$npm_bin/componentize-qjs" --wit "$wit" --js "$entry" --module-root "$build" -n strategy --sync --stub-wasi \
  -o "$out" >/dev/null
