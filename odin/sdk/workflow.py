"""What workflow code may call. Workflows are ``async def`` functions run by a deterministic
event loop that replays their history into commands: everything that depends on time, chance or
the outside world goes through here (or through an activity).

    from odin.sdk import workflow

    @app.workflow
    async def onboarding(user_id: str) -> str:
        workflow.on_signal("verified", lambda: state.update(verified=True))
        await workflow.sleep(timedelta(days=3))          # durable: survives restarts and deploys
        if await workflow.wait_condition(lambda: state["verified"], timeout=3600):
            return await send_welcome(user_id)             # an activity
        workflow.continue_as_new(user_id)

Calling ``time.time()``, ``datetime.now()``, ``random.random()`` or blocking I/O in workflow code is
refused (the workflow task fails with an error naming the call): use ``now()``, ``random()``,
``uuid4()`` and activities instead.
"""

from __future__ import annotations

import asyncio
import random as _random
import uuid as _uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, NoReturn, TypeVar, Unpack, overload

import temporalio.workflow as _tw
from temporalio.exceptions import is_cancelled_exception
from temporalio.workflow import (  # noqa: F401  # noqa: F401
    ActivityCancellationType,
    ChildWorkflowCancellationType,
    NondeterminismError,
    ParentClosePolicy,
    info,
    query,
    run,
    signal,
    update,
)

from odin.sdk._defs import ActivityFunction, WorkflowFunction, pack_args
from odin.sdk._flow import check_priority
from odin.sdk._options import (
    ActivityCallOptions,
    ChildOptions,
    ContinueAsNewOptions,
    Duration,
    as_timedelta,
    retry_policy,
)

T = TypeVar("T")

__all__ = [
    "CancellationScope",
    "continue_as_new",
    "execute_activity",
    "execute_child",
    "info",
    "is_replaying",
    "now",
    "on_query",
    "on_signal",
    "on_update",
    "random",
    "run",
    "shield",
    "signal_external",
    "sleep",
    "start_activity",
    "start_child",
    "uuid4",
    "wait_condition",
]


# -- time, chance, identity -----------------------------------------------------------------


def now() -> datetime:
    """The workflow's current time (the time of the task being run; the same on replay)."""
    return _tw.now()


def random() -> _random.Random:
    """A random generator seeded from the run, so replays draw the same numbers."""
    return _tw.random()


def uuid4() -> _uuid.UUID:
    """A UUID that replays the same."""
    return _tw.uuid4()


async def sleep(duration: Duration) -> None:
    """A durable timer: the workflow may be unloaded meanwhile and resumes when it fires."""
    await _tw.sleep(as_timedelta(duration))


async def wait_condition(condition: Callable[[], bool], timeout: Duration | None = None) -> bool:
    """Wait until ``condition()`` is true (re-checked after each event); False on timeout."""
    try:
        await _tw.wait_condition(condition, timeout=as_timedelta(timeout))
    except TimeoutError:
        return False
    return True


# -- activities and children ----------------------------------------------------------------


def _activity_call(
    activity: ActivityFunction[..., Any] | str, args: Sequence[Any], kwargs: Mapping[str, Any], options: Mapping[str, Any]
) -> tuple[str, list[Any], dict[str, Any]]:
    base: Mapping[str, Any] = activity.options() if isinstance(activity, ActivityFunction) else {}
    name = activity.name if isinstance(activity, ActivityFunction) else activity
    merged = {**base, **{k: v for k, v in options.items() if v is not None}}
    for key in ("start_to_close_timeout", "schedule_to_close_timeout", "schedule_to_start_timeout", "heartbeat_timeout"):
        if key in merged:
            merged[key] = as_timedelta(merged[key])
    if "retry" in merged:
        merged["retry_policy"] = retry_policy(merged.pop("retry"))
    if "queue" in merged:
        merged["task_queue"] = merged.pop("queue")
    if "expires" in merged:  # Celery's name for it
        merged["schedule_to_start_timeout"] = as_timedelta(merged.pop("expires"))
    if "priority" in merged:
        merged["priority"] = check_priority(merged["priority"])
    if not merged.get("start_to_close_timeout") and not merged.get("schedule_to_close_timeout"):
        merged["start_to_close_timeout"] = timedelta(minutes=5)
    return name, pack_args(args, kwargs), merged


