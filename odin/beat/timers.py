"""Who wakes up for a timer task: an asyncio loop in one process, or Celery ETA jobs.

Timer tasks live in ``timer_tasks`` until the transaction that handles them deletes them, so a
restart (or a lost Celery message) delays a timer but never loses it: the timer sweep fires
whatever is due.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Protocol

from odin.aio import cancel_and_wait
from odin.clock import Clock
from odin.history.tasks import TimerKind
from odin.persistence.store import ExecutionStore, OutboxTask

log = logging.getLogger(__name__)


class TimerScheduler(Protocol):
    def scheduled(self, tasks: list[OutboxTask]) -> None:
        """Timer tasks were committed (or found by a sweep to be due soon). Must not block."""

    async def handed_off(self, task_ids: list[str]) -> set[str]:
        """Which of these tasks a precise wake-up has been arranged for (the sweep leaves those
        alone until they are overdue)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class AsyncioTimerScheduler:
    """One process fires every due timer: it sleeps until the next fire time in SQL (at most
    ``max_sleep``) or until a commit brings an earlier one."""

    def __init__(
        self,
        store: ExecutionStore,
        fire_due: Callable[[], Awaitable[int]],
        clock: Clock,
        max_sleep: float = 1.0,
        batch: int = 200,
    ):
        self._store = store
        self._fire_due = fire_due
        self._clock = clock
        self._max_sleep = max_sleep
        self._batch = batch
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._next: datetime | None = None

    def scheduled(self, tasks: list[OutboxTask]) -> None:
        if tasks and (self._next is None or min(t.fire_at for t in tasks) < self._next):
            self._wakeup.set()

    def wake(self) -> None:
        """Look for due timers now (the clock moved)."""
        self._wakeup.set()

    async def handed_off(self, task_ids: list[str]) -> set[str]:
        return set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="odin-timers")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                self._wakeup.clear()
                if await self._fire_due() >= self._batch:
                    continue
                self._next = await self._store.next_timer_time()
                delay = self._max_sleep
                if self._next is not None:
                    delay = min(delay, max((self._next - self._clock.now()).total_seconds(), 0.0))
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be briefly unavailable: keep the loop alive
                log.exception("timer loop iteration failed")
                delay = self._max_sleep
            try:
                await asyncio.wait_for(self._wakeup.wait(), delay)
            except TimeoutError:
                pass


# Kinds whose firing is the expected outcome and worth a precise wake-up. Timeouts (activity,
# workflow task, run) usually become moot and are left to the once-a-second sweep.
ETA_KINDS = frozenset(
    {TimerKind.USER_TIMER, TimerKind.ACTIVITY_RETRY, TimerKind.FIRST_WFT, TimerKind.SCHEDULE, TimerKind.STANDALONE_ACTIVITY_RETRY}
)


class CeleryTimerScheduler:
    """Hands timers due within ``horizon`` seconds to Celery as ``odin.fire_timer`` jobs with an
    ETA. A Redis mark per task keeps a timer from being handed over twice; later timers wait in
    SQL until a sweep finds them inside the horizon (Celery's Redis broker holds ETA jobs in
    worker memory, which is bad at far-future ETAs)."""

    def __init__(self, celery_app, redis, clock: Clock, *, prefix: str = "odin:", horizon: float = 30.0):
        self._celery = celery_app
        self._redis = redis
        self._clock = clock
        self._horizon = horizon
        self._mark = f"{prefix}timer-eta:"
        # Publishing to the broker is blocking I/O: one thread keeps it off the event loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="odin-celery-send")
        self._pending: set[asyncio.Task] = set()

    def scheduled(self, tasks: list[OutboxTask]) -> None:
        now = self._clock.now()
        near = [t for t in tasks if t.kind in ETA_KINDS and (t.fire_at - now).total_seconds() <= self._horizon]
        if near:
            job = asyncio.get_running_loop().create_task(self._hand_off(near))
            self._pending.add(job)
            job.add_done_callback(self._pending.discard)

    async def _hand_off(self, tasks: list[OutboxTask]) -> None:
        ttl = int(self._horizon * 2) + 60
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for t in tasks:
                    pipe.set(self._mark + t.task_id, b"1", nx=True, ex=ttl)
                fresh = [t for t, ok in zip(tasks, await pipe.execute()) if ok]
            if fresh:
                # In this context: with tracing on, each job carries the trace of the change that set it.
                send = contextvars.copy_context().run
                await asyncio.get_running_loop().run_in_executor(self._executor, send, self._send, fresh)
        except Exception:  # the sweep fires these when they come due
            log.warning("could not hand %d timers to Celery", len(tasks), exc_info=True)

    def _send(self, tasks: list[OutboxTask]) -> None:
        for t in tasks:
            self._celery.send_task("odin.fire_timer", args=[t.task_id], eta=t.fire_at)

    async def handed_off(self, task_ids: list[str]) -> set[str]:
        if not task_ids:
            return set()
        marks = await self._redis.mget([self._mark + i for i in task_ids])
        return {i for i, m in zip(task_ids, marks) if m is not None}

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        self._executor.shutdown(wait=True)
