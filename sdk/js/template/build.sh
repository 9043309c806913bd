#!/usr/bin/env bash
# Builds strategy.js into strategy.wasm with componentize-qjs. Needs the
# toolchain scripts/setup.sh installs. DSHOST_WIT picks the contract's wit/
# directory (default: this dshost's wit/, dshost:strategy@0.2.0).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/../componentize.sh" "$here" "$here/strategy.wasm" "${DSHOST_WIT:-$here/../../../wit}"
