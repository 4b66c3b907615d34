"""The fault soak of bench/soak.py, short: ~100 workflows (timers, retried activities, signals, a
child, a continue-as-new chain) on two ``odin server`` processes, two Celery workers and beat, a
private PostgreSQL and a private redis-server, while the wall clocks of the Celery workers and a
server jump by ±30 s (libfaketime), Redis is flushed and restarted, each server and each Celery
process is SIGKILLed and restarted, the database connections are cut, PostgreSQL restarts, and a
server and a Celery worker holding shard leases are paused (SIGSTOP) past their lease. Every
workflow must complete, once, with its result, no activity may run more often than its retry
policy asked for, and no timer may fire early.

Without libfaketime (Debian's ``faketime`` package) the clock jumps are left out with a warning
saying so; with ODIN_TEST_REQUIRE_SERVICES=1 its absence fails the test instead.

Reproduce outside pytest (same code, more workflows): ``python bench/soak.py --workflows 100 --gap 3``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import warnings
from pathlib import Path

import pytest

from tests.support.services import REQUIRE_SERVICES, skip_or_fail

pytestmark = [pytest.mark.services, pytest.mark.timeout(300)]

SOAK_PATH = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def load_soak():
    """bench/soak.py as a module of its own name (bench/ is not a package)."""
    name = "odin_bench_soak"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SOAK_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_workflows_survive_the_fault_schedule_once_each():
    soak = load_soak()
    if shutil.which("redis-server") is None:
        skip_or_fail("redis-server is not installed")
    if soak.pg_binaries() is None:
        skip_or_fail("PostgreSQL server binaries (initdb, pg_ctl, postgres) are not installed; set ODIN_SOAK_PG_BIN")
    if os.geteuid() == 0 and (shutil.which("runuser") is None or not _user_exists("postgres")):
        skip_or_fail("running as root, the private PostgreSQL needs runuser and a postgres user")

    clock_jumps = soak.faketime_library() is not None
    if not clock_jumps:
        if REQUIRE_SERVICES:
            pytest.fail(f"the clock-jump fault cannot run: {soak.CLOCK_JUMPS_MISSING} (ODIN_TEST_REQUIRE_SERVICES=1)")
        warnings.warn(f"fault soak without its clock-jump fault: {soak.CLOCK_JUMPS_MISSING}", stacklevel=1)

    report = soak.run_soak(soak.Soak(workflows=100, gap=3.0, warmup=4.0, pause=5.0, jump_hold=3.0, deadline=60.0,
                                     in_flight=100, clock_jumps=clock_jumps))
    logs = report.pop("logs", "")
    soak.print_report(report)
    summary = {k: report[k] for k in ("completed", "lost", "completed_twice", "activity_executions",
                                      "activity_executions_expected", "activity_executions_beyond_retries")}
    detail = f"{summary}\n{report}\n{logs}"
    assert report["lost"] == 0, detail
    assert report["completed_twice"] == 0, detail
    assert report["wrong_results"] == [], detail
    assert report["activity_executions_beyond_retries"] == 0, detail
    assert report["timers_early"] == 0, detail
    assert report["completed"] == 100, detail
    assert [f["fault"] for f in report["faults"]] == soak.planned_faults(clock_jumps), detail
    if clock_jumps:  # every process under libfaketime saw each of its jumps
        [jumps] = [f for f in report["faults"] if f["fault"] == "clock jumps"]
        for seen in ("worker1 +30", "worker1 -30", "worker1 +0", "worker2 -30", "worker2 +30", "worker2 +0",
                     "server1 +30", "server1 -30", "server1 +0"):
            assert seen in jumps["note"], detail
    # Every fault was followed by a completion: nothing stayed broken.
    assert all(f["recovered_after_s"] is not None for f in report["faults"]), detail


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
