"""Benchmark of the distributed shape, side by side with plain Celery on the same Redis.

    python bench/distributed.py [--workflows 300] [--concurrency 50] [--servers 1] [--database postgres|mysql] [--json]

Starts, on this machine: a throw-away PostgreSQL database (``ODIN_BENCH_POSTGRES_URL``, default
postgresql://postgres@127.0.0.1:5432/postgres) or, with ``--database mysql``, a MariaDB / MySQL one
(``ODIN_BENCH_MYSQL_URL``, default mysql://root@127.0.0.1:3306/test), ``odin server`` process(es), ``celery -A odin
worker`` and ``celery -A odin beat`` on Redis (``ODIN_BENCH_REDIS_URL``, default
redis://127.0.0.1:6379/0, under a fresh key prefix). Then it runs N workflows of one activity each
with the temporalio SDK, and N Celery ``chain(echo, finish)`` runs on a Celery worker of the same
broker, and prints throughput and start-to-result latency for both and their ratio, and the CPU
time (user+system, child processes included) per workflow of every process involved, over each
side's measured window: the odin server(s), the Celery system worker and beat, this process as
the SDK worker + client; the Celery chain worker and this process as the Celery client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import psutil
import psycopg
import redis
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402
from common import (  # noqa: E402
    SELF,
    CpuMeter,
    Processes,
    cleaning,
    connect,
    figures,
    free_port,
    handle_interrupts,
    print_cpu,
    print_table,
)
from run import SDK_PROCESS, measure_one_activity  # noqa: E402

HERE = Path(__file__).resolve().parent


async def run_odin(ports: list[int], workflows: int, concurrency: int, meter: CpuMeter, services: CpuMeter) -> dict:
    clients = [await connect(p) for p in ports]
    with services:
        latencies, wall = await measure_one_activity(clients, workflows, concurrency, meter)
    return {**figures(latencies, wall), "cpu_ms_per_workflow": meter.per_workflow_ms(workflows, total=True),
            "services_cpu_ms_per_workflow": services.per_workflow_ms(workflows)}


def run_celery(workflows: int, concurrency: int, meter: CpuMeter, services: CpuMeter) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    from celery import chain
    from celery_chain import echo as c_echo
    from celery_chain import finish

    def one(i: int) -> float:
        start = time.perf_counter()
        result = chain(c_echo.s(str(i)), finish.s()).apply_async().get(timeout=60)
        assert result == str(i)
        return time.perf_counter() - start

    one(-1)  # warm-up
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(-concurrency, -1)))  # start the pool's threads and connections
        with services, meter:
            began = time.perf_counter()
            latencies = list(pool.map(one, range(workflows)))
            wall = time.perf_counter() - began
    return {**figures(latencies, wall), "cpu_ms_per_workflow": meter.per_workflow_ms(workflows, total=True),
            "services_cpu_ms_per_workflow": services.per_workflow_ms(workflows)}


def start_chain_worker(procs: Processes, concurrency: int, run_id: str):
    """The Celery worker of bench/celery_chain.py (thread pool of ``concurrency``); the broker and
    key prefix come from BENCH_BROKER_URL / BENCH_KEY_PREFIX in ``procs.env``."""
    return procs.start(
        [sys.executable, "-m", "celery", "-A", "celery_chain", "worker", "--loglevel=INFO", "-P", "threads",
         "-c", str(concurrency), "-n", f"chain-{run_id}@%h"],
        r" ready\.",
        cwd=str(HERE),
    )


def drop_redis_prefix(redis_url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (a benchmark's throw-away namespace in Redis)."""
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


def postgres_backends_cpu(admin_url: str, dbname: str):
    """A CpuMeter source: the PostgreSQL backends serving ``dbname`` (by pid, from
    pg_stat_activity), when the server runs on this machine; None otherwise."""
    if make_url(admin_url).host not in (None, "", "localhost", "127.0.0.1", "::1"):
        return None
    conn = psycopg.connect(admin_url, autocommit=True)

    def sample() -> dict:
        pids = [row[0] for row in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (dbname,))]
        seconds = {}
        for pid in pids:
            try:
                t = psutil.Process(pid).cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            seconds[pid] = t.user + t.system
        return seconds

    sample.close = conn.close
    return sample


def mysql_server_cpu():
    """A CpuMeter source: the MariaDB / MySQL server process on this machine (one process for every
    database: whatever else uses it in the window counts too); None if none runs here."""
    server = next((p for p in psutil.process_iter(["name"]) if p.info["name"] in ("mariadbd", "mysqld")), None)
    if server is None:
        return None

    def sample() -> dict:
        t = server.cpu_times()
        return {"mysqld": t.user + t.system}

    return sample


