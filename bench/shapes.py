"""Benchmark: more workload shapes than one activity, against `odin dev` (and, with
``--peer temporal``, the Temporal dev server the same way), through the temporalio SDK.

    python bench/shapes.py [--shape NAME ...] [--peer temporal] [--temporal-wal] [--json]

Shapes (``--shape``, repeatable; default all), each on a freshly started server:

  sequence  workflows of 10 sequential activities: workflows/s, activities/s, p50/p99 latency
  signals   100 signals sent into one running workflow: signals/s, p50/p99 per signal, and the
            time from the first signal until the workflow has seen all of them (its result)
  timers    1,000 workflows each sleeping on a 2 s timer: starts/s, timer lateness p50/p99
            (when the workflow saw the timer fire, minus when it was due, both server time),
            the spread of the due times (a timer is set by the workflow's first task), the time
            from the last timer being due until the last one had fired, and from the first
            start until then
  children  a parent starting 100 child workflows and awaiting them all: children/s, and p50/p99
            of the time from the parent's start until it saw each child's result
  storage   SQL bytes per completed one-activity workflow: the rows' bytes (tables and their
            indexes, SQLite's dbstat) before and after, per table

Every shape prints the server's and this process's (SDK worker + client) CPU time per workflow
(per signal for ``signals``, per child for ``children``) over its measured window. Sizes:
``--sequence-workflows``, ``--timers``, ``--signals``, ``--children``... (see --help).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SELF, SERVERS, CpuMeter, connect, handle_interrupts, percentile, running_server, temporal_binary  # noqa: E402
from run import measure_one_activity, worker_options  # noqa: E402
from workflows import Child, OneActivity, Parent, SequentialActivities, SignalCounter, Sleeper, echo  # noqa: E402

WORKFLOWS = [OneActivity, SequentialActivities, SignalCounter, Sleeper, Child, Parent]


@dataclass
class Target:
    """One running server under test."""

    name: str
    client: Client
    pid: int
    db_path: str

    def meter(self) -> CpuMeter:
        return CpuMeter({"server": self.pid, "sdk": SELF})


def queue_name(shape: str) -> str:
    return f"{shape}-{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def worker(client: Client, task_queue: str, concurrency: int):
    async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=[echo], **worker_options(concurrency)):
        yield


async def timed_many(one, count: int, concurrency: int) -> tuple[list[float], float]:
    """Run ``one(i)`` for i < count, at most ``concurrency`` at once: latencies (s), wall (s)."""
    latencies: list[float] = []
    limit = asyncio.Semaphore(concurrency)

    async def timed(i: int) -> None:
        async with limit:
            start = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(timed(i) for i in range(count)))
    return latencies, time.perf_counter() - began


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def cpu_columns(meter: CpuMeter, count: int, per: str) -> dict:
    cpu = meter.per_workflow_ms(count)
    return {f"server CPU ms/{per}": cpu["server"], f"SDK CPU ms/{per}": cpu["sdk"]}


# --- The shapes -----------------------------------------------------------------------------------


async def sequence(t: Target, args) -> dict:
    n, k, c = args.sequence_workflows, args.sequence_activities, args.sequence_concurrency
    tq = queue_name("sequence")

    async def one(i: int) -> None:
        assert await t.client.execute_workflow(SequentialActivities.run, k, id=f"{tq}-{i}", task_queue=tq) == k

    async with worker(t.client, tq, c):
        await one(-1)  # warm-up
        with t.meter() as meter:
            latencies, wall = await timed_many(one, n, c)
    return {"workflows": n, "concurrency": c, "wf/s": round(n / wall, 1), "activities/s": round(n * k / wall, 1),
            "p50 ms": ms(percentile(latencies, 50)), "p99 ms": ms(percentile(latencies, 99)), **cpu_columns(meter, n, "wf")}


async def first_task_done(handle, within: float = 30) -> None:
    """Wait until the workflow's first workflow task has completed (it is running and cached)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        history = await handle.fetch_history()
        if any(e.HasField("workflow_task_completed_event_attributes") for e in history.events):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the workflow's first task did not complete")


