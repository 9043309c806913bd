#!/usr/bin/env bash
# Soak benchmark (issue 18; not part of CI): one dshost for DSHOST_SOAK_SECONDS
# (default 3600) with 8 sources (three looping files, one RTSP camera that is
# killed and restarted every 3 minutes, four synthetic scenes), all example
# strategies, a strategy hot reload every 10 s, the MQTT broker restarted
# every 5 minutes, the alert journal and a JSON-lines sink. Every 10 s it
# samples dshost's RSS, open file descriptors and threads; at the end it
# reports their slopes after warm-up and accounts for every alert id (journal
# vs JSON-lines file vs what the broker delivered to a subscriber), and plots
# the samples (PNG). Everything runs on 127.0.0.1.
#
#   nice -n 10 scripts/soak.sh                      # the full hour
#   DSHOST_SOAK_SECONDS=300 scripts/soak.sh          # a short trial
#
# Output in target/soak/ (DSHOST_SOAK_OUT): samples.csv, report.md, soak.png,
# dshost.log, alerts.jsonl, received.jsonl (what the MQTT subscriber got).
#
# DSHOST_SOAK_SNAPSHOT_MIB sets the snapshots' disk cap (`max_mib`, default
# dshost's 1024): the store's index grows by one entry a picture until the
# cap, so a small cap fills it within the warm-up. DSHOST_SOAK_HEAPTRACK=FILE
# runs dshost under heaptrack (an allocation profile by call site; slow). On
# Debian 12's heaptrack 1.4 the full soak deadlocked after 4 minutes (a
# thread's dlopen of an NSS module held the loader lock while heaptrack's
# malloc hook waited for it in another thread): good for short runs only.
# DSHOST_SOAK_JEMALLOC_PROF=1 runs dshost on jemalloc with its sampling heap
# profiler (Debian's libjemalloc2, and jeprof from libjemalloc-dev): jemalloc
# dumps the live heap by call site after every 2^34 bytes allocated
# (DSHOST_SOAK_JEMALLOC_INTERVAL sets the exponent; gdb cannot call into the
# process on this VM to dump at set times), and the report lists what grew
# from the first dump after the warm-up to the last. jemalloc replaces
# glibc's malloc there, so that run's RSS is not the production figure: use
# it to find what grows, not to measure the slope.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
duration="${DSHOST_SOAK_SECONDS:-3600}"
rtsp_every="${DSHOST_SOAK_RTSP_RESTART_SECONDS:-180}"
mqtt_every="${DSHOST_SOAK_MQTT_RESTART_SECONDS:-300}"
reload_every="${DSHOST_SOAK_RELOAD_SECONDS:-10}"
sample_every=10
out="${DSHOST_SOAK_OUT:-$root/target/soak}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

# DSHOST_SOAK_PROFILE=dev for a quick trial of the script with a debug build.
profile="${DSHOST_SOAK_PROFILE:-release}"
profile_dir="$([ "$profile" = dev ] && echo debug || echo "$profile")"
cargo build --quiet --profile "$profile" -p dshost --bin dshost --example rtsp_camera
bash scripts/build-strategies.sh >/dev/null
dshost="$target_dir/$profile_dir/dshost"
camera="$target_dir/$profile_dir/examples/rtsp_camera"
for tool in mosquitto mosquitto_sub gst-launch-1.0 python3; do
  command -v "$tool" >/dev/null || { echo "soak: $tool missing (scripts/setup.sh --tests)" >&2; exit 1; }
done
# matplotlib for the plot, in a venv of its own (pinned).
venv="${XDG_CACHE_HOME:-$HOME/.cache}/dshost/soak-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet matplotlib==3.9.2
fi

rm -rf "$out"
mkdir -p "$out/media" "$out/strategies" "$out/data" "$out/mosquitto"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mqtt_port="$(free_port)"
rtsp_port="$(free_port)"

# Looping files: 10 s clips of two codecs (the scripts' test-media encoders).
gst-launch-1.0 -q videotestsrc pattern=ball num-buffers=300 ! video/x-raw,width=640,height=360,framerate=30/1 \
  ! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=30 ! h264parse ! mp4mux ! filesink location="$out/media/ball.mp4"
