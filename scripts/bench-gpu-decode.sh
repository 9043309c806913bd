#!/usr/bin/env bash
# GPU decode vs CPU decode through dshost, on a GPU machine, with the bundle
# of scripts/bundle-gpu.sh:
#
#   bash scripts/bench-gpu-decode.sh BUNDLE_DIR CLIP.mp4 OUT_DIR [N ...]
#
# For each decoder (DECODERS, default "gpu cpu") and each N (default
# 1 4 8 16 32), N sources play CLIP concurrently through yolo_filter
# (REALTIME=0: as fast as possible; REALTIME=1: paced at the clip's frame
# rate). Per run it records dshost's --summary-json, its log, the CPU time of
# the process (bash `time`: user + sys) and nvidia-smi's decoder utilisation
# sampled every 200 ms, then prints one table row: per-source FPS (min and
# median of each source's frames / its first-to-last-frame time), total FPS
# (all frames / the longest source time), CPU seconds per frame, NVDEC
# utilisation (mean and max) and the decoder elements that ran.
set -uo pipefail
bundle="$(cd "$1" && pwd)"
clip="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
out="$3"
shift 3
counts=("$@")
[ "${#counts[@]}" -gt 0 ] || counts=(1 4 8 16 32)
decoders="${DECODERS:-gpu cpu}"
realtime="${REALTIME:-0}"
mkdir -p "$out"
[ "$realtime" = 1 ] && rt=true || rt=false

printf '| decoder | N | paced | per-source FPS min / median | total FPS | CPU ms/frame | NVDEC util mean / max %% | frames | decoder elements |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
for decoder in $decoders; do
  for n in "${counts[@]}"; do
    tag="$decoder-n$n-rt$realtime"
    config="$out/config-$tag.yaml"
    {
      echo "pipeline:"
      echo "  decoder: $decoder"
      echo "  queue_depth: 64"
      echo "sources:"
      for i in $(seq 1 "$n"); do
        echo "  - { id: s$i, uri: \"$clip\", realtime: $rt }"
      done
      echo "strategies:"
      echo "  - { name: yolo_filter, path: \"$bundle/strategies/yolo_filter.wasm\" }"
    } >"$config"
    smi=""
    if command -v nvidia-smi >/dev/null 2>&1; then
      nvidia-smi --query-gpu=utilization.gpu,utilization.decoder --format=csv,noheader,nounits -lms 200 \
        >"$out/smi-$tag.csv" 2>/dev/null &
      smi=$!
    fi
    TIMEFORMAT='%U %S %R'
    { time "$bundle/run.sh" run --config "$config" --no-watch --summary-json "$out/summary-$tag.json" \
      >"$out/log-$tag.txt" 2>&1; } 2>"$out/time-$tag.txt"
    [ -n "$smi" ] && kill "$smi" 2>/dev/null && wait "$smi" 2>/dev/null
    python3 - "$out" "$tag" "$decoder" "$n" "$rt" <<'EOF'
import json, statistics, sys
out, tag, decoder, n, rt = sys.argv[1:]
try:
    summary = json.load(open(f"{out}/summary-{tag}.json"))
except (OSError, ValueError) as e:
    print(f"| {decoder} | {n} | {rt} | run failed: {e} (see log-{tag}.txt) | | | | | |")
    sys.exit(0)
sources = summary["sources"]
fps = sorted(s.get("mean_fps") or 0.0 for s in sources)
frames = sum(s["frames_decoded"] for s in sources)
longest = max((s.get("active_seconds") or 0.0) for s in sources)
user, system, _wall = (float(x) for x in open(f"{out}/time-{tag}.txt").read().split()[-3:])
util = []
try:
    for line in open(f"{out}/smi-{tag}.csv"):
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[1].isdigit():
            util.append(int(parts[1]))
except OSError:
    pass
busy = util or [0]
elements = sorted({s.get("decoder") or "?" for s in sources})
per_source = f"{fps[0]:.1f} / {statistics.median(fps):.1f}"
total = f"{frames / longest:.0f}" if longest > 0 else "-"
cpu = f"{(user + system) / frames * 1e3:.2f} ms" if frames else "-"
nvdec = f"{statistics.mean(busy):.0f} / {max(busy)}" if util else "n/a"
counts = sorted({s["frames_decoded"] for s in sources})
print(f"| {decoder} | {n} | {rt} | {per_source} | {total} | {cpu} | {nvdec} | {frames} ({'/'.join(map(str, counts))} each) | {', '.join(elements)} |")
EOF
  done
done
