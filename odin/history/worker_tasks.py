"""What workers talk to: polls that start workflow, activity and query tasks, and the replies to them."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from temporalio.api.common.v1 import ActivityType, Header, Payloads, Priority, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import QueryResultType, TaskQueueKind
from temporalio.api.errordetails.v1 import QueryFailedFailure
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import History, HistoryEvent
from temporalio.api.query.v1 import WorkflowQuery, WorkflowQueryResult
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    PollActivityTaskQueueResponse,
    PollWorkflowTaskQueueResponse,
    RespondWorkflowTaskCompletedRequest,
)

from odin import logs, metrics
from odin.clock import monotonic
from odin.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound
from odin.history import activities, activity_ops, commands, standalone, tokens, updates
from odin.history.engine import STICKY_POLLER_WINDOW, HistoryEngine
from odin.history.events import duration, timestamp
from odin.history.machine import StaleTask, Transition, transient_events, wft_token
from odin.history.notifier import run_key
from odin.history.state import ActivityInfo, MutableState, WorkflowTaskInfo, unpack
from odin.history.validation import DEFAULT_CONTINUE_AS_NEW, ContinueAsNewThresholds, PendingLimits, SizeLimits
from odin.ids import new_id
from odin.matching import ACTIVITY, WORKFLOW, TaskEntry
from odin.visibility.search_attributes import settable_types

log = logging.getLogger(__name__)

T = TypeVar("T")


# An activity entry whose concurrency key has no free slot is queued again when a slot of that key
# is given back in this process, or after this many seconds (a slot freed elsewhere, or by a lease
# running out).
SLOT_RETRY = 1.0


def slot_holder(entry_or_state: TaskEntry | MutableState, scheduled_event_id: int, attempt: int) -> str:
    """The holder of an activity attempt's concurrency slot."""
    return f"{entry_or_state.workflow_id}:{entry_or_state.run_id}:{scheduled_event_id}:{attempt}"


