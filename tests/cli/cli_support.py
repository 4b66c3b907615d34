"""Helpers of the CLI tests: run `odin` as a user runs it (a subprocess; its stdout, stderr and
exit code), and read its one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

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


def one_line_error(done: subprocess.CompletedProcess, code: int) -> str:
    """The command failed with ``code`` and said why in one line, without a traceback."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("Error: "), lines
    return lines[0].removeprefix("Error: ")


def wid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
