"""The jobs of time on this process's event loop: ``odin dev`` and a single-process ``odin server``
run them here instead of in Celery (same ``SystemJobs``, no broker)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from odin.aio import cancel_and_wait
from odin.beat.jobs import SystemJobs
from odin.beat.timers import AsyncioTimerScheduler

log = logging.getLogger(__name__)

# Seconds one round of batch jobs works before letting them go for the next round.
BATCH_ROUND = 5.0


class LocalSystemWorkers:
    def __init__(
        self,
        jobs: SystemJobs,
        timers: AsyncioTimerScheduler,
        *,
        transfers_every: float,
        retention_every: float,
        batches_every: float = 1.0,
    ):
        self.jobs = jobs
        self.timers = timers
        self._schedule: list[tuple[str, float, Callable[[], Awaitable[object]]]] = [
            ("sweep_transfers", transfers_every, jobs.sweep_transfers),
            ("retention_sweep", retention_every, jobs.retention_sweep),
            # A few seconds a round, so a job started meanwhile is taken up soon after.
            ("run_batches", batches_every, lambda: jobs.run_batches(BATCH_ROUND)),
        ]
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        await self.timers.start()
        for name, every, job in self._schedule:
            self._tasks.append(asyncio.get_running_loop().create_task(self._every(name, every, job), name=f"odin-{name}"))

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        await self.timers.stop()

    @staticmethod
    async def _every(name: str, every: float, job: Callable[[], Awaitable[object]]) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("system job %s failed", name)
