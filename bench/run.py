"""Benchmark: start `odin dev`, run N one-activity workflows through the temporalio SDK, print figures.

    python bench/run.py [--workflows 200] [--concurrency 50] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker


@activity.defn
async def echo(value: str) -> str:
    return value


@workflow.defn
class OneActivity:
    @workflow.run
    async def run(self, value: str) -> str:
        return await workflow.execute_activity(echo, value, start_to_close_timeout=timedelta(seconds=30))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def connect(port: int, within: float = 30.0) -> Client:
    deadline = time.monotonic() + within
    while True:
        try:
            return await Client.connect(f"127.0.0.1:{port}")
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def figures(latencies: list[float], wall: float) -> dict:
    """Throughput and start-to-result latency of one measured run."""
    return {
        "throughput_per_s": round(len(latencies) / wall, 1),
        "latency_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "latency_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "latency_mean_ms": round(statistics.fmean(latencies) * 1000, 1),
        "wall_seconds": round(wall, 2),
    }


def print_table(rows: dict[str, dict], unit: str = "runs/s") -> None:
    """Side-by-side figures, one row per contender."""
    width = max(len(name) for name in rows) + 2
    print(f"{'':{width}}{unit:>10}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for name, f in rows.items():
        print(f"{name:{width}}{f['throughput_per_s']:>10}{f['latency_p50_ms']:>10}{f['latency_p99_ms']:>10}{f['latency_mean_ms']:>10}")


async def run(workflows: int, concurrency: int, port: int) -> dict:
    client = await connect(port)
    task_queue = f"bench-{uuid.uuid4().hex[:8]}"
    latencies: list[float] = []
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with limit:
            start = time.perf_counter()
            result = await client.execute_workflow(OneActivity.run, str(i), id=f"bench-{task_queue}-{i}", task_queue=task_queue)
            latencies.append(time.perf_counter() - start)
            assert result == str(i)

    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[OneActivity],
        activities=[echo],
        max_concurrent_workflow_tasks=concurrency,
        max_concurrent_activities=concurrency,
    ):
        await one(-1)  # warm-up, not counted
        latencies.clear()
        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(workflows)))
        wall = time.perf_counter() - began
    return {
        "workflows": workflows,
        "concurrency": concurrency,
        "wall_seconds": round(wall, 3),
        "throughput_wps": round(workflows / wall, 1),
        "latency_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "latency_p90_ms": round(percentile(latencies, 90) * 1000, 1),
        "latency_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "latency_max_ms": round(max(latencies) * 1000, 1),
        "latency_mean_ms": round(statistics.fmean(latencies) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="odin-bench-")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "odin.cli", "dev", "--db", f"{workdir}/bench.db", "--grpc-port", str(port),
         "--http-port", str(free_port())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        figures = asyncio.run(run(args.workflows, args.concurrency, port))
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    figures["backend"] = "odin dev (SQLite, in-memory queues)"
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
