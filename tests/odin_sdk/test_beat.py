"""Periodic tasks: Celery's ``beat_schedule`` and ``app.schedule(...)`` kept as Odin schedules by
``sync_schedules`` (``odin beat -A``, ``odin worker -B``), against a real in-process server: the
specs the server describes, crontab times as Celery computes them, runs started on the real
clock, a second start changing only what changed, removed entries deleted, two syncs racing, bad
entries refused before anything changes, and the ``odin beat`` command."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import periodic
import periodic_celery
import pytest
from celery import Celery
from celery.schedules import crontab, schedule, solar
from temporalio.client import (
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    ScheduleRange,
)
from temporalio.service import RPCError, RPCStatusCode

from odin.sdk import ScheduleError
from odin.sdk.celery import CANVAS_WORKFLOW
from tests.support.odin_apps import point

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


@pytest.fixture
def fresh_conf():
    """Each test declares the entries it wants on the two apps; they are put back afterwards."""
    saved = [(app, dict(app.conf.beat_schedule), app.conf.timezone, app.conf.enable_utc, dict(app.scheduled))
             for app in (periodic.app, periodic_celery.app)]
    periodic.app.conf.beat_schedule = {}
    yield
    for app, entries, zone, utc, scheduled in saved:
        app.conf.beat_schedule, app.conf.timezone, app.conf.enable_utc = entries, zone, utc
        app.scheduled.clear()
        app.scheduled.update(scheduled)


@pytest.fixture
def server(odin, fresh_conf):
    for app in (periodic.app, periodic_celery.app):
        point(app, odin)
    return odin


async def describe(app, name: str):
    client = await app.client_async()
    return await client.get_schedule_handle(f"beat:{app.name}:{name}").describe()


async def schedule_ids(app) -> list[str]:
    client = await app.client_async()
    return sorted([s.id async for s in await client.list_schedules()])


async def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def celery_next_times(schedule: crontab, zone: str, start: datetime, count: int) -> list[datetime]:
    """The next ``count`` times Celery beat would run ``schedule`` after ``start``, computed by
    Celery itself (its ``remaining_estimate``) in a Celery app set to ``zone``."""
    celery_app = Celery("reference", set_as_current=False)
    celery_app.conf.timezone = zone
    reference = crontab(minute=schedule._orig_minute, hour=schedule._orig_hour, day_of_week=schedule._orig_day_of_week,
                        day_of_month=schedule._orig_day_of_month, month_of_year=schedule._orig_month_of_year,
                        app=celery_app)
    times, last = [], start
    for _ in range(count):
        now = last
        reference.nowfun = lambda now=now: now
        # The estimate is elapsed time: added in UTC, not to the local wall clock (DST).
        last = (last.astimezone(UTC) + reference.remaining_estimate(last)).astimezone(last.tzinfo)
        times.append(last.astimezone(UTC))
    return times


# -- Celery's format becomes schedules ------------------------------------------------------------


async def test_a_celery_beat_schedule_becomes_schedules_with_the_same_meaning(server):
    app = periodic.app
    mornings = crontab(minute="*/15", hour="7-9", day_of_week="mon-fri")
    app.conf.timezone = "Europe/Paris"
    app.conf.beat_schedule = {
        "every-10-seconds": {"task": "tick", "schedule": 10.0, "args": ("ten",)},
        "schedule-object": {"task": "tick", "schedule": schedule(run_every=120), "args": ("two",), "relative": True},
        "hourly": {"task": "tick", "schedule": timedelta(hours=1), "kwargs": {"key": "hour", "suffix": "!"},
                   "options": {"queue": "hourly-queue", "expires": 120, "routing_key": "ignored"}},
        "weekday-mornings": {"task": "tick", "schedule": mornings, "args": ["morning"]},
        "first-sunday": {"task": "tick", "schedule": crontab(minute=0, hour=12, day_of_week=0, day_of_month="1-7"),
                         "args": ["sunday"]},
    }
    report = await app.sync_schedules_async()
    assert sorted(report.created) == [
        f"beat:periodic:{n}" for n in ("every-10-seconds", "first-sunday", "hourly", "schedule-object", "weekday-mornings")]
    assert report.updated == report.unchanged == report.deleted == []

    ten = await describe(app, "every-10-seconds")
    assert ten.schedule.spec.intervals == [ScheduleIntervalSpec(every=timedelta(seconds=10))]
    action = ten.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.id, action.task_queue) == ("tick", "beat:periodic:every-10-seconds", app.task_queue)
    client = await app.client_async()
    assert await client.data_converter.decode(action.args) == ["ten"]
    assert ten.schedule.policy.overlap == ScheduleOverlapPolicy.ALLOW_ALL  # Celery beat sends whatever still runs
    assert await ten.memo() == {"odin.beat": {"app": "periodic", "entry": "every-10-seconds"}}

    assert (await describe(app, "schedule-object")).schedule.spec.intervals[0].every == timedelta(minutes=2)

    hourly = await describe(app, "hourly")
    assert hourly.schedule.spec.intervals[0].every == timedelta(hours=1)
    assert hourly.schedule.action.task_queue == "hourly-queue"
    assert hourly.schedule.policy.catchup_window == timedelta(seconds=120)  # expires
    assert await client.data_converter.decode(hourly.schedule.action.args) == [{"key": "hour", "suffix": "!"}]
    assert hourly.schedule.action.args[-1].metadata["odin-kwargs"] == b"1"  # keyword arguments, marked

    morning = await describe(app, "weekday-mornings")
    assert morning.schedule.spec.time_zone_name == "Europe/Paris"
    assert morning.schedule.spec.calendars == [ScheduleCalendarSpec(
        second=(ScheduleRange(0),), minute=(ScheduleRange(0, 45, 15),), hour=(ScheduleRange(7, 9),),
        day_of_month=(ScheduleRange(1, 31),), month=(ScheduleRange(1, 12),), day_of_week=(ScheduleRange(1, 5),),
    )]
    # The server's next ten times are the ones Celery computes for the same crontab in that zone.
    for name, celery_crontab in (("weekday-mornings", mornings), ("first-sunday", app.conf.beat_schedule["first-sunday"]["schedule"])):
        desc = await describe(app, name)
        upcoming = desc.info.next_action_times
        assert len(upcoming) == 10
        start = (upcoming[0] - timedelta(seconds=1)).astimezone(ZoneInfo("Europe/Paris"))
        assert upcoming == celery_next_times(celery_crontab, "Europe/Paris", start, 10), name
    sunday_times = (await describe(app, "first-sunday")).info.next_action_times
    assert all(t.astimezone(ZoneInfo("Europe/Paris")).weekday() == 6 and t.astimezone(ZoneInfo("Europe/Paris")).day <= 7
               for t in sunday_times)


CRONTABS = {
    "every-other-weekday": crontab(minute=30, hour=12, day_of_week="*/2"),
    "quarterly": crontab(minute=0, hour=9, day_of_month=1, month_of_year="*/3"),
    "even-days": crontab(minute="5,35", hour="8-18/5", day_of_month="2-30/2"),
    "weekend-evenings": crontab(minute=45, hour="19,21", day_of_week="sat,sun"),
    "last-days-of-february": crontab(minute=0, hour=23, day_of_month="28-31", month_of_year=2),
}


async def test_crontabs_fire_when_celery_would(server):
    """Each crontab's next ten times, as the server describes them, are the times Celery computes
    for it in the same zone."""
    app = periodic.app
    app.conf.timezone = "America/New_York"
    app.conf.beat_schedule = {name: {"task": "tick", "schedule": tab, "args": [name]} for name, tab in CRONTABS.items()}
    await app.sync_schedules_async()
    zone = ZoneInfo("America/New_York")
    for name, tab in CRONTABS.items():
        upcoming = (await describe(app, name)).info.next_action_times
        assert len(upcoming) == 10, name
        start = (upcoming[0] - timedelta(seconds=1)).astimezone(zone)
        assert upcoming == celery_next_times(tab, "America/New_York", start, 10), name


async def test_enable_utc_off_reads_crontabs_in_the_machines_zone(server, monkeypatch):
    app = periodic.app
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    app.conf.update(enable_utc=False, beat_schedule={"noon": {"task": "tick", "schedule": crontab(minute=0, hour=12), "args": ["n"]}})
    await app.sync_schedules_async()
    assert (await describe(app, "noon")).schedule.spec.time_zone_name == "Asia/Tokyo"
    app.conf.update(enable_utc=None, timezone=None)  # Celery's defaults: UTC
    assert (await app.sync_schedules_async()).updated == ["beat:periodic:noon"]
    assert (await describe(app, "noon")).schedule.spec.time_zone_name == "UTC"


async def test_register_tasks_takes_the_celery_apps_beat_schedule(server):
    app = periodic_celery.app
    assert set(app.conf.beat_schedule) == {"sweep-every-30-seconds", "nightly-sweep", "weekly-report"}
    assert app.conf.timezone == "America/New_York"
    await app.sync_schedules_async()
    nightly = await describe(app, "nightly-sweep")
    assert nightly.schedule.spec.time_zone_name == "America/New_York"
    assert nightly.schedule.spec.calendars[0].hour == (ScheduleRange(2),)
    assert nightly.schedule.spec.calendars[0].minute == (ScheduleRange(15),)
    # A Celery task runs as a one-step canvas: the task's own activity, with its arguments.
    action = nightly.schedule.action
    assert (action.workflow, action.task_queue) == (CANVAS_WORKFLOW, app.task_queue)
    [spec] = await (await app.client_async()).data_converter.decode(action.args)
    assert spec["canvas"]["task"] == "periodic_celery.sweep"
    assert (spec["canvas"]["args"], spec["canvas"]["kwargs"]) == (["sessions"], {"older_than": 86400})
    weekly = await describe(app, "weekly-report")
    [spec] = await (await app.client_async()).data_converter.decode(weekly.schedule.action.args)
    assert spec["canvas"]["activity"]["queue"] == "reports"  # options.queue routes the task, as in Celery
    assert spec["canvas"]["activity"]["start_to_close_timeout"] == 3600  # the task's own limit (none: 1 h)

    # options.time_limit is that run's limit, as apply_async(time_limit=) is.
    app.conf.beat_schedule = {**app.conf.beat_schedule, "weekly-report": {
        **app.conf.beat_schedule["weekly-report"], "options": {"queue": "reports", "time_limit": 20}}}
    assert (await app.sync_schedules_async()).updated == ["beat:sweeper:weekly-report"]
    weekly = await describe(app, "weekly-report")
    [spec] = await (await app.client_async()).data_converter.decode(weekly.schedule.action.args)
    assert spec["canvas"]["activity"]["start_to_close_timeout"] == 20


def test_register_tasks_copies_beat_settings_unless_told_not_to():
    from odin.sdk import App
    from odin.sdk.celery import register_tasks

    own = App("own-entries")
    own.conf.update(timezone="Asia/Tokyo", beat_schedule={"nightly-sweep": {"task": "periodic_celery.sweep", "schedule": 5}})
    register_tasks(own, periodic_celery.celery_app)
    assert own.conf.beat_schedule["nightly-sweep"]["schedule"] == 5  # the Odin app's own entry wins
    assert set(own.conf.beat_schedule) == {"nightly-sweep", "sweep-every-30-seconds", "weekly-report"}
    assert own.conf.timezone == "Asia/Tokyo"
    without = App("no-beat")
    register_tasks(without, periodic_celery.celery_app, beat=False)
    assert (without.conf.beat_schedule, without.conf.timezone, without.conf.enable_utc) == ({}, None, None)


# -- runs, on the real clock ----------------------------------------------------------------------


async def test_one_second_entries_run_the_workflow_and_the_celery_task(server):
    periodic.app.conf.beat_schedule = {"every-second": {"task": "tick", "schedule": 1, "args": ["beat"]}}
    periodic_celery.app.conf.beat_schedule = {"sweep-every-second": {"task": "periodic_celery.sweep", "schedule": 1.0,
                                                                     "args": ["beat-carts"], "kwargs": {"older_than": 5}}}
    runs_before, swept_before = len(periodic.RUNS), len(periodic_celery.SWEPT)
    started = time.monotonic()
    async with periodic.app.worker(), periodic_celery.app.worker():
        await periodic.app.sync_schedules_async()
        await periodic_celery.app.sync_schedules_async()
        await wait_for(lambda: len(periodic.RUNS) - runs_before >= 3 and len(periodic_celery.SWEPT) - swept_before >= 3,
                       20, "three runs of each entry")
    elapsed = time.monotonic() - started
    assert set(periodic.RUNS[runs_before:]) == {("beat", "")}
    assert set(periodic_celery.SWEPT[swept_before:]) == {("beat-carts", 5)}
    # One run a second, not a burst: three runs take at least two seconds.
    assert elapsed >= 2.0
    desc = await describe(periodic.app, "every-second")
    assert desc.info.num_actions >= 3
    runs = [a.action.workflow_id for a in desc.info.recent_actions]
    assert all(r.startswith("beat:periodic:every-second-") for r in runs)


# -- a second start -------------------------------------------------------------------------------


async def test_a_second_start_updates_the_changed_deletes_the_removed_and_leaves_the_rest(server):
    app = periodic.app
    app.conf.beat_schedule = {
        "same": {"task": "tick", "schedule": 60, "args": ["same"]},
        "changed": {"task": "tick", "schedule": 60, "args": ["old"]},
        "removed": {"task": "tick", "schedule": crontab(minute=5), "args": ["gone"]},
    }
    app.schedule("declared", periodic.tick, cron="30 4 * * *", args=("declared",), timezone="Europe/Berlin")
    first = await app.sync_schedules_async()
    assert len(first.created) == 4
    before = {name: await describe(app, name) for name in ("same", "changed", "declared")}
    client = await app.client_async()
    await client.get_schedule_handle("beat:periodic:same").pause(note="paused by an operator")
    paused = await describe(app, "same")

    app.conf.beat_schedule = {
        "same": {"task": "tick", "schedule": 60, "args": ["same"]},
        "changed": {"task": "tick", "schedule": crontab(minute=0, hour="*/6"), "args": ["new"]},
    }
    await asyncio.sleep(0.01)  # so that an update would move the update time
    second = await app.sync_schedules_async()
    assert second.created == []
    assert second.updated == ["beat:periodic:changed"]
    assert second.unchanged == ["beat:periodic:declared", "beat:periodic:same"]
    assert second.deleted == ["beat:periodic:removed"]
    with pytest.raises(RPCError) as gone:
        await describe(app, "removed")
    assert gone.value.status == RPCStatusCode.NOT_FOUND

    same = await describe(app, "same")
    assert same.info.last_updated_at == paused.info.last_updated_at  # untouched...
    assert same.schedule.state.paused and same.schedule.state.note == "paused by an operator"  # ...its pause too
    declared = await describe(app, "declared")
    assert declared.info.last_updated_at == before["declared"].info.last_updated_at
    changed = await describe(app, "changed")
    assert changed.info.last_updated_at != before["changed"].info.last_updated_at
    assert changed.schedule.spec.intervals == []
    assert changed.schedule.spec.calendars[0].hour == (ScheduleRange(0, 18, 6),)
    assert await client.data_converter.decode(changed.schedule.action.args) == ["new"]

    third = await app.sync_schedules_async()
    assert (third.created, third.updated, third.deleted) == ([], [], [])
    assert await schedule_ids(app) == ["beat:periodic:changed", "beat:periodic:declared", "beat:periodic:same"]

    # A change of the workflow's own options (its queue here) updates the schedule too.
    app.conf.beat_schedule = {"same": {"task": "tick", "schedule": 60, "args": ["same"], "options": {"queue": "elsewhere"}}}
    app.scheduled.clear()
    fourth = await app.sync_schedules_async()
    assert fourth.updated == ["beat:periodic:same"]
    assert fourth.deleted == ["beat:periodic:changed", "beat:periodic:declared"]
    same = await describe(app, "same")
    assert same.schedule.action.task_queue == "elsewhere"
    assert same.schedule.state.paused  # an update keeps the pause an operator set


async def test_schedules_not_made_by_the_apps_sync_are_left_alone(server):
    app = periodic.app
    client = await app.client_async()
    app.conf.beat_schedule = {"mine": {"task": "tick", "schedule": 60, "args": ["x"]}}
    await app.sync_schedules_async()
    # Another schedule in the namespace, and one under the prefix made by hand.
    desc = await describe(app, "mine")
    await client.create_schedule("someone-elses", desc.schedule)
    await client.create_schedule("beat:periodic:by-hand", desc.schedule)
    app.conf.beat_schedule = {}
    report = await app.sync_schedules_async()
    assert report.deleted == ["beat:periodic:mine"]
    assert await schedule_ids(app) == ["beat:periodic:by-hand", "someone-elses"]
    # An entry whose id is taken by a schedule the sync did not make is refused, not overwritten.
    app.conf.beat_schedule = {"by-hand": {"task": "tick", "schedule": 30, "args": ["x"]}}
    with pytest.raises(ScheduleError, match="beat:periodic:by-hand exists and was not made for app periodic"):
        await app.sync_schedules_async()


async def test_two_syncs_at_once_make_each_schedule_once(server):
    app = periodic.app
    app.conf.beat_schedule = {f"entry-{i}": {"task": "tick", "schedule": 60 + i, "args": [str(i)]} for i in range(5)}
    reports = await asyncio.gather(app.sync_schedules_async(), app.sync_schedules_async())
    ids = [f"beat:periodic:entry-{i}" for i in range(5)]
    for report in reports:
        assert sorted(report.created + report.unchanged + report.updated) == ids
    assert sorted(reports[0].created + reports[1].created) == ids  # each made by exactly one of them
    assert await schedule_ids(app) == ids
    # Racing over a change and a removal: both end with the new state.
    app.conf.beat_schedule = {f"entry-{i}": {"task": "tick", "schedule": 120 + i, "args": [str(i)]} for i in range(3)}
    reports = await asyncio.gather(app.sync_schedules_async(), app.sync_schedules_async())
    assert sorted(reports[0].deleted + reports[1].deleted) == ids[3:]
    assert await schedule_ids(app) == ids[:3]
    for i in range(3):
        assert (await describe(app, f"entry-{i}")).schedule.spec.intervals[0].every == timedelta(seconds=120 + i)
    assert (await app.sync_schedules_async()).unchanged == ids[:3]


# -- app.schedule ---------------------------------------------------------------------------------


async def test_app_schedule_declares_schedules_of_workflows_and_activities(server):
    app = periodic.app
    app.schedule("every-5-minutes", periodic.tick, every=timedelta(minutes=5), args=["five"], overlap="buffer_one")
    app.schedule("record-daily", periodic.record, crontab=crontab(minute=0, hour=6), kwargs={"key": "daily"},
                 timezone="Asia/Kolkata", catchup_window=600)
    app.schedule("by-name", "tick", cron="@every 90s", args=["named"])
    assert CANVAS_WORKFLOW in app.workflows  # an activity runs as a one-step canvas, on this app's workers
    assert sorted((await app.sync_schedules_async()).created) == [
        "beat:periodic:by-name", "beat:periodic:every-5-minutes", "beat:periodic:record-daily"]
    five = await describe(app, "every-5-minutes")
    assert five.schedule.spec.intervals[0].every == timedelta(minutes=5)
    assert five.schedule.policy.overlap == ScheduleOverlapPolicy.BUFFER_ONE
    daily = await describe(app, "record-daily")
    assert daily.schedule.spec.time_zone_name == "Asia/Kolkata"
    assert daily.schedule.policy.catchup_window == timedelta(minutes=10)
    assert daily.schedule.action.workflow == CANVAS_WORKFLOW
    named = await describe(app, "by-name")
    assert named.schedule.spec.intervals[0].every == timedelta(seconds=90)  # the server's reading of @every
    assert named.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP  # Temporal's default for app.schedule

    # It runs: triggered now, the activity's canvas and the workflow each record once.
    runs_before = len(periodic.RUNS)
    client = await app.client_async()
    async with app.worker():
        await client.get_schedule_handle("beat:periodic:record-daily").trigger()
        await client.get_schedule_handle("beat:periodic:by-name").trigger()
        await wait_for(lambda: len(periodic.RUNS) - runs_before >= 2, 15, "the triggered runs")
    assert sorted(periodic.RUNS[runs_before:]) == [("daily", ""), ("named", "")]


# -- bad entries ----------------------------------------------------------------------------------


async def test_bad_entries_fail_naming_each_entry_and_change_nothing(server):
    app = periodic.app
    app.conf.beat_schedule = {"fine": {"task": "tick", "schedule": 60, "args": ["ok"]}}
    await app.sync_schedules_async()
    before = await describe(app, "fine")
    app.conf.beat_schedule = {
        "fine": {"task": "tick", "schedule": 30, "args": ["changed"]},
        "typo": {"task": "tikc", "schedule": 60},
        "celery-typo": {"task": "proj.tasks.cleanup", "schedule": 60},
        # solar's constructor needs the ephem library, not installed here; the check is on the type.
        "sunrise": {"task": "tick", "schedule": object.__new__(solar)},
        "string-cron": {"task": "tick", "schedule": "*/5 * * * *"},
        "never": {"task": "tick", "schedule": 0},
        "countdown": {"task": "tick", "schedule": 60, "options": {"countdown": 5}},
        "extra-key": {"task": "tick", "schedule": 60, "every": 5},
        "bad-args": {"task": "tick", "schedule": 60, "args": "abc"},
        "not-json": {"task": "tick", "schedule": 60, "args": [object()]},
        "workflow-time-limit": {"task": "tick", "schedule": 60, "options": {"time_limit": 5}},
        "bad-time-limit": {"task": "tick", "schedule": 60, "options": {"soft_time_limit": "5s"}},
    }
    with pytest.raises(ScheduleError) as refused:
        await app.sync_schedules_async()
    message = str(refused.value)
    for name, says in {
        "typo": "unknown task 'tikc': not a workflow nor an activity of periodic",
        "celery-typo": "unknown task 'proj.tasks.cleanup'",
        "sunrise": "solar schedules are not supported",
        "string-cron": "is not supported (seconds, a timedelta or a crontab are)",
        "never": "must be more than zero seconds",
        "countdown": "option countdown is not supported",
        "extra-key": "unknown key every",
        "bad-args": "args must be a list or tuple",
        "not-json": "arguments must be JSON values",
        "workflow-time-limit": "time_limit is a Celery task's option, and tick is a workflow",
        "bad-time-limit": "time_limit must be a number of seconds, not '5s'",
    }.items():
        assert f"beat_schedule entry {name!r}" in message and says in message, (name, message)
    assert "'fine'" not in message
    # Nothing changed on the server.
    assert await schedule_ids(app) == ["beat:periodic:fine"]
    assert (await describe(app, "fine")).info.last_updated_at == before.info.last_updated_at

    app.conf.beat_schedule = {}
    app.conf.timezone = "Mars/Olympus_Mons"
    app.schedule("bad-cron", periodic.tick, cron="61 * * * *", args=["x"], timezone="UTC")
    app.schedule("crontab-in-no-zone", periodic.tick, crontab=crontab(minute=1), args=["x"])
    with pytest.raises(ScheduleError) as refused:
        await app.sync_schedules_async()
    assert "schedule 'bad-cron': cron '61 * * * *'" in str(refused.value)
    assert "schedule 'crontab-in-no-zone': unknown time zone 'Mars/Olympus_Mons'" in str(refused.value)
    assert await schedule_ids(app) == ["beat:periodic:fine"]  # not even the removal happened

    for call, says in [
        (lambda: app.schedule("both", periodic.tick, every=5, cron="* * * * *"), "exactly one of every=, cron= or crontab="),
        (lambda: app.schedule("none", periodic.tick), "exactly one of every=, cron= or crontab="),
        (lambda: app.schedule("negative", periodic.tick, every=-1), "cannot be negative"),
        (lambda: app.schedule("zone", periodic.tick, every=5, timezone="Nowhere/City"), "unknown time zone"),
        (lambda: app.schedule("overlap", periodic.tick, every=5, overlap="sometimes"), "overlap 'sometimes' is not one of"),
        (lambda: app.schedule("foreign", periodic_celery.app.workflows[CANVAS_WORKFLOW], every=5), "belongs to another app"),
        (lambda: app.schedule("not-crontab", periodic.tick, crontab="0 * * * *"), "crontab= takes celery.schedules.crontab"),
    ]:
        with pytest.raises(ScheduleError, match=says):
            call()
    with pytest.raises(AttributeError, match="app.conf has no setting broker_url"):
        app.conf.update(broker_url="redis://")


# -- the command ----------------------------------------------------------------------------------


def beat_command(*args: str, address: str) -> list[str]:
    return [sys.executable, "-m", "odin.cli", "beat", "-A", "periodic_celery:app", "--address", address, *args]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(HERE), env.get("PYTHONPATH")) if p)
    env.pop("ODIN_ADDRESS", None)
    return env


async def test_odin_beat_syncs_then_waits_and_two_at_once_are_safe(server):
    app = periodic_celery.app
    address = app.address
    # Two `odin beat --once` at the same moment (as two `odin worker -B` starting together).
    procs = [subprocess.Popen(beat_command("--once", address=address), cwd=HERE, env=child_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [await asyncio.to_thread(p.communicate, timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    created = [line.split()[-1] for out, _ in outputs for line in out.splitlines() if line.strip().startswith("created ")]
    ids = ["beat:sweeper:nightly-sweep", "beat:sweeper:sweep-every-30-seconds", "beat:sweeper:weekly-report"]
    assert sorted(created) == ids  # each made once, by one of the two
    assert all(out.startswith("odin beat for sweeper: schedules ") for out, _ in outputs)
    assert await schedule_ids(app) == ids

    # Without --once it syncs, then stays up until told to stop.
    beat = subprocess.Popen(beat_command(address=address), cwd=HERE, env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(beat.stdout.readline), 60)
        assert line.strip() == "odin beat for sweeper: schedules 0 created, 0 updated, 3 unchanged, 0 deleted"
        await asyncio.sleep(1)
        assert beat.poll() is None
        beat.send_signal(signal.SIGTERM)
        out, err = await asyncio.to_thread(beat.communicate, timeout=30)
        assert beat.returncode == 0, err
        assert out.strip() == "odin beat: stopped"
    finally:
        if beat.poll() is None:
            beat.kill()
            await asyncio.to_thread(beat.wait)

    # A bad namespace is the server's error, a clear one.
    bad = await asyncio.to_thread(subprocess.run, beat_command("--once", "--namespace", "no-such-namespace", address=address),
                                  cwd=HERE, env=child_env(), capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
    assert "no-such-namespace" in bad.stderr, bad.stderr


BAD_APP = """
from odin.sdk import App

app = App("badbeat")


@app.workflow
async def tick(key: str) -> str:
    return key


app.conf.beat_schedule = {
    "fine": {"task": "tick", "schedule": 60, "args": ["x"]},
    "misspelt": {"task": "tikc", "schedule": 60},
}
"""


async def test_a_bad_entry_stops_odin_beat_and_odin_worker_dash_b_with_its_name(server, tmp_path):
    (tmp_path / "badbeat.py").write_text(BAD_APP)
    env = {**child_env(), "ODIN_ADDRESS": periodic.app.address}
    for command in (["beat", "-A", "badbeat:app", "--once"], ["worker", "-A", "badbeat:app", "-B"]):
        done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "odin.cli", *command], cwd=tmp_path, env=env,
                                       capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert "Error: beat_schedule entry 'misspelt': unknown task 'tikc'" in done.stderr, (command, done.stderr)
        assert "Traceback" not in done.stderr
    assert await schedule_ids(periodic.app) == []  # not even the good entry: nothing changed
