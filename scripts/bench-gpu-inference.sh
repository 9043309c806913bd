#!/usr/bin/env bash
# GPU decode + ONNX inference on every frame through dshost, on a GPU
# machine, with the bundle of scripts/bundle-gpu.sh and ONNX Runtime's GPU
# build (scripts/fetch-models.sh --gpu; DSHOST_ORT_LIB points at it):
#
#   bash scripts/bench-gpu-inference.sh BUNDLE_DIR MODEL.onnx CLIP.mp4 OUT_DIR [N ...]
#
# For each N (default 1 4 16 32 64), N sources play CLIP concurrently as fast
# as they decode (GPU decode, nvvideoconvert scales to the model's size), the
# model runs on every frame (detect.fps above the clip's rate, no motion
# gate) on the CUDA provider with WORKERS sessions (default 4), then the
# tracker and yolo_filter. Per run: dshost's --summary-json, its log, CPU
# time, nvidia-smi GPU and decoder utilisation every 200 ms; one table row:
# per-source FPS min/median, total FPS, GPU util, NVDEC util, CPU ms/frame,
# inference latency p50/p99 (submission to result) and per run, batch sizes,
# objects per frame. On a host with several GPUs the sources are spread over
# all of them (dshost's placement); PIN_GPU=N pins every source to GPU N
# instead (the one-GPU baseline of a scaling run), and the utilisation
# columns show each GPU (g0 mean / max; g1 ...). CUDA_GRAPH=1 sets
# `pipeline.onnx.cuda_graph: true` (each worker replays a captured graph).
# MAX_BATCH=N sets `max_batch` (frames of several sources per run; a model
# with a static batch of N, e.g. from scripts/static-batch.py, runs N always).
# MAX_WAIT_MS sets `max_wait_ms` (default 10), how long a run waits to fill.
# The frame-to-alert column is each source's latency from the frame leaving
# the decoder (appsink) to its strategies' results, alerts handed to the
# alert stage (median of the sources' p50, highest p99).
# REALTIME=1 plays each source at the clip's frame rate (`realtime: true`,
# like a camera) instead of as fast as it decodes: the latency columns are
# then a camera's frame-to-result latency.
set -uo pipefail
bundle="$(cd "$1" && pwd)"
model="$2"
clip="$(cd "$(dirname "$3")" && pwd)/$(basename "$3")"
out="$4"
shift 4
counts=("$@")
[ "${#counts[@]}" -gt 0 ] || counts=(1 4 16 32 64)
workers="${WORKERS:-4}"
provider="${PROVIDER:-cuda}"
graph="false"
[ "${CUDA_GRAPH:-0}" = 1 ] && graph="true"
mkdir -p "$out"

printf '| N | per-source FPS min / median | total FPS | GPU util mean / max %% | NVDEC util mean / max %% | CPU ms/frame | inference ms p50 / p99 (frame) | frame-to-alert ms p50 / p99 | run ms p50 / p99 | batch sizes | objects/frame | frames, dropped |\n'
printf '|---|---|---:|---|---|---:|---|---|---|---|---:|---|\n'
for n in "${counts[@]}"; do
  tag="$provider-w$workers-g$graph-rt${REALTIME:-0}-n$n"
  config="$out/config-$tag.yaml"
  {
    echo "pipeline:"
    echo "  decoder: gpu"
    echo "  detector: onnx"
    echo "  queue_depth: 64"
    echo "  onnx: { model: \"$model\", provider: $provider, workers: $workers, max_batch: ${MAX_BATCH:-1}, max_wait_ms: ${MAX_WAIT_MS:-10}, threads: ${THREADS:-1}, cuda_graph: $graph }"
    echo "alerts:"
    echo "  snapshots: { enabled: false }"
    echo "  sinks: [ { type: jsonl, path: \"$out/alerts-$tag.jsonl\" } ]"
    echo "sources:"
    for i in $(seq 1 "$n"); do
      pin=""
      [ -n "${PIN_GPU:-}" ] && pin=", device_id: $PIN_GPU"
      rt=""
      [ "${REALTIME:-0}" = 1 ] && rt=", realtime: true"
      echo "  - { id: s$i, uri: \"$clip\", detect: { fps: 240, motion_gate: false }$pin$rt }"
    done
    echo "strategies:"
    echo "  - { name: yolo_filter, path: \"$bundle/strategies/yolo_filter.wasm\", config: { classes: [person, car, bicycle] } }"
  } >"$config"
  smi=""
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=index,utilization.gpu,utilization.decoder --format=csv,noheader,nounits -lms 200 \
      >"$out/smi-$tag.csv" 2>/dev/null &
    smi=$!
  fi
  TIMEFORMAT='%U %S %R'
  { time "$bundle/run.sh" run --config "$config" --no-watch --data-dir "$out/data-$tag" \
    --summary-json "$out/summary-$tag.json" >"$out/log-$tag.txt" 2>&1; } 2>"$out/time-$tag.txt"
  [ -n "$smi" ] && kill "$smi" 2>/dev/null && wait "$smi" 2>/dev/null
  python3 - "$out" "$tag" "$n" <<'PY'
import json, statistics, sys
out, tag, n = sys.argv[1:]
try:
    summary = json.load(open(f"{out}/summary-{tag}.json"))
except (OSError, ValueError) as e:
    print(f"| {n} | run failed: {e} (see log-{tag}.txt) | | | | | | | | | | |")
    sys.exit(0)
sources = summary["sources"]
fps = sorted(s.get("mean_fps") or 0.0 for s in sources)
frames = sum(s["frames_decoded"] for s in sources)
objects = sum(s["objects"] for s in sources)
longest = max((s.get("active_seconds") or 0.0) for s in sources)
user, system, _wall = (float(x) for x in open(f"{out}/time-{tag}.txt").read().split()[-3:])
gpu, dec = {}, {}
try:
    for line in open(f"{out}/smi-{tag}.csv"):
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            gpu.setdefault(parts[0], []).append(int(parts[1])); dec.setdefault(parts[0], []).append(int(parts[2]))
except OSError:
    pass
inf = summary.get("inference") or {}
lat50 = statistics.median([s["latency_ms_p50"] or 0 for s in inf.get("sources", [])] or [0])
lat99 = max([s["latency_ms_p99"] or 0 for s in inf.get("sources", [])] or [0])
dropped = sum(sum(s["frames_dropped"].values()) for s in sources)
alert50 = statistics.median([s.get("latency_ms_p50") or 0 for s in sources] or [0])
alert99 = max([s.get("latency_ms_p99") or 0 for s in sources] or [0])
batches = ", ".join(f"{size}x{runs}" for size, runs in inf.get("batch_sizes", []))
def util(per_gpu):
    if not per_gpu:
        return "n/a"
    cells = [f"{statistics.mean(v):.0f} / {max(v)}" for _, v in sorted(per_gpu.items())]
    if len(cells) == 1:
        return cells[0]
    return "; ".join(f"g{index} {cell}" for index, cell in zip(sorted(per_gpu), cells))
total = f"{frames / longest:.0f}" if longest > 0 else "-"
print(f"| {n} | {fps[0]:.1f} / {statistics.median(fps):.1f} | {total} | {util(gpu)} | {util(dec)} | "
      f"{(user + system) / max(frames, 1) * 1e3:.2f} | {lat50:.1f} / {lat99:.1f} | {alert50:.1f} / {alert99:.1f} | "
      f"{inf.get('inference_ms_p50') or 0:.1f} / {inf.get('inference_ms_p99') or 0:.1f} | {batches} | "
      f"{objects / max(frames, 1):.1f} | {frames}, {dropped} dropped |")
PY
done
