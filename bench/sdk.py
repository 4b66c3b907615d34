"""Benchmark: the Odin SDK against the temporalio SDK, same server, same workflow (one activity).

    python bench/sdk.py [--workflows 300] [--concurrency 50] [--json]

Starts `odin dev` on a throw-away SQLite file, then runs N workflows through each SDK in turn
(its own worker and client, on a task queue of its own) and prints throughput and
start-to-result latency for both, side by side, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from temporalio.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sdk_app  # noqa: E402
from run import OneActivity, connect, echo, figures, free_port, print_table, worker_options  # noqa: E402


async def measure(one, workflows: int, concurrency: int) -> dict:
    latencies: list[float] = []
    limit = asyncio.Semaphore(concurrency)

    async def timed(i: int) -> None:
        async with limit:
            start = time.perf_counter()
            assert await one(i) == str(i)
            latencies.append(time.perf_counter() - start)

    await timed(-1)  # warm-up, not counted
    latencies.clear()
    began = time.perf_counter()
    await asyncio.gather(*(timed(i) for i in range(workflows)))
    return figures(latencies, time.perf_counter() - began)


async def temporalio_sdk(port: int, workflows: int, concurrency: int) -> dict:
    client = await connect(port)
    queue = f"bench-temporalio-{uuid.uuid4().hex[:6]}"

    async def one(i: int) -> str:
        return await client.execute_workflow(OneActivity.run, str(i), id=f"{queue}-{i}", task_queue=queue)

    async with Worker(client, task_queue=queue, workflows=[OneActivity], activities=[echo], **worker_options(concurrency)):
        return await measure(one, workflows, concurrency)


async def odin_sdk(port: int, workflows: int, concurrency: int) -> dict:
    app = sdk_app.app
    app.address, app.task_queue = f"127.0.0.1:{port}", f"bench-odin-{uuid.uuid4().hex[:6]}"
    await connect(port)  # wait for the server

    async def one(i: int) -> str:
        handle = await sdk_app.one_activity.start_async(str(i), id=f"{app.task_queue}-{i}")
        return await handle.result_async()

    async with app.worker(concurrency=concurrency):
        return await measure(one, workflows, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="odin-bench-sdk-")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "odin.cli", "dev", "--db", f"{workdir}/bench.db", "--grpc-port", str(port),
         "--http-port", str(free_port())],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        odin = asyncio.run(odin_sdk(port, args.workflows, args.concurrency))
        temporal = asyncio.run(temporalio_sdk(port, args.workflows, args.concurrency))
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "workflows": args.workflows,
        "concurrency": args.concurrency,
        "server": "odin dev (SQLite, in-memory queues)",
        "odin_sdk": odin,
        "temporalio_sdk": temporal,
        "throughput_ratio_odin_to_temporalio": round(odin["throughput_per_s"] / temporal["throughput_per_s"], 2),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.workflows} workflows (one activity each), concurrency {args.concurrency}, {result['server']}")
    print_table({"odin SDK": odin, "temporalio SDK": temporal}, unit="wf/s")
    print(f"odin/temporalio throughput: {result['throughput_ratio_odin_to_temporalio']}x")


if __name__ == "__main__":
    main()
