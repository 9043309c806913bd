#!/usr/bin/env bash
# Regenerates the checked-in C bindings after a change of wit/ (needs the
# wit-bindgen CLI with its C generator; see ../README.md):
#   ./       dshost:strategy@0.2.0 from wit/
#   0.1.0/   dshost:strategy@0.1.0 from wit/0.1.0/
# For 0.2.0 the generated `process` export calls dshost_packed_process
# (sdk/c/src/dshost_strategy.c), which calls the strategy's own
# exports_dshost_strategy_handler_process with the list of detections every
# version of the SDK has used and packs it, so strategy sources need no change.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
wit="$here/../../../wit"
wit_bindgen="${WIT_BINDGEN:-wit-bindgen}"
(cd "$here/0.1.0" && "$wit_bindgen" c "$wit/0.1.0" --world strategy)
(cd "$here" && "$wit_bindgen" c "$wit" --world strategy)
sed -i -E 's/\bexports_dshost_strategy_handler_process\(/dshost_packed_process(/g' "$here/strategy.c" "$here/strategy.h"
# Tell the SDK header which contract these bindings implement.
sed -i '0,/^#define __BINDINGS_STRATEGY_H$/s//&\n#define DSHOST_STRATEGY_PACKED 1/' "$here/strategy.h"
grep -q '^#define DSHOST_STRATEGY_PACKED 1' "$here/strategy.h"
