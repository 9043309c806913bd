#!/usr/bin/env bash
# Builds a self-contained dshost bundle for an offline NVIDIA GPU machine
# (x86_64, glibc >= 2.39, e.g. Ubuntu 24.04, NVIDIA driver + CUDA 13 runtime and
# NPP) that has neither GStreamer nor DeepStream installed:
#
#   bin/dshost                  release build, debug info stripped
#   bin/gst-launch-1.0, bin/gst-inspect-1.0
#   lib/                        GStreamer 1.26 and its library dependencies (Debian 13)
#   lib/gstreamer-1.0/          the GStreamer plugins dshost uses + gst-plugin-scanner
#   deepstream/lib/             NVIDIA's decoder libraries from the PyPI wheel
#                               nvidia-deepstream-videodecode-cu13 (9.0.2)
#   deepstream/gst-plugins/     nvv4l2decoder and nvvideoconvert
#   strategies/*.wasm           the example strategies
#   run.sh                      sets the library/plugin paths and starts dshost
#
#   onnxruntime/                ONNX Runtime's GPU build (CUDA provider), with
#                               BUNDLE_ORT_GPU=1 (from scripts/fetch-models.sh --gpu,
#                               about 300 MB) or BUNDLE_ORT_DIR=DIR (a folder holding
#                               libonnxruntime.so.1.31.1 and its provider libraries)
#
# Output: target/bundle/dshost-gpu.tar.xz (and the unpacked target/bundle/dshost-gpu/).
# On the GPU machine: tar -xJf dshost-gpu.tar.xz && dshost-gpu/run.sh probe
#
# Needs: Debian/Ubuntu with apt-get (only `apt-get download` is used, nothing is
# installed), pip, binutils (readelf, strip), xz, cargo. Downloads are cached in
# ${DSHOST_BUNDLE_CACHE:-~/.cache/dshost/bundle}.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

DS_WHEEL_VERSION="${DS_WHEEL_VERSION:-9.0.2}"
DEBIAN_SUITE="${DEBIAN_SUITE:-trixie}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cache="${DSHOST_BUNDLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dshost/bundle}"
out_dir="$root/target/bundle"
bundle="$out_dir/dshost-gpu"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dshost/target}"

say() { echo "bundle-gpu: $*" >&2; }
die() { echo "bundle-gpu: error: $*" >&2; exit 1; }
for tool in apt-get readelf strip xz tar cargo python3; do
  command -v "$tool" >/dev/null 2>&1 || die "\`$tool\` not found; install it (binutils for readelf/strip, xz-utils for xz)"
done

# ---------------------------------------------------------------------------
# 1. dshost (release) and the strategies.
if [ "${BUNDLE_SKIP_BUILD:-0}" != 1 ]; then
  say "building strategies and dshost (release)"
  bash scripts/build-strategies.sh >&2
  cargo build --quiet --release -p dshost
fi
dshost_bin="$CARGO_TARGET_DIR/release/dshost"
[ -x "$dshost_bin" ] || die "no release binary at $dshost_bin; run without BUNDLE_SKIP_BUILD=1"
# A shared target dir may hold another checkout's build by now: take a copy
# at once and check it has the GPU decode path.
mkdir -p "$out_dir"
cp "$dshost_bin" "$out_dir/dshost.tmp"
grep -q "GPU decode unavailable; decoding on the CPU" "$out_dir/dshost.tmp" || die "$dshost_bin has no GPU decode path (built from another checkout?)"
dshost_bin="$out_dir/dshost.tmp"

