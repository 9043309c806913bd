#!/usr/bin/env bash
# Builds app.py into strategy.wasm. Needs the toolchain scripts/setup.sh installs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
sdk="$here/.."                       # sdk/python: dshost_strategy.py
wit="${DSHOST_WIT:-$here/../../../wit}"  # the dshost wit/ directory
venv="${DSHOST_SDK_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/dshost/sdk-tools}/venv"
"$venv/bin/componentize-py" -d "$wit" -w strategy componentize --stub-wasi \
  -p "$sdk" -p "$here" app -o "$here/strategy.wasm"
