"""Durable timers fired from SQL by an asyncio loop (``odin dev``; Celery drives them in production).

Timer tasks live in ``timer_tasks`` until the transaction that handles them deletes them, so a
restart fires whatever came due while the process was down.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Awaitable, Callable, Protocol

from odin.clock import Clock
from odin.persistence.store import ExecutionStore, OutboxTask

log = logging.getLogger(__name__)


class TimerScheduler(Protocol):
    def wake(self, fire_at: datetime) -> None:
        """A timer task due at ``fire_at`` was committed."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class AsyncioTimerScheduler:
    BATCH = 200

    def __init__(
        self,
        store: ExecutionStore,
        fire: Callable[[OutboxTask], Awaitable[None]],
        clock: Clock,
        max_sleep: float = 1.0,
    ):
        self._store = store
        self._fire = fire
        self._clock = clock
        self._max_sleep = max_sleep
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._next: datetime | None = None

    def wake(self, fire_at: datetime) -> None:
        if self._next is None or fire_at < self._next:
            self._wakeup.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="odin-timers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def run_due(self) -> int:
        """Fire every due timer once; returns how many were due."""
        due = await self._store.due_timer_tasks(self._clock.now(), self.BATCH)
        results = await asyncio.gather(*(self._fire(task) for task in due), return_exceptions=True)
        for task, result in zip(due, results):
            if isinstance(result, Exception):
                log.error("timer task %s (%s) failed: %r", task.task_id, task.kind, result, exc_info=result)
        return len(due)

    async def _run(self) -> None:
        while True:
            try:
                self._wakeup.clear()
                if await self.run_due() >= self.BATCH:
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
            except asyncio.TimeoutError:
                pass
