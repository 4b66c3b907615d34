"""Celery's flow control under Odin, through real workers against an in-process ``odin dev``
server: ``rate_limit`` held across two worker processes, ``priority`` ordering a backlog,
``expires`` dropping a step not started in time, ``task_routes`` choosing queues; bad options
refused when the task or activity is defined."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import throttled
from celery import Celery, group
from temporalio.client import WorkflowFailureError

from odin.sdk import App
from odin.sdk._flow import celery_priority, parse_rate
from odin.sdk.celery import CanvasError, prepare, register_tasks, routed_queue, run_async
from tests.support.odin_apps import point

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def journal(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "journal.jsonl"
    monkeypatch.setenv("THROTTLED_JOURNAL", str(path))
    return path


def entries(journal: Path, task: str) -> list[dict]:
    if not journal.exists():
        return []
    return [e for e in map(json.loads, journal.read_text().splitlines()) if e["task"] == task]


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None:
        error = error.__cause__
    return error


# -- defined wrong: refused at once --------------------------------------------------------------


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"rate_limit": "10/d"}, ValueError, r"rate_limit of job '10/d' is not a rate: .* 'N/s', 'N/m' or 'N/h'"),
        ({"rate_limit": "fast"}, ValueError, "is not a rate"),
        ({"rate_limit": -1}, ValueError, "at least zero"),
        ({"rate_limit": True}, TypeError, "must be a number or a string"),
        ({"priority": -1}, ValueError, r"priority of job -1 is not a priority key: keys run from 1 \(highest\)"),
        ({"priority": 0}, ValueError, "is not a priority key"),
        ({"priority": "high"}, TypeError, "must be a priority key"),
        ({"expires": -5}, ValueError, "cannot be negative"),
        ({"expires": 0}, ValueError, "expires of job must be positive"),
        ({"concurrency_key": "k"}, ValueError, "concurrency_key and max_concurrency go together"),
        ({"concurrency_key": "k", "max_concurrency": 0}, ValueError, "max_concurrency of job must be a positive integer"),
        ({"concurrency_key": "", "max_concurrency": 1}, TypeError, "concurrency_key of job must be a non-empty string"),
    ],
)
def test_bad_options_are_refused_when_the_activity_is_defined(options, error, message):
    app = App("defined", address="127.0.0.1:1")
    with pytest.raises(error, match=message):
        app.activity(lambda: None, name="job", **options)
    assert "job" not in app.activities


def test_bad_celery_options_are_refused_when_the_tasks_are_registered():
    celery_app = Celery("bad", broker="redis://127.0.0.1:1/0")

    @celery_app.task(shared=False, name="bad.limited", rate_limit="5 per minute")
    def limited() -> None: ...

    with pytest.raises(ValueError, match=r"task bad.limited: rate_limit of bad.limited '5 per minute' is not a rate"):
        register_tasks(App("bad", address="127.0.0.1:1"), celery_app)

    celery_app.tasks.pop("bad.limited")

    celery_app.conf.task_routes = {"bad.urgent": {"queue": "urgent", "priority": 12}}  # the priority of a route

    @celery_app.task(shared=False, name="bad.urgent")
    def urgent() -> None: ...

    with pytest.raises(ValueError, match=r"task bad.urgent: a Celery priority runs from 0 to 9, not 12"):
        register_tasks(App("bad", address="127.0.0.1:1"), celery_app)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"priority": 10}, r"priority of throttled.rank runs from 0 to 9, not 10"),
        ({"priority": -1}, "runs from 0 to 9"),
        ({"expires": -1}, r"expires of throttled.rank must be positive seconds or a date and time"),
        ({"expires": "soon"}, "expires of throttled.rank is not a date and time"),
    ],
)
def test_bad_step_options_are_refused_before_anything_starts(options, message):
    with pytest.raises(CanvasError, match=message):
        prepare(throttled.rank.s("k").set(**options), throttled.app)


def test_rates_and_priorities_read_as_celery_reads_them():
    assert parse_rate("10/m") == pytest.approx(10 / 60)
    assert parse_rate("2/h") == pytest.approx(2 / 3600)
    assert parse_rate("7/s") == parse_rate("7") == parse_rate(7) == 7.0
    assert parse_rate(None) is None and parse_rate(0) is None and parse_rate("0/m") is None  # no limit
    # Redis/SQS: 0 is the highest; RabbitMQ: 9 is.
    assert [celery_priority(p).priority_key for p in range(10)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [celery_priority(p, highest_first=False).priority_key for p in range(10)] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]


def test_task_routes_choose_the_queue_in_all_of_celerys_forms():
    celery_app = Celery("routed", broker="redis://127.0.0.1:1/0")

    def by_name(name, args, kwargs, options, task=None, **kw):
        return {"queue": "reports"} if name.endswith(".report") else None

    celery_app.conf.task_routes = ({"routed.mail.*": "mail"}, by_name, {"routed.fixed": {"queue": "fixed"}})

    @celery_app.task(shared=False, name="routed.mail.send")
    def send() -> None: ...

    @celery_app.task(shared=False, name="routed.monthly.report")
    def report() -> None: ...

    @celery_app.task(shared=False, name="routed.fixed")
    def fixed() -> None: ...

    @celery_app.task(shared=False, name="routed.own", queue="own")
    def own() -> None: ...

    @celery_app.task(shared=False, name="routed.other")
    def other() -> None: ...

    app = App("routed", address="127.0.0.1:1", task_queue="main")
    registered = register_tasks(app, celery_app)
    assert routed_queue(celery_app, send) == "mail"
    queues = {name: activity.task_queue for name, activity in registered.items() if name.startswith("routed.")}
    assert queues == {
        "routed.mail.send": "mail",
        "routed.monthly.report": "reports",
        "routed.fixed": "fixed",
        "routed.own": "own",  # the task's own queue wins over routes, as in Celery
        "routed.other": "main",  # no route: the Odin app's queue
    }
    assert throttled.app.activities["throttled.rank"].task_queue == "ranked"
    assert throttled.app.activities["throttled.batch.nightly"].task_queue == "batch"


def test_a_rate_limited_task_gets_a_queue_of_its_own():
    ping = throttled.app.activities["throttled.ping"]
    assert ping.rate_limit == 5.0
    assert ping.task_queue == f"{throttled.app.task_queue}:rate:throttled.ping"


# -- run by real workers ------------------------------------------------------------------------


@pytest.fixture
def server(odin):
    point(throttled.app, odin)
    return odin


async def test_rate_limit_holds_across_two_worker_processes(server, journal, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)]),
        "ODIN_ADDRESS": throttled.app.address,
        "ODIN_TASK_QUEUE": throttled.app.task_queue,
    }
    workers = []
    for n in range(2):
        with open(tmp_path / f"worker{n}.log", "w") as log:
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "odin.cli", "worker", "-A", "throttled:app", "--concurrency", "8"],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
            ))
    try:
        for worker in workers:
            banner = await asyncio.to_thread(worker.stdout.readline)
            assert "throttled.ping" in banner or throttled.app.task_queue in banner, banner
        count = 16
        handle = await run_async(group(throttled.ping.s(f"k{i}") for i in range(count)), throttled.app)
        assert sorted(await handle.result_async(timeout=60)) == sorted(f"k{i}" for i in range(count))
    finally:
        for worker in workers:
            worker.terminate()
            await asyncio.to_thread(worker.wait, 30)
            worker.stdout.close()
    pings = entries(journal, "ping")
    assert len(pings) == count
    times = sorted(e["at"] for e in pings)
    span = times[-1] - times[0]
    rate = (count - 1) / span
    # "300/m": 5 per second over both processes (each alone would allow 5/s too: 10/s together).
    assert rate <= 5.0 * 1.1, f"{rate:.2f}/s"
    assert rate >= 5.0 * 0.3, f"{rate:.2f}/s"  # not held back far below the rate (a loaded machine is slower)
    assert len({e["pid"] for e in pings}) == 2  # both processes took part


async def test_priority_orders_the_backlog(server, journal):
    # One slot: the first member goes to the waiting poller; the rest wait and go out by priority.
    members = [throttled.rank.s("blocker", 0.5)] + [
        throttled.rank.s(key).set(priority=priority)
        for key, priority in [("p9", 9), ("p5", 5), ("p0", 0), ("p3", 3), ("none", None), ("p1", 1)]
    ]
    async with throttled.app.worker(concurrency=1):
        handle = await run_async(group(members), throttled.app)
        await handle.result_async(timeout=30)
    order = [e["key"] for e in entries(journal, "rank")]
    # Celery priorities (0 highest on Redis) become keys 1..5; no priority is the default key 3.
    assert order == ["blocker", "p0", "p1", "p3", "p5", "none", "p9"]


async def test_expires_drops_a_step_not_started_in_time(server, journal):
    async with throttled.app.worker(concurrency=1):
        # The blocker holds the only slot for 1.5 s: the step expiring after 0.5 s never starts.
        handle = await run_async(group(throttled.rank.s("blocker", 1.5), throttled.rank.s("late").set(expires=0.5)),
                                 throttled.app)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result_async(timeout=30)
        # The task's own expires (0.5 s) works the same way.
        stale = await run_async(group(throttled.rank.s("blocker-2", 1.5), throttled.stale.s("old")), throttled.app)
        with pytest.raises(WorkflowFailureError):
            await stale.result_async(timeout=30)
        # In time, it runs.
        fresh = await run_async(throttled.rank.s("fresh").set(expires=30), throttled.app)
        assert await fresh.result_async(timeout=30) == "fresh"
    assert "ScheduleToStart" in str(_root_cause(failed.value)) or "timed out" in str(_root_cause(failed.value)).lower()
    assert [e["key"] for e in entries(journal, "rank")] == ["blocker", "blocker-2", "fresh"]
    assert entries(journal, "stale") == []


async def test_per_key_concurrency_is_never_exceeded(server):
    throttled.PEAK.clear()
    calls = [throttled.export.s("a", n) for n in range(6)] + [throttled.export.s("b", n) for n in range(2)]
    async with throttled.app.worker(concurrency=8):
        started = time.monotonic()
        handle = await run_async(group(calls), throttled.app)
        assert len(await handle.result_async(timeout=60)) == 8
        elapsed = time.monotonic() - started
    # Eight slots in the worker, but two per customer: "a" runs in three rounds of 0.3 s.
    assert throttled.PEAK == {"customer:a": 2, "customer:b": 2}
    assert elapsed >= 0.85


async def test_a_slot_whose_attempt_stopped_beating_comes_back(server):
    """An attempt that stops heartbeating (its worker hung or died) loses its slot with its
    heartbeat timeout, not after its much longer start-to-close timeout."""
    app = App("hung", address=throttled.app.address)
    point(app, server)
    starts: list[tuple[str, float]] = []

    @app.activity(concurrency_key="printer", max_concurrency=1, heartbeat_timeout=1, start_to_close_timeout=60,
                  auto_heartbeat=False, retry=1)
    async def hang(name: str) -> str:
        starts.append((name, time.monotonic()))
        if name == "hung":
            await asyncio.sleep(4)  # no heartbeats: times out after 1 s
        return name

    @app.workflow(sandboxed=False)  # defined in a test: the sandbox could not import it again
    async def both() -> list:
        from odin.sdk import workflow

        first = workflow.start_activity(hang, "hung")
        await workflow.sleep(0.2)
        second = await workflow.execute_activity(hang, "next")
        try:
            await first
        except Exception:
            pass
        return [second]

    async with app.worker(concurrency=4):
        begun = time.monotonic()
        assert await (await both.start_async()).result_async(timeout=30) == ["next"]
    waited = dict(starts)["next"] - begun
    # The hung attempt's slot came back after about a second (its heartbeat timeout), not after its
    # start-to-close timeout of 60 s (its late return after 4 s names a timed-out attempt: no release).
    assert 0.9 <= waited < 10, waited


async def test_a_run_not_started_before_it_expires_fails_without_running(server):
    app = App("late", address=throttled.app.address)
    point(app, server)
    ran: list[str] = []

    @app.workflow(sandboxed=False)  # defined in a test: the sandbox could not import it again
    async def greet(name: str) -> str:
        ran.append(name)
        return f"hello {name}"

    with pytest.raises(ValueError, match="expires must be positive"):
        await greet.start_async("never", expires=0)
    late = await greet.start_async("late", expires=0.3)  # no worker yet: it cannot start in time
    in_time = await greet.start_async("in time", expires=60)
    await asyncio.sleep(0.8)
    async with app.worker():
        with pytest.raises(WorkflowFailureError) as failed:
            await late.result_async(timeout=30)
        assert await in_time.result_async(timeout=30) == "hello in time"
    cause = _root_cause(failed.value)
    assert cause.type == "Expired" and "had not started" in cause.message
    assert ran == ["in time"]
