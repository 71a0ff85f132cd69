#!/usr/bin/env bash
# The whole path against DuckDB (issue 18): an NDJSON file of Nexmark bids, then,
# taking turns, Freshet's `ingest` + `run --drain --end-of-stream` of the peers' Q1 (per
# auction, 10 s tumbling window: count, sum, max) into SQLite, and DuckDB's read_ndjson +
# GROUP BY into CSV; both must give the same rows. The numbers in BENCHMARKS.md's
# "Whole path against DuckDB" section.
# Usage: bench/vs-duckdb.sh [runs] (default 3; medians). BENCH_EVENTS (default 3,000,000
# bids, about 730 MB) and BENCH_DIR (default /tmp/freshet-bench-duckdb) change the size and
# the place. FRESHET_BIN picks the binary (the README builds target/release/freshet);
# FRESHET_BASE_BIN, if set, is run too, taking turns, to compare two builds in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
RUNS="${1:-3}"
EVENTS="${BENCH_EVENTS:-3000000}"
DIR="${BENCH_DIR:-/tmp/freshet-bench-duckdb}"
F="$(freshet_bin)"
PY="$(bash scripts/install-python-test-deps.sh)"
rm -rf "$DIR" && mkdir -p "$DIR"
trap 'rm -rf "$DIR"' EXIT
machine_line
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown); DuckDB $("$PY" -c 'import duckdb; print(duckdb.__version__)')"
"$PY" bench/vs_duckdb.py "$F" "$DIR" "$EVENTS" "$RUNS" "${FRESHET_BASE_BIN:-}"