# ---------------------------------------------------------------------------
# 2. GStreamer 1.26 from Debian 13: a private apt configuration and state, so
#    the host's own sources and package database are neither read nor touched.
apt_dir="$cache/apt-$DEBIAN_SUITE"
mkdir -p "$apt_dir"/{lists/partial,cache/archives/partial,etc/sources.list.d,etc/preferences.d} "$cache/debs"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || die "$keyring missing; install debian-archive-keyring (it must hold the $DEBIAN_SUITE keys)"
echo "deb [signed-by=$keyring] $DEBIAN_MIRROR $DEBIAN_SUITE main" >"$apt_dir/etc/sources.list"
touch "$apt_dir/status"
apt_opts=(
  -o "Dir::Etc::SourceList=$apt_dir/etc/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/etc/sources.list.d"
  -o "Dir::Etc::Preferences=$apt_dir/etc/preferences" -o "Dir::Etc::PreferencesParts=$apt_dir/etc/preferences.d"
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::State::Status=$apt_dir/status" -o "Dir::Cache=$apt_dir/cache"
  -o APT::Architecture=amd64 -o APT::Architectures=amd64 -o Debug::NoLocking=1 -o APT::Sandbox::User=root
)
if [ -z "$(find "$apt_dir/lists" -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
  say "apt-get update ($DEBIAN_SUITE)"
  apt-get "${apt_opts[@]}" update -qq >&2
fi

printf '%s\n' "${apt_opts[@]}" >"$apt_dir/opts"
# ---------------------------------------------------------------------------
# 3. NVIDIA's decoder and converter from the PyPI wheel.
wheel_dir="$cache/wheel-$DS_WHEEL_VERSION"
if ! ls "$wheel_dir"/nvidia_deepstream_videodecode_cu13-*.whl >/dev/null 2>&1; then
  say "downloading nvidia-deepstream-videodecode-cu13==$DS_WHEEL_VERSION"
  python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_34_x86_64 --python-version 3.12 \
    "nvidia-deepstream-videodecode-cu13==$DS_WHEEL_VERSION" -d "$wheel_dir" >&2
fi
ds_stage="$cache/ds-$DS_WHEEL_VERSION"
rm -rf "$ds_stage" && mkdir -p "$ds_stage"
python3 - "$ds_stage" "$wheel_dir"/nvidia_deepstream_videodecode_cu13-*.whl <<'EOF'
import sys, zipfile
dest, wheel = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if "/_libs/" in info.filename or info.filename.endswith(("LICENSE", "THIRD_PARTY_NOTICES")):
            z.extract(info, dest)
EOF
ds_libs="$ds_stage/nvidia/deepstream_videodecode/_libs"
[ -f "$ds_libs/libgstnvvideo4linux2.so" ] || die "the wheel has no _libs/libgstnvvideo4linux2.so; its layout changed"

# ---------------------------------------------------------------------------
# 4. Assemble: NVIDIA's libraries, the picked GStreamer plugins and tools, then
#    every library they need (scripts/lib/debian_closure.py fetches only the
#    Debian packages that provide one).
rm -rf "$bundle" && mkdir -p "$bundle"/{bin,lib/gstreamer-1.0,deepstream/lib,deepstream/gst-plugins,strategies}
strip --strip-debug -o "$bundle/bin/dshost" "$dshost_bin"
rm -f "$dshost_bin"
cp target/strategies/yolo_filter.wasm target/strategies/zone_intrusion.wasm target/strategies/line_crossing.wasm \
  "$bundle/strategies/"
# The DeepStream plugins get their own folder: GStreamer would otherwise try
# (and fail) to load every library beside them as a plugin.
for f in "$ds_libs"/*.so "$ds_libs"/*.so.*; do
  case "$(basename "$f")" in
    libgstnvvideo4linux2.so | libgstnvvideoconvert.so) cp "$f" "$bundle/deepstream/gst-plugins/" ;;
    *) cp "$f" "$bundle/deepstream/lib/" ;;
  esac
done
cp -r "$ds_libs/v4l_plugins" "$bundle/deepstream/lib/"
cp "$ds_stage"/nvidia_deepstream_videodecode_cu13-*.dist-info/licenses/LICENSE "$bundle/deepstream/LICENSE" 2>/dev/null || true
cp "$ds_stage"/nvidia/deepstream_videodecode/THIRD_PARTY_NOTICES "$bundle/deepstream/" 2>/dev/null || true

multiarch=usr/lib/x86_64-linux-gnu
plugins=(
  coreelements                                   # core: queue, capsfilter, fakesink, filesrc, typefind
  playback app videoconvertscale typefindfunctions videotestsrc videorate # base
  isomp4 matroska rtsp rtp rtpmanager udp        # good: MP4/MKV demux, RTSP client
  videoparsersbad                                # bad: h264parse, h265parse
  x264                                           # ugly: x264enc, to make test media on the box
  openh264                                       # bad: openh264dec, a small CPU H.264 decoder
)
roots=(libgstreamer1.0-0 gstreamer1.0-tools gstreamer1.0-plugins-base libgstreamer-plugins-base1.0-0 gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad libgstreamer-plugins-bad1.0-0 gstreamer1.0-plugins-ugly libv4l-0t64)
# FFmpeg (avdec_h264/avdec_h265) is the faster CPU decoder but brings ~150 MB of
# codec libraries (and needs libblas from the alternatives system): off unless
# BUNDLE_LIBAV=1. Without it CPU decode uses openh264dec.
if [ "${BUNDLE_LIBAV:-0}" = 1 ]; then
  plugins+=(libav)
  roots+=(gstreamer1.0-libav)
fi
files=()
for name in "${plugins[@]}"; do
  files+=("$multiarch/gstreamer-1.0/libgst$name.so:$bundle/lib/gstreamer-1.0/libgst$name.so")
done
files+=(
  "$multiarch/gstreamer1.0/gstreamer-1.0/gst-plugin-scanner:$bundle/lib/gstreamer-1.0/gst-plugin-scanner"
  "usr/bin/gst-launch-1.0:$bundle/bin/gst-launch-1.0" "usr/bin/gst-inspect-1.0:$bundle/bin/gst-inspect-1.0"
)
# Libraries the GPU machine provides itself: its C/C++ runtime and the NVIDIA
# driver/CUDA libraries, which must match its driver.
system_re='^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libresolv\.so\.2|ld-linux-x86-64\.so\.2|libstdc\+\+\.so\.6|libgcc_s\.so\.1|libz\.so\.1|libzstd\.so\.1|liblzma\.so\.5|libbz2\.so\.1\.0|libcuda\.so\.1|libcudart\.so\.13|libnpp[a-z]*\.so\.13|libnvcuvid\.so\.1)$'
stage="$cache/stage-$DEBIAN_SUITE"
mkdir -p "$stage"
python3 scripts/lib/debian_closure.py "$apt_dir/opts" "$cache/debs" "$stage" "$bundle/lib" "$system_re" \
  --roots "${roots[@]}" --files "${files[@]}" --prefer-dir "$bundle/deepstream/lib" \
  --extra-elf "$bundle/bin/dshost" "$bundle"/deepstream/lib/*.so* "$bundle"/deepstream/lib/v4l_plugins/*.so \
  "$bundle"/deepstream/gst-plugins/*.so >"$bundle/.debian-packages"
# NVIDIA's libv4l2.so.0 (in deepstream/lib) must win over Debian's.
rm -f "$bundle/lib/libv4l2.so.0"

# The bundle must run on glibc 2.39 (Ubuntu 24.04) and its libstdc++.
max_glibc="$(find "$bundle" -type f \( -name '*.so*' -o -path '*/bin/*' -o -name gst-plugin-scanner \) -print0 |
  xargs -0 readelf -V 2>/dev/null | grep -o 'GLIBC_2\.[0-9]*' | sort -t. -k2 -n -u | tail -1)"
say "highest glibc symbol version needed: $max_glibc"
[ "${max_glibc#GLIBC_2.}" -le 39 ] || die "a bundled file needs $max_glibc; the GPU machine has glibc 2.39"

# ONNX Runtime's GPU build for the inference stage, when asked for.
ort_dir="${BUNDLE_ORT_DIR:-}"
if [ -z "$ort_dir" ] && [ "${BUNDLE_ORT_GPU:-0}" = 1 ]; then
  ort_lib="$(bash scripts/fetch-models.sh --gpu | sed -n 's/^DSHOST_ORT_GPU_LIB=//p')"
  ort_dir="$(dirname "$ort_lib")"
fi
if [ -n "$ort_dir" ]; then
  [ -f "$ort_dir/libonnxruntime_providers_cuda.so" ] || die "$ort_dir has no libonnxruntime_providers_cuda.so (not a GPU build)"
  mkdir -p "$bundle/onnxruntime"
  cp "$ort_dir"/libonnxruntime.so.* "$ort_dir"/libonnxruntime_providers_*.so "$bundle/onnxruntime/"
fi

# ---------------------------------------------------------------------------
# 5. run.sh and the manifest.
cat >"$bundle/run.sh" <<'EOF'
#!/usr/bin/env bash
# Starts dshost (or `run.sh gst-launch-1.0 ...` / `run.sh gst-inspect-1.0 ...`)
# with this bundle's GStreamer and NVIDIA decoder libraries.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# CUDA runtime and NPP (libcudart.so.13, libnpp*.so.13): the GPU machine's own.
cuda_libs=""
for d in ${CUDA_LIB_DIR:-} /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13/lib64; do
  [ -e "$d/libcudart.so.13" ] && { cuda_libs="$d"; break; }
done
if [ -z "$cuda_libs" ]; then
  echo "run.sh: libcudart.so.13 not found under /usr/local/cuda (set CUDA_LIB_DIR); GPU decode will be unavailable" >&2
fi
# ONNX Runtime's GPU build, when bundled (else DSHOST_ORT_LIB or the cache);
# its CUDA provider loads cuDNN 9 and cuBLAS 13 from the library path, which
# a Python install with PyTorch or the nvidia-* wheels also provides.
ort_libs=""
if [ -d "$here/onnxruntime" ]; then
  ort_libs="$here/onnxruntime"
  export DSHOST_ORT_LIB="${DSHOST_ORT_LIB:-$(ls "$here"/onnxruntime/libonnxruntime.so.* | head -1)}"
  if command -v python3 >/dev/null 2>&1; then
    for sp in $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
      for d in "$sp/nvidia/cu13/lib" "$sp/nvidia/cudnn/lib"; do [ -d "$d" ] && ort_libs="$ort_libs:$d"; done
    done
  fi
fi
export LD_LIBRARY_PATH="$here/deepstream/lib:$here/lib${cuda_libs:+:$cuda_libs}${ort_libs:+:$ort_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export GST_PLUGIN_SYSTEM_PATH="$here/lib/gstreamer-1.0"
export GST_PLUGIN_PATH="$here/deepstream/gst-plugins"
export GST_PLUGIN_SCANNER="$here/lib/gstreamer-1.0/gst-plugin-scanner"
# A registry of its own: another GStreamer's cache must not be mixed in.
export GST_REGISTRY="${GST_REGISTRY:-${XDG_CACHE_HOME:-$HOME/.cache}/dshost-gpu/registry-$(basename "$here").bin}"
mkdir -p "$(dirname "$GST_REGISTRY")"
# libnvv4l2 finds NVIDIA's NVDEC backend plugin here.
export LIBV4L2_PLUGIN_DIR="$here/deepstream/lib/v4l_plugins"
case "${1:-}" in
  gst-launch-1.0 | gst-inspect-1.0) tool="$1"; shift; exec "$here/bin/$tool" "$@" ;;
esac
exec "$here/bin/dshost" "$@"
EOF
chmod +x "$bundle/run.sh"
{
  echo "dshost $(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)"
  echo "nvidia-deepstream-videodecode-cu13 $DS_WHEEL_VERSION"
  sed "s/^/debian-$DEBIAN_SUITE /" "$bundle/.debian-packages"
} >"$bundle/MANIFEST"
rm "$bundle/.debian-packages"

say "packing"
tar -C "$out_dir" -cf - dshost-gpu | xz -T0 -6 >"$out_dir/dshost-gpu.tar.xz.tmp"
mv "$out_dir/dshost-gpu.tar.xz.tmp" "$out_dir/dshost-gpu.tar.xz"
say "$(du -sh "$bundle" | cut -f1) unpacked, $(du -h "$out_dir/dshost-gpu.tar.xz" | cut -f1) packed: $out_dir/dshost-gpu.tar.xz"
echo "$out_dir/dshost-gpu.tar.xz"
