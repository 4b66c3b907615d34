"""The history engine: load mutable state, apply a pure transition, commit it in one transaction,
then hand the new outbox tasks to matching and the timer scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple, TypeVar

from temporalio.api.common.v1 import Memo, SearchAttributes
from temporalio.api.enums.v1 import TimeoutType
from temporalio.api.enums.v1 import WorkflowExecutionStatus as Status
from temporalio.api.enums.v1 import WorkflowIdConflictPolicy as Conflict
from temporalio.api.enums.v1 import WorkflowIdReusePolicy as Reuse
from temporalio.api.errordetails.v1 import NotFoundFailure, WorkflowExecutionAlreadyStartedFailure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest

from odin import logs, metrics, tracing
from odin.clock import Clock
from odin.errors import AlreadyExists, ConcurrentUpdate, NotFound, ResourceExhausted, ScheduleConflict
from odin.history import activities, chains, reset
from odin.history.activity_executions import ActivityExecutions
from odin.history.event_cache import EventCache
from odin.history.machine import HISTORY_COUNT_LIMIT, HISTORY_SIZE_LIMIT, StaleTask, Transition
from odin.history.notifier import Notifier, RunChange, run_key
from odin.history.queries import InMemoryQueryRouter, QueryRouter
from odin.history.routing import DeploymentRouting
from odin.history.scheduler import Scheduler
from odin.history.shards import shard_for
from odin.history.start import ParentInfo, SignalInput, new_run
from odin.history.state import MutableState, unpack
from odin.history.tasks import SYSTEM_TRANSFERS, TimerKind, TransferKind
from odin.history.transfers import TransferProcessor
from odin.ids import new_hex, new_id, new_run_id
from odin.matching import ACTIVITY, WORKFLOW, TaskEntry, TaskQueues
from odin.persistence.store import (
    Batch,
    CurrentExecution,
    CurrentWrite,
    ExecutionRecord,
    ExecutionStore,
    OutboxTask,
    WorkflowWrite,
)
from odin.visibility.registry import SearchAttributeRegistry
from odin.visibility.search_attributes import typed_values

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_CONFLICT_RETRIES = 20
STATE_CACHE_SIZE = 10_000
# Workflow ids this process started or saw taken lately (LRU): their next start reads the
# current-run pointer first instead of guessing the id is free.
KNOWN_IDS_SIZE = 10_000
# A sticky queue nobody polled for this long is treated as dead (Temporal uses 10 s).
STICKY_POLLER_WINDOW = 10.0

_FAILED_STATES = {
    Status.WORKFLOW_EXECUTION_STATUS_FAILED,
    Status.WORKFLOW_EXECUTION_STATUS_CANCELED,
    Status.WORKFLOW_EXECUTION_STATUS_TERMINATED,
    Status.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
}


class StartOutcome(NamedTuple):
    run_id: str
    started: bool
    # The new run's transition when its first workflow task was started eagerly for the caller.
    eager: Transition | None = None


@dataclass
class Loaded:
    record: ExecutionRecord
    state: MutableState


class HistoryEngine:
    def __init__(
        self,
        store: ExecutionStore,
        queues: TaskQueues,
        notifier: Notifier,
        clock: Clock,
        num_shards: int,
        queries: QueryRouter | None = None,
    ):
        self.store = store
        self.queues = queues
        # Which deployment version each task goes to (docs/architecture.md#worker-deployments).
        self.routing = DeploymentRouting(store)
        self.notifier = notifier
        self.queries = queries or InMemoryQueryRouter()
        self.clock = clock
        self.num_shards = num_shards
        # Told about committed timer tasks (set by the process's composition; a no-op until then).
        self.on_timers_committed: Callable[[list[OutboxTask]], None] = lambda tasks: None
        # Transactions this process committed (a test environment watches it to see quiet moments).
        self.commits = 0
        # Last committed row of recently updated runs (LRU), the starting point of the next update.
        self._state_cache: OrderedDict[str, ExecutionRecord] = OrderedDict()
        self._known_ids: OrderedDict[tuple[str, str], None] = OrderedDict()
        # The newest events this process committed, for the reads that follow a change.
        self._event_cache = EventCache()
        # A run whose history reaches either limit is terminated (events, bytes).
        self.history_count_limit = HISTORY_COUNT_LIMIT
        self.history_size_limit = HISTORY_SIZE_LIMIT
        # Per workflow id: the lock its updates take turns on, and how many hold or wait for it.
        self._turns: dict[tuple[str, str], list] = {}
        # Carries out transfer tasks that act on other runs (children, external signals/cancels).
        self.transfers = TransferProcessor(self)
        self.search_attributes = SearchAttributeRegistry(store)
        # Schedules: their rows, timers and the starts they take.
        self.schedules = Scheduler(self)
        # Standalone activities: their rows and changes.
        self.activity_executions = ActivityExecutions(self)

    # -- loading ---------------------------------------------------------------------------

    async def current_run_id(self, namespace_id: str, workflow_id: str) -> CurrentExecution:
        current = await self.store.get_current(namespace_id, workflow_id)
        if current is None:
            raise NotFound(f"workflow not found for ID: {workflow_id}", NotFoundFailure())
        return current

    async def load(self, namespace_id: str, workflow_id: str, run_id: str = "") -> Loaded:
        if not run_id:
            run_id = (await self.current_run_id(namespace_id, workflow_id)).run_id
        record = await self.store.get_execution(namespace_id, workflow_id, run_id)
        if record is None:
            raise NotFound(f"workflow execution not found for ID: {workflow_id} run ID: {run_id}")
        return Loaded(record, MutableState.from_bytes(record.state))

    async def peek(self, namespace_id: str, workflow_id: str, run_id: str) -> MutableState:
        """The run's state as this process last committed it, else as stored. It may be behind
        a change another process made: only for callers whose next step is idempotent and checked
        again inside an update."""
        record = self._cached(namespace_id, workflow_id, run_id)
        if record is None:
            return (await self.load(namespace_id, workflow_id, run_id)).state
        return MutableState.from_bytes(record.state)

    # -- the update loop -------------------------------------------------------------------

    async def update(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        op: Callable[[Transition], T],
        *,
        delete_transfer_ids: tuple[str, ...] = (),
        delete_timer_ids: tuple[str, ...] = (),
        fence: tuple[int, int] | None = None,
    ) -> tuple[T, Transition]:
        """Apply ``op`` to the run's state and commit; retried from a fresh load on CAS conflicts.

        The first attempt may start from this process's cached copy of the run (the CAS catches a
        stale copy); an error computed from a cached copy is re-checked against the database.
        Updates of one workflow id in this process take turns (a burst of signals or child
        outcomes would otherwise mostly fail the CAS against each other and retry); other
        processes are kept apart by the CAS alone."""
        async with self._turn(namespace_id, workflow_id):
            logged = logs.bind(workflow_id=workflow_id, run_id=run_id)
            try:
                if not tracing.enabled:
                    return await self._update(
                        namespace_id, workflow_id, run_id, op, delete_transfer_ids, delete_timer_ids, fence
                    )
                span = tracing.RunSpan(getattr(op, "__qualname__", "update"), {"odin.fenced": fence is not None})
                try:
                    result, t = await self._update(
                        namespace_id, workflow_id, run_id, op, delete_transfer_ids, delete_timer_ids, fence, span.start
                    )
                except BaseException as exc:
                    span.finish(error=exc)
                    raise
                span.finish(t)
                return result, t
            finally:
                logs.unbind(logged)

    @contextlib.asynccontextmanager
    async def _turn(self, namespace_id: str, workflow_id: str) -> AsyncIterator[None]:
        key = (namespace_id, workflow_id)
        entry = self._turns.get(key)
        if entry is None:
            entry = self._turns[key] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._turns[key]

    async def _update(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        op: Callable[[Transition], T],
        delete_transfer_ids: tuple[str, ...],
        delete_timer_ids: tuple[str, ...],
        fence: tuple[int, int] | None,
        on_state: Callable[[MutableState], None] | None = None,
    ) -> tuple[T, Transition]:
        for _ in range(MAX_CONFLICT_RETRIES):
            record = self._cached(namespace_id, workflow_id, run_id)
            cached = record is not None
            if record is None:
                record = (await self.load(namespace_id, workflow_id, run_id)).record
            state = MutableState.from_bytes(record.state)
            if on_state is not None:  # the span of this change starts once the run is known
                on_state(state)
            memo, search_attributes, size_before = state.memo, state.search_attributes, state.history_size_bytes
            t = Transition(state, self.clock.now())
            try:
                result = op(t)
            except Exception:
                if cached:
                    self._state_cache.pop(record.run_id, None)
                    continue
                raise
            t.enforce_history_limits(self.history_count_limit, self.history_size_limit)
            _warn_on_history_growth(t, record.next_event_id, size_before)
            if t.successor is not None:
                # A retry/cron successor repeats this run's start, which lives in its history.
                [first] = await self.read_events(t.state.run_id, 1, 2)
                t.new_runs.append(chains.successor_run(t, first.workflow_execution_started_event_attributes, t.successor))
                t.successor = None
            batch = Batch(
                delete_transfer_ids=list(delete_transfer_ids), delete_timer_ids=list(delete_timer_ids), fence=fence
            )
            after = t.state.to_bytes()
            if after == record.state and not (t.events or t.transfers or t.timers or batch.delete_transfer_ids or batch.delete_timer_ids):
                if cached:  # "nothing to do" must hold for the stored state, not just for the copy
                    self._state_cache.pop(record.run_id, None)
                    continue
                if t.deferred_error:
                    raise t.deferred_error
                return result, t
            visibility = t.closed or (t.state.memo, t.state.search_attributes) != (memo, search_attributes)
            self._add_write(batch, t, record, after, visibility, search_attributes is not None)
            for successor in t.new_runs:
                successor.state.trace_context = successor.state.trace_context or t.state.trace_context
                self._add_write(batch, successor, None, successor.state.to_bytes(), True)
            try:
                await self.store.commit(batch)
            except ConcurrentUpdate:
                metrics.persistence_cas_conflicts.get().inc()
                self._state_cache.pop(record.run_id, None)
                continue
            self._remember(batch)
            await self._after_commit(batch, [t, *t.new_runs])
            if t.deferred_error:
                raise t.deferred_error
            return result, t
        raise ResourceExhausted("Workflow is busy: too many concurrent updates, try again.")

    def _cached(self, namespace_id: str, workflow_id: str, run_id: str) -> ExecutionRecord | None:
        record = self._state_cache.get(run_id) if run_id else None
        if record is None or record.namespace_id != namespace_id or record.workflow_id != workflow_id:
            return None
        self._state_cache.move_to_end(run_id)
        return record

    def _remember(self, batch: Batch) -> None:
        for write in batch.workflows:
            self._state_cache[write.record.run_id] = write.record
            self._state_cache.move_to_end(write.record.run_id)
            self._event_cache.add(write.record.run_id, write.events)
        while len(self._state_cache) > STATE_CACHE_SIZE:
            self._state_cache.popitem(last=False)

    def _add_write(
        self,
        batch: Batch,
        t: Transition,
        record: ExecutionRecord | None,
        state_bytes: bytes,
        visibility: bool,
        had_search_attributes: bool = True,
    ) -> None:
        """Add a transition's writes; the visibility record changes only on start, close, memo or
        search-attribute changes (as in Temporal). ``had_search_attributes``: whether the run had
        search attributes before this transition (their stored values are then replaced)."""
        s = t.state
        new_record = ExecutionRecord(
            namespace_id=s.namespace_id,
            workflow_id=s.workflow_id,
            run_id=s.run_id,
            shard_id=record.shard_id if record else shard_for(s.namespace_id, s.workflow_id, self.num_shards),
            status=s.status,
            next_event_id=s.next_event_id,
            db_version=(record.db_version + 1) if record else 1,
            state=state_bytes,
        )
        batch.workflows.append(
            WorkflowWrite(
                record=new_record,
                expected_db_version=record.db_version if record else None,
                events=t.events,
                visibility=visibility_row(s) if (visibility or record is None) else None,
                search_values=typed_values(unpack(SearchAttributes, s.search_attributes))
                if (visibility or record is None)
                else [],
                closed=t.closed,
                had_search_values=record is not None and had_search_attributes,
            )
        )
        if t.closed and record is not None:
            # The workflow id's current run becomes the successor (continue-as-new) or stays, closed.
            current = t.new_runs[0].state if t.new_runs else s
            batch.current.append(
                CurrentWrite(
                    CurrentExecution(
                        namespace_id=s.namespace_id,
                        workflow_id=s.workflow_id,
                        run_id=current.run_id,
                        first_execution_run_id=current.first_execution_run_id,
                        create_request_id=current.start_request_id,
                        status=current.status,
                    ),
                    expected_run_id=s.run_id,
                )
            )
        now = t.now
        for spec in t.transfers:
            batch.transfer_tasks.append(
                OutboxTask(new_hex(), new_record.shard_id, s.namespace_id, s.workflow_id, s.run_id, spec.kind, spec.data, now)
            )
        for spec in t.timers:
            fire_at = datetime.fromtimestamp(spec.fire_at, UTC)
            batch.timer_tasks.append(
                OutboxTask(
                    new_hex(), new_record.shard_id, s.namespace_id, s.workflow_id, s.run_id, spec.kind, spec.data, now, fire_at
                )
            )

    async def _after_commit(self, batch: Batch, transitions: list[Transition]) -> None:
        self.commits += 1
        for task in batch.transfer_tasks:
            try:
                await self.dispatch_transfer(task)
            except Exception:  # the row stays in SQL; the transfer sweep queues it again
                log.exception("could not queue transfer task %s", task.task_id)
        if batch.timer_tasks:
            self.on_timers_committed(batch.timer_tasks)
        for t in transitions:
            s = t.state
            if metrics.record_transition(s.namespace, s.workflow_type, t.events, s.status if t.closed else None):
                # A new run: its task queue is sampled from now on (even if nobody polls it).
                metrics.saw_queue(s.namespace_id, s.namespace, s.task_queue, WORKFLOW)
            if t.closed:
                metrics.duration_family.get(s.namespace, s.workflow_type, metrics.status_name(s.status)).observe(
                    max(s.close_time - s.start_time, 0.0)
                )
        for t in transitions:
            # Every committed change wakes long polls on the run (history, queries, updates).
            s = t.state
            await self.notifier.notify(
                run_key(s.namespace_id, s.workflow_id, s.run_id), RunChange(s.next_event_id, s.running)
            )

    # -- outbox processing -----------------------------------------------------------------

    async def dispatch_transfer(self, task: OutboxTask) -> None:
        """Put a transfer task's entry on its queue (idempotent: the queue de-duplicates by id)."""
        if task.kind in SYSTEM_TRANSFERS:
            self.transfers.submit(task)
            return
        d = task.data
        entry = TaskEntry(
            task_id=task.task_id,
            namespace_id=task.namespace_id,
            workflow_id=task.workflow_id,
            run_id=task.run_id,
            scheduled_event_id=d["scheduled_event_id"],
            attempt=d.get("attempt", 0),
            priority=d.get("priority", 0),
        )
        if "concurrency" in d:
            key, limit, lease = d["concurrency"]
            entry = dataclasses.replace(entry, concurrency_key=key, max_concurrency=limit, lease=lease)
        if task.kind == TransferKind.WORKFLOW_TASK:
            queue = d["queue"]
            if d["sticky"]:
                normal = ""
                if "build" in d:  # an auto-upgrade run leaves its worker once new work goes elsewhere
                    normal = await self._normal_queue_of(task)
                    if not await self.routing.sticky_still_right(task.namespace_id, normal, task.workflow_id, d):
                        queue = ""
                if queue and not await self.queues.has_recent_poller(
                    task.namespace_id, queue, WORKFLOW, STICKY_POLLER_WINDOW
                ):
                    queue = ""
                if not queue:
                    queue = await self.routing.route(
                        task.namespace_id, normal or await self._normal_queue_of(task), WORKFLOW, task.workflow_id, d
                    )
            else:
                queue = await self.routing.route(task.namespace_id, queue, WORKFLOW, task.workflow_id, d)
            await self.queues.add(task.namespace_id, queue, WORKFLOW, entry)
        elif task.kind == TransferKind.ACTIVITY_TASK:
            queue = await self.routing.route(task.namespace_id, d["queue"], ACTIVITY, task.workflow_id, d)
            await self.queues.add(task.namespace_id, queue, ACTIVITY, entry)
        elif task.kind == TransferKind.STANDALONE_ACTIVITY_TASK:
            entry = dataclasses.replace(entry, workflow_id="", activity_id=task.workflow_id)
            await self.queues.add(task.namespace_id, d["queue"], ACTIVITY, entry)
        else:
            log.error("unknown transfer task kind %s", task.kind)

    async def _normal_queue_of(self, task: OutboxTask) -> str:
        loaded = await self.load(task.namespace_id, task.workflow_id, task.run_id)
        return loaded.state.task_queue

    async def requeue_transfer_tasks(self, limit: int = 100_000) -> int:
        """Queue every transfer task still in SQL (after a restart or a queue-store loss)."""
        tasks = await self.store.list_transfer_tasks(limit)
        for task in tasks:
            await self.dispatch_transfer(task)
        return len(tasks)

    async def fire_timer(self, task: OutboxTask, fence: tuple[int, int] | None = None) -> None:
        """Carry out a due timer task; ``fence`` when a shard's queue processor fires it."""
        if task.fire_at is not None:
            due = task.fire_at if task.fire_at.tzinfo else task.fire_at.replace(tzinfo=UTC)
            metrics.timer_lag.get(task.kind).observe(max((self.clock.now() - due).total_seconds(), 0.0))
        if task.kind == TimerKind.SCHEDULE:
            await self.schedules.fire(task, fence)
            return
        if task.kind in (TimerKind.STANDALONE_ACTIVITY_TIMEOUT, TimerKind.STANDALONE_ACTIVITY_RETRY):
            await self.activity_executions.fire(task, fence)
            return
        d = task.data
        ended: list[tuple[str, str, list[HistoryEvent]]] = []  # an activity attempt the timeout ended
        ops: dict[str, Callable[[Transition], None]] = {
            TimerKind.USER_TIMER: lambda t: t.fire_timer(d["timer_id"], d["started_event_id"]),
            TimerKind.ACTIVITY_TIMEOUT: lambda t: _activity_timed_out(t, d["scheduled_event_id"], d["attempt"], d["timeout_type"], ended),
            TimerKind.ACTIVITY_RETRY: lambda t: activities.retry_due(t, d["scheduled_event_id"], d["attempt"]),
            TimerKind.WFT_TIMEOUT: lambda t: t.time_out_workflow_task(d["scheduled_event_id"], d["started_event_id"], d["timeout_type"]),
            TimerKind.RUN_TIMEOUT: lambda t: t.run_timed_out(),
            TimerKind.FIRST_WFT: lambda t: t.first_workflow_task_due(),
        }
        op = ops.get(task.kind)
        try:
            if op is None:
                raise StaleTask(f"unknown timer kind {task.kind}")
            _, t = await self.update(
                task.namespace_id, task.workflow_id, task.run_id, op, delete_timer_ids=(task.task_id,), fence=fence
            )
            # A sticky task not taken in time moves to the normal queue: the worker left, no failure.
            if task.kind == TimerKind.WFT_TIMEOUT and d["timeout_type"] != TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START:
                metrics.record_workflow_task_failure(t.state.namespace, t.state.workflow_type, None)
            if ended:
                metrics.record_activity_end(*ended[0], "timed_out")
        except (StaleTask, NotFound):
            await self.store.delete_timer_task(task.task_id, fence)

    async def _commit_extra(self, batch: Batch) -> None:
        await self.store.commit(batch)
        if batch.timer_tasks:
            self.on_timers_committed(batch.timer_tasks)

    async def delete_run(self, namespace_id: str, workflow_id: str, run_id: str) -> None:
        """Remove a closed run entirely: history, state, visibility, outbox rows and, if it is the
        workflow id's current run, the current pointer."""
        await self.store.delete_execution(namespace_id, workflow_id, run_id)
        self._state_cache.pop(run_id, None)
        self._event_cache.drop(run_id)

    async def read_events(
        self, run_id: str, first_event_id: int, next_event_id: int, limit: int | None = None
    ) -> list[HistoryEvent]:
        """Committed events ``first_event_id`` <= id < ``next_event_id`` of a run (at most ``limit``),
        oldest first: what this process committed last from memory, the rest from the store."""
        end = min(next_event_id, first_event_id + limit) if limit else next_event_id
        start, cached = self._event_cache.suffix(run_id, first_event_id, end)
        if start == first_event_id:
            return cached
        return await self.store.read_events(run_id, first_event_id, start) + cached

    # -- starting runs ---------------------------------------------------------------------

    async def start_workflow(
        self,
        namespace_id: str,
        namespace: str,
        req: StartWorkflowExecutionRequest,
        *,
        parent: ParentInfo | None = None,
        signal: SignalInput | None = None,
        eager_request_id: str | None = None,
        scheduled_by: str = "",
        on_start: Callable[[str], Batch] | None = None,
    ) -> StartOutcome:
        """``_start_workflow`` in the log context of the workflow id and, with tracing on, in a
        span of its own whose context the new run keeps."""
        logged = logs.bind(namespace=namespace, workflow_id=req.workflow_id)
        try:
            if not tracing.enabled:
                return await self._start_workflow(
                    namespace_id, namespace, req, parent, signal, eager_request_id, scheduled_by, on_start
                )
            attributes = {"odin.namespace": namespace, "odin.workflow_id": req.workflow_id, "odin.workflow_type": req.workflow_type.name}
            with tracing.start_span("history start", attributes) as span:
                outcome = await self._start_workflow(
                    namespace_id, namespace, req, parent, signal, eager_request_id, scheduled_by, on_start
                )
                span.set_attribute("odin.run_id", outcome.run_id)
                span.set_attribute("odin.started", outcome.started)
                return outcome
        finally:
            logs.unbind(logged)

    async def _start_workflow(
        self,
        namespace_id: str,
        namespace: str,
        req: StartWorkflowExecutionRequest,
        parent: ParentInfo | None,
        signal: SignalInput | None,
        eager_request_id: str | None,
        scheduled_by: str,
        on_start: Callable[[str], Batch] | None,
    ) -> StartOutcome:
        """Start a run, honouring request-id idempotency and the id reuse/conflict policies.
        With ``signal`` (signal-with-start) a running run is signalled instead unless the conflict
        policy says otherwise. With ``eager_request_id`` (eager workflow start) a new run's first
        workflow task is started in the same transaction for the caller (the request's identity)
        instead of being queued, unless the run waits for a start delay. A schedule's start names
        the schedule (``scheduled_by``) and passes ``on_start``: given the run id, it returns the
        schedule's writes, committed in the same transaction as the run (or alone when the
        request id finds the run already started); a lost race on the schedule's row raises
        ``ScheduleConflict`` instead of being retried here."""
        # A plain start of an id this process has not seen goes ahead as if the id were free (as
        # it mostly is), without reading the current-run pointer: if the id is taken, the pointer's
        # insert fails the commit and the next attempt reads it and applies the policies.
        known = (namespace_id, req.workflow_id)
        guess = signal is None and on_start is None and known not in self._known_ids
        for _ in range(MAX_CONFLICT_RETRIES):
            if guess:
                current = None
            else:
                current = await self.store.get_current(namespace_id, req.workflow_id)
            batch = Batch()
            terminated: Transition | None = None
            if current is not None:
                if current.create_request_id == req.request_id:
                    if on_start is not None:
                        await self._commit_extra(on_start(current.run_id))
                    return StartOutcome(current.run_id, True)
                if current.status == Status.WORKFLOW_EXECUTION_STATUS_RUNNING:
                    policy = req.workflow_id_conflict_policy
                    if signal is not None and policy == Conflict.WORKFLOW_ID_CONFLICT_POLICY_UNSPECIFIED:
                        policy = Conflict.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
                    if req.workflow_id_reuse_policy == Reuse.WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING:
                        policy = Conflict.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING
                    if policy == Conflict.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING:
                        if signal is None:
                            return StartOutcome(current.run_id, False)
                        try:
                            await self.update(
                                namespace_id, req.workflow_id, current.run_id, lambda t: _signal_existing(t, signal)
                            )
                        except NotFound:
                            continue  # it closed meanwhile: start a new run instead
                        return StartOutcome(current.run_id, False)
                    if policy != Conflict.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING:
                        raise _already_started(req.workflow_id, current)
                    loaded = await self.load(namespace_id, req.workflow_id, current.run_id)
                    terminated = Transition(loaded.state, self.clock.now())
                    terminated.terminate("TerminateIfRunning WorkflowIdReusePolicy", None, req.identity)
                    self._add_write(
                        batch, terminated, loaded.record, terminated.state.to_bytes(), True,
                        terminated.state.search_attributes is not None,
                    )
                    batch.current.clear()
                else:
                    reuse = req.workflow_id_reuse_policy
                    if reuse == Reuse.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE:
                        raise _already_started(
                            req.workflow_id, current,
                            "Workflow execution already finished. WorkflowId: {}, RunId: {}."
                            " Workflow Id reuse policy: reject duplicate workflow Id.",
                        )
                    if (
                        reuse == Reuse.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY
                        and current.status not in _FAILED_STATES
                    ):
                        raise _already_started(
                            req.workflow_id, current,
                            "Workflow execution already finished successfully. WorkflowId: {}, RunId: {}."
                            " Workflow Id reuse policy: allow duplicate workflow Id if last run failed.",
                        )
            run_id = new_run_id()
            t = new_run(
                namespace_id=namespace_id,
                namespace=namespace,
                run_id=run_id,
                request=req,
                now=self.clock.now(),
                parent=parent,
                signal=signal,
                scheduled_by=scheduled_by,
            )
            if tracing.enabled:
                t.state.trace_context = tracing.current_traceparent()
            eager = None
            w = t.state.wft
            if eager_request_id is not None and w is not None and not w.started_event_id:
                eager = t.record_workflow_task_started(w.scheduled_event_id, False, req.identity, eager_request_id)
                # Started for the caller: the queued copy would only be found stale.
                t.transfers = [x for x in t.transfers if x.kind != TransferKind.WORKFLOW_TASK]
            self._add_write(batch, t, None, t.state.to_bytes(), True)
            batch.current.append(
                CurrentWrite(
                    CurrentExecution(namespace_id, req.workflow_id, run_id, run_id, req.request_id, t.state.status),
                    expected_run_id=current.run_id if current else None,
                )
            )
            if on_start is not None:
                extra = on_start(run_id)
                batch.schedules += extra.schedules
                batch.timer_tasks += extra.timer_tasks
                batch.delete_timer_ids += extra.delete_timer_ids
                batch.fence = extra.fence
            try:
                await self.store.commit(batch)
            except ScheduleConflict:
                raise
            except ConcurrentUpdate:
                guess = False
                self._know_id(known)
                continue
            self._know_id(known)
            self._remember(batch)
            await self._after_commit(batch, [t] + ([terminated] if terminated else []))
            return StartOutcome(run_id, True, t if eager else None)
        raise ResourceExhausted("Workflow id is busy: too many concurrent starts, try again.")

    def _know_id(self, known: tuple[str, str]) -> None:
        self._known_ids[known] = None
        self._known_ids.move_to_end(known)
        while len(self._known_ids) > KNOWN_IDS_SIZE:
            self._known_ids.popitem(last=False)

    # -- resetting runs --------------------------------------------------------------------

    async def reset_workflow(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        *,
        finish_event_id: int,
        reason: str,
        request_id: str,
        reapply: reset.Reapply,
    ) -> str:
        """ResetWorkflowExecution: a new run made of ``run_id``'s history (the current run when
        empty) up to ``finish_event_id``, in one transaction with the termination of the current
        run if it is running, the base run's link to the new run and the current pointer moved to
        it. A request id that made the current run is answered with that run. Returns the new
        run's id."""
        for _ in range(MAX_CONFLICT_RETRIES):
            try:
                base = await self.load(namespace_id, workflow_id, run_id)
            except NotFound:
                if not run_id:
                    raise
                raise NotFound(
                    f'workflow execution not found for workflow ID "{workflow_id}" and run ID "{run_id}"'
                ) from None
            reset.check_finish_event_id(finish_event_id, base.state.next_event_id)
            pointer = await self.store.get_current(namespace_id, workflow_id)
            current = base
            if pointer is not None and pointer.run_id != base.state.run_id:
                current = await self.load(namespace_id, workflow_id, pointer.run_id)
            if request_id and current.state.reset_request_id == request_id:
                return current.state.run_id
            now = self.clock.now()
            batch = Batch()
            events = await self.read_events(base.state.run_id, 1, base.state.next_event_id)
            chain_events, chain_runs = await self._continued_events(namespace_id, base.state, current.state.run_id)
            later = events[finish_event_id - 1 :] + chain_events
            ended: Transition | None = None
            if current.state.running:
                ended = Transition(current.state, now)
                ended.terminate(reason, None, reset.RESETTER_IDENTITY)
                # Its children stay with the new run and its parent is not told: a reset is no close.
                ended.transfers = [
                    x for x in ended.transfers if x.kind not in (TransferKind.CHILD_CLOSED, TransferKind.PARENT_CLOSE_POLICY)
                ]
                if current.state.run_id in (base.state.run_id, *chain_runs):
                    later += ended.events  # what it held back (buffered signals) follows the point too
            reset_run_id = new_id()  # a version-4 id, as Temporal's resetter gives it
            t = reset.new_run(
                MutableState.from_bytes(base.record.state),
                events,
                finish_event_id=finish_event_id,
                new_run_id=reset_run_id,
                reason=reason,
                request_id=request_id,
                later_events=later,
                reapply=reapply,
                now=now,
            )
            base.state.reset_run_id = reset_run_id  # the same state as the ended one when base is current
            if ended is not None:
                self._add_write(batch, ended, current.record, ended.state.to_bytes(), True, ended.state.search_attributes is not None)
                batch.current.clear()
            if current is not base or ended is None:
                self._add_write(batch, Transition(base.state, now), base.record, base.state.to_bytes(), False)
            self._add_write(batch, t, None, t.state.to_bytes(), True)
            s = t.state
            batch.current.append(
                CurrentWrite(
                    CurrentExecution(namespace_id, workflow_id, reset_run_id, s.first_execution_run_id, s.start_request_id, s.status),
                    expected_run_id=pointer.run_id if pointer else None,
                )
            )
            try:
                await self.store.commit(batch)
            except ConcurrentUpdate:
                for run in (base.state.run_id, current.state.run_id):
                    self._state_cache.pop(run, None)
                continue
            self._remember(batch)
            await self._after_commit(batch, [t] + ([ended] if ended else []))
            return reset_run_id
        raise ResourceExhausted("Workflow is busy: too many concurrent updates, try again.")

    async def _continued_events(
        self, namespace_id: str, base: MutableState, current_run_id: str
    ) -> tuple[list[HistoryEvent], list[str]]:
        """The events of the runs the base run continued as (continue-as-new, retry, cron), up to
        the current run, and those runs' ids: what they received also follows the reset point."""
        events: list[HistoryEvent] = []
        runs: list[str] = []
        s = base
        while not s.running and s.close_event_id and len(runs) < 100:
            close = await self.read_events(s.run_id, s.close_event_id, s.close_event_id + 1)
            nxt = close[0].workflow_execution_continued_as_new_event_attributes.new_execution_run_id if close else ""
            if not nxt or nxt in runs:
                break
            try:
                s = (await self.load(namespace_id, base.workflow_id, nxt)).state
            except NotFound:
                break  # deleted: the chain is cut there
            runs.append(nxt)
            events += await self.read_events(nxt, 1, s.next_event_id)
            if nxt == current_run_id:
                break
        return events, runs


