"""The migration guide's example, run: the same canvases give the same results under a real Celery
worker (Redis broker and result backend) and under Odin, and under Odin a canvas outlives a worker
killed in the middle of it. The guide's code quotes are checked against the example modules."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from celery import chord, group

from odin.sdk.celery import run_async
from tests.support.odin_apps import point
from tests.support.services import REDIS_URL

from examples.celery_migration import durable, rewritten, tasks

ROOT = Path(__file__).resolve().parents[2]


def child_env(*paths: Path, **variables: str) -> dict[str, str]:
    """The environment of a child process: this checkout (``examples`` is not installed) and
    ``paths`` importable, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), *map(str, paths), os.environ.get("PYTHONPATH")) if p)
    return {**env, **variables}


def an_order() -> dict:
    order_id = f"o-{uuid.uuid4().hex[:6]}"
    return {"id": order_id, "lines": [{"sku": "mug", "qty": 2, "unit_cents": 250}, {"sku": "tee", "qty": 1, "unit_cents": 999}]}


def canvases(order: dict) -> dict:
    """The guide's checkout, and shapes where Celery's rules are easy to get wrong."""
    oid = order["id"]
    priced = {"id": oid, "total_cents": 1499, "currency": "EUR"}
    t = tasks
    return {
        "checkout": t.checkout(order, currency="EUR"),
        "nested groups": group(t.notify.si(oid, "a"), group(t.notify.si(oid, "b"), t.notify.si(oid, "c"))),
        "one-member group in a chain": t.price.s(order) | group(t.charge.s()) | t.notify.s("x"),
        "chain in a group": group(t.price.s(order) | t.charge.s(), t.notify.si(oid, "n")),
        "chord with a chain body": chord([t.charge.s(priced), t.reserve.s(priced)], t.pack.s(oid) | t.notify.s("t")),
        "group after a group": t.price.s(order) | group(t.charge.s(), t.reserve.s()) | group(t.pack.s(oid), t.pack.s("o-2")),
        "chord in a group": group(chord([t.notify.si(oid, "a")], t.notify.s("b")), t.notify.si(oid, "c")),
        "chord with a group body": chord([t.notify.si(oid, "a")], group(t.notify.s("b"), t.notify.s("c"))),
        "chord with no header": chord([], t.notify.s("t")),
        "chain ending in a group": t.price.s(order) | group(t.charge.s(), t.reserve.s()),
    }


@pytest.fixture
def odin(odin):
    """The ``odin`` server of conftest; the example apps point at it, each on a queue of its own."""
    for app in (durable.app, rewritten.app):
        point(app, odin)
    return odin


@pytest.fixture
def celery_worker(redis_prefix, tmp_path):
    """``celery -A examples.celery_migration.tasks worker`` on Redis, under this test's key prefix;
    this process's copy of the Celery app sends to it."""
    settings = {
        "broker_url": REDIS_URL,
        "result_backend": REDIS_URL,
        "broker_transport_options": {"global_keyprefix": redis_prefix},
        "result_backend_transport_options": {"global_keyprefix": redis_prefix},
    }
    (tmp_path / "orders_celeryconfig.py").write_text("".join(f"{k} = {v!r}\n" for k, v in settings.items()))
    log = tmp_path / "celery-worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "examples.celery_migration.tasks", "worker", "--pool=threads",
             "--concurrency=4", "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=WARNING",
             f"--hostname=orders-{uuid.uuid4().hex[:6]}@%h"],
            cwd=ROOT, env=child_env(tmp_path, CELERY_CONFIG_MODULE="orders_celeryconfig"), stdout=out, stderr=out,
        )
    saved = {key: tasks.app.conf[key] for key in settings}
    tasks.app.conf.update(settings)
    try:
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        tasks.app.conf.update(saved)
        tasks.app.close()
        if worker.returncode not in (0, -signal.SIGTERM):
            print(log.read_text())


