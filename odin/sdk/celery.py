"""Celery on Odin: a Celery app's tasks run as Odin activities, unchanged, and its canvases (chains,
groups, chords) run as durable workflows.

    from odin.sdk import App
    from odin.sdk.celery import register_tasks, run
    from proj.celery import app as celery_app, add, mul

    app = App("proj")
    register_tasks(app, celery_app)          # each task becomes an activity named like the task

    run(add.s(2, 2) | mul.s(4), app).get(timeout=60)   # 16, as with Celery

``odin worker -A proj.durable:app`` runs the tasks and the canvas interpreter. A canvas becomes one
run of the workflow ``odin.celery.canvas``: its input is the canvas as plain JSON (``serialize``),
each task is an activity, each ``countdown`` a durable timer, so a canvas survives worker restarts
and deploys and no finished step runs twice. docs/migrating-from-celery.md has the option mapping.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import socket
import weakref
from collections.abc import Callable, Generator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import celery
import temporalio.activity
import temporalio.workflow
from billiard.einfo import ExceptionInfo
from celery import signature, states
from celery.app.trace import task_has_custom
from celery.canvas import Signature, _chain, _chord
from celery.exceptions import Retry as CeleryRetry
from temporalio.exceptions import ApplicationError

from odin.sdk import workflow
from odin.sdk._app import App
from odin.sdk._defs import ActivityFunction, WorkflowFunction
from odin.sdk._errors import OdinSdkError, failure_of
from odin.sdk._flow import celery_priority
from odin.sdk._handles import WorkflowHandle
from odin.sdk._options import Duration, Retry

__all__ = [
    "CANVAS_WORKFLOW",
    "CanvasError",
    "OdinChain",
    "OdinChord",
    "OdinGroup",
    "OdinSignature",
    "app_of",
    "chain",
    "chord",
    "group",
    "interpret",
    "prepare",
    "register_canvas_workflow",
    "register_tasks",
    "retry_for",
    "run",
    "run_async",
    "serialize",
]

CANVAS_WORKFLOW = "odin.celery.canvas"
SPEC_FORMAT = 1

# Celery sets no time limit by default; an activity needs one. A lost attempt is noticed by its
# missing heartbeats long before this.
DEFAULT_TIME_LIMIT = 3600.0
DEFAULT_HEARTBEAT_TIMEOUT = 30.0


class CanvasError(OdinSdkError, ValueError):
    """A canvas Odin cannot run: an unknown task, or a part or option it does not support."""


# -- tasks as activities ----------------------------------------------------------------------


def register_tasks(
    app: App,
    celery_app: celery.Celery,
    names: Iterable[str] | None = None,
    queue: str | None = None,
    *,
    heartbeat_timeout: Duration | None = DEFAULT_HEARTBEAT_TIMEOUT,
    default_time_limit: Duration = DEFAULT_TIME_LIMIT,
    beat: bool = True,
) -> dict[str, ActivityFunction]:
    """Register the tasks of ``celery_app`` (all but Celery's own ``celery.*``, or those ``names``)
    as activities of ``app`` named like the tasks, and the canvas workflow that ``run`` starts.

    A task runs in the worker's thread pool as Celery's worker would run it (``self.request``,
    ``self.retry()``, ``autoretry_for``, the ``on_*`` handlers), but nothing goes to a broker.
    Its activity runs on ``queue``, else the task's own ``queue``, else the app's queue. Retries
    and timeouts follow the task's options (``retry_for``, ``time_limit``); ``heartbeat_timeout``
    is how soon an attempt lost with its worker is tried again.

    With ``beat`` (the default) the Odin app also takes the Celery app's ``beat_schedule`` (its
    entries, beside those the Odin app has of its own, which win on a name), ``timezone`` and
    ``enable_utc`` (unless the Odin app set them): ``odin beat -A``/``odin worker -B`` turns them
    into schedules."""
    celery_app.loader.import_default_modules()  # what `celery worker` imports: include=, imports=
    tasks = celery_app.tasks
    if names is None:
        wanted = [name for name in tasks if not name.startswith("celery.")]
    else:
        wanted = list(names)
        missing = [name for name in wanted if name not in tasks or name.startswith("celery.")]
        if missing:
            raise KeyError(f"{celery_app.main or 'the Celery app'} has no task {', '.join(missing)}")
    conf = celery_app.conf
    router = _router(celery_app)
    registered = {}
    for name in sorted(wanted):
        task = tasks[name]
        limit = task.time_limit or conf.task_time_limit or task.soft_time_limit or conf.task_soft_time_limit
        route = _route(router, task)
        try:
            registered[name] = app.activity(
                _task_body(task),
                name=name,
                queue=queue or getattr(task, "queue", None) or _queue_of(route),
                retry=retry_for(task),
                start_to_close_timeout=limit or default_time_limit,
                heartbeat_timeout=heartbeat_timeout,
                rate_limit=task.rate_limit if task.rate_limit is not None else conf.task_default_rate_limit,
                priority=celery_priority(_task_priority(task, route, conf), _highest_first(celery_app)),
                expires=_expires(getattr(task, "expires", None), name),
                concurrency_key=_unbound(getattr(task, "concurrency_key", None), task),
                max_concurrency=getattr(task, "max_concurrency", None),
            )
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"task {name}: {exc}") from None
        _HIGHEST_FIRST[registered[name]] = _highest_first(celery_app)
    register_canvas_workflow(app)
    if beat:
        for entry_name, entry in (conf.beat_schedule or {}).items():
            app.conf.beat_schedule.setdefault(entry_name, entry)
        if app.conf.timezone is None and conf.timezone:
            app.conf.timezone = str(conf.timezone)
        if app.conf.enable_utc is None:
            app.conf.enable_utc = bool(conf.enable_utc)
    return registered


# Whether Celery priority 0 is the highest for each registered task (by its Celery app's broker).
_HIGHEST_FIRST: weakref.WeakKeyDictionary[ActivityFunction[..., Any], bool] = weakref.WeakKeyDictionary()


def routed_queue(celery_app: celery.Celery, task: celery.Task) -> str | None:
    """The queue ``task_routes`` sends ``task`` to (its dict, glob, regex and function forms, as
    Celery's router reads them), or None. Routes are looked up by the task's name alone: a router
    function deciding by the arguments sees none."""
    return _queue_of(_route(_router(celery_app), task))


def _router(celery_app: celery.Celery) -> Any:
    """Celery's router for the current ``task_routes`` (``amqp.router`` keeps those it first saw)."""
    celery_app.amqp.flush_routes()
    return celery_app.amqp.Router()


def _route(router: Any, task: celery.Task) -> dict[str, Any]:
    """The route ``task_routes`` gives ``task`` (read when the router was made)."""
    if not router.routes:
        return {}
    route = router.lookup_route(task.name, (), {}, {}, task)
    return router.expand_destination(route) if route else {}


def _queue_of(route: dict[str, Any]) -> str | None:
    destination = route.get("queue")
    return None if destination is None else str(getattr(destination, "name", destination))


def _task_priority(task: celery.Task, route: dict[str, Any], conf: Any) -> int | None:
    """The task's priority (a deprecated task attribute), else its route's, else the default."""
    for priority in (getattr(task, "priority", None), route.get("priority"), conf.task_default_priority):
        if priority is not None:
            return int(priority) if isinstance(priority, int) else priority
    return None


def _highest_first(celery_app: celery.Celery) -> bool:
    """Whether 0 is the highest Celery priority: on Redis and SQS, not on RabbitMQ (AMQP)."""
    broker = str(celery_app.conf.broker_url or "")
    return not broker.startswith(("amqp", "pyamqp", "librabbitmq"))


def _unbound(value: Any, task: celery.Task) -> Any:
    """A function given as a task option is a class attribute, read back bound to the task."""
    return value.__func__ if inspect.ismethod(value) and value.__self__ is task else value


def _expires(value: Any, what: str) -> float | None:
    """Celery's ``expires`` of a task definition: seconds after it was sent (a date cannot be one)."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expires of {what} must be seconds, not {value!r}")
    return float(value)


def retry_for(task: celery.Task) -> Retry:
    """The Odin retry policy of a Celery task: ``max_retries`` + 1 attempts (None: no limit),
    ``default_retry_delay`` between them, or ``retry_backoff``'s exponential back-off (capped at
    ``retry_backoff_max``) for ``autoretry_for``. Celery's own retry code still picks each delay
    (jitter, ``countdown=``); this policy bounds the attempts and times retries after a lost
    worker or a time limit."""
    retry_kwargs = getattr(task, "retry_kwargs", None) or {}
    autoretry = bool(getattr(task, "autoretry_for", ()))
    max_retries = task.max_retries
    if autoretry and "max_retries" in retry_kwargs:
        override = retry_kwargs["max_retries"]
        max_retries = None if None in (override, max_retries) else max(override, max_retries)
    attempts = 0 if max_retries is None else max_retries + 1
    backoff = float(getattr(task, "retry_backoff", False))
    if autoretry and backoff:
        factor = int(max(1.0, backoff))  # as celery.app.autoretry computes it
        return Retry(max_attempts=attempts, initial_interval=factor, backoff=2.0,
                     max_interval=int(getattr(task, "retry_backoff_max", 600)))
    delay = retry_kwargs.get("countdown", task.default_retry_delay) if autoretry else task.default_retry_delay
    return Retry(max_attempts=attempts, initial_interval=delay, backoff=1.0)


def _task_body(task: celery.Task) -> Callable[..., Any]:
    """The activity's function: runs ``task`` like Celery's worker does — inside a request of
    its own, calling ``run`` (or ``__call__`` when the task class overrides it)."""
    call = task if task_has_custom(task, "__call__") else task.run

    def run_task(*args: Any, **kwargs: Any) -> Any:
        if not temporalio.activity.in_activity():
            return task(*args, **kwargs)  # called directly, as a Celery task can be
        info = temporalio.activity.info()
        task_id = f"{info.workflow_id}:{info.activity_id}"  # kept across retries, like Celery's id
        task.push_request(
            id=task_id,
            root_id=info.workflow_id,
            task=task.name,
            args=list(args),
            kwargs=dict(kwargs),
            retries=info.attempt - 1,
            # Eager: executed here rather than delivered, so self.retry() raises Retry instead of
            # sending the task to a broker again; Odin schedules the next attempt.
            is_eager=True,
            called_directly=False,
            hostname=socket.gethostname(),
            delivery_info={"routing_key": info.task_queue, "is_eager": True},
        )
        try:
            task.before_start(task_id, args, kwargs)
            result = call(*args, **kwargs)
        except CeleryRetry as retry:
            einfo = ExceptionInfo()
            task.on_retry(retry.exc, task_id, args, kwargs, einfo)
            task.after_return(states.RETRY, retry, task_id, args, kwargs, einfo)
            raise _retry_error(task, retry, args, kwargs) from retry.exc
        except Exception as exc:
            einfo = ExceptionInfo()
            task.on_failure(exc, task_id, args, kwargs, einfo)
            task.after_return(states.FAILURE, exc, task_id, args, kwargs, einfo)
            # Celery fails a task that raises without asking for a retry; so does Odin.
            raise failure_of(exc, non_retryable=True) from exc
        else:
            task.on_success(result, task_id, args, kwargs)
            task.after_return(states.SUCCESS, result, task_id, args, kwargs, None)
            return result
        finally:
            task.pop_request()

    run_task.__name__ = run_task.__qualname__ = task.name
    run_task.__doc__ = task.__doc__
    return run_task


def _retry_error(task: celery.Task, retry: CeleryRetry, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ApplicationError:
    if retry.sig is not None and (list(retry.sig.args) != list(args) or dict(retry.sig.kwargs) != kwargs):
        return ApplicationError(
            f"{task.name} asked to be retried with other arguments, which Odin does not support "
            "(an attempt always gets the step's arguments)",
            type="Retry",
            non_retryable=True,
        )
    if isinstance(retry.when, datetime):
        when = retry.when if retry.when.tzinfo else retry.when.replace(tzinfo=UTC)
        delay = (when - datetime.now(UTC)).total_seconds()
    elif retry.when is not None:
        delay = float(retry.when)
    else:
        delay = float(task.default_retry_delay)
    # A zero delay on the wire means "use the policy's"; a millisecond is Celery's "now".
    return ApplicationError(str(retry), type="Retry", next_retry_delay=timedelta(seconds=max(delay, 0.001)))


# -- canvas -> JSON ---------------------------------------------------------------------------

# How Celery delivers a message: nothing to do for an activity (ids, routing, serialization,
# publish retries), so dropped. Any option not here nor understood below is refused.
_DELIVERY_OPTIONS = frozenset({
    "task_id", "reply_to", "group_id", "group_index", "root_id", "parent_id", "chord",
    "routing_key", "exchange", "exchange_type", "serializer", "compression", "retry", "retry_policy",
    "headers", "ignore_result", "add_to_parent", "shadow", "stamped_headers", "stamps", "delivery_mode",
})
_STEP_OPTIONS = frozenset({"countdown", "eta", "queue", "link", "link_error"})
_TASK_OPTIONS = _STEP_OPTIONS | {"time_limit", "soft_time_limit", "priority", "expires"}
# Celery's built-in tasks behind task.map(), task.starmap() and task.chunks(): steps of their own.
_BUILTINS = {"celery.map": "map", "celery.starmap": "starmap", "celery.chunks": "chunks"}


def serialize(canvas: Signature | dict[str, Any]) -> dict[str, Any]:
    """A Celery canvas (a signature, chain, group or chord, nested as you like; or its dict form)
    as the JSON input of the canvas workflow. ``CanvasError`` for what Odin cannot run."""
    spec = {"format": SPEC_FORMAT, "canvas": _node(canvas, None)}
    try:
        json.dumps(spec)
    except (TypeError, ValueError) as exc:
        raise CanvasError(f"a canvas's arguments must be JSON values: {exc}") from None
    return spec


def _node(sig: Any, queue: str | None) -> dict[str, Any]:
    """One step: ``{"type": "task" | "chain" | "group" | "chord", ...}``. A composite's ``queue``
    is the default of the tasks in it."""
    if not isinstance(sig, dict):
        raise CanvasError(f"not a Celery signature: {sig!r}")
    kind = sig.get("subtask_type")
    node = _step_options(sig, _TASK_OPTIONS if kind is None else _STEP_OPTIONS)
    queue = node.pop("queue", None) or queue
    if kind is None and sig.get("task") in _BUILTINS:
        return {**_builtin(sig), **node, **({"queue": queue} if queue else {})}
    if kind is None:
        return {"type": "task", **_task(sig), **node, **({"queue": queue} if queue else {})}
    inner = sig.get("kwargs") or {}
    if sig.get("args") or inner.get("kwargs"):
        raise CanvasError(f"partial arguments on a {kind} are not supported: give them to its tasks")
    if kind == "chain":
        steps = [_node(_unroll_single(step), queue) for step in _listed(inner.get("tasks", ()))]
        if not steps:
            raise CanvasError("an empty chain does nothing: leave it out")
        return {"type": "chain", "steps": steps, **node}
    if kind == "group":
        return {"type": "group", "tasks": _members(inner.get("tasks", ()), queue), **node}
    if kind == "chord":
        if inner.get("body") is None:
            raise CanvasError("a chord needs a body")
        header = _members(inner.get("header", ()), queue)
        return {"type": "chord", "header": header, "body": _node(inner["body"], queue), **node}
    raise CanvasError(f"{kind} canvases are not supported: use a group of signatures")


def _task(sig: dict[str, Any]) -> dict[str, Any]:
    name = sig.get("task")
    if not isinstance(name, str) or not name:
        raise CanvasError(f"a signature without a task name: {sig!r}")
    return {"task": name, "args": list(sig.get("args") or ()), "kwargs": dict(sig.get("kwargs") or {})}


def _builtin(sig: dict[str, Any]) -> dict[str, Any]:
    """``task.map(it)``, ``task.starmap(it)``, ``task.chunks(it, n)``: ``{"type": "map" |
    "starmap" | "chunks", "task", "it"(, "n")}``. As in Celery, the task is called with each item
    (``map``) or each item's elements (``starmap``) only, its own arguments ignored."""
    kind = _BUILTINS[sig["task"]]
    inner = sig.get("kwargs") or {}
    task = inner.get("task")
    name = task.get("task") if isinstance(task, dict) else None
    if not isinstance(name, str) or not name:
        raise CanvasError(f"{kind}() needs a task signature, not {task!r}")
    items = list(inner.get("it") or ())
    if kind != "map" and not all(isinstance(item, (list, tuple)) for item in items):
        raise CanvasError(f"{kind}() takes a list of argument lists, not {items!r}")
    node: dict[str, Any] = {"type": kind, "task": name, "it": [list(i) if isinstance(i, tuple) else i for i in items]}
    if kind == "chunks":
        n = inner.get("n")
        if not isinstance(n, int) or n < 1:
            raise CanvasError(f"chunks() needs a chunk size of 1 or more, not {n!r}")
        node["n"] = n
    return node


