#!/usr/bin/env bash
# End-to-end latency under load: the numbers in BENCHMARKS.md's "End-to-end latency"
# section. Usage: bench/latency.sh [runs] (default 3; medians). BENCH_DIR (default
# /tmp/freshet-bench-latency) and BENCH_PORT change the place and the port.
# `freshet serve` with the Nexmark bid stream (fsync = 'always', the default; 4 partitions)
# and a streaming view `probes` (freshness 100 ms); per run, a client ingests bids at 50,000
# events/s (1,000-event requests) while `freshet bench latency` posts 300 probe bids one at a
# time (50 ms apart) and times each from its ingest acknowledgement to the first
# `GET /v1/views/probes/results?auction=K` that lists it.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
RUNS="${1:-3}"
DIR="${BENCH_DIR:-/tmp/freshet-bench-latency}"
PORT="${BENCH_PORT:-17481}"
F="$(freshet_bin)"
rm -rf "$DIR" && mkdir -p "$DIR"
D="$DIR/data"
U="http://127.0.0.1:$PORT"
median() { median_of 1 "$@"; }

machine_line
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
"$F" gen nexmark --events 1000000 --only bid --base-time now --out "$DIR/live.ndjson" >/dev/null
"$F" --data-dir "$D" sql "CREATE STREAM bid (auction BIGINT NOT NULL, bidder BIGINT NOT NULL,
  price BIGINT NOT NULL, channel VARCHAR, url VARCHAR, date_time TIMESTAMP NOT NULL, extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND) WITH (partitions = 4, partition_key = 'auction');
CREATE VIEW probes WITH (freshness = '100ms') AS
  SELECT auction, COUNT(*) AS n FROM bid WHERE auction >= 1000000000 GROUP BY auction" >/dev/null
"$F" --data-dir "$D" serve --listen "127.0.0.1:$PORT" >"$DIR/serve.log" 2>&1 &
SERVE=$!
trap 'kill -TERM $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fs "$U/healthz" >/dev/null && break; sleep 0.1; done

p50=(); p99=(); max=(); ing=(); first=1000000000
for _ in $(seq "$RUNS"); do
  "$F" bench http --url "$U" --stream bid --file "$DIR/live.ndjson" --batch 1000 --concurrency 2 \
      --requests 1000 --rate 50 --json >"$DIR/ingest.json" &
  INGEST=$!
  sleep 1
  "$F" bench latency --url "$U" --view probes --probes 300 --interval-ms 50 \
      --first-key "$first" --json >"$DIR/latency.json"
  first=$((first + 1000))
  wait "$INGEST"
  p50+=("$(json latency_ms_p50 <"$DIR/latency.json")")
  p99+=("$(json latency_ms_p99 <"$DIR/latency.json")")
  max+=("$(json latency_ms_max <"$DIR/latency.json")")
  ing+=("$(json events_per_second <"$DIR/ingest.json")")
done
echo "ingest_ack_to_visible_ms_p50_median $(median "${p50[@]}")  p99_median $(median "${p99[@]}")  max_median $(median "${max[@]}")  concurrent_ingest_events_per_second_median $(median "${ing[@]}")"
