"""An `odin dev` subprocess on ephemeral ports, an `odin worker` for greeter.py, and `odin` itself
run as a user runs it (a subprocess; its stdout, stderr and exit code)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
# Off a terminal the CLI prints plain text; no COLUMNS so the tables take the wide default.
ENV = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_") and k != "COLUMNS"}


def odin(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "odin.cli", *args], capture_output=True, text=True, timeout=timeout,
        env={**ENV, **(env or {})}, cwd=HERE,
    )


class Dev:
    def __init__(self, proc: subprocess.Popen, grpc: str, http: str):
        self.proc, self.grpc, self.http = proc, grpc, http

    def odin(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """``odin`` with ODIN_ADDRESS pointing at this server."""
        return odin(*args, env={"ODIN_ADDRESS": self.grpc}, timeout=timeout)


@pytest.fixture(scope="session")
def dev(tmp_path_factory) -> Iterator[Dev]:
    db = tmp_path_factory.mktemp("cli") / "odin.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "odin.cli", "dev", "--db", str(db), "--grpc-port", "0", "--http-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )
    banner = proc.stdout.readline()
    found = re.search(r"gRPC on (\S+), web UI and REST API on http://(\S+)/", banner)
    assert found, (banner, proc.stderr.read() if proc.poll() is not None else "")
    yield Dev(proc, found.group(1), found.group(2))
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="session")
def worker(dev) -> Iterator[subprocess.Popen]:
    """`odin worker -A greeter:app` polling the dev server's `clitest` queue."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "odin.cli", "worker", "-A", "greeter:app", "--address", dev.grpc, "--status-every", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=HERE,
    )
    line = proc.stdout.readline()
    assert line.startswith("odin worker for clitest"), line
    yield proc
    proc.terminate()
    proc.wait(timeout=40)
