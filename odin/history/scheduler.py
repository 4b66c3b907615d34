"""Schedules in the history layer: their rows, their timer and the starts they take
(docs/architecture.md#schedules).

Every change to a schedule is one transaction guarded by a compare-and-swap on the row's
``db_version``, and commits the schedule's timer row with it. Taking a start is the same
transaction as the new run (``HistoryEngine.start_workflow`` with ``on_start``): two processes
stepping the same schedule compute the same start, and only one of them commits it; the other
meets the CAS, reloads and finds the start taken. What to do is decided by the pure
``odin.history.schedules.ScheduleMachine``; this module loads, asks, and commits.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from temporalio.api.common.v1 import Memo, SearchAttributes
from temporalio.api.enums.v1 import WorkflowExecutionStatus as Status
from temporalio.api.errordetails.v1 import WorkflowExecutionAlreadyStartedFailure
from temporalio.api.schedule.v1 import Schedule, SchedulePatch

from odin.errors import AlreadyExists, ConcurrentUpdate, NotFound, ResourceExhausted, ScheduleConflict
from odin.history.machine import StaleTask
from odin.history.schedule_spec import described_spec
from odin.history.schedules import (
    INITIAL_CONFLICT_TOKEN,
    Closed,
    ScheduleMachine,
    ScheduleRuntime,
    new_runtime,
    with_defaults,
)
from odin.history.shards import shard_for
from odin.history.tasks import TimerKind
from odin.persistence.store import Batch, OutboxTask, ScheduleRecord, ScheduleWrite

if TYPE_CHECKING:
    from odin.history.engine import HistoryEngine

log = logging.getLogger(__name__)

MAX_CONFLICT_RETRIES = 20
# Starts one step may take before it yields (the timer row brings the schedule back at once).
MAX_STARTS_PER_STEP = 100
SYSTEM_IDENTITY = "odin-scheduler"


def not_found(schedule_id: str) -> NotFound:
    # Temporal answers with the id of the workflow that runs the schedule.
    return NotFound(f"workflow not found for ID: temporal-sys-scheduler:{schedule_id}")


class Loaded:
    """A schedule row and its machine at ``now``."""

    def __init__(self, record: ScheduleRecord, machine: ScheduleMachine):
        self.record = record
        self.machine = machine

    def snapshot(self) -> tuple[bytes, str, int]:
        m = self.machine
        return m.schedule.SerializeToString(deterministic=True), m.rt.to_json(), m.conflict_token


class Scheduler:
    def __init__(self, engine: HistoryEngine):
        self.engine = engine

    @property
    def store(self):
        return self.engine.store

    def _now(self) -> float:
        return self.engine.clock.now().timestamp()

    def machine(self, record: ScheduleRecord, now: float | None = None) -> ScheduleMachine:
        return ScheduleMachine(
            Schedule.FromString(record.schedule),
            ScheduleRuntime.from_json(record.info),
            record.conflict_token,
            record.namespace_id,
            record.schedule_id,
            self._now() if now is None else now,
        )

    async def load(self, namespace_id: str, schedule_id: str) -> Loaded:
        record = await self.store.get_schedule(namespace_id, schedule_id)
        if record is None:
            raise not_found(schedule_id)
        return Loaded(record, self.machine(record))

    # -- writes ----------------------------------------------------------------------------

    def _batch(
        self,
        loaded: Loaded | None,
        m: ScheduleMachine,
        *,
        namespace_id: str,
        schedule_id: str,
        request_id: str = "",
        memo: bytes | None = None,
        search_attributes: bytes | None = None,
        consumed_timer: str | None = None,
        fence: tuple[int, int] | None = None,
        delete: bool = False,
    ) -> Batch:
        """The transaction that stores ``m``'s schedule: its row (inserted when ``loaded`` is None)
        and its timer row, replaced when the wake-up time changes or the old one was consumed."""
        now = datetime.fromtimestamp(m.now, UTC)
        rt = m.rt
        shard = loaded.record.shard_id if loaded else shard_for(namespace_id, schedule_id, self.engine.num_shards)
        batch = Batch(fence=fence)
        if consumed_timer:
            batch.delete_timer_ids.append(consumed_timer)
        wake = None if delete else m.next_wakeup()
        if wake != (rt.timer_at or None) or (consumed_timer and consumed_timer == rt.timer_task_id):
            if rt.timer_task_id and rt.timer_task_id != consumed_timer:
                batch.delete_timer_ids.append(rt.timer_task_id)
            rt.timer_task_id, rt.timer_at = "", 0.0
            if wake is not None:
                rt.timer_task_id, rt.timer_at = uuid.uuid4().hex, wake
                batch.timer_tasks.append(
                    OutboxTask(
                        rt.timer_task_id, shard, namespace_id, schedule_id, "", TimerKind.SCHEDULE,
                        {"schedule_id": schedule_id}, now, datetime.fromtimestamp(wake, UTC),
                    )
                )
        old = loaded.record if loaded else None
        record = ScheduleRecord(
            namespace_id=namespace_id,
            schedule_id=schedule_id,
            shard_id=shard,
            conflict_token=m.conflict_token,
            db_version=(old.db_version + 1) if old else 1,
            request_id=old.request_id if old else request_id,
            schedule=m.schedule.SerializeToString(),
            info=rt.to_json(),
            memo=memo if memo is not None else (old.memo if old else None),
            search_attributes=search_attributes if search_attributes is not None else (old.search_attributes if old else None),
            paused=m.schedule.state.paused,
            created_at=old.created_at if old else now,
            updated_at=now,
            next_action_at=datetime.fromtimestamp(wake, UTC) if wake is not None else None,
        )
        batch.schedules.append(ScheduleWrite(record, old.db_version if old else None, delete=delete))
        return batch

    async def _commit(self, batch: Batch) -> None:
        await self.store.commit(batch)
        if batch.timer_tasks:
            self.engine.on_timers_committed(batch.timer_tasks)

    # -- calls -----------------------------------------------------------------------------

    async def create(
        self,
        namespace_id: str,
        schedule_id: str,
        schedule: Schedule,
        initial_patch: SchedulePatch | None,
        memo: Memo | None,
        search_attributes: SearchAttributes | None,
        request_id: str,
    ) -> int:
        """Create a schedule; returns its conflict token. A repeated request id answers again."""
        for _ in range(MAX_CONFLICT_RETRIES):
            existing = await self.store.get_schedule(namespace_id, schedule_id)
            if existing is not None:
                if request_id and existing.request_id == request_id:
                    return existing.conflict_token
                # With the detail Temporal sends: SDKs turn it into their "already running" error.
                raise AlreadyExists(
                    f'schedule "{schedule_id}" is already registered', WorkflowExecutionAlreadyStartedFailure()
                )
            now = self._now()
            stored = with_defaults(schedule)
            stored.spec.CopyFrom(described_spec(schedule.spec))
            m = ScheduleMachine(stored, new_runtime(now), INITIAL_CONFLICT_TOKEN, namespace_id, schedule_id, now)
            if initial_patch is not None:
                m.patch(initial_patch)
            batch = self._batch(
                None, m, namespace_id=namespace_id, schedule_id=schedule_id, request_id=request_id,
                memo=_bytes(memo), search_attributes=_bytes(search_attributes),
            )
            try:
                await self._commit(batch)
            except ConcurrentUpdate:
                continue  # created concurrently: answer as for an existing one
            await self.step_soon(namespace_id, schedule_id)
            return m.conflict_token
        raise ResourceExhausted("Schedule is busy: too many concurrent changes, try again.")

    async def _change(self, namespace_id: str, schedule_id: str, change, **write) -> Loaded | None:
        """Load, apply ``change(loaded)`` (False: nothing to write), commit; retried on a lost CAS."""
        for _ in range(MAX_CONFLICT_RETRIES):
            loaded = await self.load(namespace_id, schedule_id)
            if change(loaded) is False:
                return loaded
            batch = self._batch(loaded, loaded.machine, namespace_id=namespace_id, schedule_id=schedule_id, **write)
            try:
                await self._commit(batch)
            except ScheduleConflict:
                continue
            return loaded
        raise ResourceExhausted("Schedule is busy: too many concurrent changes, try again.")

    async def update(
        self,
        namespace_id: str,
        schedule_id: str,
        schedule: Schedule,
        conflict_token: int,
        memo: Memo | None,
        search_attributes: SearchAttributes | None,
    ) -> None:
        """Replace the schedule. A stale conflict token changes nothing, without an error (as in
        Temporal, where the scheduler workflow drops the update)."""
        stored = with_defaults(schedule)
        stored.spec.CopyFrom(described_spec(schedule.spec))

        def change(loaded: Loaded) -> bool:
            if conflict_token and conflict_token != loaded.record.conflict_token:
                log.info("update of schedule %s dropped: conflict token %d is not %d", schedule_id, conflict_token, loaded.record.conflict_token)
                return False
            loaded.machine.update(stored)
            return True

        await self._change(
            namespace_id, schedule_id, change, memo=_bytes(memo), search_attributes=_bytes(search_attributes, keep_empty=True)
        )
        await self.step_soon(namespace_id, schedule_id)

    async def patch(self, namespace_id: str, schedule_id: str, patch: SchedulePatch) -> None:
        await self._change(namespace_id, schedule_id, lambda loaded: loaded.machine.patch(patch))
        await self.step_soon(namespace_id, schedule_id)

    async def delete(self, namespace_id: str, schedule_id: str) -> None:
        """Remove the schedule and its timer; the workflows it started keep running."""
        await self._change(namespace_id, schedule_id, lambda loaded: None, delete=True)

    # -- taking actions --------------------------------------------------------------------

    async def fire(self, task: OutboxTask, fence: tuple[int, int] | None = None) -> None:
        """The schedule's timer row came due."""
        await self.step(task.namespace_id, task.workflow_id, timer=task, fence=fence)

    async def step_soon(self, namespace_id: str, schedule_id: str) -> None:
        """Take what is due right after a caller's change; a failure is left to the timer row."""
        try:
            await self.step(namespace_id, schedule_id)
        except Exception:
            log.exception("schedule %s: step after a change failed; its timer takes over", schedule_id)

    async def step(
        self, namespace_id: str, schedule_id: str, *, timer: OutboxTask | None = None, fence: tuple[int, int] | None = None
    ) -> int:
        """Bring the schedule up to now: note closed runs, buffer due times, take due starts (one
        transaction each), cancel or terminate for the overlap policy, and set the next timer.
        Returns how many starts it took."""
        consumed = timer.task_id if timer else None
        taken = 0
        conflicts = 0
        terminated = False
        for _ in range(2 * MAX_STARTS_PER_STEP):
            if taken >= MAX_STARTS_PER_STEP or conflicts >= MAX_CONFLICT_RETRIES:
                break
            record = await self.store.get_schedule(namespace_id, schedule_id)
            if record is None or (consumed and ScheduleRuntime.from_json(record.info).timer_task_id != consumed):
                if consumed:  # a deleted schedule's or a replaced timer row
                    await self.store.delete_timer_task(consumed, fence)
                return taken
            loaded = Loaded(record, self.machine(record))
            m = loaded.machine
            before = loaded.snapshot()
            for closed in await self._closed_runs(namespace_id, m):
                m.run_closed(closed)
            m.advance()
            start = m.next_start()
            write: dict[str, Any] = {"namespace_id": namespace_id, "schedule_id": schedule_id, "consumed_timer": consumed, "fence": fence}
            try:
                if start is None and m.expired():
                    # Idle past its retention: gone, as a DeleteSchedule would leave it.
                    log.info("schedule %s: idle since its last event for the retention period; deleted", schedule_id)
                    await self._commit(self._batch(loaded, m, delete=True, **write))
                    return taken
                if start is None:
                    batch = self._batch(loaded, m, **write)
                    if loaded.snapshot() == before and not batch.timer_tasks and not consumed:
                        return taken  # nothing changed
                    await self._commit(batch)
                else:
                    await self._take(loaded, start, write)
                    taken += 1
            except ScheduleConflict:
                conflicts += 1
                continue
            consumed = None
            await self._cancel_or_terminate(namespace_id, m)
            # A terminated run is closed now: look again to start what waited for it. A cancel
            # is only a request; the run's close (schedule_run_closed) brings the schedule back.
            if start is None and (terminated or not m.need_terminate):
                return taken
            terminated = terminated or m.need_terminate
        return taken

    async def _take(self, loaded: Loaded, start, write: dict[str, Any]) -> None:
        """Start the workflow of ``start`` and record it, in one transaction."""
        m = loaded.machine
        record = loaded.record
        ns = await self.store.get_namespace(id=record.namespace_id)
        if ns is None:
            raise NotFound(f"namespace {record.namespace_id} not found")
        # Derived from the schedule's creation and the start's number: the same start computed by
        # two processes is one request.
        created_us = int(record.created_at.timestamp() * 1_000_000)
        request_id = f"schedule:{record.schedule_id}:{created_us}:{start.seq}"
        request = m.start_request(start, ns.name, request_id)
        state_after_decision = (m.schedule.SerializeToString(), m.rt.to_json(), m.conflict_token)

        def on_start(run_id: str) -> Batch:
            # Built afresh on each attempt of the start (it may retry on its own conflicts).
            again = self.machine(record, m.now)
            again.schedule = Schedule.FromString(state_after_decision[0])
            again.rt = ScheduleRuntime.from_json(state_after_decision[1])
            again.conflict_token = state_after_decision[2]
            again.record_action(start, request.workflow_id, run_id)
            return self._batch(loaded, again, **write)

        try:
            await self.engine.start_workflow(
                record.namespace_id, ns.name, request, scheduled_by=record.schedule_id, on_start=on_start
            )
        except AlreadyExists:
            # A run with that id exists: the start is dropped (Temporal logs it and moves on).
            log.warning("schedule %s: %s is already started; start dropped", record.schedule_id, request.workflow_id)
            await self._commit(self._batch(loaded, m, **write))

    async def _closed_runs(self, namespace_id: str, m: ScheduleMachine) -> list[Closed]:
        """The running workflows of the schedule that have closed, with their outcome."""
        out = []
        for action in m.rt.running:
            current = await self.store.get_current(namespace_id, action.workflow_id)
            if current is not None and current.first_execution_run_id == action.run_id:
                if current.status == Status.WORKFLOW_EXECUTION_STATUS_RUNNING:
                    continue
                out.append(await self._outcome(action.workflow_id, current))
            else:  # deleted, or replaced by an unrelated run
                out.append(Closed(action.workflow_id, Status.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED))
        return out

    async def _outcome(self, workflow_id: str, current) -> Closed:
        """A closed run's status, and its result or failure from its close event."""
        closed = Closed(workflow_id, current.status)
        if current.status not in (Status.WORKFLOW_EXECUTION_STATUS_COMPLETED, Status.WORKFLOW_EXECUTION_STATUS_FAILED):
            return closed
        try:
            loaded = await self.engine.load(current.namespace_id, current.workflow_id, current.run_id)
        except NotFound:
            return closed
        s = loaded.state
        events = await self.store.read_events(s.run_id, s.close_event_id, s.close_event_id + 1)
        if not events:
            return closed
        if current.status == Status.WORKFLOW_EXECUTION_STATUS_COMPLETED:
            closed.result = events[0].workflow_execution_completed_event_attributes.result.SerializeToString()
        else:
            failure = events[0].workflow_execution_failed_event_attributes.failure
            closed.failure, closed.failure_message = failure.SerializeToString(), failure.message
        return closed

    async def _cancel_or_terminate(self, namespace_id: str, m: ScheduleMachine) -> None:
        """The overlap policy asked to end the running workflows; repeated while starts wait."""
        if not (m.need_cancel or m.need_terminate):
            return
        identity = f"temporal-scheduler-{m.schedule_id}"
        for action in m.rt.running:
            if m.need_terminate:
                op = lambda t: t.terminate("terminated by schedule overlap policy", None, identity)  # noqa: E731
            else:
                op = lambda t: t.request_cancel("cancelled by schedule overlap policy", identity)  # noqa: E731
            try:
                await self.engine.update(namespace_id, action.workflow_id, "", op)
            except (NotFound, StaleTask):
                pass
            except Exception:  # retried on the schedule's next look (RECHECK_SECONDS)
                log.exception("schedule %s: could not end %s for the overlap policy", m.schedule_id, action.workflow_id)


def _bytes(message, keep_empty: bool = False) -> bytes | None:
    """A memo / search attributes message as stored: None when absent (keeps the old value)."""
    if message is None:
        return None
    data = message.SerializeToString()
    return data if data or keep_empty else None
