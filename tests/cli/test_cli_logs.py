"""The Celery worker and beat at the Procfile's INFO level: nothing per routine sweep once started
(the sweeps log at DEBUG), and ODIN_LOG_FORMAT=json makes every log line a JSON object."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from odin.cli import main
from tests.support.services import REDIS_URL, require_redis

pytestmark = pytest.mark.services


class Celery:
    """``celery -A odin <role>`` with its output collected by a thread."""

    def __init__(self, role: str, level: str, env: dict, cwd):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "odin", role, f"--loglevel={level}",
             *(["-s", str(cwd / f"beat-{uuid.uuid4().hex[:6]}")] if role == "beat" else [])],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def wait_for(self, *texts: str, timeout: float = 60, times: int = 1) -> int:
        """Wait until ``times`` lines contain each of ``texts``; how many lines there were then."""
        deadline = time.monotonic() + timeout
        while sum(all(text in line for text in texts) for line in list(self.lines)) < times:
            assert time.monotonic() < deadline and self.proc.poll() is None, self.lines
            time.sleep(0.1)
        return len(self.lines)

    def stop(self) -> list[str]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        return [line.rstrip("\n") for line in self.lines]


@pytest.fixture
def celery_env(tmp_path):
    require_redis()
    from click.testing import CliRunner

    url = f"sqlite:///{tmp_path / 'odin.db'}"
    assert CliRunner().invoke(main, ["db", "upgrade", "--database-url", url]).exit_code == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    env.update(
        ODIN_DATABASE_URL=url, ODIN_REDIS_URL=REDIS_URL, ODIN_REDIS_PREFIX=f"t-logs-{uuid.uuid4().hex[:8]}:",
        ODIN_SWEEP_TIMERS_SECONDS="0.5", ODIN_SWEEP_TRANSFERS_SECONDS="0.5",
    )
    return env


def test_idle_worker_and_beat_log_no_sweeps_at_info(celery_env, tmp_path):
    # At DEBUG the worker shows that the sweeps run (beat sends them), as DEBUG lines.
    worker = Celery("worker", "DEBUG", celery_env, tmp_path)
    worker.wait_for("ready.")
    beat = Celery("beat", "INFO", celery_env, tmp_path)
    worker.wait_for("odin.sweep_timers", "succeeded", timeout=30, times=5)  # a few sweeps' worth (every half second)
    beat_lines, debug_worker = beat.stop(), worker.stop()
    swept = [line for line in debug_worker if "odin.sweep_timers" in line and "succeeded" in line]
    assert len(swept) >= 5 and all("DEBUG" in line for line in swept), debug_worker[-40:]
    assert not [line for line in beat_lines if "Sending due task" in line], beat_lines

    # At INFO, sweeps every half second add not a line to what the worker says. (The beat says at
    # DEBUG when it sends them: after six sends and a second to run them, the worker has had work.)
    worker = Celery("worker", "INFO", celery_env, tmp_path)
    at_start = worker.wait_for("ready.")
    beat = Celery("beat", "DEBUG", celery_env, tmp_path)
    beat.wait_for("Sending due task", "(odin.sweep_timers)", timeout=30, times=6)
    time.sleep(1)
    during = list(worker.lines)
    beat.stop()
    info_worker = worker.stop()
    assert len(during) == at_start, during[at_start:]
    assert not [line for line in info_worker if line.startswith("[") and "odin.sweep" in line], info_worker


def test_json_log_format(celery_env, tmp_path):
    beat = Celery("beat", "DEBUG", {**celery_env, "ODIN_LOG_FORMAT": "json"}, tmp_path)
    beat.wait_for("Sending due task")
    lines = beat.stop()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert any(r["message"].startswith("Scheduler: Sending due task") and r["level"] == "DEBUG" for r in records), lines
    assert all({"time", "level", "logger", "message", "process"} <= r.keys() for r in records)
    assert not [line for line in lines if line.startswith("[")], lines  # no text-format log line

    done = subprocess.run(
        [sys.executable, "-m", "odin.cli", "--log-level", "INFO", "db", "upgrade"],
        capture_output=True, text=True, timeout=60, env={**celery_env, "ODIN_LOG_FORMAT": "json"},
    )
    assert done.returncode == 0, done.stderr
    logged = [json.loads(line) for line in done.stderr.splitlines()]
    assert logged and all(r["level"] == "INFO" for r in logged)

    bad = subprocess.run(
        [sys.executable, "-m", "odin.cli", "db", "upgrade"],
        capture_output=True, text=True, timeout=60, env={**celery_env, "ODIN_LOG_FORMAT": "yaml"},
    )
    assert bad.returncode == 1 and bad.stderr.strip() == "Error: bad configuration: ODIN_LOG_FORMAT must be text or json, not 'yaml'"
