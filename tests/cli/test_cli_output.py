"""How the client commands print: durations and relative times, colour only on a terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from cli_support import ENV, HERE, odin, one_line_error

from odin.commands._common import CommandError, ago, duration_text, parse_duration


@pytest.mark.parametrize(
    "text, seconds",
    [("7d", 7 * 86400), ("72h", 72 * 3600), ("1d12h", 36 * 3600), ("90m", 5400), ("45s", 45), ("1.5h", 5400), ("2D 3H", 2 * 86400 + 3 * 3600)],
)
def test_durations(text, seconds):
    assert parse_duration(text, "--retention") == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["7", "7x", "", "d", "7d-", "-1d"])
def test_bad_durations_name_the_flag_and_the_form(text):
    with pytest.raises(CommandError) as caught:
        parse_duration(text, "--retention")
    assert caught.value.message == f"--retention {text!r} is not a duration: write e.g. 7d, 72h, 1d12h, 30m or 45s"
    assert caught.value.exit_code == 2


def test_duration_text_and_relative_times():
    assert [duration_text(s) for s in (0, 45, 5400, 36 * 3600, 3 * 86400)] == ["0s", "45s", "1h30m", "1d12h", "3d"]
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert ago(now - timedelta(seconds=12), now) == "12s ago"
    assert ago(now - timedelta(minutes=3, seconds=40), now) == "3m ago"
    assert ago(now - timedelta(days=2, hours=5), now) == "2d ago"
    assert ago(now + timedelta(minutes=5), now) == "in 5m"
    assert ago(None, now) == ""


def _on_a_terminal(*args: str, env: dict) -> str:
    """Run ``odin`` with a pseudo-terminal as stdout; what it wrote there."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "odin.cli", *args], stdout=follower, stderr=subprocess.PIPE,
                            env={**ENV, "TERM": "xterm-256color", **env}, cwd=HERE)
    os.close(follower)
    out = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(leader)
    assert proc.returncode == 0, proc.stderr.read()
    return out.decode()


def test_colour_on_a_terminal_only(dev):
    colour = re.compile(r"\x1b\[[0-9;]*(3[0-7]|9[0-7]|38;[0-9;]+)m")  # a foreground colour
    env = {"ODIN_ADDRESS": dev.grpc}
    assert dev.odin("workflow", "start", "-t", "Idle", "--task-queue", "nobody-polls", "-w", "coloured").returncode == 0
    query = ["workflow", "list", "-q", "WorkflowId = 'coloured'"]
    coloured = _on_a_terminal(*query, env=env)
    assert colour.search(coloured) and "Running" in coloured, coloured
    plain = _on_a_terminal(*query, env={**env, "NO_COLOR": "1"})
    assert not colour.search(plain) and "Running" in plain, plain  # NO_COLOR: bold headers at most
    piped = dev.odin(*query)
    assert "\x1b[" not in piped.stdout and "Running" in piped.stdout


def test_workflow_history_errors_are_the_same_one_line(dev):
    assert one_line_error(dev.odin("workflow", "history", "never-started"), 3) == "workflow not found for ID: never-started"
    assert one_line_error(odin("workflow", "history", "x", "--address", dev.grpc, "--namespace", "nope"), 3).startswith(
        "the namespace 'nope' does not exist"
    )
