#!/usr/bin/env bash
# Overhead of dshost over GStreamer alone, by instruction count (issue 18):
# the same decode chain run by gst-launch-1.0 and by dshost (CPU backend, the
# `yolo_filter` strategy on every frame, warm strategy cache), each at two clip
# lengths; instructions per frame = difference of the two runs / difference of
# their frame counts, so start-up and shutdown cancel out. Instruction counts
# do not depend on what else the machine runs, seconds do.
#
#   scripts/bench-overhead.sh            # 640x360, 1280x720, 1920x1080; stages none, motion
#   DSHOST_BENCH_SIZES="640x360" DSHOST_BENCH_STAGES="none" scripts/bench-overhead.sh
#
# Counter: `perf stat -e instructions` where the machine supports it (checked
# with `perf stat -e instructions true`), else valgrind's callgrind (the
# guest and host threads are all counted; about 50x slower, so short clips).
#
# Object stages: `none` (frames reach the strategy with no objects: the pure
# overhead), `motion` (the built-in motion detector and tracker) and `onnx`
# (the demo model at `detect.fps: 5`, one intra-op thread so ONNX Runtime's
# spinning thread pool does not inflate the count; DSHOST_BENCH_MODEL, default
# the model scripts/fetch-models.sh fetches): both reported as analysis cost,
# not overhead. `onnx` is very slow under callgrind (minutes per inference on
# a 2-core VM), so it is not in the default set:
#   DSHOST_BENCH_SIZES=640x360 DSHOST_BENCH_STAGES="none onnx" scripts/bench-overhead.sh
#
# Prints a Markdown table (recorded in docs/benchmarks.md).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
sizes="${DSHOST_BENCH_SIZES:-640x360 1280x720 1920x1080}"
stages="${DSHOST_BENCH_STAGES:-none motion}"
short="${DSHOST_BENCH_SHORT_FRAMES:-30}"
long="${DSHOST_BENCH_LONG_FRAMES:-150}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
work="$root/target/bench-overhead"
mkdir -p "$work"
if [[ " $stages " == *" onnx "* ]] && [ -z "${DSHOST_ORT_LIB:-}" ]; then
  DSHOST_ORT_LIB="$(bash scripts/fetch-models.sh | sed -n 's/^DSHOST_ORT_LIB=//p')"
  export DSHOST_ORT_LIB
fi

# The example pulls in the dev-dependencies, so this build shares its features
# (and artifacts) with the benchmarks and scripts/soak.sh.
cargo build --quiet --release -p dshost --bin dshost --example rtsp_camera
dshost="$target_dir/release/dshost"
bash scripts/build-strategies.sh >/dev/null
strategy="$root/target/strategies/yolo_filter.wasm"

if perf stat -x, -e instructions true 2>&1 >/dev/null | grep -q '^[0-9]'; then
  counter=perf
else
  counter=callgrind
  command -v valgrind >/dev/null || { echo "bench-overhead: needs perf with counters or valgrind" >&2; exit 1; }
fi

# count CMD...: instructions the command executes (all threads).
count() {
  local log="$work/count.log"
  if [ "$counter" = perf ]; then
    perf stat -x, -e instructions -o "$log" "$@" >/dev/null 2>"$work/stderr.log"
    awk -F, '/instructions/ { print $1 }' "$log"
  else
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" >/dev/null 2>"$log"
    awk '/Collected :/ { print $NF }' "$log"
  fi
}

# clip WIDTH HEIGHT FRAMES: an H.264 MP4 of a moving ball (same encoder as the tests).
clip() {
  local file="$work/ball_${1}x${2}_${3}.mp4"
  if [ ! -s "$file" ]; then
    gst-launch-1.0 -q videotestsrc pattern=ball num-buffers="$3" \
      ! "video/x-raw,width=$1,height=$2,framerate=30/1" \
      ! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=30 ! h264parse ! mp4mux \
      ! filesink location="$file.tmp" && mv "$file.tmp" "$file"
  fi
  echo "$file"
}

