"""Fault soak of the distributed shape: workflows keep running while its parts are broken, in turn.

    python bench/soak.py [--workflows 1000] [--gap 12] [--json] [--logs DIR]

Starts, on this machine and nowhere else (127.0.0.1 only):

- a private PostgreSQL (``initdb`` into a temporary directory, ``pg_ctl`` on a free port, trust
  auth; as root it runs as the ``postgres`` user), stopped and removed at the end;
- a private ``redis-server`` on a free port, without persistence;
- two ``odin server`` processes, two ``celery -A odin worker`` processes (so a paused one has a
  peer to take its shard leases) and ``celery -A odin beat``, through ``tests/distributed/cluster.py``;
- temporalio workers in this process, one per server (recreated if one stops).

It starts N workflows, paced over the fault schedule, of five shapes: timers; an activity that
fails a known number of times before it succeeds (retry policy); a signal sent by the client; a
child workflow; a continue-as-new chain. Meanwhile it injects, one after another with ``--gap``
seconds between them: Redis FLUSHALL; Redis restart (SIGKILL, same port); SIGKILL of each server
(restarted on its port); SIGKILL of a Celery worker and of beat (restarted); pg_terminate_backend
of every connection to the Odin database; ``pg_ctl restart``; SIGSTOP of a server for a few
seconds, then SIGCONT; SIGSTOP of a Celery worker holding shard leases for longer than the lease,
then SIGCONT; clock jumps: the Celery workers and server 1 run under libfaketime (Debian's
``faketime`` package), each reading its wall-clock offset from a file the soak rewrites, and the
fault moves worker 1 and server 1 to +30 s then -30 s while worker 2 goes the other way, then
back to real time (left out, with the reason in the report, when libfaketime is not installed).

It prints the workflows completed, lost (not completed by the deadline), completed twice (more
than one WorkflowExecutionCompleted event over a run chain's histories, or more runs than the
shape makes), wrong results, activity executions beyond the attempts the retry policy asked for
(counted in the activity itself), timer workflows whose result came back sooner than their timers
allow (a timer fired early), and, per fault, the time from the fault until the next workflow
completion. The exit status is 1 if anything was lost, duplicated, over-executed or early.

The shared PostgreSQL (5432) and Redis (6379) are never touched. Ctrl-C or SIGTERM stops every
process the soak started and removes its files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import psycopg
import redis
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Appended, not prepended: imported by tests/soak, these directories must not shadow other modules.
for _path in (HERE, ROOT / "tests" / "distributed"):
    if str(_path) not in sys.path:
        sys.path.append(str(_path))
from cluster import Cluster, Process, free_port  # noqa: E402
from common import cleaning, handle_interrupts  # noqa: E402

PG_BIN = Path(os.environ.get("ODIN_SOAK_PG_BIN", "/usr/lib/postgresql/15/bin"))


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- Private services ------------------------------------------------------------------------------


def pg_binaries() -> Path | None:
    """The directory of initdb/pg_ctl/postgres, or None."""
    for candidate in (PG_BIN, Path(shutil.which("pg_ctl") or "/nonexistent").parent):
        if all((candidate / b).exists() for b in ("initdb", "pg_ctl", "postgres")):
            return candidate
    return None


class PrivatePostgres:
    """A PostgreSQL instance of our own: initdb in ``root``, pg_ctl on a free port of 127.0.0.1."""

    def __init__(self, root: Path):
        binaries = pg_binaries()
        if binaries is None:
            raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl, postgres) not found; set ODIN_SOAK_PG_BIN")
        self.bin = binaries
        self.root = root / "pg"
        self.data = self.root / "data"
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.started = False

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess:
        return self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args)

    def start(self) -> None:
        self.root.mkdir(parents=True)
        if self.as_user:  # initdb refuses root: the postgres user owns the cluster's directory
            os.chmod(self.root.parent, 0o755)
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self.started = True
        self.pg_ctl("-l", str(self.root / "postgres.log"), "-o", options, "start")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE odin")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/odin"

    def restart(self) -> None:
        # pg_ctl reuses the options of the last start, but not its log file
        self.pg_ctl("-m", "fast", "-l", str(self.root / "postgres.log"), "restart")

    def stop(self) -> None:
        if not self.started:
            return
        try:
            self.pg_ctl("-m", "immediate", "stop")
        except Exception:
            pid_file = self.data / "postmaster.pid"
            if pid_file.exists():  # our own postmaster, found by its pid file
                try:
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        self.started = False


class PrivateRedis:
    """A redis-server of our own on a free port of 127.0.0.1, without persistence."""

    def __init__(self, root: Path):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server is not installed")
        self.dir = root / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        for _ in range(50):
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.dir)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    redis.Redis.from_url(self.url, socket_connect_timeout=1).ping()
                    return
                except redis.RedisError:
                    time.sleep(0.05)
            self.stop()
            time.sleep(0.2)  # the port was not free yet
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def flushall(self) -> None:
        redis.Redis.from_url(self.url, socket_connect_timeout=2).flushall()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


# --- Clock jumps ----------------------------------------------------------------------------------


def faketime_library() -> Path | None:
    """libfaketime's preload library (``ODIN_SOAK_FAKETIME_LIB``, else Debian's place for it), or None."""
    if os.environ.get("ODIN_SOAK_FAKETIME_LIB"):
        candidates = [Path(os.environ["ODIN_SOAK_FAKETIME_LIB"])]
    else:
        candidates = [*sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1")), Path("/usr/local/lib/faketime/libfaketime.so.1")]
    return next((c for c in candidates if c.is_file()), None)


# Imported first thing by every Python process run under libfaketime (it is on their PYTHONPATH).
_SITECUSTOMIZE = """\
# Written by bench/soak.py for the processes it runs under libfaketime.
import os, select, threading, time

