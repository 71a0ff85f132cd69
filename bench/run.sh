#!/usr/bin/env bash
# Reproduces every number in BENCHMARKS.md. Usage: bench/run.sh [runs] (default 3; medians).
# Needs: a release build (done here), python3 (for medians), /usr/bin/time. Uses ~2 GiB of
# disk under $BENCH_DIR (default /tmp/freshet-bench), and only loopback network.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
RUNS="${1:-3}"
DIR="${BENCH_DIR:-/tmp/freshet-bench}"
PORT="${BENCH_PORT:-17478}"
F="$(freshet_bin)"
rm -rf "$DIR" && mkdir -p "$DIR"
DDL="CREATE STREAM bid (auction BIGINT NOT NULL, bidder BIGINT NOT NULL, price BIGINT NOT NULL,
  channel VARCHAR NOT NULL, url VARCHAR NOT NULL, date_time TIMESTAMP NOT NULL, extra VARCHAR NOT NULL,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
  WITH (partitions = 4, partition_key = 'auction', fsync = 'always')"

median() { median_of 0 "$@"; }
rss_kb() { grep -E "Maximum resident" "$1" | awk '{print $NF}'; }

machine_line
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
# The disk's own fsync latency bounds acknowledgement latency under fsync = always.
python3 - "$DIR" <<'PY'
import os, sys, time
path = os.path.join(sys.argv[1], "fsync-probe")
f = os.open(path, os.O_WRONLY | os.O_CREAT)
ts = []
for _ in range(2000):
    os.write(f, b"x" * 300)
    t = time.perf_counter(); os.fdatasync(f); ts.append(time.perf_counter() - t)
os.close(f); os.remove(path); ts.sort()
print(f"disk_fdatasync_300B_append_us p50 {ts[1000]*1e6:.0f} p99 {ts[1980]*1e6:.0f}")
PY

# 1. The generator alone: bids into Arrow batches, one thread.
rates=(); rss=()
for _ in $(seq "$RUNS"); do
  /usr/bin/time -v "$F" bench gen --events 10000000 --json >"$DIR/gen.json" 2>"$DIR/gen.time"
  rates+=("$(json bids_per_second <"$DIR/gen.json")"); rss+=("$(rss_kb "$DIR/gen.time")")
done
echo "generator_bids_per_second_median $(median "${rates[@]}")  peak_rss_kb $(median "${rss[@]}")"

# 2. File ingest: 2,000,000 Nexmark bids NDJSON into a 4-partition stream, fsync = always.
"$F" gen nexmark --events 2000000 --only bid --out "$DIR/bids.ndjson" >/dev/null
rates=(); rss=()
for i in $(seq "$RUNS"); do
  D="$DIR/file-$i"
  "$F" --data-dir "$D" sql "$DDL" >/dev/null
  sync
  /usr/bin/time -v "$F" --data-dir "$D" ingest bid "$DIR/bids.ndjson" --json >"$DIR/ingest.json" 2>"$DIR/ingest.time"
  acc=$(json accepted <"$DIR/ingest.json"); sec=$(json seconds <"$DIR/ingest.json")
  rates+=("$(python3 -c "print($acc/$sec)")"); rss+=("$(rss_kb "$DIR/ingest.time")")
  rm -rf "$D"
done
echo "file_ingest_events_per_second_median $(median "${rates[@]}")  peak_rss_kb $(median "${rss[@]}")  ($(du -m "$DIR/bids.ndjson" | cut -f1) MiB input)"

# 3. HTTP ingest through `freshet serve`: 1,000-event requests, 4 concurrent clients;
#    then single-event requests paced at 2,000 requests/s (open loop: latency counts from
#    each request's scheduled time). 16 client threads leave room for 8 ms of latency at
#    that rate; more threads only take CPU from the server on a 2-core machine.
"$F" gen nexmark --events 200000 --only bid --out "$DIR/http.ndjson" >/dev/null
batch_rates=(); p99s=(); p50s=(); srss=()
for i in $(seq "$RUNS"); do
  D="$DIR/http-$i"
  "$F" --data-dir "$D" sql "$DDL" >/dev/null
  "$F" --data-dir "$D" serve --listen "127.0.0.1:$PORT" >"$DIR/serve.log" 2>&1 &
  SERVE=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  "$F" bench http --url "http://127.0.0.1:$PORT" --stream bid --file "$DIR/http.ndjson" \
      --batch 1000 --concurrency 4 --requests 3000 --json >"$DIR/http-batch.json"
  batch_rates+=("$(json events_per_second <"$DIR/http-batch.json")")
  "$F" bench http --url "http://127.0.0.1:$PORT" --stream bid --file "$DIR/http.ndjson" \
      --batch 1 --concurrency 16 --requests 20000 --rate 2000 --json >"$DIR/http-single.json"
  p99s+=("$(python3 -c "import json;print(json.load(open('$DIR/http-single.json'))['latency_ms_p99']*1000)")")
  p50s+=("$(python3 -c "import json;print(json.load(open('$DIR/http-single.json'))['latency_ms_p50']*1000)")")
  srss+=("$(grep VmHWM /proc/$SERVE/status | awk '{print $2}')")
  kill -TERM "$SERVE"; wait "$SERVE" || true
  rm -rf "$D"
done
echo "http_batch_1000_events_per_second_median $(median "${batch_rates[@]}")  server_peak_rss_kb $(median "${srss[@]}")"
echo "http_single_event_2000rps_latency_us_p50_median $(median "${p50s[@]}")  p99_median $(median "${p99s[@]}")"