# Typed by the activity given (its result), or untyped by name.
@overload
async def execute_activity(
    activity: ActivityFunction[..., T], *args: Any, kwargs: dict[str, Any] | None = None, **options: Unpack[ActivityCallOptions]
) -> T: ...
@overload
async def execute_activity(
    activity: str, *args: Any, kwargs: dict[str, Any] | None = None, **options: Unpack[ActivityCallOptions]
) -> Any: ...
async def execute_activity(
    activity: ActivityFunction[..., Any] | str,
    *args: Any,
    kwargs: dict[str, Any] | None = None,
    **options: Unpack[ActivityCallOptions],
) -> Any:
    """Run an activity (by definition or by name) and wait for its result. Options override the
    activity's own: ``queue``, ``retry``, ``start_to_close_timeout``, ``schedule_to_close_timeout``,
    ``schedule_to_start_timeout``, ``heartbeat_timeout``, ``cancellation_type``."""
    name, packed, opts = _activity_call(activity, args, kwargs or {}, options)
    return await _tw.execute_activity(name, args=packed, **opts)


@overload
def start_activity(
    activity: ActivityFunction[..., T], *args: Any, kwargs: dict[str, Any] | None = None, **options: Unpack[ActivityCallOptions]
) -> _tw.ActivityHandle[T]: ...
@overload
def start_activity(
    activity: str, *args: Any, kwargs: dict[str, Any] | None = None, **options: Unpack[ActivityCallOptions]
) -> _tw.ActivityHandle[Any]: ...
def start_activity(
    activity: ActivityFunction[..., Any] | str,
    *args: Any,
    kwargs: dict[str, Any] | None = None,
    **options: Unpack[ActivityCallOptions],
) -> _tw.ActivityHandle[Any]:
    """Start an activity; returns a handle to await (or ``cancel()``)."""
    name, packed, opts = _activity_call(activity, args, kwargs or {}, options)
    return _tw.start_activity(name, args=packed, **opts)