def _sleep(seconds):
    # Python >= 3.11 sleeps with clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME), which libfaketime
    # 0.9.10 turns into EINVAL when the monotonic clock is left alone (libfaketime issue #426);
    # select() takes a relative timeout and passes through untouched.
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    select.select([], [], [], seconds)

time.sleep = _sleep

def _watch(log, tag):
    # Record every jump this process sees: wall time moving against monotonic time.
    base, seen = time.time() - time.monotonic(), 0
    while True:
        _sleep(0.2)
        offset = round(time.time() - time.monotonic() - base)
        if abs(offset - seen) >= 5:
            seen = offset
            with open(log, "a") as f:
                f.write(f"{time.monotonic():.1f} {tag} {offset:+d}\\n")

if os.environ.get("ODIN_SOAK_CLOCK_LOG"):
    threading.Thread(
        target=_watch, args=(os.environ["ODIN_SOAK_CLOCK_LOG"], os.environ.get("ODIN_SOAK_CLOCK_TAG", "?")), daemon=True
    ).start()
"""


class FakeClocks:
    """Wall-clock offsets for processes run under libfaketime, one file per group of processes.

    Each process reads its group's file (``FAKETIME_TIMESTAMP_FILE``, a relative offset such as
    ``+30s``) again at most a second after it changes (``FAKETIME_CACHE_DURATION=1``; re-reading on
    every clock call, ``FAKETIME_NO_CACHE``, costs a file read per ``time.time()``). Only the wall
    clock moves (``FAKETIME_DONT_FAKE_MONOTONIC``), as when NTP steps a clock: ``time.monotonic()``,
    asyncio's loop and thread timeouts keep real time. Each process appends the offsets it sees to
    a log, so the soak can tell that a jump landed."""

    GROUPS = ("a", "b")

    def __init__(self, root: Path, library: Path):
        self.library = library
        self.dir = root / "faketime"
        self.dir.mkdir(parents=True)
        (self.dir / "sitecustomize.py").write_text(_SITECUSTOMIZE)
        self.log = self.dir / "seen.log"
        self.log.touch()
        for group in self.GROUPS:
            self.set(group, 0)

    def env(self, group: str, tag: str) -> dict[str, str]:
        return {
            "LD_PRELOAD": str(self.library),
            "FAKETIME_TIMESTAMP_FILE": str(self.dir / f"clock-{group}"),
            "FAKETIME_CACHE_DURATION": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(self.dir), os.environ.get("PYTHONPATH", "")])),
            "ODIN_SOAK_CLOCK_LOG": str(self.log),
            "ODIN_SOAK_CLOCK_TAG": tag,
        }

    def set(self, group: str, seconds: int) -> None:
        path = self.dir / f"clock-{group}"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{seconds:+d}s\n")
        os.replace(tmp, path)  # a reader never sees a half-written file

    def seen(self, since: float) -> list[str]:
        """"<process> <offset>" for every jump a process noticed after monotonic time ``since``."""
        out = []
        for line in self.log.read_text().splitlines():
            at, tag, offset = line.split()
            if float(at) >= since:
                out.append(f"{tag} {offset}")
        return out


class SoakCluster(Cluster):
    """tests/distributed/cluster.py's Cluster, plus restarts on the same port and, for processes
    named in ``extra_env``, an environment of their own (libfaketime)."""

    extra_env: dict[str, dict[str, str]]

    def _spawn(self, name: str, args: list[str], ready: str) -> Process:
        extra = getattr(self, "extra_env", {}).get(name)
        if extra is None:
            return super()._spawn(name, args, ready)
        p = Process(name, args, {**self.env, **extra}, self.workdir, ready)
        self.processes.append(p)
        return p

    def start_server_on(self, port: int) -> Process:
        return self._spawn(
            f"server:{port}",
            [sys.executable, "-m", "odin.cli", "server", "--host", "127.0.0.1", "--grpc-port", str(port)],
            ready="Odin server: gRPC on",
        )

    def stop_all(self) -> None:
        """SIGKILL every process (also stopped ones: SIGCONT is not needed for SIGKILL)."""
        for p in reversed(self.processes):
            try:
                p.kill()
            except Exception:
                pass


# --- Workflows and activities ---------------------------------------------------------------------

# Every activity execution: (workflow id, run id, activity id, attempt, planned failures).
EXECUTIONS: list[tuple[str, str, str, int, int]] = []

RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=1))
ACTIVITY_TIMEOUT = timedelta(seconds=10)


@activity.defn
async def flaky(key: str, failures: int) -> str:
    """Fails on its first ``failures`` attempts, then succeeds; counts every execution."""
    info = activity.info()
    EXECUTIONS.append((info.workflow_id, info.workflow_run_id, info.activity_id, info.attempt, failures))
    if info.attempt <= failures:
        raise ApplicationError(f"planned failure {info.attempt} of {failures}")
    return f"{key}:ok"


TIMERS_SECONDS = 1.5  # what SoakTimers sleeps in all


@workflow.defn
class SoakTimers:
    @workflow.run
    async def run(self, key: str) -> str:
        await workflow.sleep(0.5)
        await workflow.sleep(1.0)
        return f"{key}:slept"


@workflow.defn
class SoakRetry:
    @workflow.run
    async def run(self, key: str, failures: int) -> str:
        return await workflow.execute_activity(
            flaky, args=[key, failures], start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=RETRY
        )


@workflow.defn
class SoakSignal:
    def __init__(self) -> None:
        self.value: str | None = None

    @workflow.signal
    def go(self, value: str) -> None:
        self.value = value

    @workflow.run
    async def run(self, key: str) -> str:
        await workflow.wait_condition(lambda: self.value is not None)
        await workflow.sleep(0.3)
        return f"{key}:{self.value}"


@workflow.defn
class SoakChild:
    @workflow.run
    async def run(self, key: str) -> str:
        await workflow.sleep(0.3)
        return await workflow.execute_activity(
            flaky, args=[key, 1], start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=RETRY
        )


@workflow.defn
class SoakParent:
    @workflow.run
    async def run(self, key: str) -> str:
        child = await workflow.execute_child_workflow(SoakChild.run, key, id=f"{workflow.info().workflow_id}-child")
        return f"parent:{child}"


CHAIN_STEPS = 3


@workflow.defn
class SoakChain:
    @workflow.run
    async def run(self, key: str, step: int) -> str:
        await workflow.execute_activity(flaky, args=[key, 0], start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=RETRY)
        if step < CHAIN_STEPS:
            workflow.continue_as_new(args=[key, step + 1])
        return f"{key}:chain{step}"


WORKFLOWS = [SoakTimers, SoakRetry, SoakSignal, SoakParent, SoakChild, SoakChain]


@dataclass
class Plan:
    """One workflow of the soak: what to start and what it must return."""

    index: int
    id: str
    shape: str
    expected: str
    started_run: str | None = None
    sent_at: float | None = None  # monotonic time of the first start request
    completed_at: float | None = None
    result: str | None = None
    error: str | None = None


def plan(i: int, prefix: str) -> tuple[Plan, object, list]:
    wid = f"{prefix}-{i}"
    shape = ("timers", "retry", "signal", "child", "chain")[i % 5]
    if shape == "timers":
        return Plan(i, wid, shape, f"{wid}:slept"), SoakTimers.run, [wid]
    if shape == "retry":
        return Plan(i, wid, shape, f"{wid}:ok"), SoakRetry.run, [wid, 1 + (i // 5) % 3]
    if shape == "signal":
        return Plan(i, wid, shape, f"{wid}:sig-{i}"), SoakSignal.run, [wid]
    if shape == "child":
        return Plan(i, wid, shape, f"parent:{wid}:ok"), SoakParent.run, [wid]
    return Plan(i, wid, shape, f"{wid}:chain{CHAIN_STEPS}"), SoakChain.run, [wid, 1]


# --- Faults -----------------------------------------------------------------------------------------


@dataclass
class Fault:
    name: str
    at: float = 0.0  # monotonic time of injection
    note: str = ""
    recovered_after: float | None = None  # seconds until the next workflow completion
    completions_until_next: int = 0  # workflow completions from this fault to the next one


FAULTS = [
    "clock jumps",  # first: workflows are surely in flight then
    "redis FLUSHALL",
    "redis restart",
    "SIGKILL server 1",
    "SIGKILL server 2",
    "SIGKILL celery worker",
    "SIGKILL celery beat",
    "pg_terminate_backend",
    "pg_ctl restart",
    "SIGSTOP server 1",
    "SIGSTOP celery worker",
]
CLOCK_JUMP = 30  # seconds
CLOCK_JUMPS_MISSING = (
    "libfaketime is not installed (apt-get install faketime, or set ODIN_SOAK_FAKETIME_LIB to libfaketime.so.1)"
)


def planned_faults(clock_jumps: bool) -> list[str]:
    return [f for f in FAULTS if clock_jumps or f != "clock jumps"]


@dataclass
class Soak:
    workflows: int = 1000
    gap: float = 12.0  # seconds between faults (recovery time)
    warmup: float = 8.0
    pause: float = 6.0  # how long a SIGSTOP lasts (> the 3 s shard lease)
    jump_hold: float = 6.0  # how long each clock offset of the clock-jump fault lasts
    clock_jumps: bool = True  # run the clock-jump fault (needs libfaketime)
    deadline: float = 240.0  # after the last start and fault, for the stragglers
    in_flight: int = 150
    logs: Path | None = None
    prefix: str = field(default_factory=lambda: f"soak-{os.getpid()}")


class Harness:
    def __init__(self, cfg: Soak, cluster: SoakCluster, pg: PrivatePostgres, rds: PrivateRedis, clocks: FakeClocks | None = None):
        self.cfg, self.cluster, self.pg, self.redis, self.clocks = cfg, cluster, pg, rds, clocks
        self.fault_names = planned_faults(clocks is not None)
        self.servers: list[Process] = []
        self.ports: list[int] = []
        self.celery_workers: list[Process] = []
        self.beat: Process | None = None
        self.clients: list[Client | None] = []
        self.workers: list[tuple[Worker, asyncio.Task] | None] = []
        self.completions: list[float] = []
        self.faults: list[Fault] = []
        self.left_out: dict[str, str] = {}  # fault -> why it did not run
        self.queue = f"{cfg.prefix}-q"
        self.worker_restarts = 0
        self.stopping = False
        # The SDK core logs every retried call to a dead server on stdout; keep stdout for the report.
        self.runtime = Runtime(telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))))

    # processes
    def start_processes(self) -> None:
        ports = [free_port(), free_port()]
        if self.clocks is not None:
            # Worker 1 and server 1 share clock "a", worker 2 has clock "b"; the rest keep real time.
            self.cluster.extra_env = {
                f"server:{ports[0]}": self.clocks.env("a", "server1"),
                "celery-worker:w1": self.clocks.env("a", "worker1"),
                "celery-worker:w2": self.clocks.env("b", "worker2"),
            }
        for port in ports:
            self.servers.append(self.cluster.start_server_on(port))
            self.ports.append(port)
        self.celery_workers = [self.cluster.start_worker("w1"), self.cluster.start_worker("w2")]
        self.beat = self.cluster.start_beat()

    async def connect(self, port: int, within: float = 60) -> Client:
        deadline = time.monotonic() + within
        while True:
            try:
                return await Client.connect(f"127.0.0.1:{port}", runtime=self.runtime)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)

    def _new_worker(self, i: int) -> None:
        w = Worker(
            self.clients[i], task_queue=self.queue, workflows=WORKFLOWS, activities=[flaky],
            workflow_runner=UnsandboxedWorkflowRunner(), identity=f"soak-worker-{i}@{os.getpid()}",
        )
        self.workers[i] = (w, asyncio.create_task(w.run()))

    async def start_workers(self) -> None:
        for i, port in enumerate(self.ports):
            self.clients.append(await self.connect(port))
            self.workers.append(None)
            self._new_worker(i)

    async def supervise(self) -> None:
        """Recreate a temporalio worker whose run() ended (its server died for too long)."""
        while not self.stopping:
            await asyncio.sleep(1.0)
            for i, entry in enumerate(self.workers):
                if entry is not None and entry[1].done() and not self.stopping:
                    exc = entry[1].exception() if not entry[1].cancelled() else None
                    log(f"temporalio worker {i} stopped ({exc!r}); starting a new one")
                    try:
                        self.clients[i] = await self.connect(self.ports[i], within=30)
                        self._new_worker(i)
                        self.worker_restarts += 1
                    except Exception as err:
                        log(f"could not restart worker {i}: {err!r}")

    async def stop_workers(self) -> None:
        self.stopping = True
        for entry in self.workers:
            if entry is None:
                continue
            w, task = entry
            try:
                await asyncio.wait_for(w.shutdown(), 15)
            except Exception:
                pass
            task.cancel()
        await asyncio.gather(*(e[1] for e in self.workers if e), return_exceptions=True)

    def client(self, n: int) -> Client:
        return self.clients[n % len(self.clients)]

    # faults
    async def inject(self, name: str) -> Fault:
        fault = Fault(name, at=time.monotonic())
        self.faults.append(fault)
        log(f"fault: {name}")
        loop = asyncio.get_running_loop()
        if name == "redis FLUSHALL":
            await loop.run_in_executor(None, self.redis.flushall)
        elif name == "redis restart":
            await loop.run_in_executor(None, self.redis.restart)
        elif name.startswith("SIGKILL server"):
            i = int(name[-1]) - 1
            self.servers[i].kill()
            t = time.monotonic()
            self.servers[i] = await loop.run_in_executor(None, self.cluster.start_server_on, self.ports[i])
            fault.note = f"restarted in {time.monotonic() - t:.1f} s"
        elif name == "SIGKILL celery worker":
            self.celery_workers[0].kill()
            t = time.monotonic()
            self.celery_workers[0] = await loop.run_in_executor(None, self.cluster.start_worker, "w1")
            fault.note = f"restarted in {time.monotonic() - t:.1f} s"
        elif name == "SIGKILL celery beat":
            self.beat.kill()
            t = time.monotonic()
            self.beat = await loop.run_in_executor(None, self.cluster.start_beat)
            fault.note = f"restarted in {time.monotonic() - t:.1f} s"
        elif name == "pg_terminate_backend":
            n = await loop.run_in_executor(None, self.cluster.terminate_database_connections)
            fault.note = f"{n} connections"
        elif name == "pg_ctl restart":
            t = time.monotonic()
            await loop.run_in_executor(None, self.pg.restart)
            fault.note = f"down {time.monotonic() - t:.1f} s"
        elif name.startswith("SIGSTOP"):
            proc = self.servers[0] if "server" in name else self.celery_workers[0]
            os.killpg(proc.proc.pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(self.cfg.pause)
            finally:
                os.killpg(proc.proc.pid, signal.SIGCONT)
            fault.note = f"stopped {self.cfg.pause:.0f} s"
        elif name == "clock jumps":
            assert self.clocks is not None
            j = CLOCK_JUMP
            try:
                # Worker 1 + server 1 ("a") go to +30 s then -30 s; worker 2 ("b") the other way.
                for a, b in ((j, -j), (-j, j)):
                    self.clocks.set("a", a)
                    self.clocks.set("b", b)
                    await asyncio.sleep(self.cfg.jump_hold)
            finally:
                self.clocks.set("a", 0)
                self.clocks.set("b", 0)
            # Each process re-reads its clock file about a second after a change (longer on a busy machine).
            back = {f"{tag} +0" for tag in ("worker1", "worker2", "server1")}
            deadline = time.monotonic() + 15
            while not back <= set(self.clocks.seen(fault.at)) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            seen = self.clocks.seen(fault.at)
            fault.note = (f"worker1+server1 +{j}/-{j}/0 s, worker2 -{j}/+{j}/0 s, {self.cfg.jump_hold:.0f} s each; "
                          f"seen: {', '.join(seen) or 'nothing'}")
        else:
            raise ValueError(name)
        return fault

    async def fault_schedule(self) -> None:
        await asyncio.sleep(self.cfg.warmup)
        for name in self.fault_names:
            await self.inject(name)
            if name != "clock jumps":  # its own holds, back on real time, are its recovery time
                await asyncio.sleep(self.cfg.gap)

    # workflows
    async def retrying(self, what: str, n: int, call, within: float):
        """call(client) on one server, then the other, until it succeeds or ``within`` passes."""
        deadline = time.monotonic() + within
        attempt = 0
        while True:
            try:
                return await asyncio.wait_for(call(self.client(n + attempt)), 30)
            except (TimeoutError, RPCError, ConnectionError, RuntimeError) as err:
                attempt += 1
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what}: {err!r}") from err
                await asyncio.sleep(min(2.0, 0.2 * attempt))

    async def one(self, p: Plan, fn, args: list, limit: asyncio.Semaphore, until: float) -> None:
        async with limit:
            async def start(c: Client):
                try:
                    # A retried start (new request id) must not start the id again once the first
                    # attempt's run has closed: the default reuse policy would allow that.
                    h = await c.start_workflow(fn, args=args, id=p.id, task_queue=self.queue,
                                               id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
                    return h.first_execution_run_id
                except WorkflowAlreadyStartedError:  # an earlier attempt reached the server
                    return None

            try:
                p.sent_at = time.monotonic()
                p.started_run = await self.retrying(f"start {p.id}", p.index, start, until - time.monotonic())
                if p.shape == "signal":
                    async def signal(c: Client):
                        try:
                            await c.get_workflow_handle(p.id).signal(SoakSignal.go, f"sig-{p.index}")
                        except RPCError as err:
                            # The run completes only after its signal: an earlier attempt that
                            # failed on the way back (its server killed) did deliver it.
                            if err.status != RPCStatusCode.NOT_FOUND or "already completed" not in err.message:
                                raise

                    await self.retrying(f"signal {p.id}", p.index, signal, until - time.monotonic())

                async def result(c: Client):
                    try:
                        return await c.get_workflow_handle(p.id).result()
                    except WorkflowFailureError as err:
                        return f"failed: {err.cause!r}"

                p.result = await self.retrying(f"result {p.id}", p.index, result, until - time.monotonic())
                p.completed_at = time.monotonic()
                self.completions.append(p.completed_at)
            except Exception as err:
                p.error = repr(err)

    async def run(self) -> dict:
        cfg = self.cfg
        schedule = cfg.warmup + len(self.fault_names) * (cfg.gap + 1) + cfg.pause * 2
        if "clock jumps" in self.fault_names:
            schedule += cfg.jump_hold * 2 + 2 - cfg.gap
        until = time.monotonic() + schedule + cfg.deadline
        plans = [plan(i, cfg.prefix) for i in range(cfg.workflows)]
        limit = asyncio.Semaphore(cfg.in_flight)
        supervisor = asyncio.create_task(self.supervise())
        faults = asyncio.create_task(self.fault_schedule())
        began = time.monotonic()
        tasks = []
        pace = schedule / max(1, cfg.workflows)  # spread the starts over the whole fault schedule
        for i, (p, fn, args) in enumerate(plans):
            # Faults may take longer than planned (slow restarts on a busy machine): workflow i also
            # waits for fault i * faults / workflows to begin, so every fault has workflows after it.
            while len(self.faults) < i * len(self.fault_names) // cfg.workflows and not faults.done():
                await asyncio.sleep(0.1)
            # ...and has at least the straggler deadline from its start.
            until = max(until, time.monotonic() + cfg.deadline)
            tasks.append(asyncio.create_task(self.one(p, fn, args, limit, until)))
            await asyncio.sleep(pace)
        await faults
        last_fault = self.faults[-1].at if self.faults else time.monotonic()
        await asyncio.wait(tasks, timeout=max(1.0, until - time.monotonic()))
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        wall = time.monotonic() - began
        supervisor.cancel()
        report = await self.verify([p for p, _, _ in plans])
        ends = [f.at for f in self.faults[1:]] + [float("inf")]
        for f, end in zip(self.faults, ends):
            later = [t for t in self.completions if t > f.at]
            f.recovered_after = round(min(later) - f.at, 2) if later else None
            f.completions_until_next = sum(1 for t in later if t < end)
        report.update({
            "workflows": cfg.workflows,
            "faults_left_out": self.left_out,
            "wall_seconds": round(wall, 1),
            "last_completion_after_last_fault_s": round(max(self.completions, default=last_fault) - last_fault, 1),
            "temporalio_worker_restarts": self.worker_restarts,
            "faults": [{"fault": f.name, "recovered_after_s": f.recovered_after,
                        "completions_until_next_fault": f.completions_until_next, "note": f.note} for f in self.faults],
        })
        return report

    async def verify(self, plans: list[Plan]) -> dict:
        """Completions and results from the client's side; completion events per run chain from
        the histories; runs per workflow id from the database; activity executions from the
        activities' own record."""
        completed = [p for p in plans if p.completed_at is not None]
        lost = [p for p in plans if p.completed_at is None]
        wrong = [p for p in completed if p.result != p.expected]
        # A timers workflow sleeps TIMERS_SECONDS of workflow time: its result cannot come back
        # sooner after the start request unless a timer fired early.
        early = [p for p in completed if p.shape == "timers" and p.completed_at - p.sent_at < TIMERS_SECONDS]
        twice: list[str] = []
        chains_checked = 0

        async def completions_in_chain(wid: str, run_id: str | None) -> int:
            total, seen = 0, 0
            while seen < 10:
                seen += 1
                history = await self.retrying(
                    f"history {wid}", seen, lambda c, r=run_id: c.get_workflow_handle(wid, run_id=r).fetch_history(), 60
                )
                run_id = None
                for e in history.events:
                    if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
                        total += 1
                    if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                        run_id = e.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                if run_id is None:
                    return total
            return total

        sem = asyncio.Semaphore(20)

        async def check(p: Plan) -> None:
            nonlocal chains_checked
            async with sem:
                ids = [(p.id, p.started_run)] + ([(f"{p.id}-child", None)] if p.shape == "child" else [])
                for wid, run_id in ids:
                    try:
                        n = await completions_in_chain(wid, run_id)
                    except Exception as err:
                        n = -1
                        log(f"could not read the history of {wid}: {err!r}")
                    chains_checked += 1
                    if n > 1:
                        twice.append(f"{wid}: {n} WorkflowExecutionCompleted events")
                    elif n == 0 and p in completed:
                        twice.append(f"{wid}: result returned but no WorkflowExecutionCompleted event")

        await asyncio.gather(*(check(p) for p in plans if p.started_run or p.completed_at))
        # A second run of one workflow id (a duplicated start or continue-as-new) is a duplicate too.
        expected_runs = {p.id: (CHAIN_STEPS if p.shape == "chain" else 1) for p in plans}
        expected_runs.update({f"{p.id}-child": 1 for p in plans if p.shape == "child"})
        with psycopg.connect(self.pg.admin_url.rsplit("/", 1)[0] + "/odin") as conn:
            runs = dict(conn.execute(
                "SELECT workflow_id, count(*) FROM workflow_executions WHERE workflow_id LIKE %s GROUP BY workflow_id",
                (f"{self.cfg.prefix}-%",),
            ).fetchall())
        extra_runs = [f"{wid}: {n} runs, expected {expected_runs.get(wid)}" for wid, n in runs.items()
                      if n > expected_runs.get(wid, 0)]

        # Activity executions: each (run, activity id) must run attempts 1..failures+1, each once.
        by_activity: dict[tuple, Counter] = defaultdict(Counter)
        failures_of: dict[tuple, int] = {}
        for wid, run_id, aid, attempt, failures in EXECUTIONS:
            by_activity[(wid, run_id, aid)][attempt] += 1
            failures_of[(wid, run_id, aid)] = failures
        expected_exec = 0
        duplicate_attempts, extra_attempts = [], []
        for key, attempts in by_activity.items():
            wanted = failures_of[key] + 1
            expected_exec += wanted
            for attempt, count in attempts.items():
                if count > 1:
                    duplicate_attempts.append(f"{key}: attempt {attempt} executed {count} times")
                if attempt > wanted:
                    extra_attempts.append(
                        f"{key}: attempt {attempt} (success was due at attempt {wanted}; "
                        f"attempts run {sorted(attempts.elements())})"
                    )
        executions = len(EXECUTIONS)
        # Beyond the retries: more executions of an activity than its failures + 1, or one attempt run
        # twice. An attempt number past the one due to succeed is not itself an extra execution: an
        # attempt recorded as started whose poll answer was lost with a killed server never runs, and
        # its start-to-close timeout hands out the next number (as on Temporal); the total shows it.
        beyond = sum(
            max(sum(attempts.values()) - (failures_of[key] + 1), sum(c - 1 for c in attempts.values() if c > 1))
            for key, attempts in by_activity.items()
        )
        return {
            "completed": len(completed),
            "lost": len(lost),
            "lost_ids": [f"{p.id} ({p.shape}): {p.error or 'no result'}" for p in lost][:20],
            "completed_twice": len(twice) + len(extra_runs),
            "completed_twice_detail": (twice + extra_runs)[:20],
            "wrong_results": [f"{p.id}: {p.result!r} != {p.expected!r}" for p in wrong][:20],
            "timers_early": len(early),
            "timers_early_detail": [f"{p.id}: result {p.completed_at - p.sent_at:.2f} s after the start request" for p in early][:20],
            "run_chains_checked": chains_checked,
            "activity_executions": executions,
            "activity_executions_expected": expected_exec,
            "activity_executions_beyond_retries": beyond,
            "activity_duplicate_attempts": duplicate_attempts[:20],
            "activity_extra_attempts": extra_attempts[:20],
        }


