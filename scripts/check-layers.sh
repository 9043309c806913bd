#!/usr/bin/env bash
# The stages (pipeline -> detect -> strategy -> alerts) never import each
# other, and `frame` (what they hand over) imports none of them: the runtime
# composes them. Fails naming each import that breaks the rule.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)/host/src"
stages=(pipeline detect strategy alerts)
status=0
check() {
  local folder="$1"; shift
  local forbidden=("$@")
  for other in "${forbidden[@]}"; do
    # `crate::other` in code (comments and doc lines are skipped).
    hits="$(grep -rnE "^[^/]*crate::${other}(::|[^a-z_])" "$src/$folder" --include='*.rs' || true)"
    if [ -n "$hits" ]; then
      echo "layering: host/src/$folder imports crate::$other:" >&2
      echo "$hits" | sed "s|$src/|  host/src/|" >&2
      status=1
    fi
  done
}
for stage in "${stages[@]}"; do
  others=()
  for other in "${stages[@]}" runtime ops app probe; do
    [ "$other" = "$stage" ] || others+=("$other")
  done
  check "$stage" "${others[@]}"
done
check frame "${stages[@]}" runtime ops app probe
if [ "$status" -eq 0 ]; then
  echo "layering: pipeline, detect, strategy, alerts and frame import no other stage"
fi
exit "$status"
