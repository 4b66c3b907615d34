"""Wake-ups for long polls: a history long poll waits on its run's key until the run changes."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import AsyncIterator, Protocol


class Subscription(Protocol):
    async def wait(self, timeout: float) -> bool:
        """True if the key was notified since subscribing (or since the last wait), else False."""


class Notifier(Protocol):
    def subscribe(self, key: str) -> contextlib.AbstractAsyncContextManager[Subscription]: ...

    async def notify(self, key: str) -> None: ...


class _EventSubscription:
    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.event.wait(), max(timeout, 0))
        except asyncio.TimeoutError:
            return False
        self.event.clear()
        return True


class InMemoryNotifier:
    def __init__(self) -> None:
        self._subs: dict[str, set[_EventSubscription]] = collections.defaultdict(set)

    @contextlib.asynccontextmanager
    async def subscribe(self, key: str) -> AsyncIterator[Subscription]:
        sub = _EventSubscription()
        self._subs[key].add(sub)
        try:
            yield sub
        finally:
            subs = self._subs.get(key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[key]

    async def notify(self, key: str) -> None:
        for sub in self._subs.get(key, ()):
            sub.event.set()


def run_key(namespace_id: str, workflow_id: str, run_id: str) -> str:
    return f"{namespace_id}/{workflow_id}/{run_id}"
