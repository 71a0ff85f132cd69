#!/usr/bin/env bash
# Freshness achieved per mode under a steady load: the "observed" rows of BENCHMARKS.md's
# "Modes" section. Usage: bench/freshness.sh [seconds] (default 120). BENCH_DIR (default
# /tmp/freshet-bench-freshness) and BENCH_PORT change the place and the port.
# `freshet serve` with the bid stream and the same view twice (q5's hopping counts per
# auction), one fixed to streaming (SLA 1 s) and one to micro-batch (SLA 1 min, so a 20 s
# period); bids are ingested over HTTP at 50,000 events/s while /v1/views is sampled every
# 200 ms; the staleness each view reports (now minus the time before which every ingested
# event is reflected; 0 when caught up) gives p50/p99 after a 10 s warm-up. Batch mode's
# period is 15 minutes or more, too long to sample here.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
SECONDS_RUN="${1:-120}"
DIR="${BENCH_DIR:-/tmp/freshet-bench-freshness}"
PORT="${BENCH_PORT:-17482}"
F="$(freshet_bin)"
rm -rf "$DIR" && mkdir -p "$DIR"
D="$DIR/data"
U="http://127.0.0.1:$PORT"
machine_line
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
"$F" gen nexmark --events 1000000 --only bid --base-time now --out "$DIR/live.ndjson" >/dev/null
Q="SELECT auction, window_start, window_end, COUNT(*) AS num
  FROM HOP(bid, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND) GROUP BY auction, window_start, window_end"
"$F" --data-dir "$D" sql "CREATE STREAM bid (auction BIGINT NOT NULL, bidder BIGINT NOT NULL,
  price BIGINT NOT NULL, channel VARCHAR, url VARCHAR, date_time TIMESTAMP NOT NULL, extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND) WITH (partitions = 4, partition_key = 'auction');
CREATE VIEW streaming_q5 WITH (freshness = '1s', mode = 'streaming') AS $Q;
CREATE VIEW micro_batch_q5 WITH (freshness = '1m', mode = 'micro_batch') AS $Q" >/dev/null
"$F" --data-dir "$D" serve --listen "127.0.0.1:$PORT" >"$DIR/serve.log" 2>&1 &
SERVE=$!
trap 'kill -TERM $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fs "$U/healthz" >/dev/null && break; sleep 0.1; done
REQUESTS=$((SECONDS_RUN * 50))
"$F" bench http --url "$U" --stream bid --file "$DIR/live.ndjson" --batch 1000 --concurrency 2 \
    --requests "$REQUESTS" --rate 50 --json >"$DIR/ingest.json" &
INGEST=$!
python3 - "$U" "$SECONDS_RUN" <<'PY'
import json, sys, time, urllib.request, statistics
url, seconds = sys.argv[1], float(sys.argv[2])
samples = {}
start = time.time()
while time.time() - start < seconds:
    try:
        views = json.load(urllib.request.urlopen(url + "/v1/views", timeout=5))["views"]
    except Exception:
        views = []
    if time.time() - start >= 10:
        for v in views:
            s = v["freshness"].get("staleness_ms")
            if s is not None:
                samples.setdefault(v["name"], []).append(s)
    time.sleep(0.2)
for name, xs in sorted(samples.items()):
    xs.sort()
    p = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]
    print(f"{name}: samples {len(xs)}  staleness_ms_p50 {p(0.50):.0f}  p99 {p(0.99):.0f}  max {xs[-1]:.0f}")
PY
wait "$INGEST"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("concurrent ingest %.0f events/s" % d["events_per_second"])' "$DIR/ingest.json"
curl -fs "$U/v1/views" | python3 -c 'import json,sys; [print(v["name"], "mode", v["mode"], "period_ms", v["period_ms"]) for v in json.load(sys.stdin)["views"]]'
