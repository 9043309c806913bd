#!/usr/bin/env bash
# Installs everything dshost needs on a fresh Debian/Ubuntu machine: system packages,
# the wasm32-wasip2 Rust target. Safe to run again: every step is idempotent.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

APT_PACKAGES=(
  pkg-config build-essential ca-certificates
  # GStreamer: the CPU pipeline, decoders for H.264/H.265, RTSP client and server.
  gstreamer1.0-tools libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  libgstreamer-plugins-bad1.0-dev gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  gstreamer1.0-rtsp libgstrtspserver-1.0-dev
  # pip fetches NVIDIA's DeepStream metadata libraries for the real-library
  # test (scripts/fetch-deepstream-libs.sh).
  python3 python3-pip
  # Guest toolchains of the C, Python and JavaScript SDKs (sdk/); the rest in
  # scripts/setup-sdk-toolchains.sh.
  clang-16 lld-16 wasi-libc libclang-rt-16-dev-wasm32 python3-venv
)
# `setup.sh --tests`: what the test suite adds: real brokers and an SMTP
# server for the alert sinks, Prometheus's promtool to check the metrics
# exposition, systemd's and man's own checkers for the Debian package, and
# Debian's Chromium and Node.js for the console's browser tests.
if [ "${1:-}" = "--tests" ]; then
  APT_PACKAGES+=(mosquitto mosquitto-clients nats-server python3-aiosmtpd prometheus systemd man-db bash-completion chromium)
  command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${#missing[@]} system packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust with rustup (https://rustup.rs) and run again" >&2
  exit 1
fi
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "setup: adding the wasm32-wasip2 Rust target"
  rustup target add wasm32-wasip2
fi
bash "$(dirname "$0")/setup-sdk-toolchains.sh"
if [ "${1:-}" = "--tests" ]; then
  # Python tools the tests run (schemathesis against docs/openapi.yaml), pinned;
  # the stamp holds the requirement list, so a changed pin reinstalls.
  requirements="$(cd "$(dirname "$0")/.." && pwd)/tests/tools/requirements.txt"
  venv="${XDG_CACHE_HOME:-$HOME/.cache}/dshost/test-tools/venv"
  if ! cmp -s "$requirements" "$venv/.installed-requirements" 2>/dev/null; then
    echo "setup: installing the test tools (tests/tools/requirements.txt) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/.installed-requirements"
  fi
  # playwright-core for tests/console.rs, pinned by tests/console/package-lock.json
  # (npm ci: exactly the locked version and checksum; it uses Debian's
  # chromium, never a browser download of its own).
  console_tests="$(cd "$(dirname "$0")/.." && pwd)/tests/console"
  browser="${XDG_CACHE_HOME:-$HOME/.cache}/dshost/test-tools/browser"
  if ! cmp -s "$console_tests/package-lock.json" "$browser/package-lock.json" 2>/dev/null \
     || [ ! -d "$browser/node_modules/playwright-core" ]; then
    echo "setup: installing the browser test tools (tests/console/package-lock.json) into $browser"
    mkdir -p "$browser"
    cp "$console_tests/package.json" "$console_tests/package-lock.json" "$browser/"
    (cd "$browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
# ONNX Runtime, the demo model, the clip and the test photos (cached under
# ~/.cache/dshost; scripts/fetch-models.sh pins and checks each). dshost runs
# without them (the synthetic scene), so a failed download is a warning here;
# the test suite fetches again and fails on it.
if ! bash "$(dirname "$0")/fetch-models.sh"; then
  echo "setup: warning: the ONNX Runtime library, demo model or media could not be fetched (see above);" \
       "detector: onnx will not start until \`bash scripts/fetch-models.sh\` succeeds" >&2
fi
# The Debian package is built with cargo-deb (pinned; built from crates.io).
CARGO_DEB_VERSION=3.8.0
if [ "${1:-}" = "--tests" ] && ! cargo deb --version 2>/dev/null | grep -qF "$CARGO_DEB_VERSION"; then
  echo "setup: installing cargo-deb $CARGO_DEB_VERSION"
  cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi
echo "setup: done"
