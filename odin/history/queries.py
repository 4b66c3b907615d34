"""Where a query waits for its answer while a worker runs it.

``QueryWorkflow`` arrives at one process, the worker polls the query task through any process and
answers through any process. The router holds the query until a poller fetches it and carries the
answer back to the caller: in memory for one process, through Redis across processes. Queries are
never persisted: a query whose caller gave up is simply dropped.

A query that arrives while the run has a workflow task scheduled or running is *buffered* on the
run (as in Temporal): every workflow task started for the run carries the buffered queries in its
``queries`` map, and the worker answers them in ``RespondWorkflowTaskCompleted.query_results``.
A query stays buffered until answered, so a task that fails or times out hands it to the next one.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from temporalio.api.query.v1 import WorkflowQuery, WorkflowQueryResult

from odin.clock import monotonic
from odin.redisconn import block_limit


class QueryRouter(Protocol):
    async def register(self, query_id: str, query: WorkflowQuery, ttl: float) -> None:
        """A caller waits for ``query_id`` (for at most ``ttl`` seconds)."""

    async def fetch(self, query_id: str) -> WorkflowQuery | None:
        """The query for a polled query task; None if its caller gave up or was answered."""

    async def wait(self, query_id: str, timeout: float) -> WorkflowQueryResult | None:
        """The caller's side: the answer, or None when none came in time."""

    async def resolve(self, query_id: str, result: WorkflowQueryResult) -> bool:
        """Deliver an answer; False if nobody waits for it any more."""

    async def discard(self, query_id: str) -> None: ...

    async def buffer(self, run: str, query_id: str, ttl: float) -> None:
        """Buffer a registered query on the run (a ``run_key``): workflow tasks started for it carry it."""

    async def unbuffer(self, run: str, query_id: str) -> bool:
        """Take a query off the run's buffer; False if it was not there."""

    async def buffered(self, run: str) -> dict[str, WorkflowQuery]:
        """The run's buffered queries whose callers still wait, by query id."""


class InMemoryQueryRouter:
    def __init__(self) -> None:
        self._pending: dict[str, tuple[WorkflowQuery, asyncio.Future]] = {}
        self._runs: dict[str, set[str]] = {}

    async def register(self, query_id: str, query: WorkflowQuery, ttl: float) -> None:
        self._pending[query_id] = (query, asyncio.get_running_loop().create_future())

    async def fetch(self, query_id: str) -> WorkflowQuery | None:
        pending = self._pending.get(query_id)
        return None if pending is None or pending[1].done() else pending[0]

    async def wait(self, query_id: str, timeout: float) -> WorkflowQueryResult | None:
        pending = self._pending.get(query_id)
        if pending is None:
            return None
        try:
            async with asyncio.timeout(max(timeout, 0)):
                return await asyncio.shield(pending[1])
        except TimeoutError:
            return None

    async def resolve(self, query_id: str, result: WorkflowQueryResult) -> bool:
        pending = self._pending.get(query_id)
        if pending is None or pending[1].done():
            return False
        pending[1].set_result(result)
        return True

    async def discard(self, query_id: str) -> None:
        self._pending.pop(query_id, None)

    async def buffer(self, run: str, query_id: str, ttl: float) -> None:
        self._runs.setdefault(run, set()).add(query_id)

    async def unbuffer(self, run: str, query_id: str) -> bool:
        ids = self._runs.get(run)
        if ids is None or query_id not in ids:
            return False
        ids.discard(query_id)
        if not ids:
            del self._runs[run]
        return True

    async def buffered(self, run: str) -> dict[str, WorkflowQuery]:
        out = {}
        for query_id in self._runs.get(run, ()):
            query = await self.fetch(query_id)
            if query is not None:
                out[query_id] = query
        return out


# Deliver an answer only while its query is still registered, and only once.
_RESOLVE = """
if redis.call('DEL', KEYS[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


class RedisQueryRouter:
    """The query lives in a key with the caller's deadline as its TTL; the answer is pushed on a
    list the caller blocks on (BLPOP). A run's buffered queries are a set of query ids, which
    expires with the last caller's deadline."""

    ANSWER_TTL_MS = 60_000

    def __init__(self, redis, prefix: str = "odin:"):
        self._redis = redis
        self._prefix = f"{prefix}query:"
        self._resolve = redis.register_script(_RESOLVE)
        self._block = block_limit(redis)

    def _keys(self, query_id: str) -> tuple[str, str]:
        return f"{self._prefix}{{{query_id}}}", f"{self._prefix}{{{query_id}}}:answer"

    async def register(self, query_id: str, query: WorkflowQuery, ttl: float) -> None:
        key, _ = self._keys(query_id)
        await self._redis.set(key, query.SerializeToString(), px=max(int(ttl * 1000), 1))

    async def fetch(self, query_id: str) -> WorkflowQuery | None:
        key, _ = self._keys(query_id)
        data = await self._redis.get(key)
        return None if data is None else WorkflowQuery.FromString(data)

    async def wait(self, query_id: str, timeout: float) -> WorkflowQueryResult | None:
        _, answer = self._keys(query_id)
        deadline = monotonic() + timeout
        while True:
            remaining = deadline - monotonic()
            # BLPOP takes fractional seconds (0 would block forever), each wait within the read timeout.
            got = await self._redis.blpop([answer], timeout=max(min(remaining, self._block), 0.01))
            if got is not None:
                return WorkflowQueryResult.FromString(got[1])
            if remaining <= self._block:
                return None

    async def resolve(self, query_id: str, result: WorkflowQueryResult) -> bool:
        key, answer = self._keys(query_id)
        return bool(await self._resolve(keys=[key, answer], args=[result.SerializeToString(), self.ANSWER_TTL_MS]))

    async def discard(self, query_id: str) -> None:
        await self._redis.delete(*self._keys(query_id))

    def _run_key(self, run: str) -> str:
        return f"{self._prefix}run:{run}"

    async def buffer(self, run: str, query_id: str, ttl: float) -> None:
        key = self._run_key(run)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(key, query_id)
            pipe.pexpire(key, max(int(ttl * 1000), 1), gt=True)
            pipe.pexpire(key, max(int(ttl * 1000), 1), nx=True)
            await pipe.execute()

    async def unbuffer(self, run: str, query_id: str) -> bool:
        return bool(await self._redis.srem(self._run_key(run), query_id))

    async def buffered(self, run: str) -> dict[str, WorkflowQuery]:
        ids = sorted(await self._redis.smembers(self._run_key(run)))
        if not ids:
            return {}
        names = [i.decode() if isinstance(i, bytes) else i for i in ids]
        async with self._redis.pipeline(transaction=False) as pipe:  # one slot per query under Redis Cluster
            for name in names:
                pipe.get(self._keys(name)[0])
            found = await pipe.execute()
        return {name: WorkflowQuery.FromString(data) for name, data in zip(names, found) if data is not None}
