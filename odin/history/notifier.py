"""Wake-ups for long polls: a history long poll waits on its run's key until the run changes."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import orjson

from odin.aio import cancel_and_wait

log = logging.getLogger(__name__)


class Subscription(Protocol):
    # What the latest notification said about the change (see ``RunChange``); None if unknown.
    change: RunChange | None

    async def wait(self, timeout: float) -> bool:
        """True if the key was notified since subscribing (or since the last wait), else False."""


class Notifier(Protocol):
    def subscribe(self, key: str) -> contextlib.AbstractAsyncContextManager[Subscription]: ...

    async def notify(self, key: str, change: RunChange | None = None) -> None: ...


@dataclass(frozen=True)
class RunChange:
    """A summary of a committed change, so a waiter can tell whether reloading the run is worth it."""

    next_event_id: int
    running: bool

    def encode(self) -> bytes:
        return orjson.dumps([self.next_event_id, self.running])

    @classmethod
    def decode(cls, data: bytes) -> RunChange | None:
        try:
            next_event_id, running = orjson.loads(data)
            return cls(int(next_event_id), bool(running))
        except (ValueError, TypeError):
            return None


class _EventSubscription:
    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.change: RunChange | None = None

    def set(self, change: RunChange | None) -> None:
        # Without a summary the waiter must assume anything changed.
        self.change = change
        self.event.set()

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.event.wait(), max(timeout, 0))
        except TimeoutError:
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

    async def notify(self, key: str, change: RunChange | None = None) -> None:
        for sub in self._subs.get(key, ()):
            sub.set(change)


def run_key(namespace_id: str, workflow_id: str, run_id: str) -> str:
    return f"{namespace_id}/{workflow_id}/{run_id}"


class RedisNotifier:
    """Wake-ups across processes: ``notify`` publishes on the key's channel, and each process keeps
    one pub/sub connection subscribed to the keys its long polls wait on.

    A subscription is confirmed by Redis before ``subscribe`` returns, so a change committed after
    the waiter starts looking cannot be missed. If the connection drops, every local waiter is woken
    (waiters re-check their state; a spurious wake-up is harmless) and redis-py resubscribes."""

    def __init__(self, redis, prefix: str = "odin:"):
        self._redis = redis
        self._prefix = f"{prefix}wake:"
        self._local = InMemoryNotifier()
        self._refs: dict[str, int] = collections.Counter()
        self._confirmed: dict[str, asyncio.Event] = {}
        self._pubsub = None
        self._reader: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    async def _ensure_reader(self) -> None:
        if self._reader is None:
            self._pubsub = self._redis.pubsub()
            # A channel nobody publishes on: get_message needs a subscribed connection.
            await self._pubsub.subscribe(self._prefix)
            # A context of its own: not part of the trace (or log context) of the call that started it.
            self._reader = asyncio.get_running_loop().create_task(self._read(), name="odin-notifier", context=contextvars.Context())

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Connection trouble: wake every waiter so none sleeps through a missed message.
                for event in self._confirmed.values():
                    event.set()
                for key in list(self._local._subs):
                    await self._local.notify(key)
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            key = channel[len(self._prefix) :]
            if message["type"] == "subscribe":
                event = self._confirmed.get(key)
                if event is not None:
                    event.set()
            elif message["type"] == "message":
                await self._local.notify(key, RunChange.decode(message["data"]))

    @contextlib.asynccontextmanager
    async def subscribe(self, key: str) -> AsyncIterator[Subscription]:
        async with self._local.subscribe(key) as sub:
            async with self._lock:
                await self._ensure_reader()
                self._refs[key] += 1
                if self._refs[key] == 1:
                    self._confirmed[key] = asyncio.Event()
                    await self._pubsub.subscribe(self._prefix + key)
                confirmed = self._confirmed[key]
            try:
                try:
                    await asyncio.wait_for(confirmed.wait(), 2.0)
                except TimeoutError:
                    pass  # the waiter's own deadline still bounds how long it sleeps
                yield sub
            finally:
                async with self._lock:
                    self._refs[key] -= 1
                    if self._refs[key] <= 0:
                        del self._refs[key]
                        self._confirmed.pop(key, None)
                        try:
                            await self._pubsub.unsubscribe(self._prefix + key)
                        except Exception:  # the connection is gone; nothing to undo
                            pass

    async def notify(self, key: str, change: RunChange | None = None) -> None:
        await self._local.notify(key, change)
        try:
            await self._redis.publish(self._prefix + key, change.encode() if change else b"")
        except Exception:  # the change is committed; remote waiters will see it when they re-check
            log.warning("could not publish a wake-up for %s", key, exc_info=True)

    async def close(self) -> None:
        await cancel_and_wait(self._reader)
        self._reader = None
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
