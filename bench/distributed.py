"""Benchmark of the distributed shape, side by side with plain Celery on the same Redis.

    python bench/distributed.py [--workflows 300] [--concurrency 50] [--servers 1] [--json]

Starts, on this machine: a throw-away PostgreSQL database (``ODIN_BENCH_POSTGRES_URL``, default
postgresql://postgres@127.0.0.1:5432/postgres), ``odin server`` process(es), ``celery -A odin
worker`` and ``celery -A odin beat`` on Redis (``ODIN_BENCH_REDIS_URL``, default
redis://127.0.0.1:6379/0, under a fresh key prefix). Then it runs N workflows of one activity each
with the temporalio SDK, and N Celery ``chain(echo, finish)`` runs on a Celery worker of the same
broker, and prints throughput and start-to-result latency for both and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import redis
from sqlalchemy.engine import make_url
from temporalio.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import OneActivity, connect, echo, figures, free_port, print_table  # noqa: E402

HERE = Path(__file__).resolve().parent


class Processes:
    def __init__(self, env: dict, cwd: str):
        self.env, self.cwd, self.procs = env, cwd, []

    def start(self, args: list[str], ready: str | None = None, cwd: str | None = None, timeout: float = 60):
        proc = subprocess.Popen(args, env=self.env, cwd=cwd or self.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(proc)
        if ready:
            deadline = time.monotonic() + timeout
            for line in proc.stdout:
                if ready in line:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{args} did not start")
            else:
                raise RuntimeError(f"{args} exited: rc={proc.wait()}")
        # Keep draining output so the process never blocks on a full pipe.
        import threading

        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
        return proc

    def stop(self):
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


async def run_odin(ports: list[int], workflows: int, concurrency: int) -> dict:
    clients = [await connect(p) for p in ports]
    task_queue = f"bench-{uuid.uuid4().hex[:8]}"
    latencies: list[float] = []
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        client = clients[i % len(clients)]
        async with limit:
            start = time.perf_counter()
            result = await client.execute_workflow(OneActivity.run, str(i), id=f"{task_queue}-{i}", task_queue=task_queue)
            latencies.append(time.perf_counter() - start)
            assert result == str(i)

    workers = [
        Worker(c, task_queue=task_queue, workflows=[OneActivity], activities=[echo],
               max_concurrent_workflow_tasks=concurrency, max_concurrent_activities=concurrency)
        for c in clients
    ]
    runs = [asyncio.create_task(w.run()) for w in workers]
    try:
        await one(-1)  # warm-up, not counted
        latencies.clear()
        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(workflows)))
        wall = time.perf_counter() - began
    finally:
        for w in workers:
            await w.shutdown()
        await asyncio.gather(*runs, return_exceptions=True)
    return figures(latencies, wall)


def run_celery(workflows: int, concurrency: int) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    from celery import chain
    from celery_chain import echo as c_echo, finish

    def one(i: int) -> float:
        start = time.perf_counter()
        result = chain(c_echo.s(str(i)), finish.s()).apply_async().get(timeout=60)
        assert result == str(i)
        return time.perf_counter() - start

    one(-1)  # warm-up
    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, range(workflows)))
    return figures(latencies, time.perf_counter() - began)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--servers", type=int, default=1, help="odin server processes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # A SIGTERM stops the bench like Ctrl-C: its processes, database and keys are cleaned up.
    signal.signal(signal.SIGTERM, _interrupt)

    admin = os.environ.get("ODIN_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("ODIN_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    run_id = uuid.uuid4().hex[:10]
    dbname = f"odin_bench_{run_id}"
    prefix = f"odin-bench-{run_id}:"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    database_url = make_url(admin).set(drivername="postgresql+psycopg", database=dbname).render_as_string(hide_password=False)
    workdir = tempfile.mkdtemp(prefix="odin-bench-")
    env = {
        **os.environ,
        "ODIN_DATABASE_URL": database_url,
        "ODIN_REDIS_URL": redis_url,
        "ODIN_REDIS_PREFIX": prefix,
        "BENCH_BROKER_URL": redis_url,
        "BENCH_KEY_PREFIX": f"{prefix}celery-bench:",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update({k: env[k] for k in ("BENCH_BROKER_URL", "BENCH_KEY_PREFIX")})
    procs = Processes(env, workdir)
    try:
        subprocess.run([sys.executable, "-m", "odin.cli", "db", "upgrade"], env=env, check=True, capture_output=True)
        ports = []
        for _ in range(args.servers):
            port = free_port()
            procs.start([sys.executable, "-m", "odin.cli", "server", "--host", "127.0.0.1", "--grpc-port", str(port)], "gRPC on")
            ports.append(port)
        procs.start([sys.executable, "-m", "celery", "-A", "odin", "worker", "--loglevel=INFO", "-n", f"odin-{run_id}@%h"], " ready.")
        procs.start([sys.executable, "-m", "celery", "-A", "odin", "beat", "-s", f"{workdir}/beat"], None)
        procs.start(
            [sys.executable, "-m", "celery", "-A", "celery_chain", "worker", "--loglevel=INFO", "-P", "threads",
             "-c", str(args.concurrency), "-n", f"chain-{run_id}@%h"],
            " ready.",
            cwd=str(HERE),
        )
        odin = asyncio.run(run_odin(ports, args.workflows, args.concurrency))
        celery = run_celery(args.workflows, args.concurrency)
    finally:
        procs.stop()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    result = {
        "workflows": args.workflows,
        "concurrency": args.concurrency,
        "odin_servers": args.servers,
        "odin": odin,
        "celery_chain": celery,
        "throughput_ratio_odin_to_celery": round(odin["throughput_per_s"] / celery["throughput_per_s"], 2),
        "p50_ratio_odin_to_celery": round(odin["latency_p50_ms"] / celery["latency_p50_ms"], 2),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.workflows} runs, concurrency {args.concurrency}, {args.servers} odin server(s), PostgreSQL + Redis")
    print_table({"odin (1 activity)": odin, "celery chain(2 tasks)": celery})
    print(f"odin/celery throughput: {result['throughput_ratio_odin_to_celery']}x, p50 latency: {result['p50_ratio_odin_to_celery']}x")


if __name__ == "__main__":
    main()