async def signals(t: Target, args) -> dict:
    n, c = args.signals, args.signal_concurrency
    tq = queue_name("signals")
    async with worker(t.client, tq, c):
        warm = await t.client.start_workflow(SignalCounter.run, 1, id=f"{tq}-warm", task_queue=tq)
        await warm.signal(SignalCounter.ping)
        await warm.result()
        handle = await t.client.start_workflow(SignalCounter.run, n, id=f"{tq}-run", task_queue=tq)
        await first_task_done(handle)

        async def one(i: int) -> None:
            await handle.signal(SignalCounter.ping)

        with t.meter() as meter:
            began = time.perf_counter()
            latencies, sent = await timed_many(one, n, c)
            seen = await handle.result()
            all_seen = time.perf_counter() - began
    assert seen == n, seen
    return {"signals": n, "concurrency": c, "signals/s": round(n / sent, 1),
            "p50 ms": ms(percentile(latencies, 50)), "p99 ms": ms(percentile(latencies, 99)),
            "all seen after ms": ms(all_seen), **cpu_columns(meter, n, "signal")}


async def timers(t: Target, args) -> dict:
    n, seconds, c = args.timers, args.timer_seconds, args.timer_start_concurrency
    tq = queue_name("timers")
    async with worker(t.client, tq, 100):
        await t.client.execute_workflow(Sleeper.run, 0.1, id=f"{tq}-warm", task_queue=tq)
        handles, results = [], []

        async def start(i: int) -> None:
            handles.append(await t.client.start_workflow(Sleeper.run, seconds, id=f"{tq}-{i}", task_queue=tq))

        async def result(i: int) -> None:
            results.append(await handles[i].result())

        with t.meter() as meter:
            first_start = time.time()  # epoch, as the workflows' times: same machine, same clock
            _, start_wall = await timed_many(start, n, c)
            await timed_many(result, n, c)  # at most c results awaited (long polls) at once
    due = [r[0] for r in results]
    late = [r[1] - r[0] for r in results]
    return {"timers": n, "timer s": seconds, "starts/s": round(n / start_wall, 1),
            "late p50 ms": ms(percentile(late, 50)), "late p99 ms": ms(percentile(late, 99)),
            "due spread s": round(max(due) - min(due), 2),
            "last due -> all fired ms": ms(max(r[1] for r in results) - max(due)),
            "first start -> all fired s": round(max(r[1] for r in results) - first_start, 2), **cpu_columns(meter, n, "wf")}


async def children(t: Target, args) -> dict:
    n = args.children
    tq = queue_name("children")
    async with worker(t.client, tq, 100):
        await t.client.execute_workflow(Parent.run, 1, id=f"{tq}-warm", task_queue=tq)
        with t.meter() as meter:
            began = time.perf_counter()
            done = await t.client.execute_workflow(Parent.run, n, id=f"{tq}-parent", task_queue=tq)
            wall = time.perf_counter() - began
    assert len(done) == n
    return {"children": n, "children/s": round(n / wall, 1), "parent ms": ms(wall),
            "child done p50 ms": ms(percentile(done, 50)), "child done p99 ms": ms(percentile(done, 99)),
            **cpu_columns(meter, n, "child")}


