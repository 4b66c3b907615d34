"""Benchmark: machine instructions the ``odin dev`` server executes per one-activity workflow.

    python bench/instructions.py [--workflows 40] [--concurrency 10] [--eager-start] [--json]

CPU seconds move with whatever else the machine runs; instruction counts hardly do. This runs
``odin dev`` under valgrind's callgrind with instrumentation off, drives a warm-up of 10 workflows
through the temporalio SDK from this process, then counts the server's instructions (all its
threads) over N more and divides. Under callgrind the server is ~50x slower, so keep N small; the
figure includes what the server does while idle during the window (timer loop, long polls), a
few percent at these sizes. Needs ``valgrind`` (Debian: ``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from temporalio.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Processes, cleaning, connect, free_port, handle_interrupts  # noqa: E402
from run import worker_slots  # noqa: E402
from workflows import OneActivity, echo  # noqa: E402


async def _drive(port: int, workflows: int, concurrency: int, eager: bool) -> float:
    client = await connect(port, within=300)
    queue = f"instr-{uuid.uuid4().hex[:8]}"
    slots = worker_slots(concurrency)
    async with Worker(client, task_queue=queue, workflows=[OneActivity], activities=[echo],
                      max_concurrent_workflow_tasks=slots, max_concurrent_activities=slots):
        todo = iter(range(workflows))

        async def run() -> None:
            for _ in todo:
                handle = await client.start_workflow(
                    OneActivity.run, "x", id=uuid.uuid4().hex, task_queue=queue, request_eager_start=eager
                )
                await handle.result()

        started = time.perf_counter()
        await asyncio.gather(*(run() for _ in range(concurrency)))
        return time.perf_counter() - started


def _callgrind(pid: int, command: str) -> None:
    subprocess.run(["callgrind_control", command, str(pid)], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--eager-start", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        sys.exit("valgrind is missing (Debian: apt-get install valgrind)")
    handle_interrupts()

    workdir = tempfile.mkdtemp(prefix="bench-instr-")
    procs = Processes(cwd=workdir)
    with cleaning(lambda: shutil.rmtree(workdir, ignore_errors=True)), cleaning(procs.stop):
        port = free_port()
        server = procs.start(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={workdir}/cg.out",
             sys.executable, "-m", "odin.cli", "dev", "--db", f"{workdir}/odin.db", "--grpc-port", str(port),
             "--http-port", "0"],
            ready=r"gRPC on", timeout=300,
        )
        asyncio.run(_drive(port, 10, min(args.concurrency, 10), args.eager_start))
        _callgrind(server.pid, "--instr=on")
        wall = asyncio.run(_drive(port, args.workflows, args.concurrency, args.eager_start))
        _callgrind(server.pid, "--instr=off")
        _callgrind(server.pid, "-d")
        time.sleep(1)
        total = 0
        for path in glob.glob(f"{workdir}/cg.out*"):
            for line in open(path, errors="replace"):
                if line.startswith(("summary:", "totals:")):
                    total += int(line.split()[1])
        procs.stop()

    per = total // args.workflows
    result = {"workflows": args.workflows, "concurrency": args.concurrency, "eager_start": args.eager_start,
              "server_instructions_per_workflow": per, "wall_seconds_under_callgrind": round(wall, 1)}
    if args.json:
        print(json.dumps(result))
        return
    print(f"odin dev, {args.workflows} one-activity workflows at concurrency {args.concurrency}"
          f"{' (eager start)' if args.eager_start else ''}: {per / 1e6:.2f} M instructions per workflow "
          f"(server, all threads; {wall:.0f} s under callgrind)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