# A run whose history grows past these is logged once (Temporal's warning limits), well before
# the limits that terminate it.
HISTORY_COUNT_WARN = 10 * 1024
HISTORY_SIZE_WARN = 10 * 1024 * 1024


def _activity_timed_out(
    t: Transition, scheduled_event_id: int, attempt: int, timeout_type: int, ended: list[tuple[str, str, list[HistoryEvent]]]
) -> None:
    """``activities.timed_out``, noting in ``ended`` the attempt it ended (counted once committed)."""
    before = t.state.activities.get(scheduled_event_id)
    number = before.attempt if before is not None else 0
    activities.timed_out(t, scheduled_event_id, attempt, timeout_type)  # type: ignore[arg-type]
    after = t.state.activities.get(scheduled_event_id)
    ended[:] = []
    if before is not None and (after is None or after.attempt != number):
        ended.append((t.state.namespace, before.activity_type, t.events))


def _warn_on_history_growth(t: Transition, next_event_id_before: int, size_before: int) -> None:
    s = t.state
    count_crossed = next_event_id_before - 1 < HISTORY_COUNT_WARN <= s.next_event_id - 1
    size_crossed = size_before < HISTORY_SIZE_WARN <= s.history_size_bytes
    if count_crossed or size_crossed:
        log.warning(
            "history of %s/%s (namespace %s) has %d events and %d bytes, past the warning limit of %d events "
            "or %d bytes; it is terminated at %d events or %d bytes: continue as new",
            s.workflow_id, s.run_id, s.namespace, s.next_event_id - 1, s.history_size_bytes,
            HISTORY_COUNT_WARN, HISTORY_SIZE_WARN, HISTORY_COUNT_LIMIT, HISTORY_SIZE_LIMIT,
        )


