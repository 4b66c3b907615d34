"""Standalone activities in the history layer: their rows, outbox rows and changes
(docs/architecture.md#standalone-activities).

A standalone activity is one row of ``activity_executions`` per activity id (the id's latest
run). Every change loads the row, applies a pure ``ActivityTransition`` (``odin.history.standalone``)
and commits the row under a compare-and-swap on ``db_version`` together with the outbox rows the
change implies (the attempt's queue entry, its timeouts and retry timer), as a workflow update
does. Those rows name the activity id in their ``workflow_id`` column and fire through
``HistoryEngine.dispatch_transfer`` / ``fire_timer``, which hand them here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from temporalio.api.common.v1 import SearchAttributes
from temporalio.api.enums.v1 import ActivityIdConflictPolicy as Conflict
from temporalio.api.enums.v1 import ActivityIdReusePolicy as Reuse
from temporalio.api.errordetails.v1 import ActivityExecutionAlreadyStartedFailure, NotFoundFailure

from odin.errors import AlreadyExists, ConcurrentUpdate, NotFound, ResourceExhausted
from odin.history import activities, standalone
from odin.history.machine import StaleTask
from odin.history.notifier import RunChange, run_key
from odin.history.shards import shard_for
from odin.history.standalone import ActivityTransition, StandaloneActivity
from odin.history.state import unpack
from odin.history.tasks import TimerKind
from odin.ids import new_hex, new_run_id
from odin.persistence.store import ActivityExecutionRecord, ActivityWrite, Batch, OutboxTask

if TYPE_CHECKING:
    from odin.history.engine import HistoryEngine

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_CONFLICT_RETRIES = 20


class Loaded(NamedTuple):
    record: ActivityExecutionRecord
    activity: StandaloneActivity


def not_found(activity_id: str) -> NotFound:
    # Temporal names the id only, whichever run was asked for.
    return NotFound(f"activity not found for ID: {activity_id}", NotFoundFailure())


def wake_key(namespace_id: str, activity_id: str) -> str:
    """The notifier key long polls on one activity id watch."""
    return run_key(namespace_id, "activity:" + activity_id, "")


class ActivityExecutions:
    def __init__(self, engine: HistoryEngine):
        self.engine = engine

    # -- reading ---------------------------------------------------------------------------

    async def load(self, namespace_id: str, activity_id: str, run_id: str = "") -> Loaded:
        record = await self.engine.store.get_activity_execution(namespace_id, activity_id)
        if record is None or (run_id and record.run_id != run_id):
            raise not_found(activity_id)
        return Loaded(record, StandaloneActivity.from_bytes(record.state))

    # -- starting --------------------------------------------------------------------------

    async def start(
        self,
        namespace_id: str,
        activity_id: str,
        request_id: str,
        reuse: int,
        conflict: int,
        build: Callable[[str], ActivityTransition],
    ) -> tuple[str, bool]:
        """Start a run of ``activity_id`` (``build(run_id)`` makes its first transition) unless
        the id's current run or the policies say otherwise: a repeated request id gets its run; a
        running one is used (``USE_EXISTING``) or refused; a closed one is replaced as the reuse
        policy allows. Returns (run id, whether this request started it)."""
        for _ in range(MAX_CONFLICT_RETRIES):
            record = await self.engine.store.get_activity_execution(namespace_id, activity_id)
            if record is not None:
                if record.request_id == request_id:
                    return record.run_id, True
                if record.status in standalone.OPEN_STATES:
                    if conflict == Conflict.ACTIVITY_ID_CONFLICT_POLICY_USE_EXISTING:
                        return record.run_id, False
                    raise _already_started(record)
                if reuse == Reuse.ACTIVITY_ID_REUSE_POLICY_REJECT_DUPLICATE:
                    raise _already_started(record)
                if reuse == Reuse.ACTIVITY_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY and record.status not in standalone.FAILED_STATES:
                    raise _already_started(record)
            run_id = new_run_id()
            t = build(run_id)
            batch = Batch()
            self._add_write(batch, t, record, new_run=True)
            try:
                await self.engine.store.commit(batch)
            except ConcurrentUpdate:
                continue
            await self._after_commit(batch, t)
            return run_id, True
        raise ResourceExhausted("Activity id is busy: too many concurrent starts, try again.")

    # -- changing --------------------------------------------------------------------------

    async def update(
        self,
        namespace_id: str,
        activity_id: str,
        run_id: str,
        op: Callable[[ActivityTransition], T],
        *,
        delete_transfer_ids: tuple[str, ...] = (),
        delete_timer_ids: tuple[str, ...] = (),
        fence: tuple[int, int] | None = None,
    ) -> tuple[T, ActivityTransition]:
        """Apply ``op`` to the activity's run (its current run when ``run_id`` is empty) and
        commit; retried from a fresh load when another change committed first."""
        for _ in range(MAX_CONFLICT_RETRIES):
            loaded = await self.load(namespace_id, activity_id, run_id)
            before = loaded.record.state
            t = ActivityTransition(loaded.activity, self.engine.clock.now())
            beat_before = t.activity.info.last_heartbeat_time
            result = op(t)
            if t.activity.info.last_heartbeat_time not in (beat_before, 0.0):
                t.activity.heartbeats += 1
            batch = Batch(delete_transfer_ids=list(delete_transfer_ids), delete_timer_ids=list(delete_timer_ids), fence=fence)
            if t.activity.to_bytes() == before and not (t.transfers or t.timers or delete_transfer_ids or delete_timer_ids):
                return result, t
            self._add_write(batch, t, loaded.record, new_run=False)
            try:
                await self.engine.store.commit(batch)
            except ConcurrentUpdate:
                continue
            await self._after_commit(batch, t)
            return result, t
        raise ResourceExhausted("Activity is busy: too many concurrent updates, try again.")

    def _add_write(self, batch: Batch, t: ActivityTransition, record: ActivityExecutionRecord | None, new_run: bool) -> None:
        act = t.activity
        act.transitions += 1
        shard_id = record.shard_id if record else shard_for(act.namespace_id, act.activity_id, self.engine.num_shards)
        new_record = ActivityExecutionRecord(
            namespace_id=act.namespace_id,
            activity_id=act.activity_id,
            run_id=act.run_id,
            shard_id=shard_id,
            db_version=(record.db_version + 1) if record else 1,
            request_id=act.request_id,
            status=standalone.shown_status(act),
            activity_type=act.info.activity_type,
            task_queue=act.info.task_queue,
            start_time=datetime.fromtimestamp(act.start_time, UTC),
            close_time=datetime.fromtimestamp(act.close_time, UTC) if act.close_time else None,
            search_attributes=_search_attributes(act),
            state=act.to_bytes(),
        )
        closed_run = ""
        if t.closed:
            closed_run = act.run_id
        elif new_run and record is not None:
            closed_run = record.run_id  # the replaced run's leftovers (none, normally)
        batch.activities.append(
            ActivityWrite(new_record, record.db_version if record else None, closed_run_id=closed_run)
        )
        if t.closed:
            return  # a closed run keeps no outbox rows
        now = t.now
        for spec in t.transfers:
            kind = standalone.TRANSFER_KINDS[spec.kind]
            batch.transfer_tasks.append(
                OutboxTask(new_hex(), shard_id, act.namespace_id, act.activity_id, act.run_id, kind, spec.data, now)
            )
        for timer in t.timers:
            fire_at = datetime.fromtimestamp(timer.fire_at, UTC)
            batch.timer_tasks.append(
                OutboxTask(
                    new_hex(), shard_id, act.namespace_id, act.activity_id, act.run_id,
                    standalone.TIMER_KINDS[timer.kind], timer.data, now, fire_at,
                )
            )

    async def _after_commit(self, batch: Batch, t: ActivityTransition) -> None:
        engine = self.engine
        engine.commits += 1
        for task in batch.transfer_tasks:
            try:
                await engine.dispatch_transfer(task)
            except Exception:  # the row stays in SQL; the transfer sweep queues it again
                log.exception("could not queue transfer task %s", task.task_id)
        if batch.timer_tasks:
            engine.on_timers_committed(batch.timer_tasks)
        act = t.activity
        await engine.notifier.notify(wake_key(act.namespace_id, act.activity_id), RunChange(act.transitions, act.running))

    # -- outbox ----------------------------------------------------------------------------

    async def fire(self, task: OutboxTask, fence: tuple[int, int] | None) -> None:
        """A standalone activity's timer row came due: a timeout, or the next attempt."""
        d = task.data
        ops: dict[str, Callable[[ActivityTransition], None]] = {
            TimerKind.STANDALONE_ACTIVITY_TIMEOUT: lambda t: standalone.timed_out(t, d["attempt"], d["timeout_type"]),
            TimerKind.STANDALONE_ACTIVITY_RETRY: lambda t: activities.retry_due(t, d["scheduled_event_id"], d["attempt"]),
        }
        try:
            await self.update(
                task.namespace_id, task.workflow_id, task.run_id, ops[task.kind], delete_timer_ids=(task.task_id,), fence=fence
            )
        except (StaleTask, NotFound):
            await self.engine.store.delete_timer_task(task.task_id, fence)

    async def delete(self, namespace_id: str, activity_id: str, run_id: str) -> None:
        """DeleteActivityExecution: the row and its outbox rows go (a running activity with them:
        its worker's next call finds it gone)."""
        loaded = await self.load(namespace_id, activity_id, run_id)
        if not await self.engine.store.delete_activity_execution(namespace_id, activity_id, loaded.record.run_id):
            raise not_found(activity_id)
        await self.engine.notifier.notify(wake_key(namespace_id, activity_id), RunChange(0, False))


def _already_started(record: ActivityExecutionRecord) -> AlreadyExists:
    # Temporal's one wording, whether the id's run is running or closed and refused by the reuse policy.
    return AlreadyExists("activity execution already started", ActivityExecutionAlreadyStartedFailure(start_request_id=record.request_id, run_id=record.run_id))


def _search_attributes(act: StandaloneActivity) -> bytes | None:
    sa = unpack(SearchAttributes, act.search_attributes)
    return sa.SerializeToString() if sa is not None and sa.indexed_fields else None
