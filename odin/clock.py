"""Injected time (docs/architecture.md#inv-injected-time): workflow time comes from a ``Clock``, so tests
and the time-skipping environment can move it; ``SystemClock`` reads the wall clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


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


def monotonic() -> float:
    """Monotonic seconds, for deadlines of in-process waits only (never persisted)."""
    return time.monotonic()