gst-launch-1.0 -q videotestsrc pattern=ball motion=sweep num-buffers=300 ! video/x-raw,width=1280,height=720,framerate=30/1 \
  ! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=30 ! h264parse ! mp4mux ! filesink location="$out/media/sweep.mp4"
gst-launch-1.0 -q videotestsrc pattern=ball num-buffers=300 ! video/x-raw,width=640,height=360,framerate=30/1 \
  ! x265enc speed-preset=ultrafast tune=zerolatency key-int-max=30 ! h265parse ! matroskamux ! filesink location="$out/media/ball.mkv"

s="$root/target/strategies"
cp "$s/yolo_filter.wasm" "$s/zone_intrusion.wasm" "$s/line_crossing.wasm" "$out/strategies/"
# Hot reloads alternate yolo_filter between its 0.2.0 and 0.1.0 builds.
reload_builds=("$s/yolo_filter_v0_1.wasm" "$s/yolo_filter.wasm")

cat >"$out/mosquitto/mosquitto.conf" <<CONF
listener $mqtt_port 127.0.0.1
allow_anonymous true
# Started as root, mosquitto would drop to its own user and could not write here.
user root
persistence true
persistence_location $out/mosquitto/
log_dest file $out/mosquitto/mosquitto.log
CONF

cat >"$out/soak.yaml" <<YAML
sources:
  - {id: file-ball, uri: $out/media/ball.mp4, loop: true, realtime: true, detector: motion}
  - {id: file-sweep, uri: $out/media/sweep.mp4, loop: true, realtime: true, detector: motion}
  - {id: file-h265, uri: $out/media/ball.mkv, loop: true, realtime: true, detector: motion}
  - id: camera
    uri: rtsp://127.0.0.1:$rtsp_port/cam
    detector: motion
    rtsp: {transport: tcp, latency_ms: 100}
  - {id: scene-1, uri: "scene://?seed=1&width=640&height=360&fps=15"}
  - {id: scene-2, uri: "scene://?seed=2&width=640&height=360&fps=15"}
  - {id: scene-3, uri: "scene://?seed=3&width=640&height=360&fps=15"}
  - {id: scene-4, uri: "scene://?seed=4&width=640&height=360&fps=15"}
strategies:
  - name: yolo_filter
    path: $out/strategies/yolo_filter.wasm
    config: {min_confidence: 0.3}
  - name: zone_intrusion
    path: $out/strategies/zone_intrusion.wasm
    sources: [scene-1, scene-2, scene-3, scene-4, file-ball]
    config:
      zones:
        - {name: road, polygon: [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]], loiter_seconds: 5}
  - name: line_crossing
    path: $out/strategies/line_crossing.wasm
    sources: [scene-1, scene-2, scene-3, scene-4, camera]
    config:
      lines:
        - {name: middle, start: [0.5, 0.0], end: [0.5, 1.0]}
recovery: {initial_backoff_ms: 200, max_backoff_ms: 2000, watchdog_seconds: 5}
alerts:
  throttle: {cooldown_seconds: 5}
  snapshots: {max_mib: ${DSHOST_SOAK_SNAPSHOT_MIB:-1024}}
  shutdown_grace_seconds: 10
  sinks:
    - {type: jsonl, path: $out/alerts.jsonl}
    - {type: mqtt, address: "127.0.0.1:$mqtt_port", topic: "soak/{source}/{pattern}", qos: 1}
YAML
"$dshost" validate-config "$out/soak.yaml" >/dev/null

