"""Periodic workflows: ``app.conf.beat_schedule`` in Celery's format and ``app.schedule(...)``,
kept as Odin schedules (Temporal's Schedule API) by ``sync``.

The server fires schedules; nothing here keeps time. ``sync`` (``odin beat -A``, ``odin worker -B``,
``app.sync_schedules()``) makes the namespace's schedules match the app's entries:

- each entry is the schedule ``beat:<app name>:<entry name>``, created if missing;
- an existing one is updated only when its entry changed: the start action carries the memo
  ``odin.beat`` with a fingerprint of everything the entry asks for, and an entry whose fingerprint
  matches is left alone (its pause state too);
- a schedule of this app (by its id prefix and its own memo ``odin.beat``) whose entry is gone is
  deleted. Runs it started keep their histories.

Every entry is checked before anything is sent, so a bad entry changes nothing; two processes
syncing at once end with the same schedules (creating one that exists already is taken as found).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import temporalio.client
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from odin.sdk._defs import ActivityFunction, WorkflowFunction, pack_args
from odin.sdk._errors import OdinSdkError
from odin.sdk._options import Duration, as_timedelta

if TYPE_CHECKING:
    from odin.sdk._app import App

ID_PREFIX = "beat"
MEMO_KEY = "odin.beat"
# Part of every fingerprint: a change of how entries map to schedules updates them all once.
FORMAT = 1
CANVAS_WORKFLOW = "odin.celery.canvas"  # odin.sdk.celery.CANVAS_WORKFLOW (that module imports this one's app)

# The keys of a Celery beat entry, and the apply_async options that concern message delivery only
# (nothing to do for a schedule: ids, routing, serialization, publish retries).
_ENTRY_KEYS = frozenset({"task", "schedule", "args", "kwargs", "options", "relative"})
_DELIVERY_OPTIONS = frozenset({
    "priority", "routing_key", "exchange", "exchange_type", "serializer", "compression", "headers",
    "retry", "retry_policy", "ignore_result", "delivery_mode", "shadow", "mandatory", "immediate",
})

_OVERLAP = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "buffer_all": ScheduleOverlapPolicy.BUFFER_ALL,
    "cancel_other": ScheduleOverlapPolicy.CANCEL_OTHER,
    "terminate_other": ScheduleOverlapPolicy.TERMINATE_OTHER,
    "allow_all": ScheduleOverlapPolicy.ALLOW_ALL,
}


class ScheduleError(OdinSdkError, ValueError):
    """An entry of ``beat_schedule`` or ``app.schedule`` that Odin cannot make a schedule of, or a
    schedule in the way of one; the message names the entry."""


class Config:
    """The Celery settings an Odin app reads (``app.conf``): ``beat_schedule`` (entry name →
    ``{"task", "schedule", "args", "kwargs", "options"}``), ``timezone`` (the zone crontab entries
    are read in) and ``enable_utc`` (without ``timezone``: UTC if true, the machine's zone if
    false). Set them as attributes or with ``update(...)``; any other name is refused."""

    __slots__ = ("beat_schedule", "enable_utc", "timezone")

    def __init__(self) -> None:
        self.beat_schedule: dict[str, Mapping[str, Any]] = {}
        self.timezone: str | None = None
        self.enable_utc: bool | None = None  # None: not set (Celery's default, True)

    def update(self, settings: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        values = {**(settings or {}), **more}
        unknown = sorted(set(values) - set(self.__slots__))
        if unknown:
            raise AttributeError(
                f"app.conf has no setting {', '.join(unknown)}: Odin reads {', '.join(self.__slots__)}"
            )
        for key, value in values.items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        return f"<odin app conf: {len(self.beat_schedule)} beat entries, timezone {self.timezone}, enable_utc {self.enable_utc}>"


@dataclass(frozen=True)
class ScheduleEntry:
    """A periodic start declared with ``app.schedule(...)`` (or read from ``beat_schedule``):
    ``target`` (a workflow, an activity or a task name) every ``every``, on ``cron`` or on a
    Celery ``crontab``, with ``args``/``kwargs``."""

    name: str
    target: str | WorkflowFunction[..., Any] | ActivityFunction[..., Any]
    every: timedelta | None = None
    cron: str | None = None
    crontab: Any = None  # celery.schedules.crontab
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    timezone: str | None = None
    overlap: ScheduleOverlapPolicy = ScheduleOverlapPolicy.SKIP
    catchup_window: timedelta | None = None
    time_limit: float | None = None  # a Celery task's time limit for these runs (beat's options)
    # How errors name it: "schedule" (app.schedule) or "beat_schedule entry".
    kind: str = field(default="schedule", compare=False)

    @property
    def target_name(self) -> str:
        return self.target if isinstance(self.target, str) else self.target.name


@dataclass
class SyncReport:
    """What a sync did, by schedule id."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [f"{len(ids)} {what}" for what, ids in
                 (("created", self.created), ("updated", self.updated), ("unchanged", self.unchanged), ("deleted", self.deleted))]
        return ", ".join(parts)


