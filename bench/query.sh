#!/usr/bin/env bash
# The query API under ingest: the numbers in BENCHMARKS.md's "Query API" section.
# Usage: bench/query.sh [runs] (default 3; medians). Needs ~1 GiB under BENCH_DIR
# (default /tmp/freshet-bench-query) and loopback only.
# A view (hot_auctions, 10 s tumbling windows per auction) over 1,000,000 Nexmark events of
# history; then, per run, key lookups GET /v1/views/hot_auctions/results?auction=K from 8
# clients while another client ingests bids at 50,000 events/s (1,000-event requests).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
RUNS="${1:-3}"
DIR="${BENCH_DIR:-/tmp/freshet-bench-query}"
PORT="${BENCH_PORT:-17479}"
F="$(freshet_bin)"
rm -rf "$DIR" && mkdir -p "$DIR"
D="$DIR/data"
U="http://127.0.0.1:$PORT"
median() { median_of 1 "$@"; }

machine_line
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
"$F" --data-dir "$D" gen nexmark --events 1000000 --to-streams >/dev/null
"$F" gen nexmark --events 600000 --only bid --base-time 2015-07-15T01:00:00Z --out "$DIR/live.ndjson" >/dev/null
"$F" --data-dir "$D" sql "CREATE VIEW hot_auctions WITH (freshness = '1s') AS
  SELECT auction, window_start, window_end, COUNT(*) AS bids, MAX(price) AS top
  FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) GROUP BY auction, window_start, window_end" >/dev/null
"$F" --data-dir "$D" serve --listen "127.0.0.1:$PORT" >"$DIR/serve.log" 2>&1 &
SERVE=$!
trap 'kill -TERM $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  lag=$(curl -fs "$U/v1/views" | python3 -c 'import sys,json; print(json.load(sys.stdin)["views"][0]["freshness"]["lag_events"])' 2>/dev/null || echo x)
  [ "$lag" = 0 ] && break; sleep 0.2
done
echo "view caught up with the history (lag $lag)"

qps=(); p50=(); p99=(); ing=()
for _ in $(seq "$RUNS"); do
  "$F" bench http --url "$U" --stream bid --file "$DIR/live.ndjson" --batch 1000 --concurrency 2 \
      --requests 500 --rate 50 --json >"$DIR/ingest.json" &
  INGEST=$!
  "$F" bench query --url "$U" --path '/v1/views/hot_auctions/results?auction={key}' \
      --first-key 1000 --keys 1000 --concurrency 8 --requests 50000 --json >"$DIR/query.json"
  wait "$INGEST"
  qps+=("$(json queries_per_second <"$DIR/query.json")")
  p50+=("$(json latency_ms_p50 <"$DIR/query.json")")
  p99+=("$(json latency_ms_p99 <"$DIR/query.json")")
  ing+=("$(json events_per_second <"$DIR/ingest.json")")
done
echo "key_lookup_queries_per_second_median $(median "${qps[@]}")  latency_ms_p50 $(median "${p50[@]}")  p99 $(median "${p99[@]}")  concurrent_ingest_events_per_second_median $(median "${ing[@]}")"
