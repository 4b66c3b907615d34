"""The worker host: ``odin worker -A package.module:app`` (or ``app.worker().run()``).

It polls the app's task queues — one worker per queue, run together in an ``ErrGroup`` so the
first fatal error stops the others — caches workflows on sticky queues, runs sync activities in a
thread pool of ``concurrency`` threads, beats for long activities, and on SIGINT/SIGTERM stops
polling and lets running activities finish for up to ``grace`` seconds. Before polling it can
replay recent histories of each workflow through the current code (``replay_check``), refusing to
start a deploy whose code would break runs in flight. A status line shows what it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TextIO, TypedDict

import temporalio.common
import temporalio.worker
import temporalio.workflow
from temporalio.api.common.v1 import Payload
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    Replayer,
    StartActivityInput,
    WorkerDeploymentConfig,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from odin.sdk._effects import capture
from odin.sdk._errors import OdinSdkError, failure_of
from odin.sdk._payloads import DATA_CONVERTER
from odin.sdk._primitives import ErrGroup, WaitGroup

if TYPE_CHECKING:
    from odin.sdk._app import App

log = logging.getLogger(__name__)


class ReplayMismatch(OdinSdkError):
    """Recorded histories do not replay through the current workflow code."""


@dataclass
class Counters:
    activities_running: int = 0
    activities_done: int = 0
    activities_failed: int = 0
    workflows_completed: int = 0
    workflows_failed: int = 0


# The counters of every host in this process, by id, reachable from inside the workflow sandbox
# (this module passes through it).
_COUNTERS: dict[int, Counters] = {}


def _fails_the_run(workflow_class: type, exc: Exception) -> bool:
    """Whether ``exc``, raised by workflow code, fails the run: an ordinary exception does in an
    Odin workflow unless it asked for ``on_error="retry"``. Temporal's own errors (sandbox
    violations, nondeterminism: fixed by deploying code) keep retrying the workflow task, and
    failures (an activity's, an ``ApplicationError``) fail the run anyway."""
    if type(exc).__module__.startswith("temporalio."):
        return False
    return getattr(workflow_class, "__odin_on_error__", "retry") == "fail"


# The workflow types each queue's workers run, for the error a run of an unknown type fails with.
_REGISTERED: dict[str, set[str]] = {}


@temporalio.workflow.defn(dynamic=True, sandboxed=False)
class UnknownWorkflow:
    """Runs of a workflow type no worker of the queue has: failed at once, naming the types the
    queue's workers run (a misspelled name or a missing worker, rather than a run that waits)."""

    @temporalio.workflow.run
    async def run(self, args: Sequence[temporalio.common.RawValue]) -> Any:
        info = temporalio.workflow.info()
        known = ", ".join(sorted(_REGISTERED.get(info.task_queue, ()))) or "none"
        raise ApplicationError(
            f"no workflow type {info.workflow_type!r} on task queue {info.task_queue!r}: "
            f"its workers run {known}",
            type="WorkflowTypeNotRegistered",
            non_retryable=True,
        )


class _Counting(Interceptor):
    def __init__(self, counters: Counters):
        self.counters = counters
        _COUNTERS[id(counters)] = counters

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        counters = self.counters

        class Activity(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                counters.activities_running += 1
                try:
                    result = await super().execute_activity(input)
                except BaseException:
                    counters.activities_failed += 1
                    raise
                finally:
                    counters.activities_running -= 1
                counters.activities_done += 1
                return result

        return Activity(next)

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        key = id(self.counters)

        class Workflow(WorkflowInboundInterceptor):
            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                from temporalio import workflow as tw

                counters = _COUNTERS[key]
                try:
                    result = await super().execute_workflow(input)
                except Exception as exc:  # not GeneratorExit: an evicted run's coroutine is closed outside the workflow
                    if not tw.unsafe.is_replaying():
                        counters.workflows_failed += 1
                    if _fails_the_run(input.type, exc):
                        raise failure_of(exc, non_retryable=True) from exc
                    raise
                if not tw.unsafe.is_replaying():
                    counters.workflows_completed += 1
                return result

        return Workflow


# The apps of every host in this process, by id, reachable from inside the workflow sandbox.
_APPS: dict[int, App] = {}

# The header of ScheduleActivityTask that carries an activity's concurrency limit to the server.
CONCURRENCY_HEADER = "odin-concurrency"
# The memo field of a run started with ``expires``: when (epoch seconds) it must have started by.
EXPIRES_MEMO = "odin-expires"


class _Concurrency(Interceptor):
    """Puts each activity call's concurrency key and limit (``concurrency_key``/``max_concurrency``
    of its definition) in the ScheduleActivityTask header, where the server reads them; and fails a
    run started with ``expires`` whose first workflow task came too late (Celery's expires)."""

    def __init__(self, app: App):
        self.key = id(app)
        _APPS[self.key] = app

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        key = self.key

        class Outbound(WorkflowOutboundInterceptor):
            def start_activity(self, input: StartActivityInput) -> temporalio.workflow.ActivityHandle[Any]:
                activity = _APPS[key].activities.get(input.activity)
                limit = activity.concurrency(input.args) if activity is not None else None
                if limit is not None:
                    data = json.dumps({"key": limit[0], "max": limit[1]}).encode()
                    payload = Payload(metadata={"encoding": b"json/plain"}, data=data)
                    input.headers = {**input.headers, CONCURRENCY_HEADER: payload}
                return super().start_activity(input)

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(Outbound(outbound))

            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                info = temporalio.workflow.info()
                # Only a fresh start expires: not a retry, a continuation or a cron run after it.
                if info.attempt == 1 and info.continued_run_id is None:
                    expires = temporalio.workflow.memo_value(EXPIRES_MEMO, None, type_hint=float)
                    # now(): when the first workflow task started, the same on every replay.
                    if expires is not None and temporalio.workflow.now().timestamp() > expires:
                        late = temporalio.workflow.now().timestamp() - expires
                        raise ApplicationError(
                            f"expired: the run had not started {late:.1f} s after its expiry time",
                            type="Expired", non_retryable=True,
                        )
                return await super().execute_workflow(input)

        return Inbound


# How runs started on a version move between versions (--default-versioning).
VERSIONING = {"pinned": VersioningBehavior.PINNED, "auto-upgrade": VersioningBehavior.AUTO_UPGRADE}


def sandbox_runner() -> SandboxedWorkflowRunner:
    """The workflow sandbox, with Odin's SDK shared rather than re-imported per run."""
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules("odin"))


class WorkerOptions(TypedDict, total=False):
    """``WorkerHost``'s settings beside the app (``app.worker(**options)``)."""

    queues: list[str] | None
    concurrency: int
    grace: float
    replay_check: int
    status_every: float
    status_stream: TextIO
    identity: str | None
    max_cached_workflows: int
    sticky_schedule_to_start: float
    fail_unknown_workflows: bool
    build_id: str | None
    deployment: str | None
    default_versioning: str
    promote: float | None
    exit_when_drained: float


@dataclass
class WorkerHost:
    app: App
    queues: list[str] | None = None
    concurrency: int = 10
    grace: float = 30.0
    replay_check: int = 0
    status_every: float = 0.0
    status_stream: TextIO = field(default=sys.stderr, repr=False)
    identity: str | None = None
    max_cached_workflows: int = 1000
    sticky_schedule_to_start: float = 10.0
    # Fail a run of a workflow type this worker does not have (rather than retry its task until a
    # worker that has it polls the queue: turn off while rolling out a new workflow type).
    fail_unknown_workflows: bool = True
    # Worker deployments (docs/deploy.md): with a build id the workers poll as that version of
    # the deployment (the app's name unless given); runs started on it stay on it (``pinned``) or
    # move to the current version at their next workflow task (``auto-upgrade``), unless a
    # workflow says otherwise. ``promote``: once polling, make this version current (100) or ramp
    # that percentage of new runs to it.
    build_id: str | None = None
    deployment: str | None = None
    default_versioning: str = "pinned"
    promote: float | None = None
    # With a build id: every this many seconds ask whether this version is drained (no longer
    # current or ramping, no pinned run open) and, once it is, stop as on SIGTERM (0: never).
    exit_when_drained: float = 0.0

    def __post_init__(self) -> None:
        self.counters = Counters()
        self.identity = self.identity or f"{os.getpid()}@{socket.gethostname()}"
        self._workers: list[temporalio.worker.Worker] = []
        self._running = WaitGroup()
        self._stopping: asyncio.Event | None = None
        self._stop_requested = False
        self.stop_reason: str | None = None  # why it stopped by itself
        self._executor: ThreadPoolExecutor | None = None

    def queue_names(self) -> list[str]:
        return self.queues or self.app.queues()

    async def _build(self) -> None:
        from odin.sdk.celery import register_canvas_workflow

        register_canvas_workflow(self.app)  # canvases (.s(), chain, group...) run on every app's workers
        client = await self.app.client_async()
        self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="odin-activity")
        interceptor = _Counting(self.counters)
        concurrency = _Concurrency(self.app)
        for queue in self.queue_names():
            workflow_defs = self.app.workflows_on(queue)
            workflows = [w.cls for w in workflow_defs]
            _REGISTERED.setdefault(queue, set()).update(w.name for w in workflow_defs)
            if self.fail_unknown_workflows:
                workflows.append(UnknownWorkflow)
            on_queue = self.app.activities_on(queue)
            activities = [a.definition for a in on_queue]
            # Local activities run on the workflow's own worker.
            activities.append(capture)
            # A rate-limited activity has its queue to itself: matching holds the rate for all
            # the queue's workers together (Temporal's max_task_queue_activities_per_second).
            rates = [a.rate_limit for a in on_queue if a.rate_limit is not None]
            self._workers.append(
                temporalio.worker.Worker(
                    client,
                    task_queue=queue,
                    workflows=workflows,
                    activities=activities,
                    activity_executor=self._executor,
                    workflow_runner=sandbox_runner(),
                    interceptors=[interceptor, concurrency],
                    identity=self.identity,
                    max_concurrent_activities=self.concurrency,
                    max_cached_workflows=self.max_cached_workflows,
                    sticky_queue_schedule_to_start_timeout=timedelta(seconds=self.sticky_schedule_to_start),
                    graceful_shutdown_timeout=timedelta(seconds=self.grace),
                    max_task_queue_activities_per_second=min(rates) if rates else None,
                    deployment_config=self._deployment_config(),
                )
            )

    def _deployment_config(self) -> WorkerDeploymentConfig | None:
        if not self.build_id:
            return None
        if self.default_versioning not in VERSIONING:
            raise ValueError(f"default_versioning must be one of {', '.join(VERSIONING)}")
        return WorkerDeploymentConfig(
            version=WorkerDeploymentVersion(self.deployment_name(), self.build_id),
            use_worker_versioning=True,
            default_versioning_behavior=VERSIONING[self.default_versioning],
        )

    def deployment_name(self) -> str:
        return self.deployment or self.app.name

    async def promote_version(self, percentage: float) -> None:
        """Route new work to this worker's version: make it current (100) or ramp ``percentage``
        % of new runs to it. Waits (up to a minute) for the version's first poll to register it."""
        from temporalio.api.deployment.v1 import WorkerDeploymentVersion as VersionRef
        from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
        from temporalio.service import RPCError, RPCStatusCode

        client = await self.app.client_async()
        svc, name, build_id = client.workflow_service, self.deployment_name(), self.build_id or ""
        ref = VersionRef(deployment_name=name, build_id=build_id)
        for _ in range(600):
            try:
                await svc.describe_worker_deployment_version(
                    ws.DescribeWorkerDeploymentVersionRequest(namespace=client.namespace, deployment_version=ref)
                )
                break
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                await asyncio.sleep(0.1)
        if percentage >= 100:
            await svc.set_worker_deployment_current_version(
                ws.SetWorkerDeploymentCurrentVersionRequest(
                    namespace=client.namespace, deployment_name=name, build_id=build_id, identity=self.identity or ""
                )
            )
        else:
            await svc.set_worker_deployment_ramping_version(
                ws.SetWorkerDeploymentRampingVersionRequest(
                    namespace=client.namespace, deployment_name=name, build_id=build_id, percentage=percentage,
                    identity=self.identity or "",
                )
            )
        log.info("deployment %s: version %s %s", name, build_id, "current" if percentage >= 100 else f"ramping at {percentage}%")

    async def check_replay(self, limit: int | None = None) -> int:
        """Replay up to ``limit`` recent runs of every workflow type through the current code;
        ``ReplayMismatch`` names the runs that would no longer replay. Returns how many replayed."""
        limit = limit if limit is not None else self.replay_check
        client = await self.app.client_async()
        replayer = Replayer(
            workflows=[w.cls for w in self.app.workflows.values()], workflow_runner=sandbox_runner(),
            data_converter=DATA_CONVERTER,
        )
        broken, checked = [], 0
        for wf in self.app.workflows.values():
            query = f"WorkflowType = '{wf.name}'"
            if self.build_id:
                # A versioned worker gets no task of a run pinned to another version: those need
                # not replay through this code.
                mine = f"{self.deployment_name()}:{self.build_id}".replace("'", "\\'")
                query += (
                    " AND (TemporalWorkflowVersioningBehavior IS NULL OR TemporalWorkflowVersioningBehavior != 'Pinned'"
                    f" OR TemporalWorkerDeploymentVersion = '{mine}')"
                )
            async for execution in client.list_workflows(query, limit=limit):
                history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
                result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
                checked += 1
                if result.replay_failure is not None:
                    broken.append(f"{wf.name} {execution.id} ({execution.run_id}): {result.replay_failure}")
        if broken:
            raise ReplayMismatch(
                "these runs do not replay through the current code (incompatible change: guard it with a "
                "VersionGate):\n  " + "\n  ".join(broken)
            )
        return checked

    async def run(self) -> None:
        """Poll until stopped (SIGINT/SIGTERM, or ``stop()``), then shut down gracefully."""
        stopping = self._stopping = asyncio.Event()
        if self._stop_requested:
            stopping.set()
        if self.replay_check:
            checked = await self.check_replay()
            log.info("replayed %d recent runs through the current code: all consistent", checked)
        await self._build()
        self.app.serving.update(self.queue_names())
        self._install_signal_handlers()
        group = ErrGroup()
        for worker in self._workers:
            group.go(self._run_one(worker))
        if self.promote is not None and self.build_id:
            group.go(self.promote_version(self.promote))
        if self.exit_when_drained > 0 and self.build_id:
            group.go(self._stop_once_drained(self.exit_when_drained))
        status = asyncio.ensure_future(self._status_line()) if self.status_every else None
        stopper = asyncio.ensure_future(self._stop_when_asked(stopping))
        try:
            await group.wait()
        finally:
            self.app.serving.difference_update(self.queue_names())
            stopper.cancel()
            if status is not None:
                status.cancel()
            await self._running.wait()
            if self._executor is not None:
                self._executor.shutdown(wait=False)

    async def _stop_once_drained(self, every: float) -> None:
        """Stop once the server reports this worker's version drained: its runs are done and no
        new run comes to it."""
        from temporalio.api.deployment.v1 import WorkerDeploymentVersion as VersionRef
        from temporalio.api.enums.v1 import VersionDrainageStatus
        from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
        from temporalio.service import RPCError

        client = await self.app.client_async()
        ref = VersionRef(deployment_name=self.deployment_name(), build_id=self.build_id or "")
        request = ws.DescribeWorkerDeploymentVersionRequest(namespace=client.namespace, deployment_version=ref)
        stopping = self._stopping
        assert stopping is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), every)
                return
            try:
                described = await client.workflow_service.describe_worker_deployment_version(request)
            except RPCError as exc:
                log.debug("deployment %s: cannot describe version %s: %s", ref.deployment_name, ref.build_id, exc)
                continue
            drainage = described.worker_deployment_version_info.drainage_info.status
            if drainage == VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINED:
                self.stop_reason = f"deployment {ref.deployment_name}: version {ref.build_id} is drained"
                log.info("%s, stopping", self.stop_reason)
                self.stop()
                return

    async def _run_one(self, worker: temporalio.worker.Worker) -> None:
        self._running.add(1)
        try:
            await worker.run()
        finally:
            self._running.done()

    async def _stop_when_asked(self, stopping: asyncio.Event) -> None:
        await stopping.wait()
        await asyncio.gather(*(w.shutdown() for w in self._workers), return_exceptions=True)

    def stop(self) -> None:
        """Stop polling; running activities get ``grace`` seconds to finish."""
        self._stop_requested = True
        if self._stopping is not None:
            self._stopping.set()

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.stop)
            except (NotImplementedError, RuntimeError, ValueError):
                return  # not the main thread: whoever runs us stops us

    async def _status_line(self) -> None:
        while True:
            await asyncio.sleep(self.status_every)
            c = self.counters
            print(
                f"odin worker {self.identity} [{', '.join(self.queue_names())}]: "
                f"workflows {c.workflows_completed} completed, {c.workflows_failed} failed | "
                f"activities {c.activities_running} running, {c.activities_done} done, {c.activities_failed} failed",
                file=self.status_stream,
                flush=True,
            )

    async def __aenter__(self) -> WorkerHost:
        self._task = asyncio.ensure_future(self.run())
        # Give the pollers a moment to register before the caller starts work.
        while not self._workers and not self._task.done():
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.stop()
        await self._task