def schedule_id(app: App, name: str) -> str:
    return f"{ID_PREFIX}:{app.name}:{name}"


# -- declaring ------------------------------------------------------------------------------------


def make_entry(
    app: App,
    name: str,
    target: str | WorkflowFunction[..., Any] | ActivityFunction[..., Any],
    *,
    every: Duration | None = None,
    cron: str | None = None,
    crontab: Any = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    queue: str | None = None,
    timezone: str | None = None,
    overlap: ScheduleOverlapPolicy | str = ScheduleOverlapPolicy.SKIP,
    catchup_window: Duration | None = None,
    time_limit: float | None = None,
    kind: str = "schedule",
) -> ScheduleEntry:
    """``app.schedule``'s entry, checked as far as it can be without the server."""
    if not isinstance(name, str) or not name:
        raise ScheduleError(f"a {kind} needs a name, not {name!r}")
    what = f"{kind} {name!r}"
    if not isinstance(target, (str, WorkflowFunction, ActivityFunction)):
        raise ScheduleError(f"{what}: the target is a workflow, an activity or a task name, not {target!r}")
    if not isinstance(target, str) and target.app is not app:
        raise ScheduleError(f"{what}: {target.name} belongs to another app ({target.app.name})")
    if sum(x is not None for x in (every, cron, crontab)) != 1:
        raise ScheduleError(f"{what}: give exactly one of every=, cron= or crontab=")
    if isinstance(overlap, str):
        if overlap.lower() not in _OVERLAP:
            raise ScheduleError(f"{what}: overlap {overlap!r} is not one of {', '.join(_OVERLAP)}")
        overlap = _OVERLAP[overlap.lower()]
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise ScheduleError(f"{what}: args must be a list or tuple, not {args!r}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise ScheduleError(f"{what}: kwargs must be a dict, not {kwargs!r}")
    try:
        interval = as_timedelta(every)
        window = as_timedelta(catchup_window)
    except (TypeError, ValueError) as exc:
        raise ScheduleError(f"{what}: {exc}") from None
    if interval is not None and interval <= timedelta(0):
        raise ScheduleError(f"{what}: every= must be more than zero, not {every!r}")
    if cron is not None and (not isinstance(cron, str) or not cron.strip()):
        raise ScheduleError(f"{what}: cron= is a cron string such as '0 3 * * *', not {cron!r}")
    if crontab is not None:
        _check_crontab(crontab, what)
    if timezone is not None:
        _check_zone(timezone, what)
    if isinstance(target, ActivityFunction):
        from odin.sdk.celery import register_canvas_workflow

        register_canvas_workflow(app)  # a task runs as a one-step canvas; its workers need the workflow
    return ScheduleEntry(
        name=name, target=target, every=interval, cron=cron, crontab=crontab, args=tuple(args),
        kwargs=dict(kwargs or {}), queue=queue, timezone=timezone, overlap=overlap, catchup_window=window,
        time_limit=time_limit, kind=kind,
    )


def beat_entries(app: App) -> tuple[list[ScheduleEntry], list[str]]:
    """``app.conf.beat_schedule`` as entries, and the errors of those that are not. Like Celery
    beat, a run starts whether or not the previous one is still running (overlap ``allow_all``)."""
    schedule = app.conf.beat_schedule
    if not isinstance(schedule, Mapping):
        return [], [f"app.conf.beat_schedule is a dict of entries, not {type(schedule).__name__}"]
    entries, errors = [], []
    for name, raw in schedule.items():
        try:
            entries.append(_beat_entry(app, name, raw))
        except ScheduleError as exc:
            errors.append(str(exc))
    return entries, errors


def _beat_entry(app: App, name: str, raw: Any) -> ScheduleEntry:
    what = f"beat_schedule entry {name!r}"
    if not isinstance(raw, Mapping):
        raise ScheduleError(f"{what} is a dict with task and schedule, not {raw!r}")
    unknown = sorted(set(raw) - _ENTRY_KEYS)
    if unknown:
        raise ScheduleError(f"{what}: unknown key {', '.join(unknown)} (a beat entry has {', '.join(sorted(_ENTRY_KEYS))})")
    task = raw.get("task")
    if not isinstance(task, str) or not task:
        raise ScheduleError(f"{what} needs a task name, not {task!r}")
    options = raw.get("options") or {}
    if not isinstance(options, Mapping):
        raise ScheduleError(f"{what}: options must be a dict, not {options!r}")
    refused = sorted(set(options) - _DELIVERY_OPTIONS - {"queue", "expires", "time_limit", "soft_time_limit"})
    if refused:
        raise ScheduleError(
            f"{what}: option {', '.join(refused)} is not supported for a periodic task "
            "(queue, expires, time_limit and soft_time_limit are)"
        )
    limit = options.get("time_limit") or options.get("soft_time_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0):
        raise ScheduleError(f"{what}: time_limit must be a number of seconds, not {limit!r}")
    expires = options.get("expires")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, (int, float, timedelta))):
        raise ScheduleError(f"{what}: expires must be seconds or a timedelta (a date cannot repeat), not {expires!r}")
    every, crontab = _celery_schedule(raw.get("schedule"), what)
    queue = options.get("queue")
    if queue is not None and (not isinstance(queue, str) or not queue):
        raise ScheduleError(f"{what}: queue must be a queue name, not {queue!r}")
    return make_entry(
        app, name, task, every=every, crontab=crontab, args=raw.get("args") or (), kwargs=raw.get("kwargs") or {},
        queue=queue, overlap=ScheduleOverlapPolicy.ALLOW_ALL, catchup_window=expires, kind="beat_schedule entry",
        time_limit=None if limit is None else float(limit),
    )


