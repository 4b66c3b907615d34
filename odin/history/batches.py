"""Batch operations (docs/architecture.md#batch-operations): one action (terminate, cancel, signal,
delete, reset) applied to every run a visibility query matches, or to a list of executions.

A job is a ``batch_operations`` row: the ``StartBatchOperationRequest``, its counts and a cursor.
``BatchRunner`` (run by the system jobs) takes a job's lease, works through its targets a page at a
time at no more than the job's operations per second, and commits the counts with the cursor after
each page. A runner that dies mid-page leaves the lease to expire; the next runner redoes only that
page, and each action is idempotent (a terminated, deleted or cancel-requested run is left as it is;
a signal or a reset carries a request id derived from the job and the run), so every run is acted on
once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

from temporalio.api.batch.v1 import BatchOperationReset
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import BatchOperationState, BatchOperationType, EventType, ResetType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.clock import monotonic
from odin.errors import InvalidArgument, NotFound, OdinError
from odin.history import operations
from odin.history.engine import HistoryEngine
from odin.history.reset import Reapply
from odin.history.state import ResetPoint
from odin.ids import new_id
from odin.persistence.store import BatchOperationRecord
from odin.visibility import query as visibility_query
from odin.visibility import sql as visibility_sql

log = logging.getLogger(__name__)

# Operations per second when the request sets none (Temporal's worker.batcherRPS default).
DEFAULT_RPS = 50.0
# Most targets acted on between two commits of the cursor.
MAX_PAGE = 100
# How long a runner's claim on a job lasts without a page committed.
LEASE = timedelta(seconds=10)
# Most jobs one runner takes on in one round.
MAX_JOBS = 20
# Jobs of one namespace running at once (Temporal's frontend.MaxConcurrentBatchOperationPerNamespace);
# a namespace may set its own with the data key ``odin.max_concurrent_batch_operations``.
DEFAULT_MAX_RUNNING = 1

RUNNING, COMPLETED, FAILED, STOPPED = "running", "completed", "failed", "stopped"
# A stopped job reads as failed, as Temporal's terminated batch workflow does.
STATES = {
    RUNNING: BatchOperationState.BATCH_OPERATION_STATE_RUNNING,
    COMPLETED: BatchOperationState.BATCH_OPERATION_STATE_COMPLETED,
    FAILED: BatchOperationState.BATCH_OPERATION_STATE_FAILED,
    STOPPED: BatchOperationState.BATCH_OPERATION_STATE_FAILED,
}

# The request's operation field -> the type the job reports.
OPERATION_TYPES = {
    "termination_operation": BatchOperationType.BATCH_OPERATION_TYPE_TERMINATE_WORKFLOW,
    "cancellation_operation": BatchOperationType.BATCH_OPERATION_TYPE_CANCEL_WORKFLOW,
    "signal_operation": BatchOperationType.BATCH_OPERATION_TYPE_SIGNAL_WORKFLOW,
    "deletion_operation": BatchOperationType.BATCH_OPERATION_TYPE_DELETE_WORKFLOW,
    "reset_operation": BatchOperationType.BATCH_OPERATION_TYPE_RESET_WORKFLOW,
}


def operation_of(req: ws.StartBatchOperationRequest) -> str:
    """The request's operation field name ("" if none is set)."""
    return req.WhichOneof("operation") or ""


def rps_of(req: ws.StartBatchOperationRequest) -> float:
    return float(req.max_operations_per_second) if req.max_operations_per_second > 0 else DEFAULT_RPS


def targets_in_list(req: ws.StartBatchOperationRequest) -> list[WorkflowExecution]:
    """The explicit targets: ``executions``, or ``target_executions`` given as workflow executions."""
    if req.executions:
        return list(req.executions)
    return [WorkflowExecution(workflow_id=e.business_id, run_id=e.run_id) for e in req.target_executions]


async def start(
    engine: HistoryEngine, namespace_id: str, req: ws.StartBatchOperationRequest, total: int, max_running: int
) -> BatchOperationRecord:
    """StartBatchOperation: record the job (its runner picks it up); AlreadyExists for a job id in
    use, ResourceExhausted when the namespace runs ``max_running`` jobs already."""
    op = operation_of(req)
    record = BatchOperationRecord(
        namespace_id=namespace_id,
        job_id=req.job_id,
        run_id=str(uuid.uuid4()),
        request_id=new_id(),
        operation_type=OPERATION_TYPES[op],
        request=req.SerializeToString(),
        identity=getattr(req, op).identity,
        reason=req.reason,
        state=RUNNING,
        total=total,
        completed=0,
        failed=0,
        cursor="",
        start_time=engine.clock.now(),
    )
    await engine.store.create_batch_operation(record, max_running)
    return record


