"""In-memory task queues for ``odin dev`` and tests: asyncio, one process."""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field

from odin.matching import RATE_WINDOW, PollerInfo, QueueStats, TaskEntry


@dataclass
class _Queue:
    entries: collections.deque = field(default_factory=collections.deque)
    ids: dict = field(default_factory=dict)  # task id of each queued entry -> when it was queued
    waiters: collections.deque = field(default_factory=collections.deque)
    pollers: dict = field(default_factory=dict)
    # When entries were added and handed out, over the last RATE_WINDOW seconds.
    adds: collections.deque = field(default_factory=collections.deque)
    dispatches: collections.deque = field(default_factory=collections.deque)


def _count(times: collections.deque, now: float) -> int:
    """Drop the times older than the rate window and count the rest."""
    while times and times[0] <= now - RATE_WINDOW:
        times.popleft()
    return len(times)


class InMemoryTaskQueues:
    requeue_first = True

    def __init__(self) -> None:
        self._queues: dict[tuple[str, str, str], _Queue] = collections.defaultdict(_Queue)

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
        while q.waiters:
            waiter = q.waiters.popleft()
            if not waiter.done():
                waiter.set_result(entry)
                return
        q.ids[entry.task_id] = time.time()
        if front:
            q.entries.appendleft(entry)
        else:
            q.entries.append(entry)

    async def poll(self, namespace_id: str, queue: str, task_type: str, timeout: float, identity: str) -> TaskEntry | None:
        q = self._q(namespace_id, queue, task_type)
        q.pollers[identity] = time.time()
        if q.entries:
            entry = q.entries.popleft()
            q.ids.pop(entry.task_id, None)
            q.dispatches.append(time.time())
            return entry
        waiter = asyncio.get_running_loop().create_future()
        q.waiters.append(waiter)
        try:
            got: TaskEntry | None = await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            got = self._abandon(q, waiter)
        except asyncio.CancelledError:
            entry = self._abandon(q, waiter)
            if entry is not None:
                self._put(q, entry, front=True)
            raise
        finally:
            q.pollers[identity] = time.time()
        if got is not None:
            q.dispatches.append(time.time())
        return got

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
        return len(q.entries) if q else 0

    async def stats(self, namespace_id: str, queue: str, task_type: str) -> QueueStats:
        q = self._queues.get((namespace_id, queue, task_type))
        if q is None:
            return QueueStats(0, 0.0, 0.0, 0.0)
        now = time.time()
        oldest = min(q.ids.values(), default=now)
        return QueueStats(
            len(q.entries), max(now - oldest, 0.0), _count(q.adds, now) / RATE_WINDOW, _count(q.dispatches, now) / RATE_WINDOW
        )

    async def drain(self, namespace_id: str, queue: str, task_type: str) -> list[TaskEntry]:
        q = self._queues.pop((namespace_id, queue, task_type), None)
        if q is None:
            return []
        for waiter in q.waiters:
            waiter.cancel()
        return list(q.entries)
