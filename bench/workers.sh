#!/usr/bin/env bash
# freshet worker: a backlog of Nexmark bids in JetStream (a private 3-node cluster from
# scripts/nats-cluster.sh) drained into PostgreSQL by 1, 2 and 4 workers, HTTP ingest into
# JetStream, and failover times: the numbers in BENCHMARKS.md's "Workers" section.
# Usage: bench/workers.sh [runs] (default 3; medians).
# BENCH_EVENTS (default 2,000,000 bids), BENCH_VIEWS (default 4 per-auction views, each
# run as one task per partition), BENCH_PARTITIONS (default 8), BENCH_KILLS (default 20),
# BENCH_DIR (default /tmp/freshet-bench-workers) and BENCH_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/test) change the size, the place and the server.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
RUNS="${1:-3}"
EVENTS="${BENCH_EVENTS:-2000000}"
VIEWS="${BENCH_VIEWS:-4}"
KILLS="${BENCH_KILLS:-20}"
PARTITIONS="${BENCH_PARTITIONS:-8}"
DIR="${BENCH_DIR:-/tmp/freshet-bench-workers}"
PG="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
F="$(freshet_bin)"
rm -rf "$DIR" && mkdir -p "$DIR/work"
D="$DIR/data"
export FRESHET_NATS_DIR="$DIR/nats"
trap 'bash scripts/nats-cluster.sh stop >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true' EXIT
NATS="$(bash scripts/nats-cluster.sh start)"

machine_line
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $(psql "$PG" -Atc 'select version()' | cut -d, -f1); NATS: 3 nodes, sync_interval always"

declare_bid() {
  "$F" --data-dir "$1" sql "CREATE STREAM bid (
    auction BIGINT NOT NULL, bidder BIGINT NOT NULL, price BIGINT NOT NULL,
    channel VARCHAR NOT NULL, url VARCHAR NOT NULL, date_time TIMESTAMP NOT NULL,
    extra VARCHAR NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
  ) WITH (partitions = $PARTITIONS, partition_key = 'auction', log = '$NATS',
          subject = '$2', replicas = 3)" >/dev/null
}

"$F" gen nexmark --events "$EVENTS" --only bid --out "$DIR/bids.ndjson" >/dev/null
declare_bid "$D" "bench.bid.$$"
start=$(date +%s.%N)
"$F" --data-dir "$D" ingest bid "$DIR/bids.ndjson" >/dev/null
end=$(date +%s.%N)
python3 -c "import sys; e=int(sys.argv[1]); s=float(sys.argv[3])-float(sys.argv[2]); print(f'file ingest into JetStream (3 replicas, acked): {e/s:,.0f} events/s ({s:.1f} s for {e:,})')" "$EVENTS" "$start" "$end"

# HTTP ingest, 1,000-event requests, into a stream of its own on the same cluster.
H="$DIR/http"
declare_bid "$H" "bench.http.$$"
"$F" --data-dir "$H" serve --listen 127.0.0.1:0 >"$DIR/serve.out" 2>"$DIR/serve.log" &
for _ in $(seq 100); do grep -q "freshet serving on" "$DIR/serve.out" 2>/dev/null && break; sleep 0.1; done
U="$(sed -n 's/^freshet serving on //p' "$DIR/serve.out")"
head -n 100000 "$DIR/bids.ndjson" >"$DIR/http.ndjson"
"$F" bench http --url "$U" --stream bid --file "$DIR/http.ndjson" --batch 1000 --concurrency 4 \
  --requests 500 --json | python3 -c 'import sys,json; d=json.load(sys.stdin); print("HTTP ingest into JetStream, 1,000-event requests, 4 connections: {:,.0f} events/s, acknowledged in p50 {:.0f} ms, p99 {:.0f} ms".format(d["events_per_second"], d["latency_ms_p50"], d["latency_ms_p99"]))'
kill %1 && wait %1 || true

python3 bench/workers.py "$F" "$D" "$DIR/work" "$PG" "$EVENTS" "$VIEWS" "$RUNS" "$KILLS" "$PARTITIONS"