def ok(report: dict) -> bool:
    return (report["lost"] == 0 and report["completed_twice"] == 0 and not report["wrong_results"]
            and report["activity_executions_beyond_retries"] == 0 and report["timers_early"] == 0)


def run_soak(cfg: Soak) -> dict:
    """The whole soak, start to clean-up; returns the report (with the processes' last output
    under "logs" when something went wrong)."""
    EXECUTIONS.clear()
    # The planned activity failures would each log a traceback.
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
    root = Path(tempfile.mkdtemp(prefix="odin-soak-"))
    with ExitStack() as stack:
        stack.enter_context(cleaning(lambda: shutil.rmtree(root, ignore_errors=True)))
        pg = PrivatePostgres(root)
        stack.enter_context(cleaning(pg.stop))
        pg.start()
        rds = PrivateRedis(root)
        stack.enter_context(cleaning(rds.stop))
        rds.start()
        log(f"private PostgreSQL :{pg.port}, private Redis :{rds.port}, work dir {root}")
        workdir = root / "cluster"
        workdir.mkdir()
        cluster = SoakCluster(pg.url, rds.url, workdir)
        stack.enter_context(cleaning(cluster.stop_all))
        upgrade = cluster.odin("db", "upgrade")
        if upgrade.returncode != 0:
            raise RuntimeError(f"odin db upgrade failed:\n{upgrade.stdout}\n{upgrade.stderr}")
        clocks, left_out = None, {}
        if cfg.clock_jumps:
            library = faketime_library()
            if library is None:
                left_out["clock jumps"] = CLOCK_JUMPS_MISSING
                log(f"clock jumps left out: {CLOCK_JUMPS_MISSING}")
            else:
                clocks = FakeClocks(root, library)
        harness = Harness(cfg, cluster, pg, rds, clocks)
        harness.left_out = left_out
        harness.start_processes()
        log("cluster up: 2 servers, 2 celery workers, beat")

        async def main() -> dict:
            await harness.start_workers()
            try:
                return await harness.run()
            finally:
                await harness.stop_workers()

        report = asyncio.run(main())
        dump = cluster.dump()
        if cfg.logs:
            cfg.logs.mkdir(parents=True, exist_ok=True)
            (cfg.logs / "processes.log").write_text(dump)
            shutil.copy(pg.root / "postgres.log", cfg.logs / "postgres.log")
        if not ok(report):
            report["logs"] = dump[-20000:]
        return report