def _celery_schedule(value: Any, what: str) -> tuple[timedelta | None, Any]:
    """A beat entry's ``schedule``: seconds, a ``timedelta`` or ``celery.schedules.schedule`` (an
    interval), or a ``crontab``."""
    from celery.schedules import crontab, schedule, solar

    if isinstance(value, bool) or value is None:
        raise ScheduleError(f"{what} needs a schedule (seconds, a timedelta or a crontab), not {value!r}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ScheduleError(f"{what}: schedule must be more than zero seconds, not {value!r}")
        return timedelta(seconds=value), None
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ScheduleError(f"{what}: schedule must be more than zero, not {value!r}")
        return value, None
    if isinstance(value, solar):
        raise ScheduleError(f"{what}: solar schedules are not supported (use a crontab at the times you need)")
    if isinstance(value, crontab):
        return None, value
    if type(value) is schedule:
        return _celery_schedule(value.run_every, what)
    raise ScheduleError(f"{what}: schedule {value!r} is not supported (seconds, a timedelta or a crontab are)")


def _check_crontab(value: Any, what: str) -> None:
    from celery.schedules import crontab

    if not isinstance(value, crontab):
        raise ScheduleError(f"{what}: crontab= takes celery.schedules.crontab(...), not {value!r}")


def _check_zone(name: str, what: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ScheduleError(f"{what}: unknown time zone {name!r}") from None


# -- what an entry asks the server for ------------------------------------------------------------


@dataclass(frozen=True)
class Desired:
    id: str
    entry: ScheduleEntry
    fingerprint: str
    schedule: Schedule  # with the action's memo, the fingerprint included


def _ranges(values: Sequence[int]) -> list[ScheduleRange]:
    """Sorted ints as ranges: runs with a constant step (``*/15``, ``1-5``) become one range."""
    out: list[ScheduleRange] = []
    i = 0
    while i < len(values):
        j = i + 1
        step = values[j] - values[i] if j < len(values) else 1
        while j < len(values) and values[j] - values[j - 1] == step:
            j += 1
        if j - i >= 3 or (j - i == 2 and step == 1):
            out.append(ScheduleRange(values[i], values[j - 1], step))
        else:
            j = i + 1
            out.append(ScheduleRange(values[i]))
        i = j
    return out


def _crontab_calendar(value: Any) -> tuple[ScheduleCalendarSpec, dict[str, list[int]]]:
    """A Celery crontab as a calendar with the same times: its fields as Celery expanded them (day
    of week 0 = Sunday in both), every field required to match, as in Celery."""
    fields = {
        "minute": sorted(value.minute), "hour": sorted(value.hour), "day_of_month": sorted(value.day_of_month),
        "month": sorted(value.month_of_year), "day_of_week": sorted(value.day_of_week),
    }
    calendar = ScheduleCalendarSpec(
        second=[ScheduleRange(0)],
        minute=_ranges(fields["minute"]),
        hour=_ranges(fields["hour"]),
        day_of_month=_ranges(fields["day_of_month"]),
        month=_ranges(fields["month"]),
        day_of_week=_ranges(fields["day_of_week"]),
    )
    return calendar, fields


def app_zone(app: App) -> str:
    """The zone of the app's crontab entries, as Celery picks it: ``timezone``; else UTC with
    ``enable_utc`` (the default); else the machine's zone."""
    if app.conf.timezone:
        return app.conf.timezone
    if app.conf.enable_utc is None or app.conf.enable_utc:
        return "UTC"
    return local_zone()


def local_zone() -> str:
    """The machine's time zone by name (``TZ``, else where /etc/localtime points)."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        target = os.path.realpath("/etc/localtime")
        _, found, rest = target.partition("/zoneinfo/")
        name = rest if found else ""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            "enable_utc is off and the machine's time zone has no name Odin can use: set app.conf.timezone"
        ) from None
    return name


def _seconds(d: timedelta | None) -> float | None:
    return d.total_seconds() if d is not None else None


def desired(app: App, entry: ScheduleEntry) -> Desired:
    """The schedule ``entry`` asks for, against the app's definitions now."""
    what = f"{entry.kind} {entry.name!r}"
    sid = schedule_id(app, entry.name)
    name = entry.target_name
    described: dict[str, Any] = {"format": FORMAT, "target": name, "queue": entry.queue}
    if name in app.workflows:
        if entry.time_limit is not None:
            raise ScheduleError(
                f"{what}: time_limit is a Celery task's option, and {name} is a workflow "
                "(give the workflow an execution_timeout)"
            )
        wf = app.workflows[name]
        workflow, args = wf.name, pack_args(entry.args, entry.kwargs)
        queue = entry.queue or wf.task_queue
        execution_timeout, retry = wf.execution_timeout, wf.retry
    elif name in app.activities:
        if CANVAS_WORKFLOW not in app.workflows:
            raise ScheduleError(
                f"{what}: {name} is an activity, and this app has no canvas workflow to run it in: "
                "schedule a workflow, or register the task with odin.sdk.celery.register_tasks"
            )
        from odin.sdk.celery import CanvasError, prepare

        options: dict[str, Any] = {"queue": entry.queue} if entry.queue else {}
        if entry.time_limit is not None:
            options["time_limit"] = entry.time_limit
        sig = {"task": name, "args": list(entry.args), "kwargs": dict(entry.kwargs), "options": options, "subtask_type": None}
        try:
            canvas_spec = prepare(sig, app)
        except CanvasError as exc:
            raise ScheduleError(f"{what}: {exc}") from None
        canvas = app.workflows[CANVAS_WORKFLOW]
        workflow, args = canvas.name, [canvas_spec]
        queue, execution_timeout, retry = canvas.task_queue, canvas.execution_timeout, canvas.retry
    else:
        raise ScheduleError(
            f"{what}: unknown task {name!r}: not a workflow nor an activity of {app.name}"
            + (" (register_tasks registers a Celery app's tasks)" if "." in name else "")
        )
    try:
        described["args"] = json.loads(json.dumps(args, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise ScheduleError(f"{what}: arguments must be JSON values: {exc}") from None

    # An interval counts from the epoch whatever the zone; crontab and cron read the zone's clock.
    try:
        zone = "" if entry.every is not None else entry.timezone or app_zone(app)
    except ScheduleError as exc:
        raise ScheduleError(f"{what}: {exc}") from None
    if zone:
        _check_zone(zone, what)
    if entry.every is not None:
        spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=entry.every)])
        described["every"] = entry.every.total_seconds()
    elif entry.crontab is not None:
        calendar, fields = _crontab_calendar(entry.crontab)
        spec = ScheduleSpec(calendars=[calendar], time_zone_name=zone)
        described["crontab"] = fields
    else:
        assert entry.cron is not None
        _check_cron(entry.cron, zone, what)
        spec = ScheduleSpec(cron_expressions=[entry.cron], time_zone_name=zone)
        described["cron"] = entry.cron
    described["zone"] = zone
    catchup = entry.catchup_window or timedelta(days=365)
    described.update(
        workflow=workflow, task_queue=queue, execution_timeout=_seconds(execution_timeout),
        retry=None if retry is None else str(retry), overlap=entry.overlap.name, catchup=catchup.total_seconds(),
    )
    fingerprint = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:32]
    action = ScheduleActionStartWorkflow(
        workflow, args=args, id=sid, task_queue=queue, execution_timeout=execution_timeout, retry_policy=retry,
        memo={MEMO_KEY: {"app": app.name, "entry": entry.name, "fingerprint": fingerprint}},
    )
    schedule = Schedule(action=action, spec=spec, policy=SchedulePolicy(overlap=entry.overlap, catchup_window=catchup))
    return Desired(sid, entry, fingerprint, schedule)


