"""The jobs of time (docs/architecture.md#system-jobs), shared by Celery (``odin.beat.celery_app``) and the in-process
scheduler of ``odin dev`` (``odin.beat.local``).

- ``fire_timer``: one timer task at its ETA.
- ``sweep_timers``: the shard owner's safety net: fire every due timer of its shards that no ETA
  job took care of, and hand timers coming due to the timer scheduler.
- ``sweep_transfers``: put every transfer task of its shards that is still in SQL back on its
  queue (idempotent), so tasks survive a lost queue store or a process that died between commit
  and dispatch.
- ``run_batches``: work on the batch operations whose lease is free (``odin.history.batches``).
- ``retention_sweep`` / ``archive_workflow``: closed runs past their namespace's retention are
  archived (when the namespace or the cluster names an archive) and deleted.

Every job re-reads SQL and is safe to run twice or concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from temporalio.api.enums.v1 import NamespaceState

from odin.aio import cancel_and_wait
from odin.clock import Clock
from odin.errors import NotFound, ShardOwnershipLost
from odin.history.batches import BatchRunner
from odin.history.events import MAX_SECONDS
from odin.persistence import archive
from odin.persistence.store import OutboxTask

if TYPE_CHECKING:
    from odin.beat.timers import TimerScheduler
    from odin.history.engine import HistoryEngine
    from odin.history.shards import ShardOwnership

log = logging.getLogger(__name__)

BATCH = 500
# A timer handed to an ETA job is left to that job until it is this late.
ETA_GRACE = timedelta(seconds=2)
# Transfer tasks younger than this are still being dispatched by the process that wrote them.
TRANSFER_MIN_AGE = timedelta(seconds=2)
CONCURRENCY = 16


class SystemJobs:
    def __init__(
        self,
        engine: HistoryEngine,
        shards: ShardOwnership,
        timers: TimerScheduler,
        clock: Clock,
        *,
        timer_horizon: float = 30.0,
        archive_uri: str | None = None,
        transfer_min_age: timedelta = TRANSFER_MIN_AGE,
    ):
        self.engine = engine
        self.store = engine.store
        self.shards = shards
        self.timers = timers
        self.clock = clock
        self.timer_horizon = timedelta(seconds=timer_horizon)
        self.archive_uri = archive_uri
        self.transfer_min_age = transfer_min_age
        # Where the next transfer sweep continues (created_at, task_id), so a long backlog is
        # covered over several sweeps instead of its oldest rows over and over.
        self._transfer_cursor: tuple[datetime, str] | None = None
        self._limit = asyncio.Semaphore(CONCURRENCY)
        self._sweeping_timers = False
        self._sweeping_transfers = False
        self._deferred: set[asyncio.TimerHandle] = set()
        self._deferred_jobs: set[asyncio.Task] = set()
        self.batches = BatchRunner(engine, f"batch-runner:{uuid.uuid4()}")

    # -- timers ----------------------------------------------------------------------------

    async def fire_timer(self, task_id: str) -> bool:
        """Fire one timer task (its ETA came) if it still exists and is due by ``clock``. Celery
        runs an ETA job by the worker's own wall clock: a job that comes early (that clock is
        ahead) is put off on this process's monotonic clock until the task is due; if the process
        dies meanwhile, the sweep fires the task once it is ``ETA_GRACE`` late. Returns whether the
        task existed."""
        task = await self.store.get_timer_task(task_id)
        if task is None:
            return False
        early = (task.fire_at - self.clock.now()).total_seconds() if task.fire_at is not None else 0.0
        if early > 0:
            self._defer(task_id, early)
            return True
        await self.engine.fire_timer(task)
        return True

    def _defer(self, task_id: str, delay: float) -> None:
        loop = asyncio.get_running_loop()

        async def again() -> None:
            try:
                await self.fire_timer(task_id)
            except Exception:  # the sweep fires it
                log.exception("deferred timer task %s failed", task_id)

        def start() -> None:
            self._deferred.discard(handle)
            job = loop.create_task(again())
            self._deferred_jobs.add(job)
            job.add_done_callback(self._deferred_jobs.discard)

        handle = loop.call_later(delay, start)
        self._deferred.add(handle)

    async def close(self) -> None:
        """Drop the timer tasks put off to their due time (the sweep fires them)."""
        for handle in self._deferred:
            handle.cancel()
        self._deferred.clear()
        await cancel_and_wait(*self._deferred_jobs)

    async def sweep_timers(self) -> int:
        """Fire the due timers of this process's shards; hand the ones coming due to the timer
        scheduler. Returns how many were fired. Beat asks every second; a sweep still running
        (a backlog after an outage) covers the next ones, which return 0 at once instead of
        firing the same tasks again beside it."""
        if self._sweeping_timers:
            return 0
        self._sweeping_timers = True
        try:
            return await self._sweep_timers()
        finally:
            self._sweeping_timers = False

    async def _sweep_timers(self) -> int:
        owned = self.shards.owned()
        if not owned:
            return 0
        now = self.clock.now()
        due = await self.store.due_timer_tasks(now, BATCH, list(owned))
        handed = await self.timers.handed_off([t.task_id for t in due])
        overdue = [t for t in due if t.task_id not in handed or t.fire_at <= now - ETA_GRACE]
        fired = await self._fire_fenced(overdue, owned)
        upcoming = await self.store.due_timer_tasks(now + self.timer_horizon, BATCH, list(owned))
        self.timers.scheduled([t for t in upcoming if t.fire_at > now])
        return fired

    async def fire_due_timers(self) -> int:
        """Fire every due timer of this process's shards (the in-process scheduler's step)."""
        owned = self.shards.owned()
        if not owned:
            return 0
        due = await self.store.due_timer_tasks(self.clock.now(), BATCH, list(owned))
        await self._fire_fenced(due, owned)
        return len(due)

    async def _fire_fenced(self, tasks: list[OutboxTask], owned: dict[int, int]) -> int:
        lost: set[int] = set()

        async def fire(task: OutboxTask) -> bool:
            if task.shard_id in lost:
                return False
            async with self._limit:
                try:
                    await self.engine.fire_timer(task, fence=(task.shard_id, owned[task.shard_id]))
                    return True
                except ShardOwnershipLost:
                    log.warning("shard %d moved to another owner; leaving its timers to it", task.shard_id)
                    lost.add(task.shard_id)
                except Exception:
                    log.exception("timer task %s (%s) failed", task.task_id, task.kind)
                return False

        return sum(await asyncio.gather(*(fire(t) for t in tasks)))

    # -- transfers -------------------------------------------------------------------------

    async def sweep_transfers(self) -> int:
        """Dispatch again the transfer tasks of this process's shards still waiting in SQL (one
        sweep at a time, as for timers)."""
        if self._sweeping_transfers:
            return 0
        self._sweeping_transfers = True
        try:
            return await self._sweep_transfers()
        finally:
            self._sweeping_transfers = False

    async def _sweep_transfers(self) -> int:
        owned = self.shards.owned()
        if not owned:
            return 0
        before = self.clock.now() - self.transfer_min_age
        tasks = await self.store.list_transfer_tasks(BATCH, list(owned), before, after=self._transfer_cursor)
        self._transfer_cursor = (tasks[-1].created_at, tasks[-1].task_id) if len(tasks) == BATCH else None
        for task in tasks:
            try:
                await self.engine.dispatch_transfer(task)
            except Exception:
                log.exception("could not dispatch transfer task %s", task.task_id)
        return len(tasks)

    # -- batch operations ------------------------------------------------------------------

    async def run_batches(self, budget: float | None = None) -> int:
        """Work on the running batch operations nobody holds (until each ends, or for ``budget``
        seconds). Returns how many targets were acted on."""
        return await self.batches.run_due(budget)

    # -- retention and archival ------------------------------------------------------------

    async def expired_runs(self) -> list[tuple[str, str, str]]:
        """(namespace_id, workflow_id, run_id) of closed runs past their namespace's retention."""
        now = self.clock.now()
        runs: list[tuple[str, str, str]] = []
        for ns in await self.store.list_namespaces():
            retention = min(float(ns.data.get("retention_seconds") or 0), MAX_SECONDS)
            if retention <= 0:
                continue
            cutoff = now - timedelta(seconds=retention)
            # Batch jobs past retention go with the runs, as Temporal's batch workflows do.
            await self.store.delete_batch_operations_closed_before(ns.id, cutoff)
            # So do closed standalone activities (a row each, nothing to archive).
            await self.store.delete_activity_executions_closed_before(ns.id, cutoff)
            for workflow_id, run_id in await self.store.closed_runs_before(ns.id, cutoff, BATCH):
                runs.append((ns.id, workflow_id, run_id))
        return runs

    async def purge_deleted_namespaces(self) -> int:
        """Delete the runs of deleted namespaces, then the namespaces themselves. Returns how
        many runs went."""
        purged = 0
        for ns in await self.store.list_namespaces():
            if ns.state != NamespaceState.NAMESPACE_STATE_DELETED:
                continue
            runs = await self.store.list_runs(ns.id, BATCH)
            for workflow_id, run_id in runs:
                await self.engine.delete_run(ns.id, workflow_id, run_id)
            purged += len(runs)
            if len(runs) < BATCH:
                await self.store.delete_namespace(ns.id)
        return purged

    async def retention_sweep(self) -> int:
        """Archive and delete every expired run (the in-process form; Celery fans out instead),
        and purge deleted namespaces."""
        await self.purge_deleted_namespaces()
        done = 0
        for namespace_id, workflow_id, run_id in await self.expired_runs():
            try:
                done += await self.archive_workflow(namespace_id, workflow_id, run_id)
            except Exception:
                log.exception("could not archive %s/%s", workflow_id, run_id)
        return done

    async def archive_workflow(self, namespace_id: str, workflow_id: str, run_id: str) -> bool:
        """Archive one closed run past retention, then delete it. False if there was nothing to do."""
        ns = await self.store.get_namespace(id=namespace_id)
        if ns is None:
            return False
        try:
            loaded = await self.engine.load(namespace_id, workflow_id, run_id)
        except NotFound:
            return False
        s = loaded.state
        retention = float(ns.data.get("retention_seconds") or 0)
        if s.running or retention <= 0 or s.close_time + retention > self.clock.now().timestamp():
            return False
        uri = archive.archive_uri_for(ns.data, self.archive_uri)
        if uri:
            events = await self.store.read_events(run_id, 1, s.next_event_id)
            visibility = await self.store.get_visibility(namespace_id, run_id) or {}
            archiver = archive.archiver_for(uri)
            await asyncio.to_thread(archiver.archive, namespace_id, workflow_id, run_id, events, visibility)
        await self.engine.delete_run(namespace_id, workflow_id, run_id)
        return True
