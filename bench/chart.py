"""Benchmark sweep and chart: throughput against concurrency for `odin dev`, the Temporal dev
server and a plain Celery chain, written as a PNG.

    python bench/chart.py [--levels 1,5,10,25,50] [--workflows 200] [--systems odin,temporal,celery]
                          [--out docs/performance-throughput.png] [--json]

odin, temporal and temporal-wal (the Temporal dev server with its SQLite in WAL mode,
synchronous=NORMAL, as odin dev runs its own) run the one-activity workflow of bench/run.py
(same temporalio worker and client), each server started once for its whole sweep. celery runs ``chain(echo, finish)`` of
bench/celery_chain.py on a thread-pool worker of ``max(levels)`` threads, on the Redis of
``ODIN_BENCH_REDIS_URL`` (default redis://127.0.0.1:6379/0) under a fresh key prefix, deleted
afterwards. Each point runs 4 x concurrency workflows, at least 20 and at most ``--workflows``.
It prints a line per point (throughput, p50/p99, CPU per workflow) and writes the chart:
throughput and p50 latency against concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import SELF, CpuMeter, Processes, cleaning, connect, figures, handle_interrupts, running_server, temporal_binary  # noqa: E402
from distributed import drop_redis_prefix, run_celery, start_chain_worker  # noqa: E402
from run import measure_one_activity  # noqa: E402

LABELS = {
    "odin": "Odin dev (SQLite), 1 activity",
    "temporal": "Temporal dev server (SQLite), 1 activity",
    "temporal-wal": "Temporal dev server (SQLite in WAL mode), 1 activity",
    "celery": "Celery chain of 2 tasks (Redis)",
}


def workflows_at(concurrency: int, most: int) -> int:
    return max(20, min(most, 4 * concurrency))


def report(system: str, concurrency: int, f: dict, quiet: bool) -> None:
    if not quiet:
        cpu = ", ".join(f"{k} {v}" for k, v in f["cpu_ms_per_workflow"].items())
        print(f"{system:<13}concurrency {concurrency:>3}: {f['throughput_per_s']:>7} /s  p50 {f['latency_p50_ms']:>7} ms"
              f"  p99 {f['latency_p99_ms']:>7} ms  CPU ms/wf: {cpu}", flush=True)


def sweep_server(name: str, levels: list[int], args) -> dict[int, dict]:
    with running_server(name.removesuffix("-wal"), temporal_wal=name.endswith("-wal")) as server:

        async def go() -> dict[int, dict]:
            client = await connect(server.port)
            points = {}
            for c in levels:
                n = workflows_at(c, args.workflows)
                meter = CpuMeter({"server": server.proc.pid, "sdk": SELF})
                latencies, wall = await measure_one_activity([client], n, c, meter)
                points[c] = {**figures(latencies, wall), "workflows": n, "cpu_ms_per_workflow": meter.per_workflow_ms(n)}
                report(name, c, points[c], args.json)
            return points

        return asyncio.run(go())


def sweep_celery(levels: list[int], args) -> dict[int, dict]:
    redis_url = os.environ.get("ODIN_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    run_id = uuid.uuid4().hex[:10]
    prefix = f"odin-bench-{run_id}:"
    # bench/celery_chain.py, in the worker and in this process, reads these.
    os.environ.update({"BENCH_BROKER_URL": redis_url, "BENCH_KEY_PREFIX": f"{prefix}celery-bench:"})
    procs = Processes({**os.environ, "PYTHONUNBUFFERED": "1"})
    with cleaning(lambda: drop_redis_prefix(redis_url, prefix)), cleaning(procs.stop):
        worker = start_chain_worker(procs, max(levels), run_id)
        points = {}
        for c in levels:
            n = workflows_at(c, args.workflows)
            meter = CpuMeter({"celery worker": worker.pid, "client": SELF})
            points[c] = {**run_celery(n, c, meter, CpuMeter({})), "workflows": n}
            points[c].pop("services_cpu_ms_per_workflow")
            report("celery", c, points[c], args.json)
        return points


def plot(results: dict[str, dict[int, dict]], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for system, points in results.items():
        xs = sorted(points)
        left.plot(xs, [points[c]["throughput_per_s"] for c in xs], marker="o", label=LABELS[system])
        right.plot(xs, [points[c]["latency_p50_ms"] for c in xs], marker="o", label=LABELS[system])
    left.set(xlabel="concurrency (runs in flight)", ylabel="completed runs / s", title="Throughput")
    right.set(xlabel="concurrency (runs in flight)", ylabel="ms", title="Start-to-result latency, p50", yscale="log")
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        ax.set_xticks(sorted({c for points in results.values() for c in points}))
    left.legend(fontsize=8)
    fig.text(0.99, 0.01, f"{date.today().isoformat()}, {os.cpu_count()} cores",
             ha="right", fontsize=7, color="grey")
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="1,5,10,25,50", help="concurrency levels, comma-separated")
    parser.add_argument("--workflows", type=int, default=200, help="most workflows per point")
    parser.add_argument("--systems", default="odin,temporal,celery",
                        help="any of odin, temporal, temporal-wal (its SQLite in WAL mode, synchronous=NORMAL, "
                             "as odin dev's), celery")
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "performance-throughput.png"))
    parser.add_argument("--json", action="store_true", help="print one JSON object (the chart is still written)")
    args = parser.parse_args()
    handle_interrupts()
    levels = sorted(int(x) for x in args.levels.split(","))
    systems = [s.strip() for s in args.systems.split(",")]
    unknown = set(systems) - set(LABELS)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    if {"temporal", "temporal-wal"} & set(systems):
        temporal_binary()  # fail early, with the install line, without the CLI

    results = {}
    for system in systems:
        results[system] = sweep_celery(levels, args) if system == "celery" else sweep_server(system, levels, args)
    plot(results, args.out)
    if args.json:
        print(json.dumps({"systems": {s: LABELS[s] for s in systems}, "points": results, "chart": args.out}))
    else:
        print(f"chart: {args.out}")


if __name__ == "__main__":
    main()