def _check_cron(cron: str, zone: str, what: str) -> None:
    """A cron string as the server reads it (Temporal's cron syntax), refused here first so that
    a bad entry changes nothing."""
    from temporalio.api.schedule.v1 import ScheduleSpec as ScheduleSpecProto

    from odin.history.schedule_spec import InvalidScheduleSpec, compile_spec

    try:
        compile_spec(ScheduleSpecProto(cron_string=[cron], timezone_name=zone))
    except InvalidScheduleSpec as exc:
        raise ScheduleError(f"{what}: cron {cron!r}: {exc.reason}") from None


def all_desired(app: App) -> dict[str, Desired]:
    """Every entry of the app (``beat_schedule`` and ``app.schedule``), checked; ``ScheduleError``
    lists every bad one."""
    entries, errors = beat_entries(app)
    clash = sorted(set(app.conf.beat_schedule) & set(app.scheduled))
    if clash:
        errors.append(f"{', '.join(map(repr, clash))}: both a beat_schedule entry and an app.schedule name")
    found: dict[str, Desired] = {}
    for entry in [*entries, *app.scheduled.values()]:
        try:
            d = desired(app, entry)
        except ScheduleError as exc:
            errors.append(str(exc))
            continue
        found[d.id] = d
    if errors:
        raise ScheduleError("\n".join(errors))
    return found


