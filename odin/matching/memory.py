"""In-memory task queues for ``odin dev`` and tests: asyncio, one process."""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field

from odin import metrics
from odin.clock import monotonic
from odin.matching import PRIORITY_LEVELS, RATE_TTL, RATE_WINDOW, PollerInfo, QueueStats, TaskEntry, priority_level

# A poll short of a token sleeps at least this long before it looks again.
MIN_RATE_WAIT = 0.005


@dataclass
class _Bucket:
    """A queue's dispatch rate limit: a token bucket of one token (no burst)."""

    rate: float = 0.0
    until: float = 0.0  # monotonic time the rate lapses (RATE_TTL after the last poll that gave it)
    tokens: float = 1.0
    stamp: float = 0.0

    def refill(self, now: float) -> float:
        """Tokens now (refilled since the last look); 1 when no rate is in force."""
        if self.rate <= 0 or now >= self.until:
            self.rate, self.tokens = 0.0, 1.0
        else:
            self.tokens = min(1.0, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.tokens


@dataclass
class _Queue:
    # One deque per priority level, highest first.
    levels: list = field(default_factory=lambda: [collections.deque() for _ in range(PRIORITY_LEVELS)])
    ids: dict = field(default_factory=dict)  # task id of each queued entry -> when it was queued
    waiters: collections.deque = field(default_factory=collections.deque)
    pollers: dict = field(default_factory=dict)
    bucket: _Bucket = field(default_factory=_Bucket)
    # When entries were added and handed out, over the last RATE_WINDOW seconds.
    adds: collections.deque = field(default_factory=collections.deque)
    dispatches: collections.deque = field(default_factory=collections.deque)

    def take(self) -> TaskEntry | None:
        for level in self.levels:
            if level:
                entry = level.popleft()
                self.ids.pop(entry.task_id, None)
                return entry
        return None

    def size(self) -> int:
        return sum(len(level) for level in self.levels)


def _count(times: collections.deque, now: float) -> int:
    """Drop the times older than the rate window and count the rest."""
    while times and times[0] <= now - RATE_WINDOW:
        times.popleft()
    return len(times)


class InMemoryTaskQueues:
    requeue_first = True

    def __init__(self) -> None:
        self._queues: dict[tuple[str, str, str], _Queue] = collections.defaultdict(_Queue)
        # (namespace id, concurrency key) -> holder -> monotonic time its lease ends
        self._slots: dict[tuple[str, str], dict[str, float]] = collections.defaultdict(dict)

    def _q(self, namespace_id: str, queue: str, task_type: str) -> _Queue:
        return self._queues[(namespace_id, queue, task_type)]

    async def add(self, namespace_id: str, queue: str, task_type: str, entry: TaskEntry) -> None:
        q = self._q(namespace_id, queue, task_type)
        if entry.task_id in q.ids:
            return
        q.adds.append(time.time())
        self._put(q, entry, front=False)

    async def requeue(self, namespace_id: str, queue: str, task_type: str, entry: TaskEntry) -> None:
        q = self._q(namespace_id, queue, task_type)
        if entry.task_id not in q.ids:
            self._put(q, entry, front=True)

    async def ack(self, namespace_id: str, queue: str, task_type: str, entry: TaskEntry) -> None:
        """Nothing to do: a polled entry has already left the in-memory queue."""

    def _put(self, q: _Queue, entry: TaskEntry, front: bool) -> None:
        # Waiters wait only on an empty queue, so handing an entry to one skips nobody.
        while q.waiters:
            waiter = q.waiters.popleft()
            if not waiter.done():
                waiter.set_result(entry)
                return
        q.ids[entry.task_id] = time.time()
        level = q.levels[priority_level(entry.priority) - 1]
        if front:
            level.appendleft(entry)
        else:
            level.append(entry)

    async def poll(
        self,
        namespace_id: str,
        queue: str,
        task_type: str,
        timeout: float,
        identity: str,
        max_per_second: float | None = None,
    ) -> TaskEntry | None:
        q = self._q(namespace_id, queue, task_type)
        q.pollers[identity] = time.time()
        deadline = monotonic() + timeout
        if max_per_second:
            q.bucket.refill(monotonic())
            q.bucket.rate, q.bucket.until = max_per_second, monotonic() + RATE_TTL
        # A rate-limited poll holds a token while it takes or waits; it gives it back if nothing came.
        while (tokens := q.bucket.refill(monotonic())) < 1:
            wait = max((1 - tokens) / q.bucket.rate, MIN_RATE_WAIT)
            if monotonic() + wait > deadline:
                await asyncio.sleep(max(deadline - monotonic(), 0))
                q.pollers[identity] = time.time()
                return None
            await asyncio.sleep(wait)
        q.bucket.tokens -= 1
        try:
            entry = await self._wait(q, task_type, deadline - monotonic())
        except BaseException:
            q.bucket.tokens = min(1.0, q.bucket.tokens + 1)
            raise
        finally:
            q.pollers[identity] = time.time()
        if entry is None:
            q.bucket.tokens = min(1.0, q.bucket.tokens + 1)
        else:
            q.dispatches.append(time.time())
        return entry

    async def _wait(self, q: _Queue, task_type: str, timeout: float) -> TaskEntry | None:
        entry = q.take()
        if entry is not None or timeout <= 0:
            metrics.count_poll(task_type, entry, sync=False)
            return entry
        waiter = asyncio.get_running_loop().create_future()
        q.waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                entry = await asyncio.shield(waiter)
        except TimeoutError:
            entry = self._abandon(q, waiter)
        except asyncio.CancelledError:
            entry = self._abandon(q, waiter)
            if entry is not None:
                self._put(q, entry, front=True)
            raise
        metrics.count_poll(task_type, entry, sync=True)
        return entry

    @staticmethod
    def _abandon(q: _Queue, waiter: asyncio.Future) -> TaskEntry | None:
        """Withdraw a waiter; if an entry was handed to it meanwhile, return that entry."""
        if waiter.done():
            return waiter.result()
        waiter.cancel()
        try:
            q.waiters.remove(waiter)
        except ValueError:
            pass
        return None

    async def has_recent_poller(self, namespace_id: str, queue: str, task_type: str, within: float) -> bool:
        q = self._queues.get((namespace_id, queue, task_type))
        if q is None:
            return False
        return bool(q.waiters) or any(time.time() - t <= within for t in q.pollers.values())

    async def pollers(self, namespace_id: str, queue: str, task_type: str) -> list[PollerInfo]:
        q = self._queues.get((namespace_id, queue, task_type))
        return [PollerInfo(identity, t) for identity, t in q.pollers.items()] if q else []

    async def backlog(self, namespace_id: str, queue: str, task_type: str) -> int:
        q = self._queues.get((namespace_id, queue, task_type))
        return q.size() if q else 0

    async def stats(self, namespace_id: str, queue: str, task_type: str) -> QueueStats:
        q = self._queues.get((namespace_id, queue, task_type))
        if q is None:
            return QueueStats(0, 0.0, 0.0, 0.0)
        now = time.time()
        oldest = min(q.ids.values(), default=now)
        return QueueStats(
            q.size(), max(now - oldest, 0.0), _count(q.adds, now) / RATE_WINDOW, _count(q.dispatches, now) / RATE_WINDOW
        )

    async def drain(self, namespace_id: str, queue: str, task_type: str) -> list[TaskEntry]:
        q = self._queues.pop((namespace_id, queue, task_type), None)
        if q is None:
            return []
        for waiter in q.waiters:
            waiter.cancel()
        return [entry for level in q.levels for entry in level]

    async def acquire_slot(self, namespace_id: str, key: str, limit: int, holder: str, lease: float) -> bool:
        now = monotonic()
        held = self._slots[(namespace_id, key)]
        for expired in [h for h, until in held.items() if until <= now]:
            del held[expired]
        if holder not in held and len(held) >= limit:
            return False
        held[holder] = now + lease
        return True

    async def release_slot(self, namespace_id: str, key: str, holder: str) -> None:
        held = self._slots.get((namespace_id, key))
        if held is not None:
            held.pop(holder, None)
            if not held:
                del self._slots[(namespace_id, key)]
