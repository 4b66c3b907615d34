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
import os
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, Unpack, cast, overload

import temporalio.client

from odin import bridge
from odin.sdk._beat import Config, ScheduleEntry, SyncReport, make_entry, sync
from odin.sdk._defs import ActivityFunction, P, WorkflowFunction
from odin.sdk._handles import R, WorkflowHandle
from odin.sdk._options import ActivityOptions, Duration, WorkflowOptions

if TYPE_CHECKING:
    from odin.sdk._worker import WorkerHost, WorkerOptions

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
    ):
        self.name = name
        self.address = address or os.environ.get("ODIN_ADDRESS", "127.0.0.1:7233")
        self.namespace = namespace or os.environ.get("ODIN_NAMESPACE", "default")
        self.task_queue = task_queue or os.environ.get("ODIN_TASK_QUEUE") or name
        self.api_key = api_key or os.environ.get("ODIN_API_KEY") or None
        # An API key turns TLS on in the underlying client unless told otherwise.
        self.tls = tls if tls is not None else (os.environ.get("ODIN_TLS", "0").lower() in ("1", "true", "on"))
        self.workflows: dict[str, WorkflowFunction[..., Any]] = {}
        self.activities: dict[str, ActivityFunction[..., Any]] = {}
        self.conf = Config()  # Celery's settings that Odin reads: beat_schedule, timezone, enable_utc
        self.scheduled: dict[str, ScheduleEntry] = {}  # app.schedule(...)'s entries, by name
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
                self.address, namespace=self.namespace, api_key=self.api_key, tls=self.tls
            )
            cached = self._clients[loop] = (target, client)
        return cached[1]

    def client(self) -> temporalio.client.Client:
        """The client of the loop the blocking API runs on."""
        return bridge.run(self.client_async())

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