# stage_yaml STAGE: the source keys that select the object stage.
stage_yaml() {
  case "$1" in
    none | motion) echo "    detector: $1" ;;
    onnx) printf '    detector: onnx\n    detect: {fps: 5, motion_gate: false}\n' ;;
    *) echo "bench-overhead: unknown stage $1" >&2; exit 1 ;;
  esac
}

# The model of the onnx stage.
onnx_model() {
  if [ -n "${DSHOST_BENCH_MODEL:-}" ]; then echo "$DSHOST_BENCH_MODEL"; return; fi
  bash scripts/fetch-models.sh | sed -n 's/^DSHOST_DEMO_MODEL=//p'
}

# dshost_config FILE STAGE: a config running yolo_filter on FILE.
dshost_config() {
  local config="$work/config_$2_$(basename "$1" .mp4).yaml"
  local pipeline=""
  if [ "$2" = onnx ]; then pipeline="pipeline: {onnx: {model: \"$(onnx_model)\", threads: 1}}"; fi
  cat >"$config" <<YAML
$pipeline
sources:
  - id: clip
    uri: $1
$(stage_yaml "$2")
strategies:
  - path: $strategy
    config: {min_confidence: 0.0}
alerts:
  journal: {enabled: false}
  sinks: [{type: jsonl, path: /dev/null}]
YAML
  echo "$config"
}

# The decode chain dshost builds for a file on the CPU backend
# (pipeline/cpu.rs): uridecodebin ! videoconvert ! luma formats ! appsink.
gst_run() {
  count gst-launch-1.0 -q uridecodebin "uri=file://$1" ! videoconvert \
    ! "video/x-raw,format={I420,NV12,YV12,NV21,Y42B,Y444,GRAY8}" ! fakesink sync=false
}

dshost_run() {
  count "$dshost" --data-dir "$work/data" run --config "$(dshost_config "$1" "$2")"
}

per_frame() { echo $(( ($2 - $1) / (long - short) )); }
mi() { awk -v n="$1" 'BEGIN { printf "%.3f M", n / 1e6 }'; }

echo "counter: $counter; frames $short and $long; $(nproc) cores; $(gst-launch-1.0 --version | head -n1)"
echo
echo "| size | gst-launch-1.0 per frame | dshost, stage none | overhead | stage motion | analysis cost (motion - none) |"
echo "|---|---:|---:|---:|---:|---:|"
for size in $sizes; do
  w="${size%x*}"
  h="${size#*x}"
  a="$(clip "$w" "$h" "$short")"
  b="$(clip "$w" "$h" "$long")"
  # Warm the strategy cache (and the clips' page cache) outside the counts.
  "$dshost" --data-dir "$work/data" run --config "$(dshost_config "$a" none)" >/dev/null 2>&1
  gst="$(per_frame "$(gst_run "$a")" "$(gst_run "$b")")"
  declare -A stage_cost=()
  for stage in $stages; do
    stage_cost[$stage]="$(per_frame "$(dshost_run "$a" "$stage")" "$(dshost_run "$b" "$stage")")"
  done
  none="${stage_cost[none]:-0}"
  overhead="$(awk -v d="$none" -v g="$gst" 'BEGIN { printf "%+.1f %%", (d - g) * 100 / g }')"
  motion="-"
  analysis="-"
  if [ -n "${stage_cost[motion]:-}" ]; then
    motion="$(mi "${stage_cost[motion]}")"
    analysis="$(mi $(( stage_cost[motion] - none )))"
  fi
  echo "| ${w}x${h} | $(mi "$gst") | $(mi "$none") | $overhead | $motion | $analysis |"
  for stage in $stages; do
    case "$stage" in none | motion) ;; *) echo "|   $stage | | $(mi "${stage_cost[$stage]}") | | | $(mi $(( stage_cost[$stage] - none ))) |" ;; esac
  done
  unset stage_cost
done