pids=()
cleanup() {
  for pid in "${pids[@]}" ${camera_pid:-} ${broker_pid:-}; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
start_broker() { mosquitto -c "$out/mosquitto/mosquitto.conf" & broker_pid=$!; }
start_camera() { "$camera" "$rtsp_port" 2>>"$out/camera.log" & camera_pid=$!; }
start_broker
start_camera
sleep 1
# A persistent session (-c -i) with QoS 1: the broker keeps what it owes the
# subscriber across its own graceful restarts; mosquitto_sub reconnects.
mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -t 'soak/#' -q 1 -c -i dshost-soak -F '%p' >"$out/received.jsonl" 2>>"$out/subscriber.log" &
pids+=($!)
sleep 1

wrapper=()
[ -n "${DSHOST_SOAK_HEAPTRACK:-}" ] && wrapper=(heaptrack -o "$DSHOST_SOAK_HEAPTRACK")
jemalloc_prof="${DSHOST_SOAK_JEMALLOC_PROF:-0}"
if [ "$jemalloc_prof" = 1 ]; then
  jemalloc="$(ls /usr/lib/*-linux-gnu/libjemalloc.so.2 2>/dev/null | head -n 1)"
  [ -n "$jemalloc" ] && command -v jeprof >/dev/null \
    || { echo "soak: jemalloc's profiler missing (apt-get install libjemalloc2 libjemalloc-dev)" >&2; exit 1; }
  # One sample per 64 KiB allocated on average: cheap, and a structure that
  # grows by megabytes shows with its call site.
  wrapper=(env "LD_PRELOAD=$jemalloc"
    "MALLOC_CONF=prof:true,lg_prof_sample:16,lg_prof_interval:${DSHOST_SOAK_JEMALLOC_INTERVAL:-34},prof_prefix:$out/jeprof")
fi
RUST_LOG=info "${wrapper[@]}" "$dshost" --data-dir "$out/data" run --config "$out/soak.yaml" >"$out/dshost.log" 2>&1 &
dshost_job=$!
dshost_pid=$dshost_job
# Under heaptrack, dshost is its child: sample that process (env execs it).
for _ in $(seq 1 100); do
  [ -z "${DSHOST_SOAK_HEAPTRACK:-}" ] && break
  child="$(pgrep -P "$dshost_job" -x dshost || true)"
  [ -n "$child" ] && dshost_pid="$child" && break
  sleep 0.1
done
echo "soak: dshost pid $dshost_pid for $duration s (mqtt :$mqtt_port, rtsp :$rtsp_port); output in $out"
# RSS split into anonymous memory (heap, stacks, mmaps) and mapped files
# (libraries, the journal if SQLite maps it): a slope in one of them says
# where to look.
echo "t_s,rss_kib,fds,threads,rss_anon_kib,rss_file_kib" >"$out/samples.csv"
sample() {
  local rss threads fds anon file
  rss="$(awk '/^VmRSS:/ { print $2 }' "/proc/$dshost_pid/status")"
  threads="$(awk '/^Threads:/ { print $2 }' "/proc/$dshost_pid/status")"
  anon="$(awk '/^RssAnon:/ { print $2 }' "/proc/$dshost_pid/status")"
  file="$(awk '/^RssFile:/ { print $2 }' "/proc/$dshost_pid/status")"
  fds="$(find "/proc/$dshost_pid/fd" -mindepth 1 -maxdepth 1 | wc -l)"
  echo "$1,$rss,$fds,$threads,$anon,$file" >>"$out/samples.csv"
}
# Resident memory per mapping, every 5 minutes: file mappings by name, [heap],
# and anonymous ones by their virtual size, which tells glibc's 64 MiB arena
# heaps, thread stacks, wasm linear memories (multi-GiB reservations) and
# large mmap'ed blocks apart.
mappings() {
  python3 - "/proc/$dshost_pid/smaps" >"$out/mappings-$1.txt" <<'PY'
import collections, sys
rss, name = collections.Counter(), None
for line in open(sys.argv[1]):
    fields = line.split()
    if "-" in fields[0] and len(fields) >= 5 and ":" not in fields[0]:
        start, end = (int(x, 16) for x in fields[0].split("-"))
        name = fields[5] if len(fields) >= 6 else f"anon, {(end - start) >> 20} MiB virtual"
    elif fields[0] == "Rss:":
        rss[name] += int(fields[1])
for n, kib in rss.most_common():
    if kib >= 1024:
        print(f"{kib:8d} KiB {n}")
PY
}
events="$out/events.log"
# The report's warm-up (its slopes start here): 10 minutes, or a sixth of a short run.
warmup_s=$((duration / 6 < 600 ? duration / 6 : 600))
reloads=0
start=$(date +%s)
for ((t = 1; t <= duration; t++)); do
  # Sleep to the next whole second of the run, whatever the loop body took.
  now=$(date +%s)
  [ $((start + t)) -gt "$now" ] && sleep $((start + t - now))
  kill -0 "$dshost_pid" 2>/dev/null || { echo "soak: dshost exited early" >&2; tail -n 30 "$out/dshost.log" >&2; exit 1; }
  if ((t % sample_every == 0)); then sample "$t"; fi
  if ((t == warmup_s || t % 300 == 0)); then mappings "$t"; fi
  if ((t % reload_every == 0)); then
    next="${reload_builds[$((reloads % 2))]}"
    cp "$next" "$out/strategies/.yolo_filter.wasm.tmp" && mv "$out/strategies/.yolo_filter.wasm.tmp" "$out/strategies/yolo_filter.wasm"
    reloads=$((reloads + 1))
  fi
  if ((t % rtsp_every == 0)); then
    echo "$t camera killed" >>"$events"
    kill -9 "$camera_pid" 2>/dev/null || true
    wait "$camera_pid" 2>/dev/null || true
    sleep 5
    start_camera
  fi
  if ((t % mqtt_every == 0)); then
    echo "$t broker restarted" >>"$events"
    kill "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
    sleep 3
    start_broker
  fi
done
sample "$duration"
mappings "$duration"
kill -INT "$dshost_pid"
wait "$dshost_job" || echo "soak: dshost exited with $?" >&2
sleep 3 # the subscriber's last messages
kill "${pids[@]}" 2>/dev/null || true
"$dshost" --data-dir "$out/data" alerts list --json >"$out/journal.jsonl"

"$venv/bin/python" - "$out" "$duration" "$reloads" "$reload_every" "$rtsp_every" "$mqtt_every" <<'PY'
import csv, json, sys
out, duration, reloads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
reload_every, rtsp_every, mqtt_every = (int(v) for v in sys.argv[4:7])
rows = [tuple(int(v) for v in r.values()) for r in csv.DictReader(open(f"{out}/samples.csv"))]
warmup = min(600, duration // 6)
def fit(pts):
    """Least-squares slope per hour and its standard error."""
    if len(pts) < 3:
        return float("nan"), float("nan")
    n = len(pts); mt = sum(t for t, _ in pts) / n; mv = sum(v for _, v in pts) / n
    den = sum((t - mt) ** 2 for t, _ in pts)
    if not den:
        return 0.0, 0.0
    b = sum((t - mt) * (v - mv) for t, v in pts) / den
    resid = sum((v - mv - b * (t - mt)) ** 2 for t, v in pts)
    return b * 3600, (resid / (n - 2) / den) ** 0.5 * 3600
def slope(col):
    return fit([(r[0], r[col]) for r in rows if r[0] >= warmup])[0]
# RSS moves by tens of MiB with the snapshot rings and the allocator's trim
# cadence: the error says whether a slope is distinguishable from zero.
rss_fit = fit([(r[0], r[1]) for r in rows if r[0] >= warmup])
def ids(path):
    found = set()
    for line in open(path, errors="replace"):
        try:
            found.add(json.loads(line)["id"])
        except (ValueError, KeyError, TypeError):
            pass
    return found
journal = [json.loads(l) for l in open(f"{out}/journal.jsonl") if l.strip()]
in_journal = {a["id"] for a in journal}
mqtt_state = {a["id"]: a.get("delivery", {}).get("mqtt", {}).get("state") for a in journal}
jsonl_state = {a["id"]: a.get("delivery", {}).get("jsonl", {}).get("state") for a in journal}
received, written = ids(f"{out}/received.jsonl"), ids(f"{out}/alerts.jsonl")
delivered = {i for i, s in mqtt_state.items() if s == "delivered"}
lost_mqtt = delivered - received
pending_mqtt = {i for i, s in mqtt_state.items() if s != "delivered"}
missing_jsonl = {i for i, s in jsonl_state.items() if s == "delivered"} - written
unknown = (received | written) - in_journal
import os
events = open(f"{out}/events.log").read().split("\n") if os.path.exists(f"{out}/events.log") else []
report = f"""| measurement | value |
|---|---:|
| duration | {duration} s ({duration / 3600:.2f} h), warm-up excluded from slopes: {warmup} s |
| samples | {len(rows)} |
| RSS first / after warm-up / last | {rows[0][1] / 1024:.1f} / {next((r[1] for r in rows if r[0] >= warmup), rows[-1][1]) / 1024:.1f} / {rows[-1][1] / 1024:.1f} MiB |
| RSS max | {max(r[1] for r in rows) / 1024:.1f} MiB |
| RSS slope after warm-up (all samples; ±1.96 standard errors) | {rss_fit[0]:.0f} ± {1.96 * rss_fit[1]:.0f} KiB/h |
| of it anonymous (RssAnon) / mapped files (RssFile) | {slope(4):.0f} / {slope(5):.0f} KiB/h |
| open fds first / max / last, slope | {rows[0][2]} / {max(r[2] for r in rows)} / {rows[-1][2]}, {slope(2):.1f} /h |
| threads first / max / last, slope | {rows[0][3]} / {max(r[3] for r in rows)} / {rows[-1][3]}, {slope(3):.1f} /h |
| strategy reloads | {reloads} |
| camera kills, broker restarts | {sum('camera' in e for e in events)}, {sum('broker' in e for e in events)} |
| alerts in the journal | {len(in_journal)} |
| MQTT: delivered per journal / received by the subscriber | {len(delivered)} / {len(received & in_journal)} |
| MQTT: delivered but never received (lost) | {len(lost_mqtt)} |
| MQTT: not yet delivered at exit (journaled, sent at next start) | {len(pending_mqtt)} |
| JSON lines: delivered per journal but not in the file (lost) | {len(missing_jsonl)} |
| ids seen by a sink but not in the journal | {len(unknown)} |
"""
open(f"{out}/report.md", "w").write(report)
print(report)
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
t = [r[0] / 60 for r in rows]
fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
for ax, col, label in zip(axes, (1, 2, 3), ("RSS, MiB", "open fds", "threads")):
    ax.plot(t, [r[col] / 1024 if col == 1 else r[col] for r in rows], lw=1)
    ax.set_ylabel(label)
    ax.axvline(warmup / 60, color="grey", ls=":", lw=1)
    ax.grid(alpha=0.3)
axes[0].set_title(f"dshost soak: 8 sources, reload every {reload_every} s, camera killed every {rtsp_every} s, "
                  f"broker restarted every {mqtt_every} s", fontsize=10)
axes[-1].set_xlabel("minutes")
fig.tight_layout()
fig.savefig(f"{out}/soak.png", dpi=100)
PY
if [ "$jemalloc_prof" = 1 ]; then
  # What the live heap gained from the first dump after the warm-up to the
  # last one, by function and with callers.
  mapfile -t dumps < <(find "$out" -maxdepth 1 -name 'jeprof.*.heap' -newermt "@$((start + warmup_s))" -printf '%T@ %p\n' | sort -n | cut -d' ' -f2)
  if [ "${#dumps[@]}" -ge 2 ]; then
    echo "heap dumps compared: ${dumps[0]} -> ${dumps[-1]}" >"$out/heap-growth.txt"
    jeprof --text --base="${dumps[0]}" "$dshost" "${dumps[-1]}" >>"$out/heap-growth.txt" 2>>"$out/jeprof.log"
    jeprof --text --cum --base="${dumps[0]}" "$dshost" "${dumps[-1]}" >"$out/heap-growth-cum.txt" 2>>"$out/jeprof.log"
    echo "soak: live-heap growth by call site in $out/heap-growth.txt and heap-growth-cum.txt"
  else
    echo "soak: fewer than two heap dumps after the warm-up (lower DSHOST_SOAK_JEMALLOC_INTERVAL)" >&2
  fi
fi
