#!/usr/bin/env bash
# Real-time vs batch trade-off for Nexmark q5 and q7, and batch (DataFusion) throughput over
# the log: the numbers in BENCHMARKS.md's "Modes" section. Usage: bench/modes.sh [runs]
# (default 3; medians for the batch runs). BENCH_EVENTS (default 10,000,000), BENCH_RATE (the
# steady input rate planned for, default 100,000 events/s) and BENCH_DIR (default
# /tmp/freshet-bench-modes) change the size, the rate and the place.
#
# Per mode the table comes from `freshet explain --json` over the whole log (each mode runs
# the view over every event into a scratch SQLite store, committing every rate x period
# events; batch mode of a view DataFusion runs is one DataFusion batch run over the log).
# Batch throughput is `freshet query` of the same SQL with TUMBLE/HOP over the log, output
# discarded.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
RUNS="${1:-3}"
EVENTS="${BENCH_EVENTS:-10000000}"
RATE="${BENCH_RATE:-100000}"
DIR="${BENCH_DIR:-/tmp/freshet-bench-modes}"
F="$(freshet_bin)"
rm -rf "$DIR" && mkdir -p "$DIR"
D="$DIR/data"

machine_line
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
"$F" --data-dir "$D" gen nexmark --events "$EVENTS" --to-streams --json >"$DIR/gen.json"
BIDS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bid"])' "$DIR/gen.json" 2>/dev/null || echo 0)

Q5_COUNTS="SELECT auction, window_start, window_end, COUNT(*) AS num
  FROM HOP(bid, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND)
  GROUP BY auction, window_start, window_end"
Q5="SELECT window_start, window_end, MAX(num) AS top_bids, COUNT(*) AS auctions
  FROM ($Q5_COUNTS) c GROUP BY window_start, window_end"
Q7="SELECT b.auction, b.bidder, b.price, b.window_start, b.window_end
  FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) b
  JOIN (SELECT window_start, window_end, MAX(price) AS maxprice
        FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) GROUP BY window_start, window_end) m
    ON b.window_start = m.window_start AND b.window_end = m.window_end AND b.price = m.maxprice"
"$F" --data-dir "$D" sql "
CREATE VIEW q5_counts WITH (freshness = '1m') AS $Q5_COUNTS;
CREATE VIEW q5 WITH (freshness = '1m') AS SELECT window_start, window_end, MAX(num) AS top_bids, COUNT(*) AS auctions
  FROM q5_counts GROUP BY window_start, window_end;
CREATE VIEW q7 WITH (freshness = '1m') AS $Q7" >/dev/null
echo "log: $EVENTS Nexmark events ($BIDS bids); planned input rate $RATE events/s"

for view in q5 q7; do
  "$F" --data-dir "$D" explain "$view" --rate "$RATE" --sample "$EVENTS" --json >"$DIR/explain.json"
  python3 - "$DIR/explain.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
print(f'{e["view"]}: chosen {e["mode"]} every {e["period_ms"]} ms for an SLA of {e["sla_ms"]} ms; measured on {e["sample_events"]} events')
for a in e["alternatives"]:
    print(f'  {a["mode"]:<12} period_ms {a["period_ms"]:>8}  freshness_bound_ms {a["freshness_p99_ms"]:>8}  '
          f'max_events_per_s {a["max_events_per_s"]:>10.0f}  cpu_s_per_M {a["cpu_seconds_per_million"]:.3f}  '
          f'store_writes_per_M {a["store_writes_per_million"]:.0f}  state_bytes_peak {a["state_bytes_peak"]}  '
          f'memory_bytes_peak {a.get("memory_bytes_peak", "-")}')
print(f'  batch runs as: {e.get("batch_execution", "-")}')
PY
done

median() { median_of 0 "$@"; }
for name in q5 q7; do
  sql=$Q5; [ "$name" = q7 ] && sql=$Q7
  rates=() rss=()
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -v "$F" --data-dir "$D" query "$sql" --format csv >/dev/null 2>"$DIR/time.txt"
    secs=$(awk -F': ' '/Elapsed \(wall clock\)/{print $2}' "$DIR/time.txt" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
    rates+=("$(python3 -c "print($BIDS/max($secs,1e-9))")")
    rss+=("$(awk -F': ' '/Maximum resident/{print $2}' "$DIR/time.txt")")
  done
  echo "batch $name (DataFusion over the log): bid_events_per_s_median $(median "${rates[@]}")  peak_rss_kb_median $(median "${rss[@]}")"
done
rm -rf "$DIR"