def sqlite_bytes(db_path: str) -> dict[str, tuple[int, int]]:
    """{table: (payload bytes, page bytes)} of a live SQLite file, each table with its indexes."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        owner = dict(con.execute("SELECT name, tbl_name FROM sqlite_schema"))
        sizes: dict[str, tuple[int, int]] = {}
        for name, payload, pages in con.execute("SELECT name, payload, pgsize FROM dbstat WHERE aggregate = TRUE"):
            table = owner.get(name, name)
            p0, g0 = sizes.get(table, (0, 0))
            sizes[table] = (p0 + payload, g0 + pages)
        return sizes
    finally:
        con.close()


async def storage(t: Target, args) -> dict:
    n = args.storage_workflows
    await measure_one_activity([t.client], 1, 1)  # tables, task queue rows and caches in place
    before = sqlite_bytes(t.db_path)
    await measure_one_activity([t.client], n, args.storage_concurrency)
    await asyncio.sleep(args.storage_settle)  # let deferred work (task deletion...) land
    after = sqlite_bytes(t.db_path)
    count = n + 1  # measure_one_activity runs one warm-up workflow too
    per_table = {}
    for table in sorted(set(before) | set(after)):
        (p0, g0), (p1, g1) = before.get(table, (0, 0)), after.get(table, (0, 0))
        if p1 != p0 or g1 != g0:
            per_table[table] = {"row bytes/wf": round((p1 - p0) / count), "page bytes/wf": round((g1 - g0) / count)}
    return {"workflows": count,
            "row bytes/wf": round(sum(v["row bytes/wf"] for v in per_table.values())),
            "page bytes/wf": round(sum(v["page bytes/wf"] for v in per_table.values())),
            "tables": dict(sorted(per_table.items(), key=lambda kv: -kv[1]["row bytes/wf"]))}


SHAPES = {"sequence": sequence, "signals": signals, "timers": timers, "children": children, "storage": storage}


# --- Running and printing --------------------------------------------------------------------------


def run_shape(shape: str, server: str, args) -> dict:
    """Run ``shape`` against a freshly started ``server``."""
    with running_server(server, args.temporal_wal) as running:

        async def go() -> dict:
            target = Target(server, await connect(running.port), running.proc.pid, running.db_path)
            return await SHAPES[shape](target, args)

        return asyncio.run(go())


SIZES = {"workflows", "concurrency", "signals", "timers", "timer s", "children"}  # inputs, not figures


def print_shape(shape: str, rows: dict[str, dict]) -> None:
    first = next(iter(rows.values()))
    columns = [k for k, v in first.items() if not isinstance(v, dict)]
    widths = [max(len(col), 8) + 2 for col in columns]
    print(f"\n[{shape}]")
    print(f"{'':<16}" + "".join(f"{col:>{w}}" for col, w in zip(columns, widths)))
    for server, f in rows.items():
        print(f"{server:<16}" + "".join(f"{f[col]!s:>{w}}" for col, w in zip(columns, widths)))
    if len(rows) == 2 and shape != "storage":
        odin, peer = rows["odin"], rows["temporal"]
        ratio = [round(odin[c] / peer[c], 2) if c not in SIZES and peer[c] else "" for c in columns]
        print(f"{'odin/temporal':<16}" + "".join(f"{r!s:>{w}}" for r, w in zip(ratio, widths)))
    for server, f in rows.items():
        if "tables" in f:
            width = max(len(table) for table in f["tables"]) + 2
            print(f"  {server}, per table (with its indexes):")
            print(f"    {'':<{width}}{'row bytes/wf':>14}{'page bytes/wf':>15}")
            for table, v in f["tables"].items():
                print(f"    {table:<{width}}{v['row bytes/wf']:>14}{v['page bytes/wf']:>15}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", action="append", choices=list(SHAPES), help="repeatable; default: all")
    parser.add_argument("--peer", choices=["temporal"], help="run each shape against the Temporal dev server too")
    parser.add_argument("--temporal-wal", action="store_true", help="the peer's SQLite in WAL mode, synchronous=NORMAL")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    size = parser.add_argument_group("sizes")
    size.add_argument("--sequence-workflows", type=int, default=40)
    size.add_argument("--sequence-activities", type=int, default=10)
    size.add_argument("--sequence-concurrency", type=int, default=10)
    size.add_argument("--signals", type=int, default=100)
    size.add_argument("--signal-concurrency", type=int, default=10, help="signals in flight at once")
    size.add_argument("--timers", type=int, default=1000)
    size.add_argument("--timer-seconds", type=float, default=2.0)
    size.add_argument("--timer-start-concurrency", type=int, default=50, help="starts (and result fetches) in flight")
    size.add_argument("--children", type=int, default=100)
    size.add_argument("--storage-workflows", type=int, default=200)
    size.add_argument("--storage-concurrency", type=int, default=20)
    size.add_argument("--storage-settle", type=float, default=2.0, help="seconds to wait before measuring")
    args = parser.parse_args()
    handle_interrupts()
    servers = ["odin"]
    if args.peer:
        temporal_binary()  # fail early, with the install line, without the CLI
        servers.append("temporal")

    results: dict[str, dict] = {}
    for shape in args.shape or list(SHAPES):
        results[shape] = {server: run_shape(shape, server, args) for server in servers}
        if not args.json:
            print_shape(shape, results[shape])
    if args.json:
        print(json.dumps({"servers": {s: SERVERS[s] for s in servers}, "shapes": results}))


if __name__ == "__main__":
    main()
