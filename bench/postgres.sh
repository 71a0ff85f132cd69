#!/usr/bin/env bash
# Nexmark q5 and q7 into the PostgreSQL result store against the SQLite store, on the same
# log in the same run: the numbers in BENCHMARKS.md's "PostgreSQL result store" section.
# Usage: bench/postgres.sh [runs] (default 3; medians).
# BENCH_EVENTS (default 10,000,000 Nexmark events), BENCH_DIR (default
# /tmp/freshet-bench-pg) and BENCH_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/test) change the size, the place and the server.
# Each run is `freshet run --drain --end-of-stream --view Q` on a fresh store (SQLite file
# removed; PostgreSQL schema dropped), the two stores alternating so that machine noise
# falls on both.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
RUNS="${1:-3}"
EVENTS="${BENCH_EVENTS:-10000000}"
DIR="${BENCH_DIR:-/tmp/freshet-bench-pg}"
PG="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
SCHEMA="freshet_bench_$$"
F="$(freshet_bin)"
rm -rf "$DIR" && mkdir -p "$DIR"
D="$DIR/data"
trap 'psql "$PG" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true' EXIT

median() { median_of 1 "$@"; }

machine_line
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $(psql "$PG" -Atc 'select version()' | cut -d, -f1)"

"$F" --data-dir "$D" gen nexmark --events "$EVENTS" --to-streams --json >"$DIR/gen.json"
"$F" --data-dir "$D" sql "
CREATE VIEW q5_counts AS SELECT auction, window_start, window_end, COUNT(*) AS num
  FROM HOP(bid, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND)
  GROUP BY auction, window_start, window_end;
CREATE VIEW q5 AS SELECT window_start, window_end, MAX(num) AS top_bids, COUNT(*) AS auctions
  FROM q5_counts GROUP BY window_start, window_end;
CREATE VIEW q7 AS SELECT b.auction, b.bidder, b.price, b.window_start, b.window_end
  FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) b
  JOIN (SELECT window_start, window_end, MAX(price) AS maxprice
        FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) GROUP BY window_start, window_end) m
    ON b.window_start = m.window_start AND b.window_end = m.window_end AND b.price = m.maxprice" >/dev/null
echo "log: $EVENTS Nexmark events"

# One run; prints "events_per_s commit_ms_p50 commit_ms_p99 rows commits".
once() {
  local view="$1" sink="$2" store
  if [ "$sink" = sqlite ]; then
    rm -f "$D"/results.db*
    store="$D/results.db"
  else
    psql "$PG" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1
    store="$PG?schema=$SCHEMA"
  fi
  "$F" --data-dir "$D" --store "$store" run --drain --end-of-stream --view "$view" --json >"$DIR/run.json"
  python3 -c '
import json,sys; d=json.load(open(sys.argv[1])); v=d["views"][0]
print(v["events"]/d["seconds"], v["commit_ms_p50"], v["commit_ms_p99"], v["rows_written"], v["commits"])' "$DIR/run.json"
}

for view in q5 q7; do
  declare -A tput=() p50=() p99=()
  for sink in sqlite postgres; do tput[$sink]=""; p50[$sink]=""; p99[$sink]=""; done
  for _ in $(seq "$RUNS"); do
    for sink in sqlite postgres; do
      read -r t a b rows commits < <(once "$view" "$sink")
      tput[$sink]+=" $t"; p50[$sink]+=" $a"; p99[$sink]+=" $b"
    done
  done
  for sink in sqlite postgres; do
    # shellcheck disable=SC2086
    echo "$view $sink: events_per_s_median $(median ${tput[$sink]})  commit_ms_p50_median $(median ${p50[$sink]})  commit_ms_p99_median $(median ${p99[$sink]})  rows $rows  commits $commits"
  done
  # shellcheck disable=SC2086
  python3 -c 'import sys,statistics
s=[float(x) for x in sys.argv[1].split()]; p=[float(x) for x in sys.argv[2].split()]
print(f"'"$view"' postgres/sqlite throughput: {statistics.median(p)/statistics.median(s):.2f}")' "${tput[sqlite]}" "${tput[postgres]}"
done
rm -rf "$DIR"