def run_with_celery(canvases: dict) -> dict:
    """Send every canvas, then collect the results (Celery's ``apply_async().get()``)."""
    sent = {name: canvas.apply_async() for name, canvas in canvases.items()}
    return {name: result.get(timeout=30) for name, result in sent.items()}


async def run_with_odin(canvases: dict) -> tuple[dict, dict]:
    handles = {name: await run_async(canvas, durable.app) for name, canvas in canvases.items()}
    return {name: await handle.result_async(timeout=30) for name, handle in handles.items()}, handles


async def run_rewritten(order: dict) -> dict:
    handle = await rewritten.checkout.start_async(order, kwargs={"currency": "EUR"})
    return await handle.result_async(timeout=30)


async def test_celery_and_odin_give_the_same_results(odin, celery_worker):
    order = an_order()
    async with durable.app.worker(concurrency=8), rewritten.app.worker():
        by_celery, (by_odin, handles), by_rewrite = await asyncio.gather(
            asyncio.to_thread(run_with_celery, canvases(order)),
            run_with_odin(canvases(order)),
            run_rewritten(order),
        )
    assert by_odin == by_celery
    # The countdown was a durable timer of the canvas's workflow.
    history = await handles["checkout"].history_async()
    timers = [e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds()
              for e in history.events if e.HasField("timer_started_event_attributes")]
    assert timers == [1.0]
    assert by_celery["checkout"] == {
        "order": order["id"],
        "parcel": f"parcel {order['id']} (charged 1499 EUR; reserved {order['id']})",
        "notified": f"order-confirmed sent for {order['id']}",
    }
    assert by_rewrite == by_celery["checkout"]


def journal_steps(journal: Path) -> list[str]:
    if not journal.exists():
        return []
    return [json.loads(line)["step"] for line in journal.read_text().splitlines() if line.strip()]


async def test_a_canvas_outlives_a_worker_killed_in_the_middle_of_it(odin, tmp_path):
    journal = tmp_path / "journal.jsonl"
    env = child_env(ODIN_ADDRESS=durable.app.address, ODIN_TASK_QUEUE=durable.app.task_queue, ORDERS_JOURNAL=str(journal))

    def start_worker(name: str) -> subprocess.Popen:
        with open(tmp_path / f"{name}.log", "w") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "odin.cli", "worker", "-A", "examples.celery_migration.durable:app"],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
            )

    order = an_order()
    first = start_worker("first")
    second = None
    try:
        banner = await asyncio.to_thread(first.stdout.readline)
        assert f"queues {durable.app.task_queue}" in banner, banner
        handle = await run_async(tasks.checkout(order, packing_seconds=2), durable.app)
        deadline = time.monotonic() + 30
        while "pack started" not in journal_steps(journal):
            assert time.monotonic() < deadline, journal_steps(journal)
            await asyncio.sleep(0.05)
        first.kill()  # SIGKILL while the parcel is being packed
        await asyncio.to_thread(first.wait)
        second = start_worker("second")
        result = await handle.result_async(timeout=60)
    finally:
        # Waited for off the loop: the server they talk to runs on it.
        for worker in (first, second):
            if worker is not None:
                if worker.poll() is None:
                    worker.terminate()
                    await asyncio.to_thread(worker.wait, 30)
                worker.stdout.close()

    oid = order["id"]
    assert result == {
        "order": oid,
        "parcel": f"parcel {oid} (charged 1499 EUR; reserved {oid})",
        "notified": f"order-confirmed sent for {oid}",
    }
    # What finished before the kill ran once; the interrupted packing ran again, to its end.
    assert Counter(journal_steps(journal)) == {
        "price": 1, "charge": 1, "reserve": 1, "pack started": 2, "pack done": 1, "notify": 1, "summarize": 1,
    }


QUOTE = re.compile(r"<!-- from (?P<path>\S+) -->\n```python\n(?P<code>.*?)```", re.DOTALL)


