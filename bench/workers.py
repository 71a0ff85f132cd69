"""The driver of bench/workers.sh: drains a JetStream backlog with 1, 2 and 4 `freshet
worker` processes into PostgreSQL, and times failovers. Standard library only.

Usage: workers.py BIN DATA_DIR WORK_DIR PG_URL EVENTS VIEWS RUNS KILLS PARTITIONS
Prints one line per measurement; medians over RUNS. Each view groups by the stream's
partition key, so workers run it as one task per partition: VIEWS x PARTITIONS tasks.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

BIN, DATA, WORK, PG, EVENTS, VIEWS, RUNS, KILLS, PARTITIONS = sys.argv[1:10]
EVENTS, VIEWS, RUNS, KILLS = int(EVENTS), int(VIEWS), int(RUNS), int(KILLS)
TASKS = VIEWS * int(PARTITIONS)
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
    """Every task the workers run, as their reports give it."""
    return [v for w in workers for v in w.status()["views"]]


def settled(workers):
    """Every task runs once, on a worker within its fair share."""
    each = -(-TASKS // len(workers))
    tasks = [w.status()["views"] for w in workers]
    names = {(t["view"], t["task"]) for ts in tasks for t in ts}
    return len(names) == TASKS and sum(map(len, tasks)) == TASKS and all(len(t) <= each for t in tasks)


def events_by_view(tasks):
    """The events each view has read: its tasks' added up."""
    out = {}
    for t in tasks:
        out[t["view"]] = out.get(t["view"], 0) + t["input_events"]
    return out


def drain(n, run):
    schema = f"freshet_bench_workers_{os.getpid()}_{n}_{run}"
    create_views(schema)
    start = time.monotonic()
    workers = [Worker(schema, f"w{i}") for i in range(n)]

    def done():
        tasks = held(workers)
        read = events_by_view(tasks).values()
        return (settled(workers) and all(t["caught_up"] for t in tasks)
                and len(read) == VIEWS and all(e >= EVENTS for e in read))

    wait(done, f"{n} workers to drain")
    seconds = time.monotonic() - start
    cpu = sum(w.cpu_s() for w in workers)
    tasks = held(workers)
    p50 = statistics.median(t["commit_ms_p50"] or 0 for t in tasks)
    p99 = max(t["commit_ms_p99"] or 0 for t in tasks)
    for w in workers:
        w.stop()
    psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return VIEWS * EVENTS / seconds, cpu / (VIEWS * EVENTS / 1e6), p50, p99


def failovers():
    schema = f"freshet_bench_failover_{os.getpid()}"
    create_views(schema)
    workers = [Worker(schema, "a"), Worker(schema, "b")]
    wait(lambda: settled(workers), "two workers to settle")
    times = []
    for k in range(KILLS):
        victim = k % 2
        survivor = workers[1 - victim]
        workers[victim].stop(signal.SIGKILL)
        times.append(wait(lambda: settled([survivor]), "the survivor to take every task"))
        workers[victim] = Worker(schema, "ab"[victim])
        wait(lambda: settled(workers), "the restarted worker to settle")
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
    print(f"failover over {KILLS} SIGKILLs (kill to every task held by the survivor): "
          f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
