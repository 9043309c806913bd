#!/usr/bin/env bash
# The Debian package as an operator gets it: build it (from the debug build
# the test suite made), install it, and run the installed binary and unit:
# `dshost --version`, `dshost validate-config /etc/dshost/config.yaml`,
# `systemd-analyze verify` of the unit, the man page and bash completions.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
fail() { echo "package: FAILED: $*" >&2; exit 1; }

deb="$(bash scripts/build-deb.sh --dev)"
echo "package: built $deb"
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$root/$deb" >/dev/null \
  || fail "apt-get install $deb"
version="$(/usr/bin/dshost --version)" || fail "dshost --version"
expected="dshost $(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "dshost"))')"
[ "$version" = "$expected" ] || fail "dshost --version said '$version', expected '$expected'"
/usr/bin/dshost validate-config /etc/dshost/config.yaml || fail "the installed default config does not validate"
for f in /usr/share/dshost/strategies/yolo_filter.wasm /etc/dshost/dshost.env /lib/systemd/system/dshost.service; do
  [ -f "$f" ] || fail "$f is not installed"
done
[ "$(stat -c %a /etc/dshost/dshost.env)" = 600 ] || fail "/etc/dshost/dshost.env must be readable by root only"
# systemd's own checker: unknown keys, bad values, a missing ExecStart binary.
out="$(systemd-analyze verify /lib/systemd/system/dshost.service 2>&1)" || fail "systemd-analyze verify: $out"
if [ -n "$out" ]; then fail "systemd-analyze verify warned: $out"; fi
man -l /usr/share/man/man1/dshost.1.gz 2>/dev/null | grep -q "validate-config" || fail "the man page lacks validate-config"
bash -c 'source /usr/share/bash-completion/completions/dshost && complete -p dshost' | grep -q "dshost" \
  || fail "bash does not load the completions"
echo "package: installed and checked ($version)"
