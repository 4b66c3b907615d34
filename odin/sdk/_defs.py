"""What ``@app.workflow`` and ``@app.activity`` make of a function: objects with Celery's surface
(``delay``, ``apply_async``, calling runs it) over Temporal workflow and activity definitions.

A workflow function becomes a generated ``temporalio`` workflow class. The SDK's workflow sandbox
re-imports the user's module and looks the class up by name, so the class is also kept in that
module under a hidden name (``_odin_wf_<name>``); re-importing the module re-creates it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, NotRequired, TypedDict, Unpack

import temporalio.activity
import temporalio.common
import temporalio.workflow
from temporalio.exceptions import FailureError
from typing_extensions import ParamSpec

from odin import bridge
from odin.sdk._errors import failure_of
from odin.sdk._flow import check_priority, parse_rate, rate_limited_queue
from odin.sdk._handles import R, WorkflowHandle
from odin.sdk._options import (
    NO_RETRY,
    Duration,
    RetryOption,
    RunOptions,
    StartOptions,
    as_timedelta,
    celery_retry,
    exception_types,
    retry_policy,
)
from odin.sdk._payloads import Kwargs

if TYPE_CHECKING:
    from odin.sdk._app import App
    from odin.sdk.celery import OdinSignature

# What an ordinary exception in workflow code does (``@app.workflow(on_error=...)``): "fail" the run
# with it, as Celery fails a task that raises; or "retry" the workflow task until the code is
# fixed and redeployed (Temporal's default).
ON_ERROR = ("fail", "retry")

# The decorated function's parameters (``...``, any, for a definition nobody typed). With ``R``
# (its result) they make ``WorkflowFunction[P, R]``/``ActivityFunction[P, R]`` check callers.
P = ParamSpec("P", default=...)

# Keyword arguments travel as a trailing ``Kwargs`` (workflow and activity inputs are positional):
# see odin.sdk._payloads. Histories written before that mark them as this one-key object instead.
LEGACY_KWARGS = "__odin_kwargs__"


def pack_args(args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> list[Any]:
    return [*args, Kwargs(kwargs)] if kwargs else list(args)


def unpack_args(args: tuple[Any, ...]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if args and isinstance(args[-1], Kwargs):
        return args[:-1], dict(args[-1])
    if args and isinstance(args[-1], dict) and set(args[-1]) == {LEGACY_KWARGS}:
        return args[:-1], args[-1][LEGACY_KWARGS]
    return args, {}


def _hidden_name(kind: str, name: str) -> str:
    return f"_odin_{kind}_" + "".join(c if c.isalnum() else "_" for c in name)


def _workflow_class(fn: Callable[..., Awaitable[Any]], name: str, sandboxed: bool) -> type:
    """A temporalio workflow class whose run method calls ``fn``."""
    hidden = _hidden_name("wf", name)

    async def run(self: object, *args: Any) -> Any:
        positional, keywords = unpack_args(args)
        return await fn(*positional, **keywords)

    run.__qualname__ = f"{hidden}.run"
    run.__module__ = fn.__module__
    cls = type(hidden, (), {"run": temporalio.workflow.run(run), "__module__": fn.__module__, "__qualname__": hidden})
    return temporalio.workflow.defn(name=name, sandboxed=sandboxed)(cls)


def check_call(name: str, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> None:
    """``TypeError`` now, as Celery's ``delay`` raises it, when ``args``/``kwargs`` do not fit
    ``fn``'s parameters (rather than a run that fails on a worker)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a callable Python cannot introspect: nothing to check
        return
    try:
        signature.bind(*args, **(kwargs or {}))
    except TypeError as exc:
        raise TypeError(f"{name}({', '.join(map(_parameter, signature.parameters.values()))}): {exc}") from None


