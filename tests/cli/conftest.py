"""Fixtures of the CLI tests: an `odin dev` subprocess on ephemeral ports, and an `odin worker`
for greeter.py polling it."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from cli_support import ENV, HERE, Dev


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
