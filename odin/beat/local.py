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
        ]
        self.batches_every = batches_every
        self._tasks: list[asyncio.Task] = []
        self._batch_rounds: set[asyncio.Task] = set()

    async def start(self) -> None:
        await self.timers.start()
        loop = asyncio.get_running_loop()
        for name, every, job in self._schedule:
            self._tasks.append(loop.create_task(self._every(name, every, job), name=f"odin-{name}"))
        self._tasks.append(loop.create_task(self._batches(), name="odin-run_batches"))

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks, *self._batch_rounds)
        self._tasks = []
        await self.timers.stop()

    async def _batches(self) -> None:
        """A round of batch jobs every ``batches_every`` seconds, each on a task of its own: a job
        started while others run is taken up by the next round, not after them (a round finds the
        jobs still running claimed, and only takes the new ones)."""
        while True:
            await asyncio.sleep(self.batches_every)
            round_ = asyncio.get_running_loop().create_task(self._every_once("run_batches", self.jobs.run_batches))
            self._batch_rounds.add(round_)
            round_.add_done_callback(self._batch_rounds.discard)

    @staticmethod
    async def _every_once(name: str, job: Callable[[], Awaitable[object]]) -> None:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("system job %s failed", name)

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