def _child_options(wf: WorkflowFunction[..., Any] | str, options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    name = wf.name if isinstance(wf, WorkflowFunction) else wf
    opts = {k: v for k, v in options.items() if v is not None}
    if "queue" in opts:
        opts["task_queue"] = opts.pop("queue")
    elif isinstance(wf, WorkflowFunction) and wf.queue:
        opts["task_queue"] = wf.queue
    for key in ("execution_timeout", "run_timeout", "task_timeout"):
        if key in opts:
            opts[key] = as_timedelta(opts[key])
    if "retry" in opts:
        opts["retry_policy"] = retry_policy(opts.pop("retry"))
    return name, opts


@overload
async def start_child(
    wf: WorkflowFunction[..., T], *args: Any, kwargs: dict[str, Any] | None = None, **options: Unpack[ChildOptions]
) -> _tw.ChildWorkflowHandle[Any, T]: ...
@overload
async def start_child(
    wf: str, *args: Any, kwargs: dict[str, Any] | None = None, **options: Unpack[ChildOptions]
) -> _tw.ChildWorkflowHandle[Any, Any]: ...
async def start_child(
    wf: WorkflowFunction[..., Any] | str, *args: Any, kwargs: dict[str, Any] | None = None, **options: Unpack[ChildOptions]
) -> _tw.ChildWorkflowHandle[Any, Any]:
    """Start a child workflow; returns its handle (await it for the result, ``signal`` it...).
    Options: ``id``, ``queue``, ``parent_close_policy``, ``cancellation_type``, ``retry``,
    ``execution_timeout``..."""
    name, opts = _child_options(wf, options)
    return await _tw.start_child_workflow(name, args=pack_args(args, kwargs or {}), **opts)


@overload
async def execute_child(
    wf: WorkflowFunction[..., T], *args: Any, kwargs: dict[str, Any] | None = None, **options: Unpack[ChildOptions]
) -> T: ...
@overload
async def execute_child(
    wf: str, *args: Any, kwargs: dict[str, Any] | None = None, **options: Unpack[ChildOptions]
) -> Any: ...
async def execute_child(
    wf: WorkflowFunction[..., Any] | str, *args: Any, kwargs: dict[str, Any] | None = None, **options: Unpack[ChildOptions]
) -> Any:
    """Run a child workflow and wait for its result."""
    name, opts = _child_options(wf, options)
    return await _tw.execute_child_workflow(name, args=pack_args(args, kwargs or {}), **opts)


async def signal_external(workflow_id: str, name: str, *args: Any, run_id: str | None = None) -> None:
    """Signal another workflow."""
    await _tw.get_external_workflow_handle(workflow_id, run_id=run_id).signal(name, args=list(args))


def continue_as_new(*args: Any, kwargs: dict[str, Any] | None = None, **options: Unpack[ContinueAsNewOptions]) -> NoReturn:
    """End this run and start the workflow afresh with these arguments (same id, new history)."""
    _tw.continue_as_new(args=pack_args(args, kwargs or {}), **options)


# -- handlers for function workflows --------------------------------------------------------


def on_signal(name: str, handler: Callable[..., Any]) -> None:
    """Handle signal ``name`` from now on (signals that came earlier are delivered at once)."""
    _tw.set_signal_handler(name, handler)


def on_query(name: str, handler: Callable[..., Any]) -> None:
    """Answer query ``name`` (a handler must not change workflow state)."""
    _tw.set_query_handler(name, handler)


def on_update(name: str, handler: Callable[..., Any], validator: Callable[..., None] | None = None) -> None:
    """Handle update ``name``; ``validator`` may raise to reject one before it is accepted."""
    _tw.set_update_handler(name, handler, validator=validator)


# -- cancellation scopes --------------------------------------------------------------------


class CancellationScope:
    """Cancel a part of a workflow together:

        async with workflow.CancellationScope(timeout=60) as scope:
            await charge(card)            # cancelled (the activity too) by scope.cancel() or at 60 s
        if scope.cancelled: ...

    A cancellation the scope itself caused ends at the scope; one from outside (the workflow being
    cancelled) goes on up. ``timeout`` is measured in workflow time (a durable timer)."""

    def __init__(self, timeout: Duration | None = None):
        self.timeout = as_timedelta(timeout)
        self.cancelled = False
        self._task: asyncio.Task[Any] | None = None
        self._requested = False
        self._timer: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        if self._task is not None and not self._requested:
            self._requested = True
            self._task.cancel()

    async def __aenter__(self) -> CancellationScope:
        self._task = asyncio.current_task()
        if self.timeout is not None:
            self._timer = asyncio.get_running_loop().call_later(self.timeout.total_seconds(), self.cancel)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if self._timer is not None:
            self._timer.cancel()
        if not self._requested or self._task is None:  # a request implies the task
            return False
        # Our cancel() counted once on the task; a count left after taking it back is someone else's.
        outside = self._task.uncancel() > 0
        # A cancelled activity or child surfaces as its own error with a cancellation as the cause.
        if exc is not None and is_cancelled_exception(exc) and not outside:
            self.cancelled = True
            return True  # our own cancellation stops here
        return False

    async def run(self, work: Awaitable[T]) -> T | None:
        """Run ``work`` in this scope (returns None if the scope was cancelled)."""
        async with self:
            return await work
        return None


def shield(work: Awaitable[T]) -> Awaitable[T]:
    """Let ``work`` finish even if the surrounding code is cancelled (cleanup steps)."""
    return asyncio.shield(work)


def is_replaying() -> bool:
    return _tw.unsafe.is_replaying()