async def stop(engine: HistoryEngine, namespace_id: str, job_id: str, reason: str, identity: str) -> None:
    """StopBatchOperation: the job ends after the page in progress (actions already taken stay)."""
    if not await engine.store.stop_batch_operation(namespace_id, job_id, reason, identity, engine.clock.now()):
        if await engine.store.get_batch_operation(namespace_id, job_id) is None:
            raise NotFound(f"workflow not found for ID: {job_id}")
        raise NotFound("workflow execution already completed")


class BatchRunner:
    """Works through running jobs whose lease is free; one per process that runs system jobs."""

    def __init__(self, engine: HistoryEngine, owner: str):
        self.engine = engine
        self.store = engine.store
        self.clock = engine.clock
        self.owner = owner

    async def run_due(self, budget: float | None = None) -> int:
        """Run every claimable job (until done, stopped, or ``budget`` seconds are spent, after
        which the job's lease is let go for the next round). Returns how many targets were done."""
        deadline = None if budget is None else monotonic() + budget
        claimed = []
        for record in await self.store.running_batch_operations(self.clock.now(), MAX_JOBS):
            now = self.clock.now()
            until = now + _lease(ws.StartBatchOperationRequest.FromString(record.request))
            if await self.store.claim_batch_operation(record.namespace_id, record.job_id, self.owner, now, until):
                claimed.append(record)  # else another runner took it
        # Jobs of different namespaces run side by side, each at its own pace.
        done = 0
        outcomes = await asyncio.gather(*(self.run(r, deadline) for r in claimed), return_exceptions=True)
        for record, outcome in zip(claimed, outcomes):
            if isinstance(outcome, BaseException):
                # Its lease lapses and a later round (here or elsewhere) goes on from its last page.
                log.error("batch %s: a page failed", record.job_id, exc_info=outcome)
            else:
                done += outcome
        return done

    async def run(self, record: BatchOperationRecord, deadline: float | None = None) -> int:
        """Work on a claimed job page by page. Returns how many targets were done."""
        req = ws.StartBatchOperationRequest.FromString(record.request)
        rps = rps_of(req)
        page_size = _page_size(rps)
        act = self._action(record, req)
        pacer = _Pacer(rps)
        done = 0
        while True:
            try:
                page, cursor = await self._page(record, req, page_size)
            except visibility_query.QueryError as exc:
                # The filter no longer compiles (a custom search attribute it names was removed).
                log.warning("batch %s failed: its query is no longer valid: %s", record.job_id, exc)
                now = self.clock.now()
                await self.store.save_batch_progress(replace(record, state=FAILED, close_time=now), self.owner, now)
                return done
            completed, failed = record.completed, record.failed
            for workflow_id, run_id in page:
                await pacer.wait()
                try:
                    await act(workflow_id, run_id)
                    completed += 1
                except NotFound:
                    completed += 1  # closed or gone already: nothing left to do, as in Temporal
                except OdinError as exc:
                    log.info("batch %s: %s/%s failed: %s", record.job_id, workflow_id, run_id, exc.message)
                    failed += 1
            done += len(page)
            now = self.clock.now()
            finished = len(page) < page_size
            record = replace(
                record,
                completed=completed,
                failed=failed,
                cursor=cursor,
                total=max(record.total, completed + failed) if finished else record.total,
                state=COMPLETED if finished else RUNNING,
                close_time=now if finished else None,
            )
            out_of_time = deadline is not None and monotonic() >= deadline and not finished
            # Out of time: commit the page and let the lease go, so any runner continues.
            until = now if out_of_time else now + _lease(req)
            if not await self.store.save_batch_progress(record, self.owner, until):
                log.info("batch %s was stopped or taken over; leaving it", record.job_id)
                return done
            if finished or out_of_time:
                return done

    async def _page(
        self, record: BatchOperationRecord, req: ws.StartBatchOperationRequest, size: int
    ) -> tuple[list[tuple[str, str]], str]:
        """The next page of targets and the cursor after it."""
        if req.visibility_query:
            custom = await self.engine.search_attributes.custom(record.namespace_id)
            _, where, _ = visibility_sql.compile_query(req.visibility_query, custom)
            rows = await self.store.visibility_runs_after(record.namespace_id, where, record.cursor, size)
            return rows, rows[-1][1] if rows else record.cursor
        start = int(record.cursor or 0)
        chosen = targets_in_list(req)[start : start + size]
        return [(e.workflow_id, e.run_id) for e in chosen], str(start + len(chosen))

    def _action(
        self, record: BatchOperationRecord, req: ws.StartBatchOperationRequest
    ) -> Callable[[str, str], Awaitable[None]]:
        engine, ns = self.engine, record.namespace_id
        op = operation_of(req)
        if op == "termination_operation":
            t = req.termination_operation
            details = t.details if t.HasField("details") else None
            return lambda wid, rid: operations.terminate(engine, ns, wid, rid, req.reason, details, t.identity)
        if op == "cancellation_operation":
            c = req.cancellation_operation
            return lambda wid, rid: operations.request_cancel(engine, ns, wid, rid, req.reason, c.identity)
        if op == "signal_operation":
            s = req.signal_operation

            def signal(wid: str, rid: str) -> Awaitable[None]:
                # One request id per job and run: a page redone after a crash signals once.
                request_id = str(uuid.uuid5(uuid.UUID(record.run_id), f"{wid}\0{rid}"))
                return operations.signal(engine, ns, wid, rid, s.signal, s.input, s.identity, s.header, request_id)

            return signal
        if op == "deletion_operation":
            return lambda wid, rid: operations.delete(engine, ns, wid, rid)
        if op == "reset_operation":
            r = req.reset_operation
            options = r.options
            if r.HasField("options"):
                reapply = Reapply.of(options.reset_reapply_type, options.reset_reapply_exclude_types)
            else:
                reapply = Reapply.of(r.reset_reapply_type, [])

            async def reset(wid: str, rid: str) -> None:
                loaded = await engine.load(ns, wid, rid)
                s = loaded.state
                events = await operations.read_events(engine, s.run_id, 1, s.next_event_id)
                finish = reset_point(r, s.run_id, events, s.auto_reset_points)
                # One request id per job and run: a page redone after a crash resets once.
                request_id = str(uuid.uuid5(uuid.UUID(record.run_id), f"reset\0{wid}\0{rid}"))
                await operations.reset(engine, ns, wid, s.run_id, finish, req.reason, request_id, reapply)

            return reset
        raise AssertionError(f"batch {record.job_id}: no runner for {op}")


