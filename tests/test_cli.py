"""The `odin` command: schema upgrade, and `odin server` refusing an unmigrated database."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from odin.cli import main


def test_server_refuses_unmigrated_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = CliRunner().invoke(main, ["server", "--database-url", url, "--grpc-port", "0"])
    assert result.exit_code != 0
    assert "odin db upgrade" in result.output


def test_db_upgrade_then_server_starts(tmp_path):
    url = f"sqlite:///{tmp_path / 'odin.db'}"
    result = CliRunner().invoke(main, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "newest schema" in result.output
    proc = subprocess.Popen(
        [sys.executable, "-m", "odin.cli", "server", "--database-url", url, "--host", "127.0.0.1", "--grpc-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("Odin server: gRPC on 127.0.0.1:"), line
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert proc.returncode == 0


def test_db_upgrade_needs_a_url(monkeypatch):
    monkeypatch.delenv("ODIN_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code != 0
    assert "ODIN_DATABASE_URL" in result.output
