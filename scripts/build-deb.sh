#!/usr/bin/env bash
# Builds the Debian package (cargo-deb; `scripts/setup.sh --tests` installs it):
#   bash scripts/build-deb.sh            release build, for shipping
#   bash scripts/build-deb.sh --dev      the debug build the test suite already made
# Prints the path of the .deb on stdout.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dshost/target}"

profile=release
if [ "${1:-}" = "--dev" ]; then profile=dev; fi
dir=release
if [ "$profile" = dev ]; then dir=debug; fi

bash scripts/build-strategies.sh >&2
if [ "$profile" = dev ]; then
  # Exactly the test suite's build (`cargo test --workspace` resolves
  # features with every member's dev-dependencies; `cargo build -p dshost`
  # would resolve them differently and rebuild wasmtime and more).
  cargo test --quiet --workspace --no-run >&2
else
  cargo build --quiet -p dshost --bin dshost --profile "$profile" >&2
fi
bin="$CARGO_TARGET_DIR/$dir/dshost"

# Completions and the man page come from the binary's own command line.
mkdir -p target/packaging
"$bin" completions bash > target/packaging/dshost.bash
"$bin" completions zsh > target/packaging/_dshost
"$bin" completions fish > target/packaging/dshost.fish
"$bin" man | gzip -9n > target/packaging/dshost.1.gz

# cargo-deb takes `target/release/dshost` from the asset list out of the
# profile's directory.
cargo deb -p dshost --no-build --profile "$profile" --output target/packaging/ >&2
ls -t target/packaging/*.deb | head -n 1
