# The SQLite probe quoted in BENCHMARKS.md: 1M result-shaped rows upserted in 200,000-row
# transactions (WAL, synchronous=NORMAL) into a rowid table and a WITHOUT ROWID table.
# Usage: python3 bench/sqlite_probe.py
import sqlite3, time, os
for wr in ["", " WITHOUT ROWID"]:
    p="/tmp/sqbench.db"
    for f in [p, p+"-wal", p+"-shm"]:
        if os.path.exists(f): os.remove(f)
    c=sqlite3.connect(p); c.execute("pragma journal_mode=wal"); c.execute("pragma synchronous=normal")
    c.execute(f"create table t (auction integer, bidder integer, price integer, date_time text, extra text, _partition integer, _offset integer, _copy integer, _state text, _updated_at text, primary key (_partition,_offset,_copy)){wr}")
    rows=[(i%1000, i%777, i, "2015-07-15 00:00:00.000", "x"*20, i%4, i//4, 0, "final", "2026-11-28 00:00:00.000") for i in range(1_000_000)]
    t=time.time()
    for k in range(0, len(rows), 200_000):
        c.execute("begin")
        c.executemany("insert into t values (?,?,?,?,?,?,?,?,?,?) on conflict (_partition,_offset,_copy) do update set auction=excluded.auction", rows[k:k+200_000])
        c.execute("commit")
    print(repr(wr), 1_000_000/(time.time()-t), "rows/s", os.path.getsize(p)//2**20, "MiB")
