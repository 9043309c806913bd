#!/usr/bin/env bash
# Keeps the shared target directory from filling the disk. Every branch and
# every edit of a test leaves another 0.5 GB test binary in target/debug/deps
# and more incremental state; on a long-lived machine that filled the disk and
# the linker died with SIGBUS. When free space is below the floor, this drops
# what cargo can rebuild cheaply: the incremental caches and all but the
# newest build of each test binary. Dependencies (rlibs) are kept: they are
# the expensive part of a cold build.
#   usage: prune-target.sh TARGET_DIR [FLOOR_GB]   (default floor 20 GB)
set -euo pipefail
target="${1:?usage: prune-target.sh TARGET_DIR [FLOOR_GB]}"
floor_gb="${2:-20}"
[ -d "$target" ] || exit 0

free_gb() { df -P -BG "$target" | awk 'NR == 2 { sub(/G$/, "", $4); print $4 }'; }

before="$(free_gb)"
if [ "$before" -ge "$floor_gb" ]; then exit 0; fi
echo "prune-target: ${before} GB free under $target (floor ${floor_gb} GB): pruning" >&2

for profile in "$target"/debug "$target"/release "$target"/*/debug "$target"/*/release; do
  [ -d "$profile" ] || continue
  rm -rf "$profile/incremental"
  deps="$profile/deps"
  [ -d "$deps" ] || continue
  # Executables are named NAME-<16 hex>; sort newest first, keep the first of
  # each NAME.
  find "$deps" -maxdepth 1 -type f -executable ! -name '*.*' -printf '%T@ %p\n' |
    sort -rn | awk '{ path = $2; n = split(path, parts, "/"); base = parts[n];
                      sub(/-[0-9a-f]+$/, "", base);
                      if (seen[base]++) print path }' |
    while read -r stale; do rm -f "$stale"; done
done
echo "prune-target: $(free_gb) GB free now" >&2
