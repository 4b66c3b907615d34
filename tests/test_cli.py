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


def _dev(tmp_path, name: str, grpc_port: int, http_port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "odin.cli", "dev", "--db", str(tmp_path / f"{name}.db"),
         "--grpc-port", str(grpc_port), "--http-port", str(http_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_second_server_on_a_taken_port_fails_at_start_naming_the_flag(tmp_path):
    grpc_port, http_port = _free_port(), _free_port()
    first = _dev(tmp_path, "first", grpc_port, http_port)
    try:
        assert first.stdout.readline().startswith("Odin dev server")
        # The gRPC port is taken: the second process must not share it (on another database).
        second = _dev(tmp_path, "second", grpc_port, _free_port())
        # Only the HTTP port is taken (started alongside the second: each takes seconds to start).
        third = _dev(tmp_path, "third", _free_port(), http_port)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 1, (out, err)
        assert f"cannot listen on 127.0.0.1:{grpc_port} for gRPC" in err and "--grpc-port" in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        out, err = third.communicate(timeout=60)
        assert third.returncode == 1, (out, err)
        assert f"cannot listen on 127.0.0.1:{http_port} for HTTP" in err and "--http-port" in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    finally:
        first.terminate()
        first.wait(timeout=15)


def test_a_server_whose_stores_do_not_answer_says_which_in_one_line(tmp_path):
    def server(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "odin.cli", "server", "--grpc-port", "0", *args],
            capture_output=True, text=True, timeout=60,
        )

    nobody = _free_port()  # nothing listens there
    done = server("--database-url", f"postgresql://odin:secret@127.0.0.1:{nobody}/odin")
    assert done.returncode == 1
    assert f"cannot reach the database at postgresql+psycopg://odin:***@127.0.0.1:{nobody}/odin" in done.stderr, done.stderr
    assert "secret" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr

    url = f"sqlite:///{tmp_path / 'odin.db'}"
    assert CliRunner().invoke(main, ["db", "upgrade", "--database-url", url]).exit_code == 0
    done = server("--database-url", url, "--redis-url", f"redis://:secret@127.0.0.1:{nobody}/0")
    assert done.returncode == 1
    assert f"cannot reach Redis at redis://:***@127.0.0.1:{nobody}/0" in done.stderr, done.stderr
    assert "secret" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_servers_run_on_uvloop_unless_told_otherwise(monkeypatch):
    import asyncio

    import pytest
    from click import ClickException

    from odin.cli import _run_server

    seen = []

    async def note_loop() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__.split(".")[0])

    for choice, expected in (("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")):
        monkeypatch.setenv("ODIN_EVENT_LOOP", choice)
        _run_server(note_loop)
        assert seen[-1] == expected, choice
    monkeypatch.setenv("ODIN_EVENT_LOOP", "trio")
    with pytest.raises(ClickException, match="ODIN_EVENT_LOOP must be auto, uvloop or asyncio, not 'trio'"):
        _run_server(note_loop)
    assert len(seen) == 3
