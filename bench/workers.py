"""The driver of bench/workers.sh: drains a JetStream backlog with 1, 2 and 4 `freshet
worker` processes into PostgreSQL, and times failovers. Standard library only.

Usage: workers.py BIN DATA_DIR WORK_DIR PG_URL EVENTS VIEWS RUNS KILLS
Prints one line per measurement; medians over RUNS.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

BIN, DATA, WORK, PG, EVENTS, VIEWS, RUNS, KILLS = sys.argv[1:9]
EVENTS, VIEWS, RUNS, KILLS = int(EVENTS), int(VIEWS), int(RUNS), int(KILLS)
TICK = os.sysconf("SC_CLK_TCK")
DEADLINE = 1800


def psql(sql):
    subprocess.run(["psql", PG, "-qAtc", sql], check=True, capture_output=True)


def store(schema):
    sep = "&" if "?" in PG else "?"
    return f"{PG}{sep}schema={schema}"


def create_views(schema):
    """The views, on a fresh schema (the data directory's catalog keeps the last run's)."""
    psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    ddl = [f"DROP VIEW IF EXISTS hot_{i}" for i in range(VIEWS)]
    ddl += [view_ddl(i) for i in range(VIEWS)]
    subprocess.run([BIN, "--data-dir", DATA, "--store", store(schema), "sql", ";".join(ddl)],
                   check=True, capture_output=True)


def view_ddl(i):
    return (
        f"CREATE VIEW hot_{i} WITH (freshness = '1s') AS "
        "SELECT auction, window_start, window_end, COUNT(*) AS bids, MAX(price) AS high "
        f"FROM TUMBLE(bid, date_time, INTERVAL '{i + 5}' SECOND) "
        "GROUP BY auction, window_start, window_end"
    )


class Worker:
    def __init__(self, schema, name):
        self.log = open(f"{WORK}/{schema}-{name}.log", "w")
        self.proc = subprocess.Popen(
            [BIN, "--data-dir", DATA, "--store", store(schema), "worker", "--id", name,
             "--lease-ttl", "5s", "--listen", "127.0.0.1:0",
             "--work-dir", f"{WORK}/{schema}-{name}"],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        for line in self.proc.stdout:
            if line.startswith("freshet serving on http://"):
                self.url = line.strip()[len("freshet serving on "):]
                break
        else:
            raise SystemExit(f"worker {name} did not start; see {self.log.name}")

    def status(self):
        with urllib.request.urlopen(self.url + "/v1/status", timeout=10) as r:
            return json.load(r)

    def cpu_s(self):
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=120)


def wait(cond, what):
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > DEADLINE:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - start


def held(workers):
    return [v for w in workers for v in w.status()["views"]]


def settled(workers, each):
    views = [w.status()["views"] for w in workers]
    names = {v["view"] for vs in views for v in vs}
    return len(names) == VIEWS and sum(map(len, views)) == VIEWS and all(len(v) <= each for v in views)


def drain(n, run):
    schema = f"freshet_bench_workers_{os.getpid()}_{n}_{run}"
    create_views(schema)
    start = time.monotonic()
    workers = [Worker(schema, f"w{i}") for i in range(n)]
    each = -(-VIEWS // n)

    def done():
        views = held(workers)
        return settled(workers, each) and all(v["caught_up"] and v["input_events"] >= EVENTS for v in views)

    wait(done, f"{n} workers to drain")
    seconds = time.monotonic() - start
    cpu = sum(w.cpu_s() for w in workers)
    views = held(workers)
    p50 = statistics.median(v["commit_ms_p50"] or 0 for v in views)
    p99 = max(v["commit_ms_p99"] or 0 for v in views)
    for w in workers:
        w.stop()
    psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return VIEWS * EVENTS / seconds, cpu / (VIEWS * EVENTS / 1e6), p50, p99


def failovers():
    schema = f"freshet_bench_failover_{os.getpid()}"
    create_views(schema)
    workers = [Worker(schema, "a"), Worker(schema, "b")]
    wait(lambda: settled(workers, -(-VIEWS // 2)), "two workers to settle")
    times = []
    for k in range(KILLS):
        victim = k % 2
        survivor = workers[1 - victim]
        workers[victim].stop(signal.SIGKILL)
        times.append(wait(lambda: settled([survivor], VIEWS), "the survivor to take every view"))
        workers[victim] = Worker(schema, "ab"[victim])
        wait(lambda: settled(workers, -(-VIEWS // 2)), "the restarted worker to settle")
    for w in workers:
        w.stop()
    psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


results = {}
for run in range(RUNS):
    for n in (1, 2, 4):
        results.setdefault(n, []).append(drain(n, run))
for n, rows in results.items():
    tput, cpu, p50, p99 = (statistics.median(col) for col in zip(*rows))
    print(f"drain {n} worker(s): {tput:,.0f} view-events/s, {cpu:.2f} CPU s per M view-events, "
          f"commit p50 {p50:.1f} ms, p99 {p99:.1f} ms (medians of {len(rows)})")
if KILLS:
    p50, p99 = failovers()
    print(f"failover over {KILLS} SIGKILLs (kill to every view held by the survivor): "
          f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