def test_the_guide_quotes_the_example_modules_as_they_are():
    guide = (ROOT / "docs" / "migrating-from-celery.md").read_text()
    quotes = list(QUOTE.finditer(guide))
    assert len(quotes) == guide.count("<!-- from "), "a quote marker not followed by a python block"
    assert {q["path"] for q in quotes} >= {
        "examples/celery_migration/tasks.py", "examples/celery_migration/durable.py", "examples/celery_migration/rewritten.py",
    }
    for quote in quotes:
        assert quote["code"] in (ROOT / quote["path"]).read_text(), f"{quote['path']} no longer reads:\n{quote['code']}"


async def test_the_beat_schedule_becomes_odin_schedules_with_worker_dash_b(odin, tmp_path):
    """The Celery app's ``beat_schedule`` runs on Odin: ``odin worker -B`` makes the schedules, a
    restart finds them unchanged, and each entry runs its task."""
    from celery.schedules import crontab as celery_crontab
    from temporalio.client import ScheduleRange

    journal = tmp_path / "journal.jsonl"
    env = child_env(ODIN_ADDRESS=durable.app.address, ODIN_TASK_QUEUE=durable.app.task_queue, ORDERS_JOURNAL=str(journal))

    def start_worker(name: str) -> subprocess.Popen:
        with open(tmp_path / f"{name}.log", "w") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "odin.cli", "worker", "-A", "examples.celery_migration.durable:app", "-B"],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
            )

    async def lines(worker: subprocess.Popen, count: int) -> list[str]:
        return [await asyncio.wait_for(asyncio.to_thread(worker.stdout.readline), 60) for _ in range(count)]

    client = await durable.app.client_async()
    first = start_worker("first")
    second = None
    try:
        banner, beat, *created = await lines(first, 4)
        assert f"queues {durable.app.task_queue}" in banner, banner
        assert beat.strip() == "odin beat for orders: schedules 2 created, 0 updated, 0 unchanged, 0 deleted", beat
        assert sorted(line.split()[-1] for line in created) == [
            "beat:orders:release-stale-reservations", "beat:orders:weekday-sales-report"]

        report = await client.get_schedule_handle("beat:orders:weekday-sales-report").describe()
        assert report.schedule.spec.time_zone_name == "Europe/Paris"  # the Celery app's timezone
        [calendar] = report.schedule.spec.calendars
        assert (calendar.minute, calendar.hour, calendar.day_of_week) == (
            (ScheduleRange(0),), (ScheduleRange(7),), (ScheduleRange(1, 5),))
        assert tasks.app.conf.beat_schedule["weekday-sales-report"]["schedule"] == celery_crontab(
            minute=0, hour=7, day_of_week="mon-fri")
        assert report.schedule.policy.catchup_window.total_seconds() == 3600  # options.expires
        sweep = await client.get_schedule_handle("beat:orders:release-stale-reservations").describe()
        assert sweep.schedule.spec.intervals[0].every.total_seconds() == 600

        # Each entry runs its Celery task (triggered now rather than waited for).
        for schedule_id in ("beat:orders:release-stale-reservations", "beat:orders:weekday-sales-report"):
            await client.get_schedule_handle(schedule_id).trigger()
        deadline = time.monotonic() + 30
        while set(journal_steps(journal)) != {"release stale reservations", "sales report"}:
            assert time.monotonic() < deadline, journal_steps(journal)
            await asyncio.sleep(0.05)

        # A restart (a deploy) finds the schedules as they are.
        first.terminate()
        await asyncio.to_thread(first.wait, 30)
        second = start_worker("second")
        banner, beat = await lines(second, 2)
        assert beat.strip() == "odin beat for orders: schedules 0 created, 0 updated, 2 unchanged, 0 deleted", beat
    finally:
        for worker in (first, second):
            if worker is not None:
                if worker.poll() is None:
                    worker.terminate()
                    await asyncio.to_thread(worker.wait, 30)
                worker.stdout.close()
    assert Counter(journal_steps(journal)) == {"release stale reservations": 1, "sales report": 1}
