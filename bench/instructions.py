"""Benchmark: machine instructions the ``odin dev`` server executes per one-activity workflow.

    python bench/instructions.py [--workflows 40] [--concurrency 10] [--eager-start] [--distributed] [--json]

CPU seconds move with whatever else the machine runs; instruction counts hardly do. This runs
``odin dev`` under valgrind's callgrind with instrumentation off, drives a warm-up of 10 workflows
through the temporalio SDK from this process, then counts the server's instructions (all its
threads) over N more and divides. Under callgrind the server is ~50x slower, so keep N small; the
figure includes what the server does while idle during the window (timer loop, long polls), a
few percent at these sizes. Needs ``valgrind`` (Debian: ``apt-get install valgrind``).

``--distributed`` counts the distributed shape instead, as ``bench/distributed.py`` sets it up (a
throw-away PostgreSQL database, a fresh Redis key prefix): ``odin server`` and the Celery system
worker both run under callgrind and are counted apart; Celery beat runs as usual.
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
from distributed import drop_redis_prefix  # noqa: E402
from run import worker_options  # noqa: E402
from workflows import OneActivity, echo  # noqa: E402


async def _drive(port: int, workflows: int, concurrency: int, eager: bool) -> float:
    client = await connect(port, within=300)
    queue = f"instr-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[OneActivity], activities=[echo], **worker_options(concurrency)):
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
    parser.add_argument("--distributed", action="store_true", help="odin server + Celery system worker on PostgreSQL and Redis")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        sys.exit("valgrind is missing (Debian: apt-get install valgrind)")
    handle_interrupts()

    workdir = tempfile.mkdtemp(prefix="bench-instr-")
    with cleaning(lambda: shutil.rmtree(workdir, ignore_errors=True)):
        counted, wall = (_distributed if args.distributed else _dev)(workdir, args)

    per = {name: total // args.workflows for name, total in counted.items()}
    shape = "distributed" if args.distributed else "dev"
    result = {"workflows": args.workflows, "concurrency": args.concurrency, "eager_start": args.eager_start,
              "shape": shape, "server_instructions_per_workflow": per["server"],
              "instructions_per_workflow": per, "wall_seconds_under_callgrind": round(wall, 1)}
    if args.json:
        print(json.dumps(result))
        return
    parts = ", ".join(f"{name} {n / 1e6:.2f} M" for name, n in per.items())
    print(f"odin {shape}, {args.workflows} one-activity workflows at concurrency {args.concurrency}"
          f"{' (eager start)' if args.eager_start else ''}: instructions per workflow: {parts} "
          f"(all threads; {wall:.0f} s under callgrind)")


def _valgrind(out: str) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]


def _count(procs: Processes, workdir: str, counted: dict, args, port: int) -> tuple[dict, float]:
    """Warm up, then count each of ``counted`` (name -> (process, its callgrind output prefix))
    over ``args.workflows`` workflows; returns the totals and the wall time."""
    asyncio.run(_drive(port, 10, min(args.concurrency, 10), args.eager_start))
    for proc, _ in counted.values():
        _callgrind(proc.pid, "--instr=on")
    wall = asyncio.run(_drive(port, args.workflows, args.concurrency, args.eager_start))
    for proc, _ in counted.values():
        _callgrind(proc.pid, "--instr=off")
        _callgrind(proc.pid, "-d")
    time.sleep(1)
    totals = {}
    for name, (_, out) in counted.items():
        totals[name] = 0
        for path in glob.glob(f"{out}*"):
            for line in open(path, errors="replace"):
                if line.startswith(("summary:", "totals:")):
                    totals[name] += int(line.split()[1])
    procs.stop()
    return totals, wall


def _dev(workdir: str, args) -> tuple[dict, float]:
    procs = Processes(cwd=workdir)
    with cleaning(procs.stop):
        port = free_port()
        server = procs.start(
            [*_valgrind(f"{workdir}/cg.out"),
             sys.executable, "-m", "odin.cli", "dev", "--db", f"{workdir}/odin.db", "--grpc-port", str(port),
             "--http-port", "0"],
            ready=r"gRPC on", timeout=300,
        )
        return _count(procs, workdir, {"server": (server, f"{workdir}/cg.out")}, args, port)


def _distributed(workdir: str, args) -> tuple[dict, float]:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = os.environ.get("ODIN_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("ODIN_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    run_id = uuid.uuid4().hex[:10]
    dbname, prefix = f"odin_bench_{run_id}", f"odin-bench-{run_id}:"
    database_url = make_url(admin).set(drivername="postgresql+psycopg", database=dbname).render_as_string(hide_password=False)
    env = {**os.environ, "ODIN_DATABASE_URL": database_url, "ODIN_REDIS_URL": redis_url, "ODIN_REDIS_PREFIX": prefix,
           "PYTHONUNBUFFERED": "1"}
    procs = Processes(env, workdir)

    def drop_database() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')

    with cleaning(drop_database), cleaning(lambda: drop_redis_prefix(redis_url, prefix)), cleaning(procs.stop):
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        subprocess.run([sys.executable, "-m", "odin.cli", "db", "upgrade"], env=env, check=True, capture_output=True)
        port = free_port()
        server = procs.start(
            [*_valgrind(f"{workdir}/server.out"), sys.executable, "-m", "odin.cli", "server", "--host", "127.0.0.1",
             "--grpc-port", str(port)],
            ready=r"gRPC on", timeout=300,
        )
        worker = procs.start(
            [*_valgrind(f"{workdir}/worker.out"), sys.executable, "-m", "celery", "-A", "odin", "worker",
             "--loglevel=INFO", "-n", f"odin-{run_id}@%h"],
            ready=r" ready\.", timeout=600,
        )
        procs.start([sys.executable, "-m", "celery", "-A", "odin", "beat", "-s", f"{workdir}/beat"])
        counted = {"server": (server, f"{workdir}/server.out"), "celery system worker": (worker, f"{workdir}/worker.out")}
        return _count(procs, workdir, counted, args, port)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
