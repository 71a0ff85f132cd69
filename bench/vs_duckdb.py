"""The whole path against DuckDB (issue 18): one NDJSON file of Nexmark bids (epoch-ms
timestamps, up to 2 s out of order), then, taking turns (each side first in turn),
Freshet's `ingest` plus `run --drain --end-of-stream` of the peers' Q1 into SQLite, and
DuckDB's `read_ndjson` + GROUP BY into a CSV file. Checks that both give the same rows; prints each side's medians and
the ratio. Run by bench/vs-duckdb.sh, which gives it a Python with DuckDB.

Usage: vs_duckdb.py FRESHET_BIN DIR EVENTS RUNS [BASE_BIN]

With BASE_BIN, every run also runs that binary's ingest and drain (the three take turns
going first), checks its rows too, and prints its medians and new/base ratios: two builds
compared within one run on a noisy machine.
"""

import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import duckdb

F, DIR, EVENTS, RUNS = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
BASE = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] else None
BIDS = os.path.join(DIR, "bids.ndjson")

STREAM = """CREATE STREAM bid (
    auction BIGINT NOT NULL, bidder BIGINT NOT NULL, price BIGINT NOT NULL,
    channel VARCHAR NOT NULL, url VARCHAR NOT NULL, date_time TIMESTAMP NOT NULL,
    extra VARCHAR NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '2' SECOND
) WITH (partitions = 4, partition_key = 'auction')"""

Q1 = """CREATE VIEW q1 AS
SELECT auction, window_start, window_end, COUNT(*) AS bids, SUM(price) AS total,
       MAX(price) AS top
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end"""

DUCKDB_Q1 = """COPY (
  SELECT auction, (date_time // 10000) * 10000 AS window_start, count(*) AS bids,
         sum(price) AS total, max(price) AS top
  FROM read_ndjson('{bids}', columns = {{auction: 'BIGINT', bidder: 'BIGINT',
       price: 'BIGINT', channel: 'VARCHAR', url: 'VARCHAR', date_time: 'BIGINT',
       extra: 'VARCHAR'}})
  GROUP BY ALL
) TO '{out}' (HEADER, DELIMITER ',')"""


def generate():
    """Freshet's Nexmark bids, their times as epoch ms moved by up to 2 s at random."""
    raw = os.path.join(DIR, "raw.ndjson")
    subprocess.run(
        [F, "gen", "nexmark", "--events", str(EVENTS), "--only", "bid", "--out", raw],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    rng = random.Random(18)
    with open(raw) as src, open(BIDS, "w") as out:
        for line in src:
            bid = json.loads(line)
            t = bid["date_time"]
            ms = t if isinstance(t, int) else ms_since_epoch(
                datetime.fromisoformat(t.replace("Z", "+00:00"))
            )
            bid["date_time"] = ms + rng.randrange(2000)
            out.write(json.dumps(bid, separators=(",", ":")))
            out.write("\n")
    os.remove(raw)


def freshet_run(n, binary=F):
    """Ingest then drain into a fresh data directory; (seconds, ingest s, drain s)."""
    data = os.path.join(DIR, f"data-{n}")
    shutil.rmtree(data, ignore_errors=True)
    base = [binary, "--data-dir", data]
    subprocess.run(base + ["sql", STREAM], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(base + ["sql", Q1], check=True, stdout=subprocess.DEVNULL)
    start = time.perf_counter()
    subprocess.run(base + ["ingest", "bid", BIDS], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    ingested = time.perf_counter()
    subprocess.run(base + ["run", "--drain", "--end-of-stream"], check=True,
                   stdout=subprocess.DEVNULL)
    end = time.perf_counter()
    return data, end - start, ingested - start, end - ingested


def duckdb_run(n):
    out = os.path.join(DIR, f"duckdb-{n}.csv")
    start = time.perf_counter()
    con = duckdb.connect()
    con.execute(DUCKDB_Q1.format(bids=BIDS, out=out))
    con.close()
    return out, time.perf_counter() - start


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def ms_since_epoch(dt):
    return (dt - EPOCH) // timedelta(milliseconds=1)


def ms_of(text):
    return ms_since_epoch(datetime.fromisoformat(text).replace(tzinfo=timezone.utc))


def freshet_rows(data):
    db = sqlite3.connect(f"file:{os.path.join(data, 'results.db')}?mode=ro", uri=True)
    rows = {
        (a, ms_of(ws), b, t, m)
        for a, ws, b, t, m in db.execute(
            "SELECT auction, window_start, bids, total, top FROM q1 WHERE _state = 'final'"
        )
    }
    db.close()
    return rows


def duckdb_rows(path):
    con = duckdb.connect()
    rows = {tuple(r) for r in con.execute(f"SELECT * FROM read_csv('{path}')").fetchall()}
    con.close()
    return rows


def main():
    os.makedirs(DIR, exist_ok=True)
    generate()
    size = os.path.getsize(BIDS)
    print(f"input: {EVENTS:,} bids, {size / 1e6:.0f} MB of NDJSON (epoch-ms times, up to 2 s "
          f"out of order)")
    sides = {"freshet": F, "duckdb": None}
    if BASE:
        sides["base"] = BASE
    times = {name: ([], [], []) for name in sides}
    for n in range(RUNS):
        # Each goes first in turn, so none always meets another's writeback.
        names = list(sides)
        names = names[n % len(names):] + names[:n % len(names)]
        rows = {}
        for name in names:
            os.sync()  # none meets the writeback of what ran before it
            if name == "duckdb":
                out, seconds = duckdb_run(n)
                times[name][0].append(seconds)
                rows[name] = duckdb_rows(out)
                os.remove(out)
                continue
            data, total, i, d = freshet_run(n, sides[name])
            for series, value in zip(times[name], (total, i, d)):
                series.append(value)
            rows[name] = freshet_rows(data)
            shutil.rmtree(data)
        want = rows["duckdb"]
        for name in sides:
            got = rows[name]
            if got != want:
                print(f"run {n}: {name} has {len(got)} rows, DuckDB {len(want)}; "
                      f"{len(got - want)} only in {name}, {len(want - got)} only in DuckDB")
                sys.exit(1)
        line = ", ".join(
            f"{name} {times[name][0][-1]:.2f} s" + (
                f" (ingest {times[name][1][-1]:.2f} s, drain {times[name][2][-1]:.2f} s)"
                if name != "duckdb" else "")
            for name in sides)
        print(f"run {n}: {line}; the same {len(want):,} rows")
    med = statistics.median
    dk = med(times["duckdb"][0])
    for name in [k for k in sides if k != "duckdb"]:
        fr, ing, drn = (med(t) for t in times[name])
        print(f"{name} ({sides[name]}) ingest + drain: median {fr:.2f} s "
              f"({EVENTS / fr:,.0f} events/s; ingest {ing:.2f} s, drain {drn:.2f} s)")
    print(f"DuckDB read_ndjson + GROUP BY + CSV: median {dk:.2f} s "
          f"({EVENTS / dk:,.0f} events/s)")
    print(f"ratio (DuckDB time / Freshet time): {dk / med(times['freshet'][0]):.2f}x")
    if BASE:
        for k, what in enumerate(["whole path", "ingest", "drain"]):
            print(f"{what}: base / new time {med(times['base'][k]) / med(times['freshet'][k]):.2f}x")


main()