def print_report(report: dict) -> None:
    print(f"workflows                      {report['workflows']}")
    print(f"completed                      {report['completed']}")
    print(f"lost                           {report['lost']}")
    print(f"completed twice                {report['completed_twice']}")
    print(f"wrong results                  {len(report['wrong_results'])}")
    print(f"activity executions            {report['activity_executions']} (expected {report['activity_executions_expected']})")
    print(f"  beyond the retries asked for {report['activity_executions_beyond_retries']}")
    print(f"timer workflows done too soon   {report['timers_early']} (a timer fired early)")
    print(f"wall time                      {report['wall_seconds']} s "
          f"(last completion {report['last_completion_after_last_fault_s']} s after the last fault began)")
    print(f"temporalio worker restarts     {report['temporalio_worker_restarts']}")
    print("per fault: time to the next workflow completion, completions until the next fault:")
    for f in report["faults"]:
        rec = "never" if f["recovered_after_s"] is None else f"{f['recovered_after_s']:.2f} s"
        print(f"  {f['fault']:<24}{rec:>10}{f['completions_until_next_fault']:>7}   {f['note']}")
    for fault, why in report.get("faults_left_out", {}).items():
        print(f"left out: {fault}: {why}")
    for key in ("lost_ids", "completed_twice_detail", "wrong_results", "timers_early_detail", "activity_duplicate_attempts", "activity_extra_attempts"):
        if report.get(key):
            print(f"{key}:")
            for line in report[key]:
                print(f"  {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--gap", type=float, default=12.0, help="seconds between faults")
    parser.add_argument("--deadline", type=float, default=240.0, help="seconds after the schedule for stragglers")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--logs", type=Path, help="keep the processes' output in this directory")
    parser.add_argument("--no-clock-jumps", action="store_true", help="leave the clock-jump fault out")
    args = parser.parse_args()
    handle_interrupts()
    report = run_soak(Soak(workflows=args.workflows, gap=args.gap, deadline=args.deadline, logs=args.logs,
                           clock_jumps=not args.no_clock_jumps))
    logs = report.pop("logs", None)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    if logs:
        print("\n--- last output of the processes ---\n" + logs, file=sys.stderr)
    sys.exit(0 if ok(report) else 1)


if __name__ == "__main__":
    main()