def _signal_existing(t: Transition, signal: SignalInput) -> None:
    t.signal(signal.name, signal.input, signal.identity, signal.header, signal.request_id)
    if t.state.first_wft_backoff:
        # Signal-with-start does not wait for a start delay: the run starts work now.
        t.state.first_wft_backoff = False
        t.schedule_workflow_task()


def _already_started(
    workflow_id: str,
    current: CurrentExecution,
    message: str = "Workflow execution is already running. WorkflowId: {}, RunId: {}.",
) -> AlreadyExists:
    """The start is refused because of the current run (Temporal's wordings, filled in)."""
    return AlreadyExists(
        message.format(workflow_id, current.run_id),
        WorkflowExecutionAlreadyStartedFailure(
            start_request_id=current.create_request_id,
            run_id=current.run_id,
            first_execution_run_id=current.first_execution_run_id,
        ),
    )


def visibility_row(s: MutableState) -> dict:
    def at(ts: float) -> datetime | None:
        return datetime.fromtimestamp(ts, UTC) if ts else None

    memo = unpack(Memo, s.memo)
    sa = unpack(SearchAttributes, s.search_attributes)
    return {
        "workflow_id": s.workflow_id,
        "workflow_type": s.workflow_type,
        "status": s.status,
        "start_time": at(s.start_time),
        "execution_time": at(s.execution_time or s.start_time),
        "close_time": at(s.close_time),
        "history_length": s.next_event_id - 1,
        "history_size_bytes": s.history_size_bytes,
        "task_queue": s.task_queue,
        "first_execution_run_id": s.first_execution_run_id,
        "parent_workflow_id": s.parent_workflow_id or None,
        "parent_run_id": s.parent_run_id or None,
        "memo": memo.SerializeToString() if memo else None,
        "search_attributes": sa.SerializeToString() if sa else None,
    }