def _callbacks(value: Any) -> list[dict[str, Any]]:
    """A ``link``/``link_error`` option: one signature or a list of them."""
    listed = value if isinstance(value, (list, tuple)) else [value]
    return [_node(cb, None) for cb in listed if cb is not None]


def _step_options(sig: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    """What a step's options ask for: ``immutable``, ``countdown``/``eta`` (a delay before it
    starts), ``queue``, ``link``/``link_error`` callbacks, and for a task
    ``time_limit``/``soft_time_limit``."""
    what = sig.get("task") if sig.get("subtask_type") is None else f"a {sig['subtask_type']}"
    options = {k: v for k, v in (sig.get("options") or {}).items() if k not in _DELIVERY_OPTIONS}
    refused = sorted(set(options) - allowed)
    if refused:
        raise CanvasError(f"option {', '.join(refused)} on {what} is not supported")
    node: dict[str, Any] = {"immutable": True} if sig.get("immutable") else {}
    for option in ("link", "link_error"):
        callbacks = _callbacks(options.get(option)) if options.get(option) else []
        if callbacks:
            node[option] = callbacks
    if options.get("countdown"):  # Celery's countdown wins over an eta given too
        node["countdown"] = float(options["countdown"])
    elif options.get("eta"):
        node["eta"] = _utc_iso(options["eta"], what)
    limit = options.get("time_limit") or options.get("soft_time_limit")
    if limit:
        node["time_limit"] = float(limit)
    if options.get("queue"):
        node["queue"] = str(options["queue"])
    if options.get("priority") is not None:
        priority = options["priority"]
        if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
            raise CanvasError(f"priority of {what} runs from 0 to 9, not {priority!r}")
        node["priority"] = priority
    if options.get("expires") is not None:
        expires = options["expires"]
        if isinstance(expires, datetime | str):
            node["expires_at"] = _utc_iso(expires, what, "expires")
        elif isinstance(expires, int | float) and not isinstance(expires, bool) and expires > 0:
            node["expires"] = float(expires)
        else:
            raise CanvasError(f"expires of {what} must be positive seconds or a date and time, not {expires!r}")
    return node


def _utc_iso(eta: datetime | str, what: object, option: str = "eta") -> str:
    try:
        when = datetime.fromisoformat(eta) if isinstance(eta, str) else eta
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()
    except (TypeError, ValueError, AttributeError):
        raise CanvasError(f"{option} of {what} is not a date and time: {eta!r}") from None


def _listed(tasks: Any) -> list[Any]:
    """The tasks of a chain or group, or a chord's header: a list, or in dict form maybe a group
    or a single signature."""
    if isinstance(tasks, dict):
        return list(tasks["kwargs"]["tasks"]) if tasks.get("subtask_type") == "group" else [tasks]
    return list(tasks)


def _members(tasks: Any, queue: str | None) -> list[dict[str, Any]]:
    """A group's members. A group inside a group adds its members to it, as Celery does."""
    members = []
    for member in _listed(tasks):
        if isinstance(member, dict) and member.get("subtask_type") == "group":
            if _step_options(member, _STEP_OPTIONS) or member.get("args"):
                raise CanvasError("options on a group inside a group are not supported (Celery merges the two groups)")
            members.extend(_members(_listed(member), queue))
        else:
            members.append(_node(member, queue))
    return members


def _unroll_single(step: Any) -> Any:
    """A chain step that is a group: a one-member group is that member (Celery's
    ``maybe_unroll_group``); an empty one is refused (Celery skips it or fails, by position)."""
    if not (isinstance(step, dict) and step.get("subtask_type") == "group"):
        return step
    tasks = _listed(step)
    if not tasks:
        raise CanvasError("an empty group in a chain is not supported: leave it out")
    if len(tasks) == 1 and not _step_options(step, _STEP_OPTIONS):
        return tasks[0]
    return step


# -- binding a canvas to an app -----------------------------------------------------------------


def prepare(canvas: Signature | dict[str, Any], app: App) -> dict[str, Any]:
    """``serialize`` and check the canvas against ``app``: every task must be one of its
    activities (whose options — queue, timeouts, retries — are written into the spec) or one of
    its workflows (run as a child workflow)."""
    if not isinstance(app, App):
        raise TypeError(
            f"run() takes the Odin app the tasks are registered on (odin.sdk.App), not {type(app).__name__}"
            + (": a Celery app named `app` may have shadowed it" if isinstance(app, celery.Celery) else "")
        )
    spec = serialize(canvas)
    unknown: list[str] = []
    for node in _task_nodes(spec["canvas"]):
        activity = app.activities.get(node["task"])
        if activity is not None:
            node["activity"] = _activity_options(activity, node)
        elif node["type"] == "task" and node["task"] in app.workflows:
            node["workflow"] = _workflow_options(app.workflows[node["task"]], node)
        else:
            unknown.append(node["task"])
    if unknown:
        raise CanvasError(
            f"unknown task {', '.join(sorted(set(unknown)))}: not an activity or workflow of {app.name} "
            "(register_tasks registers a Celery app's tasks)"
        )
    return spec


def _task_nodes(node: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """The steps that name a task (tasks, maps, starmaps, chunks), callbacks included."""
    for callback in (*node.get("link", ()), *node.get("link_error", ())):
        yield from _task_nodes(callback)
    if "task" in node:
        yield node
        return
    children = {"chain": "steps", "group": "tasks", "chord": "header"}[node["type"]]
    for child in node[children]:
        yield from _task_nodes(child)
    if node["type"] == "chord":
        yield from _task_nodes(node["body"])


def _seconds(duration: timedelta | None) -> float | None:
    return duration.total_seconds() if duration is not None else None


def _activity_options(activity: ActivityFunction[..., Any], node: dict[str, Any]) -> dict[str, Any]:
    options = {
        "queue": node.pop("queue", None) or activity.queue,
        "start_to_close_timeout": node.pop("time_limit", None) or _seconds(activity.start_to_close_timeout),
        "schedule_to_close_timeout": _seconds(activity.schedule_to_close_timeout),
        "heartbeat_timeout": _seconds(activity.heartbeat_timeout),
        # Celery's expires: not started this soon after it is scheduled, the step is dropped.
        "expires": node.pop("expires", None) or _seconds(activity.expires),
    }
    if "priority" in node:
        chosen = celery_priority(node.pop("priority"), _HIGHEST_FIRST.get(activity, True))
        options["priority"] = chosen.priority_key if chosen is not None else None
    elif activity.priority is not None:
        options["priority"] = activity.priority.priority_key
    policy = activity.retry
    if policy is not None:
        options["retry"] = {
            "max_attempts": policy.maximum_attempts,
            "initial_interval": _seconds(policy.initial_interval),
            "backoff": policy.backoff_coefficient,
            "max_interval": _seconds(policy.maximum_interval),
            "non_retryable": list(policy.non_retryable_error_types or ()),
        }
    return {k: v for k, v in options.items() if v is not None}


def _workflow_options(wf: WorkflowFunction[..., Any], node: dict[str, Any]) -> dict[str, Any]:
    options = {
        "queue": node.pop("queue", None) or wf.queue,
        "execution_timeout": node.pop("time_limit", None) or _seconds(wf.execution_timeout),
    }
    return {k: v for k, v in options.items() if v is not None}


def _with_partial(node: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Celery's partial arguments of ``apply_async(args, kwargs)``, in place: before a task's own
    arguments (kwargs merged over its own) unless it is immutable; a chain's first step, every
    member of a group and of a chord's header take them."""
    if not args and not kwargs:
        return
    kind = node["type"]
    if kind == "task":
        if not node.get("immutable"):
            node["args"] = [*args, *node["args"]]
            node["kwargs"] = {**node["kwargs"], **kwargs}
    elif kind == "chain":
        _with_partial(node["steps"][0], args, kwargs)
    elif kind in ("group", "chord"):
        for member in node["tasks" if kind == "group" else "header"]:
            _with_partial(member, args, kwargs)


# -- the interpreter workflow -------------------------------------------------------------------


async def interpret(spec: dict[str, Any]) -> Any:
    """The canvas workflow: runs a ``serialize``d canvas. Only the workflow API is used, so it
    replays deterministically; the canvas's result is its result."""
    if spec.get("format") != SPEC_FORMAT:
        raise ApplicationError(f"canvas format {spec.get('format')!r} is not {SPEC_FORMAT}", non_retryable=True)
    return await _run(spec["canvas"], ())


async def _run(node: dict[str, Any], incoming: tuple[Any, ...]) -> Any:
    """Run one step with its callbacks: ``link``s after it succeeded, with its result (their
    failures are logged, as Celery's do not fail the step); ``link_error``s after it failed,
    then its error goes on."""
    try:
        result = await _step(node, incoming)
    except Exception as exc:
        for errback in node.get("link_error", ()):
            await _callback(errback, _errback_args(node, incoming, exc), "link_error")
        raise
    for callback in node.get("link", ()):
        await _callback(callback, (result,), "link")
    return result


def _errback_args(node: dict[str, Any], incoming: tuple[Any, ...], exc: Exception) -> tuple[Any, ...]:
    """What a (mutable) errback gets, after Celery's ``errback(request, exc, traceback)``, as JSON:
    the failed step's request, its error (type and message) and the remote stack trace."""
    root: BaseException | None = exc
    while root is not None and root.__cause__ is not None:
        root = root.__cause__
    failure = root if isinstance(root, ApplicationError) else None
    request = {
        "id": workflow.info().workflow_id,
        "task": node.get("task", node["type"]),
        "args": [*incoming, *node.get("args", ())],
        "kwargs": node.get("kwargs", {}),
    }
    error = {
        "type": failure.type if failure is not None else type(exc).__name__,
        "message": failure.message if failure is not None else str(exc),
    }
    trace = failure.failure.stack_trace if failure is not None and failure.failure is not None else ""
    return request, error, trace


async def _callback(node: dict[str, Any], args: tuple[Any, ...], what: str) -> None:
    try:
        await _run(node, args)
    except Exception as exc:
        temporalio.workflow.logger.warning("%s callback %s failed: %s", what, node.get("task", node["type"]), exc)


async def _step(node: dict[str, Any], incoming: tuple[Any, ...]) -> Any:
    """Run one step; ``incoming`` is the previous step's result (as a 1-tuple) or nothing."""
    if node.get("immutable"):
        incoming = ()
    await _wait(node)
    kind = node["type"]
    if kind == "task":
        if "workflow" in node:
            return await workflow.execute_child(
                node["task"], *incoming, *node["args"], kwargs=node["kwargs"], **node["workflow"]
            )
        return await _activity(node, *incoming, *node["args"], kwargs=node["kwargs"])
    if kind in ("map", "starmap"):
        # One after the other, as Celery's map task calls the task on each item in turn.
        return [await _activity(node, *(item if kind == "starmap" else (item,))) for item in node["it"]]
    if kind == "chunks":
        parts = [node["it"][i : i + node["n"]] for i in range(0, len(node["it"]), node["n"])]
        return await _run_all([{**node, "type": "starmap", "it": part} for part in parts], ())
    if kind == "chain":
        result = None
        for step in node["steps"]:
            result = await _run(step, incoming)
            incoming = (result,)
        return result
    if kind == "group":
        return await _run_all(node["tasks"], incoming)
    if kind == "chord":
        return await _run(node["body"], (await _run_all(node["header"], incoming),))
    raise ApplicationError(f"unknown canvas step {kind!r}", non_retryable=True)


async def _activity(node: dict[str, Any], *args: Any, kwargs: dict[str, Any] | None = None) -> Any:
    if "activity" not in node:
        raise ApplicationError(f"{node['task']} has no activity options: prepare() the canvas", non_retryable=True)
    options = dict(node["activity"])
    if "retry" in options:
        options["retry"] = Retry(**options["retry"])
    if "expires_at" in node:  # an expiry date: what is left of it when the step is scheduled
        left = (datetime.fromisoformat(node["expires_at"]) - workflow.now()).total_seconds()
        options["expires"] = max(left, 0.001)
    return await workflow.execute_activity(node["task"], *args, kwargs=kwargs, **options)


async def _wait(node: dict[str, Any]) -> None:
    if "countdown" in node:
        delay = node["countdown"]
    elif "eta" in node:
        delay = (datetime.fromisoformat(node["eta"]) - workflow.now()).total_seconds()
    else:
        return
    if delay > 0:
        await workflow.sleep(delay)


async def _run_all(nodes: list[dict[str, Any]], incoming: tuple[Any, ...]) -> list[Any]:
    """Members side by side; like Celery's group, every member runs to its end and the first
    failure in member order is the group's."""
    results = await asyncio.gather(*(_run(n, incoming) for n in nodes), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)


def register_canvas_workflow(app: App) -> WorkflowFunction[[dict[str, Any]], Any]:
    """Register the canvas workflow on ``app`` (``register_tasks`` and the worker do it) so its
    workers run it."""
    if CANVAS_WORKFLOW not in app.workflows:
        app.workflow(interpret, name=CANVAS_WORKFLOW)
    return app.workflows[CANVAS_WORKFLOW]


# -- running a canvas -----------------------------------------------------------------------

# Celery's apply_async options a started canvas takes: the run's id, its queue and a delay.
_START_OPTIONS = frozenset({"task_id", "queue", "countdown", "eta", "link", "link_error"})


def _start_spec(
    canvas: Signature | dict[str, Any],
    app: App,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The spec of a canvas started with Celery's ``apply_async(args, kwargs, **options)``, and
    the start's own options (id, queue, delay)."""
    options = {k: v for k, v in (options or {}).items() if v is not None and k not in _DELIVERY_OPTIONS - {"task_id"}}
    refused = sorted(set(options) - _START_OPTIONS)
    if refused:
        raise CanvasError(f"apply_async option {', '.join(refused)} is not supported for a canvas")
    callbacks = {k: options.pop(k) for k in ("link", "link_error") if k in options}
    if callbacks:
        canvas = (canvas.clone() if isinstance(canvas, Signature) else signature(canvas)).set(**callbacks)
    spec = prepare(canvas, app)
    _with_partial(spec["canvas"], tuple(args), dict(kwargs or {}))
    if spec["canvas"]["type"] == "task":  # one step on its own: its arguments are all there
        _check_call(app, spec["canvas"])
    start: dict[str, Any] = {"id": options.get("task_id"), "queue": options.get("queue")}
    if options.get("countdown"):
        start["start_delay"] = float(options["countdown"])
    elif options.get("eta"):
        when = datetime.fromisoformat(_utc_iso(options["eta"], "the canvas"))
        start["start_delay"] = max((when - datetime.now(UTC)).total_seconds(), 0.0)
    return spec, start


def _check_call(app: App, node: dict[str, Any]) -> None:
    """A task started on its own: ``TypeError`` now if its arguments do not fit."""
    fn = app.activities.get(node["task"]) or app.workflows[node["task"]]
    fn.check_call(node["args"], node["kwargs"])


async def run_async(
    canvas: Signature | dict[str, Any], app: App, *, id: str | None = None, queue: str | None = None
) -> WorkflowHandle[Any]:
    """Start ``canvas`` as one durable workflow run on ``app``; returns its handle, whose result
    is the canvas's. ``id`` is the workflow id; ``queue`` the task queue it runs on (else the
    app's), where the tasks without a queue of their own run too. ``CanvasError`` before anything
    starts if a task is unknown or a part is not supported."""
    spec = prepare(canvas, app)
    return await register_canvas_workflow(app).start_async(spec, id=id, queue=queue)


def run(
    canvas: Signature | dict[str, Any], app: App, *, id: str | None = None, queue: str | None = None
) -> WorkflowHandle[Any]:
    """``run_async`` for blocking code: ``run(chain(...), app).get(timeout=60)``."""
    spec = prepare(canvas, app)
    return register_canvas_workflow(app).start(spec, id=id, queue=queue)


# -- Odin's own signatures ---------------------------------------------------------------------

# The apps whose workflows and activities made signatures: a canvas is started on the app that
# has every task it names. Workflow code has apps of its own (the sandbox re-imports their
# modules), kept apart: they know the definitions but not where the server is.
_APPS: weakref.WeakSet[App] = weakref.WeakSet()
_WORKFLOW_APPS: weakref.WeakSet[App] = weakref.WeakSet()


def _apps() -> weakref.WeakSet[App]:
    return _WORKFLOW_APPS if temporalio.workflow.in_workflow() else _APPS


def app_of(canvas: Signature | dict[str, Any]) -> App:
    """The Odin app that has every task ``canvas`` names."""
    names = {node["task"] for node in _task_nodes(serialize(canvas)["canvas"])}
    for app in list(_apps()):
        if all(name in app.activities or name in app.workflows for name in names):
            return app
    raise CanvasError(f"no Odin app has all of {', '.join(sorted(names))}: start it with run(canvas, app)")


class _OnOdin:
    """What Odin's canvases add to Celery's: ``delay``/``apply_async`` start them as one durable
    workflow run (a ``WorkflowHandle``); inside a workflow ``await canvas`` runs them in it."""

    def apply_async(
        self, args: tuple[Any, ...] | list[Any] | None = None, kwargs: dict[str, Any] | None = None, **options: Any
    ) -> WorkflowHandle[Any]:
        canvas = cast(Signature, self)
        app = options.pop("app", None) or app_of(canvas)
        spec, start = _start_spec(canvas, app, tuple(args or ()), kwargs, options)
        return register_canvas_workflow(app).start(spec, **start)

    async def apply_async_async(
        self, args: tuple[Any, ...] | list[Any] | None = None, kwargs: dict[str, Any] | None = None, **options: Any
    ) -> WorkflowHandle[Any]:
        canvas = cast(Signature, self)
        app = options.pop("app", None) or app_of(canvas)
        spec, start = _start_spec(canvas, app, tuple(args or ()), kwargs, options)
        return await register_canvas_workflow(app).start_async(spec, **start)

    def delay(self, *args: Any, **kwargs: Any) -> WorkflowHandle[Any]:
        return self.apply_async(args, kwargs)

    def __await__(self) -> Generator[Any, None, Any]:
        if not temporalio.workflow.in_workflow():
            raise TypeError("await a canvas inside a workflow; outside one, start it with .delay() or .apply_async()")
        canvas = cast(Signature, self)
        return interpret(prepare(canvas, app_of(canvas))).__await__()

    def __or__(self, other: Any) -> Any:
        return odin_canvas(super().__or__(other))  # type: ignore[misc]


class OdinSignature(_OnOdin, Signature):  # type: ignore[misc]  # Celery is untyped
    """A workflow's or activity's signature (``.s()``, ``.si()``): Celery's ``Signature``, run on Odin."""


class OdinChain(_OnOdin, _chain):  # type: ignore[misc]
    pass


class OdinGroup(_OnOdin, celery.group):  # type: ignore[misc]
    pass


class OdinChord(_OnOdin, _chord):  # type: ignore[misc]
    pass


_ODIN_TYPES: dict[type, type] = {Signature: OdinSignature, _chain: OdinChain, celery.group: OdinGroup, _chord: OdinChord}


def odin_canvas(canvas: Any) -> Any:
    """``canvas`` (Celery's ``|`` of Odin signatures) as the Odin class of its kind."""
    odin_type = _ODIN_TYPES.get(type(canvas))
    if odin_type is not None:
        canvas.__class__ = odin_type
    return canvas


def chain(*tasks: Any, **options: Any) -> Any:
    """Celery's ``chain``, started on Odin: ``chain(a.s(1), b.s()).delay()``."""
    return odin_canvas(celery.chain(*tasks, **options))


def group(*tasks: Any, **options: Any) -> Any:
    """Celery's ``group``, started on Odin."""
    return odin_canvas(celery.group(*tasks, **options))


def chord(header: Any, body: Any = None, **options: Any) -> Any:
    """Celery's ``chord``, started on Odin: ``chord([a.s(1), a.s(2)], total.s()).delay()``."""
    return odin_canvas(celery.chord(header, body, **options))


def signature_of(
    fn: ActivityFunction[..., Any] | WorkflowFunction[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    immutable: bool = False,
) -> OdinSignature:
    """``fn.s(*args, **kwargs)`` (``fn.si`` with ``immutable``)."""
    _apps().add(fn.app)
    return OdinSignature(fn.name, args, kwargs, immutable=immutable)


def builtin_signature(name: str, fn: ActivityFunction[..., Any], *params: Any) -> OdinSignature:
    """``fn.map(it)``, ``fn.starmap(it)``, ``fn.chunks(it, n)``: Celery's built-in tasks' signatures."""
    _apps().add(fn.app)
    inner = signature_of(fn, (), {})
    kwargs = {"task": inner, "it": list(params[0])} | ({"n": params[1]} if name == "celery.chunks" else {})
    return OdinSignature(name, (), kwargs, immutable=True)
