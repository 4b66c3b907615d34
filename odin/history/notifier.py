"""Wake-ups for long polls: a history long poll waits on its run's key until the run changes."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import orjson

from odin.aio import cancel_and_wait
from odin.clock import monotonic

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
            # asyncio.timeout, not wait_for: no task of its own per wait (a long poll waits often).
            async with asyncio.timeout(max(timeout, 0)):
                await self.event.wait()
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


# The processes that wait on wake-up channels, each with the time its registration lapses (by
# Redis's clock): a publisher skips the PUBLISH when no process but itself listens.
LISTENER_TTL = 15.0  # seconds a listener stays registered without renewing
LISTENER_RENEW = 5.0  # how often a listening process renews its registration
VIEW_MAX_AGE = 1.0  # seconds a publisher trusts the listeners it last read
# A newly (re-)registered listener wakes its waiters once publishers can no longer be working
# from a view without it: this long after its registration.
LISTENER_SETTLE = VIEW_MAX_AGE + 0.5

# KEYS: the listeners (sorted set: id -> lapse time). ARGV: id, ttl. 1 if the id was not registered.
_REGISTER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local new = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 1)
return new
"""

# KEYS: the listeners. The ids registered now.
_LISTENERS = """
local t = redis.call('TIME')
return redis.call('ZRANGEBYSCORE', KEYS[1], tonumber(t[1]) + tonumber(t[2]) / 1e6, '+inf')
"""


class RedisNotifier:
    """Wake-ups across processes: ``notify`` publishes on the key's channel, and each process keeps
    one pub/sub connection subscribed to the keys its long polls wait on.

    A subscription is confirmed by Redis before ``subscribe`` returns, so a change committed after
    the waiter starts looking cannot be missed. If the connection drops, every local waiter is woken
    (waiters re-check their state; a spurious wake-up is harmless) and redis-py resubscribes.

    Most commits have no waiter in another process (one server serves the run's long polls and
    commits its changes), so a PUBLISH is sent only while another process listens. A process
    registers as a listener before its first subscription and renews the registration every
    ``LISTENER_RENEW`` seconds; a publisher reads the registered listeners at most ``VIEW_MAX_AGE``
    seconds before it relies on them. A publisher that read them just before a new listener
    registered may skip wake-ups that listener wanted until its view is refreshed, so a listener
    whose registration is new (at start, or after it lapsed or Redis lost it) wakes all its waiters
    once, ``LISTENER_SETTLE`` seconds later: they re-check their state and see those changes."""

    def __init__(self, redis, prefix: str = "odin:"):
        self._redis = redis
        self._prefix = f"{prefix}wake:"
        self._local = InMemoryNotifier()
        self._refs: dict[str, int] = collections.Counter()
        self._confirmed: dict[str, asyncio.Event] = {}
        self._pubsub = None
        self._reader: asyncio.Task | None = None
        self._renewer: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._id = uuid.uuid4().hex
        self._listeners_key = f"{prefix}wake-listeners"
        self._register = redis.register_script(_REGISTER)
        self._read_listeners = redis.register_script(_LISTENERS)
        # (monotonic time the read was sent, whether another process listens) of the last read.
        self._view: tuple[float, bool] | None = None
        self._viewing: asyncio.Task | None = None
        self._settling: set[asyncio.Task] = set()

    async def _ensure_reader(self) -> None:
        if self._reader is None:
            # Registered before the first subscription, so publishers learn of it as early as they can.
            await self._renew()
            self._renewer = asyncio.get_running_loop().create_task(
                self._renew_loop(), name="odin-notifier-listener", context=contextvars.Context()
            )
            self._pubsub = self._redis.pubsub()
            # A channel nobody publishes on: get_message needs a subscribed connection.
            await self._pubsub.subscribe(self._prefix)
            # A context of its own: not part of the trace (or log context) of the call that started it.
            self._reader = asyncio.get_running_loop().create_task(self._read(), name="odin-notifier", context=contextvars.Context())

    async def _renew(self) -> None:
        try:
            new = await self._register(keys=[self._listeners_key], args=[self._id, LISTENER_TTL])
        except Exception:  # a later renewal registers it (and, being new then, wakes the waiters)
            log.warning("could not register as a wake-up listener", exc_info=True)
            return
        if new:
            task = asyncio.get_running_loop().create_task(self._wake_all_later(), context=contextvars.Context())
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(LISTENER_RENEW)
            await self._renew()

    async def _wake_all_later(self) -> None:
        await asyncio.sleep(LISTENER_SETTLE)
        await self._wake_all()

    async def _wake_all(self) -> None:
        for event in self._confirmed.values():
            event.set()
        for key in list(self._local._subs):
            await self._local.notify(key)

    async def _others_listen(self) -> bool:
        """Whether a process other than this one waits on wake-up channels (True if unknown)."""
        view = self._view
        if view is not None and monotonic() - view[0] < VIEW_MAX_AGE:
            return view[1]
        if self._viewing is None or self._viewing.done():
            self._viewing = asyncio.ensure_future(self._read_view())
        try:
            return await asyncio.shield(self._viewing)
        except Exception:
            log.warning("could not read the wake-up listeners", exc_info=True)
            return True

    async def _read_view(self) -> bool:
        sent = monotonic()
        ids = await self._read_listeners(keys=[self._listeners_key])
        others = any((i.decode() if isinstance(i, bytes) else i) != self._id for i in ids)
        self._view = (sent, others)
        return others

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Connection trouble: wake every waiter so none sleeps through a missed message.
                await self._wake_all()
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
                    async with asyncio.timeout(2.0):
                        await confirmed.wait()
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
            if not await self._others_listen():
                return
            await self._redis.publish(self._prefix + key, change.encode() if change else b"")
        except Exception:  # the change is committed; remote waiters will see it when they re-check
            log.warning("could not publish a wake-up for %s", key, exc_info=True)

    async def close(self) -> None:
        listened = self._renewer is not None
        await cancel_and_wait(self._reader, self._renewer, self._viewing, *self._settling)
        self._reader = self._renewer = self._viewing = None
        if listened:
            try:  # publishers stop sending to it at their next read
                await self._redis.zrem(self._listeners_key, self._id)
            except Exception:  # its registration lapses by itself
                pass
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