class WorkerTasks:
    def __init__(self, engine: HistoryEngine):
        self.engine = engine
        # (namespace id, concurrency key) -> set when a slot of the key is given back here.
        self._slot_freed: dict[tuple[str, str], asyncio.Event] = {}
        self._deferred: set[asyncio.Task] = set()

    # -- workflow tasks --------------------------------------------------------------------

    async def poll_workflow_task(
        self,
        namespace_id: str,
        namespace: str,
        task_queue: TaskQueue,
        identity: str,
        timeout: float,
        thresholds: ContinueAsNewThresholds = DEFAULT_CONTINUE_AS_NEW,
    ) -> PollWorkflowTaskQueueResponse:
        sticky = task_queue.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY
        if not sticky:  # sticky queues are one per worker process: not sampled
            metrics.saw_queue(namespace_id, namespace, task_queue.name, WORKFLOW)
        deadline = monotonic() + timeout
        while (remaining := deadline - monotonic()) > 0:
            entry = await self.engine.queues.poll(namespace_id, task_queue.name, WORKFLOW, remaining, identity)
            if entry is None:
                break
            if entry.is_query:
                try:
                    response = await self._query_task(entry, sticky)
                except asyncio.CancelledError:
                    await self.engine.queues.requeue(namespace_id, task_queue.name, WORKFLOW, entry)
                    raise
                await self.engine.queues.ack(namespace_id, task_queue.name, WORKFLOW, entry)
            else:
                response = await self._decide(
                    namespace_id, task_queue.name, WORKFLOW, entry, lambda entry=entry: self._start_workflow_task(entry, sticky, identity, thresholds)
                )
            if response is not None:
                return response
        return PollWorkflowTaskQueueResponse()

    async def _decide(self, namespace_id: str, queue: str, kind: str, entry: TaskEntry, start: Callable) -> T | None:
        """Start the task a polled entry names (None if it is stale), then acknowledge the entry.

        Shielded: once taken, the task is started and acknowledged even if the poll is cancelled
        meanwhile (a started task nobody receives times out). On any other error the entry stays
        unacknowledged and is handed out again later."""

        async def run():
            try:
                response = await start()
            except StaleTask:
                response = None
            await self.engine.queues.ack(namespace_id, queue, kind, entry)
            return response

        return await asyncio.shield(run())

    async def _take(self, entry: TaskEntry, op: Callable[[Transition], T]) -> tuple[T, Transition]:
        """Start the task an entry names, deleting its transfer row in the same transaction.
        A stale entry's row is deleted and ``StaleTask`` raised, so the poll moves on."""
        try:
            return await self.engine.update(
                entry.namespace_id, entry.workflow_id, entry.run_id, op, delete_transfer_ids=(entry.task_id,)
            )
        except (StaleTask, NotFound):
            await self.engine.store.delete_transfer_task(entry.task_id)
            raise StaleTask("stale task entry") from None

    async def _start_workflow_task(
        self, entry: TaskEntry, sticky: bool, identity: str, thresholds: ContinueAsNewThresholds
    ) -> PollWorkflowTaskQueueResponse:
        request_id = new_id()
        w, t = await self._take(
            entry, lambda t: t.record_workflow_task_started(entry.scheduled_event_id, sticky, identity, request_id, thresholds)
        )
        s = t.state
        # Measured under the run's normal queue: sticky queues are per worker process.
        metrics.schedule_to_start.get(s.task_queue, "workflow").observe(max(w.started_time - w.scheduled_time, 0.0))
        if not sticky and s.last_completed_wft_started_event_id:
            metrics.replay_family.get(s.namespace, s.workflow_type).inc()
        first = s.last_completed_wft_started_event_id + 1 if sticky else 1
        events = await self.engine.read_events(s.run_id, first, s.next_event_id)
        response = workflow_task(s, w, events + transient_events(s, w))
        # Queries are buffered only once a workflow task has completed (``query``): before that
        # there are none to look up (a Redis round trip per run saved).
        if s.completed_wft_count:
            for query_id, query in (await self.engine.queries.buffered(run_key(s.namespace_id, s.workflow_id, s.run_id))).items():
                response.queries[query_id].CopyFrom(query)
        return response

    def eager_workflow_task(self, t: Transition) -> PollWorkflowTaskQueueResponse:
        """The first workflow task of a run started eagerly (its events are all in ``t``)."""
        s, w = t.state, t.state.wft
        metrics.schedule_to_start.get(s.task_queue, "workflow").observe(0.0)
        return workflow_task(s, w, list(t.events))

    async def respond_workflow_task_completed(
        self,
        req: RespondWorkflowTaskCompletedRequest,
        pending_limits: PendingLimits | None = None,
        size_limits: SizeLimits | None = None,
    ) -> list[PollActivityTaskQueueResponse]:
        """Apply a completion; returns the activity tasks started eagerly for the completing
        worker (activities that asked for it, on the workflow's own task queue)."""
        token = tokens.decode(req.task_token, tokens.WorkflowTaskToken)
        req_run = cast(tokens.WorkflowTaskToken, token)  # decode checked the kind
        for query_id, result in req.query_results.items():
            await self.engine.queries.resolve(query_id, result)
        types = settable_types(await self.engine.search_attributes.custom(token.namespace_id))
        eager_request_id = new_id()
        last: list[Transition] = []  # the transition of the last attempt (the one committed)

        def op(t: Transition) -> None:
            t.search_attribute_types = types
            t.pending_limits = pending_limits
            t.size_limits = size_limits
            t.eager_request_id = eager_request_id
            last[:] = [t]
            commands.complete_workflow_task(t, token, req)

        logged = logs.bind(workflow_id=req_run.workflow_id, run_id=req_run.run_id)
        try:
            _, t = await self.engine.update(token.namespace_id, token.workflow_id, token.run_id, op)
        finally:
            if last:
                _log_size_warnings(last[0])
            logs.unbind(logged)
        if not t.eager_activities:
            return []
        s = t.state
        scheduled = {e.event_id: e for e in t.events}
        eager = []
        for scheduled_event_id in t.eager_activities:
            a = s.activities[scheduled_event_id]
            metrics.schedule_to_start.get(a.task_queue, "activity").observe(0.0)
            metrics.activity_attempts.get(s.namespace, a.activity_type).inc()
            eager.append(activity_task(s, a, scheduled[scheduled_event_id], s.namespace))
        return eager

    async def respond_workflow_task_failed(self, task_token: bytes, cause: int, failure: Failure, identity: str) -> None:
        token = tokens.decode(task_token, tokens.WorkflowTaskToken)

        def op(t: Transition) -> None:
            t.check_workflow_task(token)
            t.fail_workflow_task(cause, failure, identity)

        _, t = await self.engine.update(token.namespace_id, token.workflow_id, token.run_id, op)
        metrics.record_workflow_task_failure(t.state.namespace, t.state.workflow_type, cause)

    # -- activity tasks --------------------------------------------------------------------

    async def poll_activity_task(
        self, namespace_id: str, namespace: str, queue: str, identity: str, timeout: float, max_per_second: float | None = None
    ) -> PollActivityTaskQueueResponse:
        """Wait for an activity task; ``max_per_second`` is the queue's dispatch rate limit the
        worker asks for (Temporal's ``max_task_queue_activities_per_second``), held by matching
        for all the queue's pollers together."""
        metrics.saw_queue(namespace_id, namespace, queue, ACTIVITY)
        deadline = monotonic() + timeout
        while (remaining := deadline - monotonic()) > 0:
            entry = await self.engine.queues.poll(namespace_id, queue, ACTIVITY, remaining, identity, max_per_second)
            if entry is None:
                break
            if entry.concurrency_key and not await self._slot(namespace_id, queue, entry):
                continue
            start = self._start_standalone_task if entry.activity_id else self._start_activity_task
            response = await self._decide(
                namespace_id, queue, ACTIVITY, entry, lambda entry=entry, start=start: start(entry, namespace, identity)
            )
            if response is not None:
                return response
            if entry.concurrency_key:  # stale: its slot goes back
                await self._release_slot(namespace_id, entry.concurrency_key, slot_holder(entry, entry.scheduled_event_id, entry.attempt))
        return PollActivityTaskQueueResponse()

    async def _slot(self, namespace_id: str, queue: str, entry: TaskEntry) -> bool:
        """Take a slot of the entry's concurrency key for its attempt, leased for its heartbeat
        timeout (renewed by heartbeats) or else its start-to-close timeout, so that a dead worker's
        slot comes back. Without a free slot the entry
        leaves the queue and comes back later (its transfer row stays in SQL meanwhile)."""
        holder = slot_holder(entry, entry.scheduled_event_id, entry.attempt)
        queues = self.engine.queues
        if await queues.acquire_slot(namespace_id, entry.concurrency_key, entry.max_concurrency, holder, entry.lease):
            return True
        await queues.ack(namespace_id, queue, ACTIVITY, entry)
        task = asyncio.ensure_future(self._requeue_when_free(namespace_id, queue, dataclasses.replace(entry, receipt="")))
        self._deferred.add(task)
        task.add_done_callback(self._deferred.discard)
        return False

    async def _requeue_when_free(self, namespace_id: str, queue: str, entry: TaskEntry) -> None:
        freed = self._slot_freed.setdefault((namespace_id, entry.concurrency_key), asyncio.Event())
        try:
            await asyncio.wait_for(freed.wait(), SLOT_RETRY)
        except TimeoutError:
            pass
        try:
            await self.engine.queues.add(namespace_id, queue, ACTIVITY, entry)
        except Exception:  # the transfer sweep queues it again from SQL
            log.exception("could not queue activity task %s again", entry.task_id)

    async def _release_slot(self, namespace_id: str, key: str, holder: str) -> None:
        await self.engine.queues.release_slot(namespace_id, key, holder)
        freed = self._slot_freed.pop((namespace_id, key), None)
        if freed is not None:
            freed.set()

    async def _start_activity_task(self, entry: TaskEntry, namespace: str, identity: str) -> PollActivityTaskQueueResponse:
        request_id = new_id()
        a, t = await self._take(
            entry, lambda t: activities.record_started(t, entry.scheduled_event_id, entry.attempt, identity, request_id)
        )
        metrics.schedule_to_start.get(a.task_queue, "activity").observe(max(a.started_time - a.scheduled_time, 0.0))
        metrics.activity_attempts.get(t.state.namespace, a.activity_type).inc()
        [scheduled] = await self.engine.read_events(t.state.run_id, a.scheduled_event_id, a.scheduled_event_id + 1)
        return activity_task(t.state, a, scheduled, namespace)

    async def _start_standalone_task(self, entry: TaskEntry, namespace: str, identity: str) -> PollActivityTaskQueueResponse:
        """Start the attempt of a standalone activity an entry names (its transfer row consumed
        in the same transaction)."""
        request_id = new_id()
        try:
            a, t = await self.engine.activity_executions.update(
                entry.namespace_id,
                entry.activity_id,
                entry.run_id,
                lambda t: activities.record_started(t, entry.scheduled_event_id, entry.attempt, identity, request_id),
                delete_transfer_ids=(entry.task_id,),
            )
        except (StaleTask, NotFound):
            await self.engine.store.delete_transfer_task(entry.task_id)
            raise StaleTask("stale task entry") from None
        metrics.task_queue_latency_seconds.labels(a.task_queue, "activity").observe(max(a.started_time - a.scheduled_time, 0.0))
        return standalone_activity_task(t.activity, namespace)

    async def activity_update(self, task_token: bytes, apply) -> Any:
        """Run ``apply(transition, activity_info)`` for the attempt a token names."""
        token = tokens.decode(task_token, (tokens.ActivityTaskToken, tokens.StandaloneActivityTaskToken))
        if isinstance(token, tokens.StandaloneActivityTaskToken):
            result, _ = await self.engine.activity_executions.update(
                token.namespace_id, token.activity_id, token.run_id, lambda t: apply(t, standalone.for_token(t, token))
            )
            return result
        assert isinstance(token, tokens.ActivityTaskToken)
        # (concurrency key, scheduled event id, attempt, activity type) before the update
        attempt: list[tuple[str, int, int, str]] = []

        def op(t: Transition) -> object:
            a = activities.for_token(t, token)
            attempt[:] = [(a.concurrency_key, a.scheduled_event_id, a.attempt, a.activity_type)]
            return apply(t, a)

        result, t = await self.engine.update(token.namespace_id, token.workflow_id, token.run_id, op)
        if attempt:
            after = t.state.activities.get(attempt[0][1])
            if after is None or after.attempt != attempt[0][2]:
                metrics.record_activity_end(t.state.namespace, attempt[0][3], t.events)
        if attempt and attempt[0][0]:
            key, scheduled_event_id, number, _ = attempt[0]
            holder = slot_holder(t.state, scheduled_event_id, number)
            after = t.state.activities.get(scheduled_event_id)
            if after is None or after.attempt != number or not after.started:  # the attempt ended
                await self._release_slot(t.state.namespace_id, key, holder)
            elif after.heartbeat:  # a heartbeat: the attempt lives on, so does its slot
                renewed = await self.engine.queues.acquire_slot(
                    t.state.namespace_id, key, after.max_concurrency, holder, activities.slot_lease(after)
                )
                if not renewed:
                    log.warning("activity %s of %s beat after its concurrency slot of %r lapsed and was taken",
                                scheduled_event_id, t.state.workflow_id, key)
        return result

    # -- queries ---------------------------------------------------------------------------

    async def query(self, namespace_id: str, workflow_id: str, run_id: str, query: WorkflowQuery, timeout: float) -> Payloads:
        """Run a query on a worker: with the run's next workflow task while one is scheduled or
        running (buffered), else at once as a query task."""
        engine = self.engine
        deadline = monotonic() + timeout
        loaded = await engine.load(namespace_id, workflow_id, run_id)
        key = run_key(namespace_id, workflow_id, loaded.state.run_id)
        router = engine.queries
        query_id = new_id()
        buffered = direct = False
        async with engine.notifier.subscribe(key) as sub:
            await router.register(query_id, query, timeout)
            answer = asyncio.ensure_future(router.wait(query_id, timeout))
            try:
                while not answer.done():
                    s = (await engine.load(namespace_id, workflow_id, loaded.state.run_id)).state
                    if s.completed_wft_count == 0 and not s.running:
                        raise FailedPrecondition("Cannot query workflow: it closed before any workflow task completed.")
                    idle = not s.running or s.wft is None
                    if s.completed_wft_count > 0 and idle and not direct:
                        # Nothing will carry it: a query task now (unless a task took it meanwhile).
                        if not buffered or await router.unbuffer(key, query_id):
                            buffered = False
                            direct = True
                            await self._add_query_task(s, query_id)
                    elif s.completed_wft_count > 0 and not idle and not buffered and not direct:
                        await router.buffer(key, query_id, max(deadline - monotonic(), 0))
                        buffered = True
                    changed = asyncio.ensure_future(sub.wait(deadline - monotonic()))
                    await asyncio.wait((answer, changed), return_when=asyncio.FIRST_COMPLETED)
                    changed.cancel()
                    if not answer.done() and monotonic() >= deadline:
                        break
                result = await answer if answer.done() else None
            finally:
                answer.cancel()
                if buffered:
                    await router.unbuffer(key, query_id)
                await router.discard(query_id)
        if result is None:
            if not direct and not buffered:
                raise DeadlineExceeded("query timed out before the workflow was ready to answer")
            raise DeadlineExceeded("query was not answered in time")
        if result.result_type == QueryResultType.QUERY_RESULT_TYPE_ANSWERED:
            return result.answer
        raise InvalidArgument(result.error_message, QueryFailedFailure(failure=result.failure))

    async def _add_query_task(self, s: MutableState, query_id: str) -> None:
        """Queue a query task for the run: on its sticky queue while a worker polls it, else the normal one."""
        engine = self.engine
        queue = s.task_queue
        routing = s.routing_data() if s.deployment_build or s.override_behavior else {}
        if (
            s.running
            and s.sticky_queue
            and (not routing or await engine.routing.sticky_still_right(s.namespace_id, queue, s.workflow_id, routing))
            and await engine.queues.has_recent_poller(s.namespace_id, s.sticky_queue, WORKFLOW, STICKY_POLLER_WINDOW)
        ):
            queue = s.sticky_queue
        else:
            queue = await engine.routing.route(s.namespace_id, queue, WORKFLOW, s.workflow_id, routing)
        entry = TaskEntry(query_id, s.namespace_id, s.workflow_id, s.run_id, query_id=query_id)
        await engine.queues.add(s.namespace_id, queue, WORKFLOW, entry)

    async def _query_task(self, entry: TaskEntry, sticky: bool) -> PollWorkflowTaskQueueResponse | None:
        query = await self.engine.queries.fetch(entry.query_id)
        if query is None:
            return None  # the caller gave up
        loaded = await self.engine.load(entry.namespace_id, entry.workflow_id, entry.run_id)
        s = loaded.state
        events = [] if sticky else await self.engine.read_events(s.run_id, 1, s.next_event_id)
        return PollWorkflowTaskQueueResponse(
            task_token=tokens.encode(tokens.QueryTaskToken(entry.namespace_id, entry.query_id)),
            workflow_execution=WorkflowExecution(workflow_id=s.workflow_id, run_id=s.run_id),
            workflow_type=WorkflowType(name=s.workflow_type),
            previous_started_event_id=s.last_completed_wft_started_event_id,
            started_event_id=0,
            attempt=1,
            history=History(events=events),
            query=query,
            workflow_execution_task_queue=TaskQueue(name=s.task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        )

    async def respond_query_task_completed(self, task_token: bytes, result: WorkflowQueryResult) -> None:
        token = tokens.decode(task_token, tokens.QueryTaskToken)
        if not await self.engine.queries.resolve(token.query_id, result):
            raise NotFound("Query task not found: it was answered already or its caller gave up.")


def activity_task(s: MutableState, a: ActivityInfo, scheduled: HistoryEvent, namespace: str) -> PollActivityTaskQueueResponse:
    """The poll response that hands a started activity attempt to a worker."""
    attrs = scheduled.activity_task_scheduled_event_attributes
    token = tokens.ActivityTaskToken(
        namespace_id=s.namespace_id,
        workflow_id=s.workflow_id,
        run_id=s.run_id,
        scheduled_event_id=a.scheduled_event_id,
        activity_id=a.activity_id,
        attempt=a.attempt,
    )
    return PollActivityTaskQueueResponse(
        task_token=tokens.encode(token),
        workflow_namespace=namespace,
        workflow_type=WorkflowType(name=s.workflow_type),
        workflow_execution=WorkflowExecution(workflow_id=s.workflow_id, run_id=s.run_id),
        activity_type=attrs.activity_type,
        activity_id=a.activity_id,
        header=attrs.header,
        input=attrs.input,
        heartbeat_details=unpack(Payloads, a.heartbeat_details),
        scheduled_time=scheduled.event_time,
        current_attempt_scheduled_time=timestamp(a.scheduled_time),
        started_time=timestamp(a.started_time),
        attempt=a.attempt,
        schedule_to_close_timeout=duration(a.schedule_to_close),
        start_to_close_timeout=duration(a.start_to_close),
        heartbeat_timeout=duration(a.heartbeat),
        # Options changed since scheduling (UpdateActivityOptions) are the ones the attempt runs with.
        retry_policy=attrs.retry_policy if a.original_options is None else activity_ops.retry_policy_of(a.retry),
        priority=attrs.priority if a.priority is None else unpack(Priority, a.priority),
    )


def standalone_activity_task(act: standalone.StandaloneActivity, namespace: str) -> PollActivityTaskQueueResponse:
    """The poll response that hands a started attempt of a standalone activity to a worker: no
    workflow, the activity's run id instead."""
    a = act.info
    token = tokens.StandaloneActivityTaskToken(
        namespace_id=act.namespace_id, activity_id=act.activity_id, run_id=act.run_id, attempt=a.attempt
    )
    return PollActivityTaskQueueResponse(
        task_token=tokens.encode(token),
        workflow_namespace=namespace,
        activity_type=ActivityType(name=a.activity_type),
        activity_id=a.activity_id,
        activity_run_id=act.run_id,
        header=unpack(Header, act.header),
        input=unpack(Payloads, act.input),
        heartbeat_details=unpack(Payloads, a.heartbeat_details),
        scheduled_time=timestamp(a.first_scheduled_time),
        current_attempt_scheduled_time=timestamp(a.scheduled_time),
        started_time=timestamp(a.started_time),
        attempt=a.attempt,
        schedule_to_close_timeout=duration(a.schedule_to_close),
        start_to_close_timeout=duration(a.start_to_close),
        heartbeat_timeout=duration(a.heartbeat),
        retry_policy=activity_ops.retry_policy_of(a.retry),
        priority=unpack(Priority, a.priority) or unpack(Priority, act.priority),
    )


def workflow_task(s: MutableState, w: WorkflowTaskInfo, events: list[HistoryEvent]) -> PollWorkflowTaskQueueResponse:
    """The poll response that hands a started workflow task (and the history it needs) to a worker."""
    return PollWorkflowTaskQueueResponse(
        task_token=tokens.encode(wft_token(s, w)),
        workflow_execution=WorkflowExecution(workflow_id=s.workflow_id, run_id=s.run_id),
        workflow_type=WorkflowType(name=s.workflow_type),
        previous_started_event_id=s.last_completed_wft_started_event_id,
        started_event_id=w.started_event_id,
        attempt=w.attempt,
        history=History(events=events),
        workflow_execution_task_queue=TaskQueue(name=s.task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        scheduled_time=timestamp(w.scheduled_time),
        started_time=timestamp(w.started_time),
        messages=updates.messages_for(s, w),
    )


def _log_size_warnings(t: Transition) -> None:
    """Log the command payloads a completion carried over the warning limit (Temporal logs "Blob
    data size exceeds the warning limit."; the ones over the error limit also terminated the run)."""
    for what, size, warn, error in t.size_warnings:
        over = f"over the {error}-byte limit" if size > error else f"over the {warn}-byte warning limit"
        log.warning(
            "%s of %d bytes in namespace %s, workflow %s, run %s is %s",
            what, size, t.state.namespace, t.state.workflow_id, t.state.run_id, over,
        )

