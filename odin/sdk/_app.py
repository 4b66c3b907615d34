"""``App``: where workflows and activities are declared, and how to reach the server.

    app = App("billing")                      # ODIN_ADDRESS, ODIN_NAMESPACE, ODIN_TASK_QUEUE...

    @app.activity(retry=Retry(max_attempts=3), start_to_close_timeout=30)
    def charge(card: str, cents: int) -> str: ...

    @app.workflow
    async def checkout(card: str, cents: int) -> str:
        return await charge(card, cents)

    checkout.delay("4242", 1999).get(timeout=30)

The app talks to the server through the WorkflowService API (gRPC), so it works against Odin or
any Temporal-compatible server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
import warnings
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, Unpack, cast, overload

import temporalio.client
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from odin import bridge
from odin.sdk._beat import Config, ScheduleEntry, SyncReport, make_entry, sync
from odin.sdk._defs import ActivityFunction, P, WorkflowFunction, pack_args
from odin.sdk._handles import R, WorkflowHandle
from odin.sdk._options import ActivityOptions, Duration, RunOptions, WorkflowOptions, as_timedelta, retry_policy
from odin.sdk._payloads import DATA_CONVERTER

if TYPE_CHECKING:
    from odin.sdk._worker import WorkerHost, WorkerOptions

log = logging.getLogger("odin.sdk")

# A queue counts as served when a worker polled it this recently; a queue's answer is kept this long.
POLLED_WITHIN = 120.0
POLL_CHECK_TTL = 30.0


class NoWorkerWarning(UserWarning):
    """A workflow was started on a task queue no worker has polled recently: it waits until one does."""


def _check_options(what: str, options: dict[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"{what} got unknown option {', '.join(unknown)} (it takes {', '.join(sorted(known))})")


# What a client is cached under: the address, namespace, API key and TLS setting it was made with.
_ClientKey = tuple[str, str, str | None, bool | temporalio.client.TLSConfig]


class WorkflowDecorator(Protocol):
    """``@app.workflow(...)`` with options: applied to an ``async def`` (or a workflow class)."""

    @overload
    def __call__(self, target: type, /) -> WorkflowFunction[..., Any]: ...
    @overload
    def __call__(self, target: Callable[P, Awaitable[R]], /) -> WorkflowFunction[P, R]: ...


class ActivityDecorator(Protocol):
    """``@app.activity(...)`` with options: applied to an async or a sync function."""

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]], /) -> ActivityFunction[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> ActivityFunction[P, R]: ...


def _tracing_interceptors() -> list[temporalio.client.Interceptor]:
    """temporalio's tracing interceptor; a client's interceptors serve its workers too."""
    from opentelemetry import trace
    from temporalio.contrib.opentelemetry import TracingInterceptor

    from odin import tracing

    if not hasattr(trace.get_tracer_provider(), "force_flush"):  # the API's default: nobody set one
        tracing.configure("sdk", instrument=False)
    return [TracingInterceptor()]


class App:
    def __init__(
        self,
        name: str,
        *,
        address: str | None = None,
        namespace: str | None = None,
        task_queue: str | None = None,
        api_key: str | None = None,
        tls: bool | temporalio.client.TLSConfig | None = None,
        tracing: bool | None = None,
    ):
        self.name = name
        self.address = address or os.environ.get("ODIN_ADDRESS", "127.0.0.1:7233")
        self.namespace = namespace or os.environ.get("ODIN_NAMESPACE", "default")
        self.task_queue = task_queue or os.environ.get("ODIN_TASK_QUEUE") or name
        self.api_key = api_key or os.environ.get("ODIN_API_KEY") or None
        # An API key turns TLS on in the underlying client unless told otherwise.
        self.tls = tls if tls is not None else (os.environ.get("ODIN_TLS", "0").lower() in ("1", "true", "on"))
        # OpenTelemetry spans for starts, signals, queries, workflows and activities, their
        # context carried in Temporal headers (so the server's spans and the workers' join the
        # caller's trace). Spans go to the process's tracer provider; with none set, one is made
        # from the OTEL_* variables (docs/operations.md#tracing).
        self.tracing = tracing if tracing is not None else (os.environ.get("ODIN_TRACING", "0").lower() in ("1", "true", "on"))
        self.workflows: dict[str, WorkflowFunction[..., Any]] = {}
        self.activities: dict[str, ActivityFunction[..., Any]] = {}
        self.conf = Config()  # Celery's settings that Odin reads: beat_schedule, timezone, enable_utc
        self.scheduled: dict[str, ScheduleEntry] = {}  # app.schedule(...)'s entries, by name
        self._polled: dict[str, float] = {}  # queue -> when a poller was last seen on it (monotonic)
        self.serving: set[str] = set()  # the queues a worker host of this process polls
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[_ClientKey, temporalio.client.Client]
        ] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"<odin App {self.name} at {self.address}, namespace {self.namespace}>"

    # -- declaring -----------------------------------------------------------------------------

    # A class decorated with @app.workflow stays the class for type checkers (they do not apply
    # class decorators); ``app.workflow(Cls)`` gives the WorkflowFunction.
    @overload
    def workflow(self, target: type, **options: Unpack[WorkflowOptions]) -> WorkflowFunction[..., Any]: ...
    @overload
    def workflow(
        self, target: Callable[P, Awaitable[R]], **options: Unpack[WorkflowOptions]
    ) -> WorkflowFunction[P, R]: ...
    @overload
    def workflow(self, target: None = None, **options: Unpack[WorkflowOptions]) -> WorkflowDecorator: ...
    def workflow(
        self, target: Callable[..., Awaitable[Any]] | type | None = None, **options: Unpack[WorkflowOptions]
    ) -> WorkflowFunction[..., Any] | WorkflowDecorator:
        """``@app.workflow`` or ``@app.workflow(name=..., queue=..., retry=..., execution_timeout=...)``
        on an ``async def`` (or on a class with a ``@workflow.run`` method)."""

        _check_options("@app.workflow", dict(options), WorkflowOptions.__optional_keys__)

        def register(t: Callable[..., Awaitable[Any]] | type) -> WorkflowFunction[..., Any]:
            wf = WorkflowFunction(self, t, **options)
            self.workflows[wf.name] = wf
            return wf

        # mypy does not take WorkflowFunction[..., Any] for the protocol's WorkflowFunction[P, R].
        return register(target) if target is not None else cast(WorkflowDecorator, register)

    # An async function's activity is typed by its awaited result (the first overload, which an
    # async function matches first); a sync one by its return value.
    @overload
    def activity(
        self, fn: Callable[P, Awaitable[R]], **options: Unpack[ActivityOptions]
    ) -> ActivityFunction[P, R]: ...
    @overload
    def activity(self, fn: Callable[P, R], **options: Unpack[ActivityOptions]) -> ActivityFunction[P, R]: ...
    @overload
    def activity(self, fn: None = None, **options: Unpack[ActivityOptions]) -> ActivityDecorator: ...
    def activity(
        self, fn: Callable[..., Any] | None = None, **options: Unpack[ActivityOptions]
    ) -> ActivityFunction[..., Any] | ActivityDecorator:
        """``@app.activity`` or ``@app.activity(retry=..., start_to_close_timeout=..., heartbeat_timeout=...,
        queue=..., name=...)`` on a sync or async function."""

        _check_options("@app.activity", dict(options), ActivityOptions.__optional_keys__)

        def register(f: Callable[..., Any]) -> ActivityFunction[..., Any]:
            act = ActivityFunction(self, f, **options)
            self.activities[act.name] = act
            return act

        # As for workflow(): ActivityFunction[..., Any] is not taken for ActivityFunction[P, R].
        return register(fn) if fn is not None else cast(ActivityDecorator, register)

    # -- periodic workflows -------------------------------------------------------------------

    def schedule(
        self,
        name: str,
        target: str | WorkflowFunction[..., Any] | ActivityFunction[..., Any],
        *,
        every: Duration | None = None,
        cron: str | None = None,
        crontab: Any = None,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
        timezone: str | None = None,
        overlap: temporalio.client.ScheduleOverlapPolicy | str = temporalio.client.ScheduleOverlapPolicy.SKIP,
        catchup_window: Duration | None = None,
    ) -> ScheduleEntry:
        """Start ``target`` (a workflow, an activity or a task name) periodically: ``every`` seconds
        (or a ``timedelta``), on a ``cron`` string, or on a Celery ``crontab(...)``; ``cron`` and
        ``crontab`` are read in ``timezone`` (default: the app's, see ``conf``). ``overlap``: what
        to do when a run is still going (``skip``, the default; ``buffer_one``, ``buffer_all``,
        ``cancel_other``, ``terminate_other``, ``allow_all``); ``catchup_window``: how late a start
        may still be taken after the server was down.

        Declares the schedule ``beat:<app>:<name>``; ``sync_schedules()`` (``odin beat -A`` or
        ``odin worker -B``) creates or updates it on the server, with the ``beat_schedule``
        entries. Declaring a name again replaces the entry."""
        entry = make_entry(
            self, name, target, every=every, cron=cron, crontab=crontab, args=args, kwargs=kwargs, queue=queue,
            timezone=timezone, overlap=overlap, catchup_window=catchup_window,
        )
        self.scheduled[name] = entry
        return entry

    async def sync_schedules_async(self) -> SyncReport:
        """Make the server's schedules of this app match ``conf.beat_schedule`` and ``schedule(...)``:
        create the missing, update the changed, delete those whose entry is gone. Every entry is
        checked first: ``ScheduleError`` (naming each bad entry) before anything changes."""
        return await sync(self)

    def sync_schedules(self) -> SyncReport:
        return bridge.run(self.sync_schedules_async())

    # -- reaching the server ---------------------------------------------------------------

    async def client_async(self) -> temporalio.client.Client:
        """A connected client for the running event loop (one per loop, made on first use)."""
        loop = asyncio.get_running_loop()
        target: _ClientKey = (self.address, self.namespace, self.api_key, self.tls)
        cached = self._clients.get(loop)
        if cached is None or cached[0] != target:  # first use, or the app was pointed elsewhere
            client = await temporalio.client.Client.connect(
                self.address,
                namespace=self.namespace,
                api_key=self.api_key,
                tls=self.tls,
                data_converter=DATA_CONVERTER,
                interceptors=_tracing_interceptors() if self.tracing else [],
            )
            cached = self._clients[loop] = (target, client)
        return cached[1]

    def client(self) -> temporalio.client.Client:
        """The client of the loop the blocking API runs on."""
        return bridge.run(self.client_async())

    async def queue_polled_async(self, queue: str) -> bool:
        """Whether a worker polled ``queue`` for workflow tasks in the last ``POLLED_WITHIN``
        seconds (the server's DescribeTaskQueue; each queue's answer is kept ``POLL_CHECK_TTL``
        seconds, and only a yes: a queue without pollers is asked again). True when the server
        cannot tell, or when a worker of this process serves the queue."""
        now = time.monotonic()
        if queue in self.serving or now - self._polled.get(queue, -POLL_CHECK_TTL) < POLL_CHECK_TTL:
            return True
        client = await self.client_async()
        try:
            described = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueue(name=queue),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                )
            )
        except Exception as exc:  # a server that cannot describe queues: do not warn
            log.debug("cannot describe task queue %s: %s", queue, exc)
            return True
        wall = time.time()
        polled = any(wall - p.last_access_time.ToSeconds() < POLLED_WITHIN for p in described.pollers)
        if polled:
            self._polled[queue] = now
        return polled

    async def warn_if_unpolled(self, queue: str, workflow_id: str = "") -> None:
        """``NoWorkerWarning`` (a Python warning, and logged) when no worker serves ``queue``."""
        if await self.queue_polled_async(queue):
            return
        message = (
            f"no worker has polled task queue {queue!r} in the last {POLLED_WITHIN:.0f} s: "
            f"{'run ' + workflow_id if workflow_id else 'the run'} waits until one does "
            f"(odin worker -A <module>:{self.name} -Q {queue})"
        )
        log.warning("%s", message)
        warnings.warn(message, NoWorkerWarning, stacklevel=2)

    # -- Celery's names ------------------------------------------------------------------------

    def send_task(
        self,
        name: str,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        *,
        queue: str | None = None,
        task_id: str | None = None,
        countdown: float | None = None,
        **options: Any,
    ) -> WorkflowHandle[Any]:
        """Celery's ``send_task``: start a workflow or run an activity by name. A name this app
        declares is checked against its parameters; any other name starts that workflow type on
        ``queue`` (else the app's), for a worker elsewhere that has it."""
        args = list(args or ())
        if name in self.workflows:
            return self.workflows[name].apply_async(args, kwargs, queue=queue, task_id=task_id, countdown=countdown, **options)
        if name in self.activities:
            return self.activities[name].apply_async(args, kwargs, queue=queue, task_id=task_id, countdown=countdown, **options)
        return bridge.run(self._start_by_name(name, args, kwargs, queue, task_id, countdown, **options))

    async def _start_by_name(
        self,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any] | None,
        queue: str | None,
        task_id: str | None,
        countdown: float | None,
        **options: Unpack[RunOptions],
    ) -> WorkflowHandle[Any]:
        client = await self.client_async()
        queue = queue or self.task_queue
        handle = await client.start_workflow(
            name,
            args=pack_args(args, kwargs),
            id=task_id or self.new_id(name),
            task_queue=queue,
            start_delay=as_timedelta(countdown),
            execution_timeout=as_timedelta(options.get("execution_timeout")),
            retry_policy=retry_policy(options.get("retry")),
            memo=options.get("memo"),
        )
        await self.warn_if_unpolled(queue, handle.id)
        return WorkflowHandle(self, handle.id, handle.result_run_id, handle.first_execution_run_id, follow_runs=True)

    def AsyncResult(self, task_id: str) -> WorkflowHandle[Any]:  # noqa: N802 - Celery's name
        """Celery's ``app.AsyncResult(id)``: the handle of the workflow with that id."""
        return WorkflowHandle(self, task_id, follow_runs=True)

    def new_id(self, name: str) -> str:
        return f"{name}-{uuid.uuid4()}"

    def get_handle(self, workflow_id: str, run_id: str | None = None) -> WorkflowHandle[Any]:
        return WorkflowHandle(self, workflow_id, run_id)

    def workflows_on(self, queue: str) -> list[WorkflowFunction[..., Any]]:
        return [w for w in self.workflows.values() if w.task_queue == queue]

    def activities_on(self, queue: str) -> list[ActivityFunction[..., Any]]:
        return [a for a in self.activities.values() if a.task_queue == queue]

    def queues(self) -> list[str]:
        """Every task queue this app's workflows and activities run on."""
        found = {w.task_queue for w in self.workflows.values()} | {a.task_queue for a in self.activities.values()}
        return sorted(found or {self.task_queue})

    def worker(self, **options: Unpack[WorkerOptions]) -> WorkerHost:
        """A worker host for this app (see ``odin.sdk._worker.WorkerHost``)."""
        from odin.sdk._worker import WorkerHost

        return WorkerHost(self, **options)
