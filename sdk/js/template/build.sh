#!/usr/bin/env bash
# Builds strategy.js into strategy.wasm with componentize-qjs. Needs the
# toolchain scripts/setup.sh installs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
wit="${DSHOST_WIT:-$here/../../../wit}"  # the dshost wit/ directory
npm_bin="${DSHOST_SDK_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/dshost/sdk-tools}/npm/node_modules/.bin"
# componentize-qjs resolves relative imports under --module-root: put the SDK
# module next to the strategy.
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
cp "$here"/*.js "$here/../dshost_strategy.js" "$build/"
"$npm_bin/componentize-qjs" --wit "$wit" --js "$build/strategy.js" --module-root "$build" -n strategy --sync \
  --stub-wasi -o "$here/strategy.wasm"
