"""A local distributed Odin for tests: real ``odin server`` processes, a real ``celery -A odin worker``
and ``celery -A odin beat``, one throw-away PostgreSQL database and a private redis-server.

Every process is configured only through the environment, as on Heroku.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process whose output is kept (last lines) and scanned for a readiness line."""

    def __init__(self, name: str, args: list[str], env: dict, cwd: Path, ready: str, timeout: float = 60.0):
        self.name = name
        self.lines: deque[str] = deque(maxlen=400)
        self._ready = threading.Event()
        self._marker = ready
        self.proc = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._ready.wait(timeout):
            self.kill()
            raise RuntimeError(f"{name} did not become ready:\n" + self.output())

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if self._marker in line:
                self._ready.set()

    def output(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        """SIGKILL the process (and anything it started)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


class Cluster:
    def __init__(self, database_url: str, redis_url: str, workdir: Path, **settings: str):
        self.database_url = database_url
        self.redis_url = redis_url
        self.workdir = workdir
        self.env = {
            **os.environ,
            "ODIN_DATABASE_URL": database_url,
            "ODIN_REDIS_URL": redis_url,
            "ODIN_REDIS_PREFIX": "odin:",
            "ODIN_NUM_SHARDS": "16",
            "ODIN_SHARD_LEASE_SECONDS": "3",
            "ODIN_QUEUE_RECLAIM_SECONDS": "3",
            "PYTHONUNBUFFERED": "1",
            **settings,
        }
        for key in ("DATABASE_URL", "REDIS_URL"):
            self.env.pop(key, None)
        self.processes: list[Process] = []

    def odin(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "odin.cli", *args], env=self.env, cwd=self.workdir, capture_output=True, text=True, timeout=120
        )

    def celery(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "celery", "-A", "odin", *args],
            env=self.env, cwd=self.workdir, capture_output=True, text=True, timeout=timeout,
        )

    def _spawn(self, name: str, args: list[str], ready: str) -> Process:
        p = Process(name, args, self.env, self.workdir, ready)
        self.processes.append(p)
        return p

    def start_server(self) -> tuple[Process, int]:
        port = free_port()
        p = self._spawn(
            f"server:{port}",
            [sys.executable, "-m", "odin.cli", "server", "--host", "127.0.0.1", "--grpc-port", str(port)],
            ready="Odin server: gRPC on",
        )
        return p, port

    def start_worker(self, name: str = "w1", loglevel: str = "INFO") -> Process:
        """A Celery worker; at DEBUG it also logs each routine sweep it runs."""
        return self._spawn(
            f"celery-worker:{name}",
            [sys.executable, "-m", "celery", "-A", "odin", "worker", f"--loglevel={loglevel}", "-n", f"{name}@%h"],
            ready=" ready.",
        )

    def start_beat(self) -> Process:
        return self._spawn(
            "celery-beat",
            [sys.executable, "-m", "celery", "-A", "odin", "beat", "--loglevel=INFO", "-s", str(self.workdir / "beat-schedule")],
            ready="beat: Starting",
        )

    def terminate_database_connections(self) -> int:
        """pg_terminate_backend every connection to this cluster's database; returns how many."""
        url = make_url(self.database_url)
        admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (url.database,),
            ).fetchall()
        return len(rows)

    def shard_owners(self) -> dict[int, str]:
        """shard_id -> owner recorded by the current lease holder."""
        url = make_url(self.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(url) as conn:
            return dict(conn.execute("SELECT shard_id, owner FROM history_shards WHERE owner IS NOT NULL").fetchall())

    def shutdown(self) -> None:
        for p in reversed(self.processes):
            p.stop()

    def dump(self) -> str:
        return "\n\n".join(f"=== {p.name} (rc={p.proc.poll()}) ===\n{p.output()}" for p in self.processes)


@contextmanager
def deployed_shape(workdir: Path, redis_prefix: str) -> Iterator[dict]:
    """PostgreSQL (a migrated throw-away database) and the shared Redis under ``redis_prefix``, with
    a real Celery worker and beat as the system workers, as deployed; yields the ``Settings``
    fields of an in-process server of that shape."""
    from tests.support.services import REDIS_URL, require_redis, throwaway_postgres_database

    require_redis()
    with throwaway_postgres_database(migrated=True) as database_url:
        system = Cluster(database_url, REDIS_URL, workdir, ODIN_REDIS_PREFIX=redis_prefix)
        try:
            system.start_worker()
            system.start_beat()
            yield {"database_url": database_url, "redis_url": REDIS_URL, "redis_prefix": redis_prefix}
        finally:
            system.shutdown()


def wait_until(condition, within: float, every: float = 0.2, message: str = "condition") -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached within {within} s")
        time.sleep(every)
