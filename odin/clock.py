"""Injected time (docs/architecture.md#inv-injected-time): workflow time comes from a ``Clock``, so tests
and the time-skipping environment can move it; ``SystemClock`` reads the wall clock, and
``ReferenceClock`` the cluster's one reference clock (the database server's)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

log = logging.getLogger(__name__)


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self._now += timedelta(seconds=seconds)


class SkippingClock:
    """Real time plus an offset that only grows: a test environment moves it forward to skip
    waits (the next timer, or ``advance``)."""

    def __init__(self) -> None:
        from datetime import timedelta

        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        if seconds > 0:
            self.offset += timedelta(seconds=seconds)


class ReferenceClock:
    """Cluster time (docs/architecture.md#inv-one-clock): the reference clock ``read`` returns (the
    database server's), sampled at ``start`` and every ``resync`` seconds and carried forward in
    between on this process's monotonic clock. A step of this host's wall clock (NTP, a clock set
    wrong) moves neither the event times and fire times it writes nor its idea of which timers and
    timeouts are due; every process keeps the same time to within a round trip to the reference.

    Each sync takes the fastest of ``samples`` reads and places the reference reading at the middle
    of its round trip, so it is off by at most half that round trip. A sync slower than ``max_rtt``
    is ignored once the clock has a reading (a busy pool or network), a failed one keeps the last;
    until a sync is fast enough the next comes after a second instead of ``resync``."""

    def __init__(
        self,
        read: Callable[[], Awaitable[datetime]],
        *,
        resync: float = 30.0,
        samples: int = 3,
        max_rtt: float = 0.5,
        warn_skew: float = 1.0,
    ):
        self._read = read
        self._resync = resync
        self._samples = samples
        self._max_rtt = max_rtt
        self._warn_skew = warn_skew
        self._base: float | None = None  # reference seconds minus monotonic seconds
        self._precise = False  # the reading kept came from a sync within max_rtt
        self._task: asyncio.Task | None = None

    def now(self) -> datetime:
        if self._base is None:
            raise RuntimeError("ReferenceClock read before its first sync")
        return datetime.fromtimestamp(self._base + time.monotonic(), UTC)

    @property
    def wall_skew(self) -> float:
        """Seconds this host's wall clock is ahead of the reference (negative: behind)."""
        if self._base is None:
            raise RuntimeError("ReferenceClock read before its first sync")
        return time.time() - (self._base + time.monotonic())

    async def sync(self) -> float:
        """Read the reference; returns the round trip of the reading kept."""
        best: tuple[float, float] | None = None
        for _ in range(self._samples):
            before = time.monotonic()
            reference = (await self._read()).timestamp()
            after = time.monotonic()
            if best is None or after - before < best[0]:
                best = (after - before, reference - (before + after) / 2)
        assert best is not None
        rtt, base = best
        if self._base is None or rtt <= self._max_rtt:
            self._base = base
            self._precise = rtt <= self._max_rtt
            skew = self.wall_skew
            if abs(skew) > self._warn_skew:
                log.warning("this host's wall clock is %+.1f s off the reference clock; Odin keeps the reference's time", skew)
        return rtt

    async def start(self) -> None:
        await self.sync()
        self._task = asyncio.create_task(self._run(), name="odin-reference-clock")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._resync if self._precise else min(1.0, self._resync))
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the reference is briefly unreachable: keep counting from the last reading
                log.warning("could not read the reference clock (%s); keeping the last reading", exc)


def monotonic() -> float:
    """Monotonic seconds, for deadlines of in-process waits only (never persisted)."""
    return time.monotonic()