# -- syncing --------------------------------------------------------------------------------------


def _owner(memo: Mapping[str, Any]) -> str | None:
    value = memo.get(MEMO_KEY)
    return value.get("app") if isinstance(value, Mapping) else None


async def _action_fingerprint(client: temporalio.client.Client, schedule: Schedule) -> str | None:
    action = schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow) or not action.memo or MEMO_KEY not in action.memo:
        return None
    raw = action.memo[MEMO_KEY]
    value = (await client.data_converter.decode([raw]))[0] if not isinstance(raw, Mapping) else raw
    return value.get("fingerprint") if isinstance(value, Mapping) else None


async def sync(app: App) -> SyncReport:
    """Make the namespace's schedules of ``app`` match its entries (see the module's doc)."""
    wanted = all_desired(app)  # before anything is sent: a bad entry changes nothing
    client = await app.client_async()
    prefix = schedule_id(app, "")
    report = SyncReport()
    listed = set()
    async for listing in await client.list_schedules():
        if listing.id.startswith(prefix):
            listed.add(listing.id)
    for sid, want in sorted(wanted.items()):
        outcome = await _ensure(app, client, want, exists=sid in listed)
        getattr(report, outcome).append(sid)
    for sid in sorted(listed - set(wanted)):
        handle = client.get_schedule_handle(sid)
        try:
            if _owner(await (await handle.describe()).memo()) != app.name:
                continue  # under the prefix, but not made by a sync of this app: not ours to remove
            await handle.delete()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:  # removed by another process meanwhile
                raise
            continue
        report.deleted.append(sid)
    return report


async def _ensure(app: App, client: temporalio.client.Client, want: Desired, *, exists: bool) -> str:
    """Create or update one schedule; ``created``, ``updated`` or ``unchanged``."""
    if not exists:
        try:
            await client.create_schedule(
                want.id, want.schedule, memo={MEMO_KEY: {"app": app.name, "entry": want.entry.name}}
            )
            return "created"
        except ScheduleAlreadyRunningError:
            pass  # made by another process since the listing: compare with it
    handle = client.get_schedule_handle(want.id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return await _ensure(app, client, want, exists=False)  # deleted since the listing
    owner = _owner(await description.memo())
    if owner != app.name:
        raise ScheduleError(
            f"schedule {want.id} exists and was not made for app {app.name} by odin beat"
            f"{f' (it belongs to {owner})' if owner else ''}: delete it, or rename the entry {want.entry.name!r}"
        )
    if await _action_fingerprint(client, description.schedule) == want.fingerprint:
        return "unchanged"

    def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
        # The entry's schedule; the state (paused or not, its note) stays as it is.
        state = current.description.schedule.state
        return ScheduleUpdate(schedule=Schedule(action=want.schedule.action, spec=want.schedule.spec,
                                                policy=want.schedule.policy, state=state))

    await handle.update(update)
    return "updated"
