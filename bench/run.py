"""Benchmark: start `odin dev`, run N one-activity workflows through the temporalio SDK, print figures.

    python bench/run.py [--workflows 200] [--concurrency 50] [--json]

Besides throughput and latency it prints the CPU time (user+system) per workflow of the server
and of this process (the temporalio worker and client), over the measured window only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from contextlib import nullcontext
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Re-exported: bench/sdk.py and bench/distributed.py import these from here.
from common import (  # noqa: E402,F401
    SELF,
    CpuMeter,
    connect,
    figures,
    free_port,
    handle_interrupts,
    percentile,
    print_cpu,
    print_table,
    running_server,
)
from workflows import OneActivity, echo  # noqa: E402,F401

SDK_PROCESS = "bench process (temporalio worker + client)"

# Whether clients ask for eager workflow start (``--eager-start`` of the benchmarks that run
# one-activity workflows): the first workflow task then comes back with the start response.
EAGER_START = False


def add_eager_start_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--eager-start", action="store_true",
                        help="clients ask for eager workflow start (request_eager_start=True)")


# temporalio's default number of concurrent activity task polls.
ACTIVITY_POLLS = 5


def worker_options(concurrency: int) -> dict[str, int]:
    """Task slots of a benchmark's temporalio worker. Workflow tasks: the concurrency, but at least
    5 (the SDK's default number of pollers); with a single workflow-task slot the SDK's sticky-queue
    poll can hold it while the task waits on the normal queue, and the Temporal dev server answers
    that poll only after its 60 s long-poll timeout. Activities: as many, plus the slots the
    waiting activity polls hold (the SDK takes a slot before it polls). With no more slots than
    polls, a workflow task completion never finds a free one, so the SDK never asks for an
    activity to start eagerly, as a worker with its default 100 slots does."""
    slots = max(concurrency, 5)
    return {"max_concurrent_workflow_tasks": slots, "max_concurrent_activities": slots + ACTIVITY_POLLS}


async def measure_one_activity(clients: list[Client], workflows: int, concurrency: int,
                               meter: CpuMeter | None = None) -> tuple[list[float], float]:
    """Run ``workflows`` OneActivity workflows, at most ``concurrency`` at once, spread over
    ``clients`` (one worker each, on a fresh task queue). One warm-up workflow runs first; the
    measured window (and ``meter``'s) covers the rest. Returns the latencies (s) and the wall time."""
    task_queue = f"bench-{uuid.uuid4().hex[:8]}"
    latencies: list[float] = []
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        client = clients[i % len(clients)]
        async with limit:
            start = time.perf_counter()
            result = await client.execute_workflow(
                OneActivity.run, str(i), id=f"{task_queue}-{i}", task_queue=task_queue, request_eager_start=EAGER_START
            )
            latencies.append(time.perf_counter() - start)
            assert result == str(i)

    workers = [
        Worker(c, task_queue=task_queue, workflows=[OneActivity], activities=[echo], **worker_options(concurrency))
        for c in clients
    ]
    runs = [asyncio.create_task(w.run()) for w in workers]
    try:
        await one(-1)  # warm-up, not counted
        latencies.clear()
        with meter or nullcontext():
            began = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(workflows)))
            wall = time.perf_counter() - began
    finally:
        for w in workers:
            await w.shutdown()
        await asyncio.gather(*runs, return_exceptions=True)
    return latencies, wall


async def run(workflows: int, concurrency: int, port: int, server_pid: int) -> dict:
    client = await connect(port)
    meter = CpuMeter({"odin dev server": server_pid, SDK_PROCESS: SELF})
    latencies, wall = await measure_one_activity([client], workflows, concurrency, meter)
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
        "cpu_ms_per_workflow": meter.per_workflow_ms(workflows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_eager_start_option(parser)
    args = parser.parse_args()
    global EAGER_START
    EAGER_START = args.eager_start
    handle_interrupts()

    with running_server("odin") as server:
        result = asyncio.run(run(args.workflows, args.concurrency, server.port, server.proc.pid))
    result["backend"] = "odin dev (SQLite, in-memory queues)"
    result["eager_start"] = EAGER_START
    if args.json:
        print(json.dumps(result))
        return
    cpu = result.pop("cpu_ms_per_workflow")
    for key, value in result.items():
        print(f"{key}: {value}")
    print_cpu(cpu, indent="")


if __name__ == "__main__":
    main()