class BenchDatabase:
    """The bench's own throw-away database on the PostgreSQL or MySQL server given by the environment."""

    def __init__(self, kind: str, name: str):
        self.kind, self.name = kind, name
        if kind == "postgres":
            self.admin = os.environ.get("ODIN_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
            self.url = make_url(self.admin).set(drivername="postgresql+psycopg", database=name)
        else:
            self.admin = os.environ.get("ODIN_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
            self.url = make_url(self.admin).set(drivername="mysql+pymysql", database=name)

    def _mysql_admin(self):
        import pymysql

        u = make_url(self.admin)
        return pymysql.connect(
            host=u.host or "127.0.0.1", port=u.port or 3306, user=u.username or "root", password=u.password or "", autocommit=True
        )

    def create(self) -> None:
        if self.kind == "postgres":
            with psycopg.connect(self.admin, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
        else:
            with self._mysql_admin() as conn, conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{self.name}`")

    def drop(self) -> None:
        if self.kind == "postgres":
            with psycopg.connect(self.admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        else:
            with self._mysql_admin() as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{self.name}`")

    def cpu(self) -> tuple[str, object] | None:
        """(label, CpuMeter source) of the database server's work, when it runs on this machine."""
        if self.kind == "postgres":
            source = postgres_backends_cpu(self.admin, self.name)
            return ("postgres backends (bench db)", source) if source else None
        if make_url(self.admin).host not in (None, "", "localhost", "127.0.0.1", "::1"):
            return None
        source = mysql_server_cpu()
        return ("mariadb/mysql server (shared)", source) if source else None


def redis_cpu(redis_url: str):
    """A CpuMeter source: the Redis server's own CPU (INFO cpu). That server is shared: whatever
    else uses it in the window counts too."""
    client = redis.Redis.from_url(redis_url)

    def sample() -> dict:
        info = client.info("cpu")
        return {"redis": info["used_cpu_user"] + info["used_cpu_sys"]}

    return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--servers", type=int, default=1, help="odin server processes")
    parser.add_argument("--database", choices=("postgres", "mysql"), default="postgres", help="PostgreSQL, or MariaDB / MySQL")
    parser.add_argument("--json", action="store_true")
    run.add_eager_start_option(parser)
    args = parser.parse_args()
    run.EAGER_START = args.eager_start
    # Ctrl-C and SIGTERM stop the bench: its processes, database, keys and files are cleaned up.
    handle_interrupts()

    redis_url = os.environ.get("ODIN_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    run_id = uuid.uuid4().hex[:10]
    dbname = f"odin_bench_{run_id}"
    prefix = f"odin-bench-{run_id}:"
    database = BenchDatabase(args.database, dbname)
    database_url = database.url.render_as_string(hide_password=False)
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

    with ExitStack() as stack:
        # Undone in reverse: processes first, then keys, database and files.
        stack.enter_context(cleaning(lambda: shutil.rmtree(workdir, ignore_errors=True)))
        stack.enter_context(cleaning(database.drop))
        stack.enter_context(cleaning(lambda: drop_redis_prefix(redis_url, prefix)))
        stack.enter_context(cleaning(procs.stop))
        database.create()
        subprocess.run([sys.executable, "-m", "odin.cli", "db", "upgrade"], env=env, check=True, capture_output=True)
        ports, odin_cpu = [], {}
        for n in range(1, args.servers + 1):
            port = free_port()
            server = procs.start([sys.executable, "-m", "odin.cli", "server", "--host", "127.0.0.1", "--grpc-port", str(port)], "gRPC on")
            ports.append(port)
            odin_cpu[f"odin server {n}"] = server.pid
        worker = procs.start([sys.executable, "-m", "celery", "-A", "odin", "worker", "--loglevel=INFO", "-n", f"odin-{run_id}@%h"], r" ready\.")
        beat = procs.start([sys.executable, "-m", "celery", "-A", "odin", "beat", "-s", f"{workdir}/beat"])
        chain_worker = start_chain_worker(procs, args.concurrency, run_id)
        odin_cpu.update({"celery worker (odin system tasks)": worker.pid, "celery beat (odin)": beat.pid, SDK_PROCESS: SELF})
        # The services the bench does not start, for the whole picture (not in "total").
        services = {"redis-server (shared)": redis_cpu(redis_url)}
        measured = database.cpu()
        if measured and hasattr(measured[1], "close"):
            stack.callback(measured[1].close)
        odin_services = {**({measured[0]: measured[1]} if measured else {}), **services}
        odin = asyncio.run(run_odin(ports, args.workflows, args.concurrency, CpuMeter(odin_cpu), CpuMeter(odin_services)))
        celery_cpu = {"celery worker (chain)": chain_worker.pid, "bench process (celery client)": SELF}
        celery = run_celery(args.workflows, args.concurrency, CpuMeter(celery_cpu), CpuMeter(services))
    result = {
        "database": args.database,
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
    store = "PostgreSQL" if args.database == "postgres" else "MariaDB/MySQL"
    print(f"{args.workflows} runs, concurrency {args.concurrency}, {args.servers} odin server(s), {store} + Redis")
    print_table({"odin (1 activity)": odin, "celery chain(2 tasks)": celery})
    print(f"odin/celery throughput: {result['throughput_ratio_odin_to_celery']}x, p50 latency: {result['p50_ratio_odin_to_celery']}x")
    for name, side, per in (("odin (1 activity)", odin, "workflow"), ("celery chain(2 tasks)", celery, "chain")):
        print(f"{name}:")
        print_cpu(side["cpu_ms_per_workflow"], per=per)
        print_cpu(side["services_cpu_ms_per_workflow"], per=per, title="services the bench did not start")


if __name__ == "__main__":
    main()