def _parameter(p: inspect.Parameter) -> str:
    """A parameter as written (annotations of ``from __future__ import annotations`` unquoted)."""
    prefixes: dict[inspect._ParameterKind, str] = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}
    text = prefixes.get(p.kind, "") + p.name
    if p.annotation is not p.empty:
        annotation = p.annotation if isinstance(p.annotation, str) else inspect.formatannotation(p.annotation)
        text += f": {annotation}"
    if p.default is not p.empty:
        text += f" = {p.default!r}"
    return text


def _keep_in_module(cls: type, module_name: str) -> None:
    module = sys.modules.get(module_name)
    if module is not None:
        setattr(module, cls.__name__, cls)


def _expiry(expires: Duration | datetime) -> datetime:
    """``expires`` as a time: seconds (or a timedelta) from now, or a date (naive means UTC)."""
    if isinstance(expires, datetime):
        return expires if expires.tzinfo else expires.replace(tzinfo=UTC)
    span = as_timedelta(expires)
    if span <= timedelta(0):
        raise ValueError(f"expires must be positive, not {expires!r}")
    return datetime.now(UTC) + span


class WorkflowFunction(Generic[P, R]):
    """A workflow. Outside a workflow: ``delay``/``start``/``apply_async`` start it and return a
    ``WorkflowHandle``. Inside one: calling it runs it as a child workflow.

    Typed by the function it was made of: ``delay`` takes that function's arguments, and handles
    and child calls give its result type. A class-based one is ``WorkflowFunction[..., Any]``."""

    fn: Callable[P, Awaitable[R]] | None

    def __init__(
        self,
        app: App,
        target: Callable[P, Awaitable[R]] | type,
        *,
        name: str | None = None,
        queue: str | None = None,
        execution_timeout: Duration | None = None,
        retry: RetryOption | None = None,
        sandboxed: bool = True,
        priority: int | temporalio.common.Priority | None = None,
        on_error: str = "fail",
    ):
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be 'fail' (an exception fails the run) or 'retry' (the workflow task is retried), not {on_error!r}")
        self.app = app
        self.on_error = on_error
        self.queue = queue
        self.execution_timeout = as_timedelta(execution_timeout)
        self.retry = retry_policy(retry)
        # Its runs' priority key unless a start gives one (its activities and children inherit it).
        self.priority = check_priority(priority)
        if isinstance(target, type):  # what inspect.isclass tests, in a form type checkers narrow on
            self.name = name or target.__name__
            self.fn = None
            self.cls = temporalio.workflow.defn(name=self.name, sandboxed=sandboxed)(target)
            # The module's own name now holds this object; the sandbox finds the class by this one.
            self.cls.__name__ = _hidden_name("wf", self.name)
        else:
            if not inspect.iscoroutinefunction(target):
                raise TypeError(f"@app.workflow needs an async function (or a class), not {target!r}")
            self.name = name or target.__name__
            self.fn = target
            self.cls = _workflow_class(target, self.name, sandboxed)
            functools.update_wrapper(self, target)
        self.cls.__odin_on_error__ = on_error  # type: ignore[attr-defined]  # read by the worker's interceptor
        _keep_in_module(self.cls, self.cls.__module__)

    def _run_fn(self) -> Callable[..., Any]:
        """The function whose parameters the workflow takes (a class's run method, bound)."""
        if self.fn is not None:
            return self.fn
        run = temporalio.workflow._Definition.must_from_class(self.cls).run_fn
        return functools.partial(run, None)

    def check_call(self, args: Sequence[Any], kwargs: Mapping[str, Any] | None = None) -> None:
        """``TypeError`` if these arguments do not fit the workflow's parameters."""
        check_call(self.name, self._run_fn(), args, kwargs)

    # -- Celery's signatures -----------------------------------------------------------------

    def s(self, *args: Any, **kwargs: Any) -> OdinSignature:
        """A signature (Celery's ``.s()``): the workflow with these arguments as a canvas step
        (a child workflow), to chain, group or start with ``.delay()``."""
        from odin.sdk.celery import signature_of

        return signature_of(self, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> OdinSignature:
        """An immutable signature: it does not take the previous step's result."""
        from odin.sdk.celery import signature_of

        return signature_of(self, args, kwargs, immutable=True)

    signature = s

    def __repr__(self) -> str:
        return f"<workflow {self.name}>"

    @property
    def task_queue(self) -> str:
        return self.queue or self.app.task_queue

    # -- inside a workflow: a child ------------------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        if not temporalio.workflow.in_workflow():
            raise TypeError(f"{self.name} is a workflow: start it with .delay(...) or .start(...), or call it from a workflow")
        # Without a queue of its own, a child runs on its parent's queue (Temporal's default).
        return temporalio.workflow.execute_child_workflow(self.name, args=pack_args(args, kwargs), task_queue=self.queue)

    # -- outside: starting it ------------------------------------------------------------------

    async def start_async(
        self,
        *args: Any,
        id: str | None = None,
        queue: str | None = None,
        kwargs: dict[str, Any] | None = None,
        start_delay: Duration | None = None,
        execution_timeout: Duration | None = None,
        retry: RetryOption | None = None,
        memo: Mapping[str, Any] | None = None,
        id_reuse_policy: temporalio.common.WorkflowIDReusePolicy | None = None,
        id_conflict_policy: temporalio.common.WorkflowIDConflictPolicy | None = None,
        priority: int | temporalio.common.Priority | None = None,
        expires: Duration | datetime | None = None,
    ) -> WorkflowHandle[R]:
        self.check_call(args, kwargs)
        client = await self.app.client_async()
        options: dict[str, Any] = {}
        if expires is not None:
            # Celery's expires: a run whose first workflow task starts after this fails at once.
            memo = {**(memo or {}), "odin-expires": _expiry(expires).timestamp()}
        chosen = check_priority(priority) or self.priority
        if chosen is not None:
            options["priority"] = chosen
        if id_reuse_policy is not None:
            options["id_reuse_policy"] = id_reuse_policy
        if id_conflict_policy is not None:
            options["id_conflict_policy"] = id_conflict_policy
        handle = await client.start_workflow(
            self.name,
            args=pack_args(args, kwargs),
            id=id or self.app.new_id(self.name),
            task_queue=queue or self.task_queue,
            start_delay=as_timedelta(start_delay),
            execution_timeout=as_timedelta(execution_timeout) or self.execution_timeout,
            retry_policy=retry_policy(retry) or self.retry,
            memo=memo,
            # Taken up only when a worker for the queue runs on this client (this process, this
            # loop): the first workflow task then comes back with the start instead of a poll.
            request_eager_start=True,
            **options,
        )
        await self.app.warn_if_unpolled(queue or self.task_queue, handle.id)
        return WorkflowHandle(self.app, handle.id, handle.result_run_id, handle.first_execution_run_id, follow_runs=True)

    def start(self, *args: Any, **options: Unpack[StartOptions]) -> WorkflowHandle[R]:
        """Start the workflow with these arguments (options as for ``start_async``)."""
        return bridge.run(self.start_async(*args, **options))

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> WorkflowHandle[R]:
        """Start it with these arguments and keyword arguments (Celery's ``delay``)."""
        return self.start(*args, kwargs=kwargs or None)

    def apply_async(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        id: str | None = None,
        task_id: str | None = None,
        countdown: float | None = None,
        eta: datetime | None = None,
        queue: str | None = None,
        **options: Unpack[RunOptions],
    ) -> WorkflowHandle[R]:
        """Celery's ``apply_async``: ``countdown`` seconds or an ``eta`` delay the first step."""
        delay = countdown
        if eta is not None:
            if eta.tzinfo is None:
                eta = eta.replace(tzinfo=UTC)
            delay = max((eta - datetime.now(UTC)).total_seconds(), 0.0)
        return self.start(*args, id=id or task_id, queue=queue, kwargs=kwargs, start_delay=delay, **options)

    def get_handle(self, workflow_id: str, run_id: str | None = None) -> WorkflowHandle[R]:
        return WorkflowHandle(self.app, workflow_id, run_id)


# Default when an activity names no timeout (Temporal requires one): five minutes per attempt.
DEFAULT_START_TO_CLOSE = 300.0

# The Celery options of @app.activity that ask for retries (``celery_retry``'s).
_CELERY_RETRY_OPTIONS = ("max_retries", "default_retry_delay", "retry_backoff", "retry_backoff_max")


class ScheduleOptions(TypedDict):
    """An activity's own options for scheduling it from a workflow (``ActivityFunction.options``)."""

    task_queue: str | None
    start_to_close_timeout: timedelta | None
    schedule_to_close_timeout: timedelta | None
    heartbeat_timeout: timedelta | None
    retry_policy: temporalio.common.RetryPolicy | None
    schedule_to_start_timeout: NotRequired[timedelta]
    priority: NotRequired[temporalio.common.Priority]


class ActivityFunction(Generic[P, R]):
    """An activity: a plain function (sync ones run in the worker's thread pool). Outside a
    workflow, calling it runs the function here; inside one, calling it schedules it as an
    activity with the options of its decorator and returns the awaitable result.

    Typed by the function: calls take its arguments; ``R`` is its result (awaited, for an async
    one), which ``workflow.execute_activity(activity, ...)`` returns."""

    def __init__(
        self,
        app: App,
        fn: Callable[P, Awaitable[R]] | Callable[P, R],
        *,
        name: str | None = None,
        queue: str | None = None,
        retry: RetryOption | None = None,
        start_to_close_timeout: Duration | None = None,
        schedule_to_close_timeout: Duration | None = None,
        heartbeat_timeout: Duration | None = None,
        auto_heartbeat: bool = True,
        rate_limit: str | float | None = None,
        priority: int | temporalio.common.Priority | None = None,
        expires: Duration | None = None,
        concurrency_key: str | Callable[..., str] | None = None,
        max_concurrency: int | None = None,
        autoretry_for: tuple[type[BaseException], ...] | type[BaseException] = (),
        dont_autoretry_for: tuple[type[BaseException], ...] | type[BaseException] = (),
        **celery_options: Any,
    ):
        self.app = app
        self.fn = fn
        self.name = name or fn.__name__
        self._queue = queue
        # At most this many attempts start per second, over all workers: the activity gets a task
        # queue of its own, whose workers ask matching to hold that rate for the whole queue.
        self.rate_limit = parse_rate(rate_limit, f"rate_limit of {self.name}")
        self.priority = check_priority(priority, f"priority of {self.name}")
        # Celery's expires: an attempt not started this long after it was scheduled is dropped (it
        # times out schedule-to-start, which Temporal never retries).
        self.expires = as_timedelta(expires)
        if self.expires is not None and self.expires <= timedelta(0):
            raise ValueError(f"expires of {self.name} must be positive, not {expires!r}")
        # At most max_concurrency attempts with the same key (a string, or a function of the
        # activity's arguments) run at once, over all workers; matching holds the slots.
        if (concurrency_key is None) != (max_concurrency is None):
            raise ValueError(f"{self.name}: concurrency_key and max_concurrency go together")
        if concurrency_key is not None and not (callable(concurrency_key) or (isinstance(concurrency_key, str) and concurrency_key)):
            raise TypeError(f"concurrency_key of {self.name} must be a non-empty string or a function of the arguments")
        if max_concurrency is not None and (isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1):
            raise ValueError(f"max_concurrency of {self.name} must be a positive integer, not {max_concurrency!r}")
        self.concurrency_key = concurrency_key
        self.max_concurrency = max_concurrency
        unknown = sorted(set(celery_options) - set(_CELERY_RETRY_OPTIONS))
        if unknown:
            raise TypeError(f"@app.activity got unknown option {', '.join(unknown)}")
        # Which exceptions are tried again: with autoretry_for, those only (as in Celery); else all.
        self.autoretry_for = exception_types(autoretry_for, "autoretry_for")
        self.dont_autoretry_for = exception_types(dont_autoretry_for, "dont_autoretry_for")
        if retry is not None and (celery_options or self.autoretry_for):
            raise TypeError(
                f"{self.name}: give retry=Retry(...) or Celery's autoretry_for/max_retries/default_retry_delay/"
                "retry_backoff, not both"
            )
        if retry is not None:
            self.retry = retry_policy(retry)
        elif celery_options or self.autoretry_for:
            self.retry = celery_retry(**celery_options).policy()
        else:  # Celery runs a task once unless it asks for retries; so does an activity.
            self.retry = NO_RETRY.policy()
        self.start_to_close_timeout = as_timedelta(start_to_close_timeout)
        self.schedule_to_close_timeout = as_timedelta(schedule_to_close_timeout)
        if self.start_to_close_timeout is None and self.schedule_to_close_timeout is None:
            self.start_to_close_timeout = as_timedelta(DEFAULT_START_TO_CLOSE)
        self.heartbeat_timeout = as_timedelta(heartbeat_timeout)
        self.is_async = inspect.iscoroutinefunction(fn)
        # While it runs, beat at a third of the heartbeat timeout unless the activity beats itself.
        self.auto_heartbeat = auto_heartbeat and self.heartbeat_timeout is not None
        self.definition = self._definition()
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<activity {self.name}>"

    @property
    def queue(self) -> str | None:
        """Its own task queue, if it has one (a rate-limited activity always has)."""
        if self.rate_limit is None:
            return self._queue
        return rate_limited_queue(self._queue or self.app.task_queue, self.name)

    @property
    def task_queue(self) -> str:
        return self.queue or self.app.task_queue

    def retries(self, exc: BaseException) -> bool:
        """Whether a failed attempt with ``exc`` may be tried again (under the retry policy)."""
        if isinstance(exc, self.dont_autoretry_for):
            return False
        return not self.autoretry_for or isinstance(exc, self.autoretry_for)

    def check_call(self, args: Sequence[Any], kwargs: Mapping[str, Any] | None = None) -> None:
        """``TypeError`` if these arguments do not fit the activity's parameters."""
        check_call(self.name, self.fn, args, kwargs)

    # -- Celery's signatures and starts --------------------------------------------------------

    def s(self, *args: Any, **kwargs: Any) -> OdinSignature:
        """A signature (Celery's ``.s()``): this activity with these arguments as a canvas step."""
        from odin.sdk.celery import signature_of

        return signature_of(self, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> OdinSignature:
        """An immutable signature: it does not take the previous step's result."""
        from odin.sdk.celery import signature_of

        return signature_of(self, args, kwargs, immutable=True)

    signature = s

    def map(self, it: Sequence[Any]) -> OdinSignature:
        """Celery's ``map``: the activity on each item, one after the other; the list of results."""
        from odin.sdk.celery import builtin_signature

        return builtin_signature("celery.map", self, it)

    def starmap(self, it: Sequence[Sequence[Any]]) -> OdinSignature:
        """Celery's ``starmap``: the activity on each item's arguments, one after the other."""
        from odin.sdk.celery import builtin_signature

        return builtin_signature("celery.starmap", self, it)

    def chunks(self, it: Sequence[Sequence[Any]], n: int) -> OdinSignature:
        """Celery's ``chunks``: ``it`` in parts of ``n`` items, each a ``starmap``, the parts side
        by side; a list of each part's results."""
        from odin.sdk.celery import builtin_signature

        return builtin_signature("celery.chunks", self, it, n)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> WorkflowHandle[R]:
        """Run the activity once, durably, from outside a workflow (Celery's ``delay``): a canvas
        of one step, whose handle gives the activity's result."""
        return self.s(*args, **kwargs).delay()

    def apply_async(
        self, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any
    ) -> WorkflowHandle[R]:
        """Celery's ``apply_async`` (``countdown``, ``eta``, ``queue``, ``task_id``, ``link``...)."""
        return self.s(*args, **(kwargs or {})).apply_async(**options)

    def options(self) -> ScheduleOptions:
        """Options for scheduling it from a workflow. Without a queue of its own it runs on the
        workflow's queue (Temporal's default)."""
        options: ScheduleOptions = {
            "task_queue": self.queue,
            "start_to_close_timeout": self.start_to_close_timeout,
            "schedule_to_close_timeout": self.schedule_to_close_timeout,
            "heartbeat_timeout": self.heartbeat_timeout,
            "retry_policy": self.retry,
        }
        if self.expires is not None:
            options["schedule_to_start_timeout"] = self.expires
        if self.priority is not None:
            options["priority"] = self.priority
        return options

    def concurrency(self, args: Sequence[Any]) -> tuple[str, int] | None:
        """The concurrency key and limit of a call with these (packed) arguments, if it has any."""
        if self.concurrency_key is None or self.max_concurrency is None:
            return None
        key = self.concurrency_key
        if callable(key):
            positional, keywords = unpack_args(tuple(args))
            key = key(*positional, **keywords)
        if not isinstance(key, str) or not key:
            raise ValueError(f"concurrency_key of {self.name} gave {key!r}, not a non-empty string")
        return key, self.max_concurrency

    # Any: what a call gives depends on where it runs, which no type can say. Inside a workflow
    # it is an awaitable of R, outside it is what the function returns (R, or a coroutine of R).
    # ``workflow.execute_activity(activity, ...)`` is the typed form.
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        if temporalio.workflow.in_workflow():
            return temporalio.workflow.execute_activity(self.name, args=pack_args(args, kwargs), **self.options())
        return self.fn(*args, **kwargs)

    def _definition(self) -> Callable[..., Any]:
        fn: Callable[..., Any] = self.fn
        every = None
        if self.auto_heartbeat and self.heartbeat_timeout is not None:  # auto_heartbeat implies a timeout
            every = self.heartbeat_timeout.total_seconds() / 3
        run: Callable[..., Any]
        if self.is_async:

            async def run_async(*args: Any) -> Any:
                positional, keywords = unpack_args(args)
                beating = asyncio.ensure_future(_beat_async(every)) if every else None
                try:
                    return await fn(*positional, **keywords)
                except Exception as exc:
                    self._raise_failure(exc)
                    raise
                finally:
                    if beating is not None:
                        beating.cancel()

            run = run_async
        else:

            def run_sync(*args: Any) -> Any:
                positional, keywords = unpack_args(args)
                stop = threading.Event()
                if every:
                    beat = temporalio.activity._Context.current().heartbeat
                    threading.Thread(target=_beat_thread, args=(beat, every, stop), daemon=True).start()
                try:
                    return fn(*positional, **keywords)
                except Exception as exc:
                    self._raise_failure(exc)
                    raise
                finally:
                    stop.set()

            run = run_sync
        run.__name__ = run.__qualname__ = self.name
        return temporalio.activity.defn(name=self.name)(run)

    def _raise_failure(self, exc: Exception) -> None:
        """Tell the server of a failed attempt: any exception but Temporal's own (which return, to
        be raised as they are) with its type and module, retryable as ``retries`` says."""
        if isinstance(exc, FailureError) or type(exc).__module__.startswith("temporalio."):
            return
        raise failure_of(exc, non_retryable=not self.retries(exc)) from exc


async def _beat_async(every: float) -> None:
    while True:
        await asyncio.sleep(every)
        temporalio.activity.heartbeat()


def _beat_thread(beat: Callable[..., None], every: float, stop: threading.Event) -> None:
    # Beside a sync activity: the activity's context lives in its own thread, so the heartbeat
    # function is taken from there and handed over.
    while not stop.wait(every):
        beat()