def _lease(req: ws.StartBatchOperationRequest) -> timedelta:
    """How long a claim lasts: LEASE past the time a page takes at the job's pace, so a slow job's
    runner keeps it between two commits."""
    rps = rps_of(req)
    return LEASE + timedelta(seconds=_page_size(rps) / rps)


def _page_size(rps: float) -> int:
    """About a second's worth of actions: stop takes effect and progress shows within a second or so."""
    return max(1, min(MAX_PAGE, int(rps)))


def reset_point(
    reset: BatchOperationReset, run_id: str, events: list[HistoryEvent], points: list[ResetPoint]
) -> int:
    """The event a batch reset takes a run back to: its first or last completed workflow task, a
    given event, or the first workflow task a build completed (Temporal's batch reset targets). A
    run without one is a failure of the batch, as in Temporal."""
    options = reset.options
    target = options.WhichOneof("target") if reset.HasField("options") else None
    if target == "workflow_task_id":
        return options.workflow_task_id
    if target == "build_id":
        for p in points:
            if p.build_id == options.build_id and p.run_id == run_id:
                return p.first_workflow_task_completed_id
        raise InvalidArgument(f"no workflow task of build {options.build_id} to reset to")
    completed = [e.event_id for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]
    if not completed:
        raise InvalidArgument("no completed workflow task to reset to")
    first = target == "first_workflow_task" or (
        target is None and reset.reset_type == ResetType.RESET_TYPE_FIRST_WORKFLOW_TASK
    )
    return completed[0] if first else completed[-1]


class _Pacer:
    """At most ``rps`` actions a second: each waits for its slot, one every 1/rps seconds."""

    def __init__(self, rps: float):
        self.interval = 1.0 / rps
        self.next = monotonic()

    async def wait(self) -> None:
        now = monotonic()
        if self.next > now:
            await asyncio.sleep(self.next - now)
        self.next = max(self.next, now) + self.interval
