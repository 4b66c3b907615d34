"""Worker heartbeats: what each worker process last said about itself (RecordWorkerHeartbeat, and
the final heartbeat ShutdownWorker carries), for ListWorkers and DescribeWorker.

Like the poller lists of the task queues, this is recent observation, not durable state: a worker
stays listed for ``WORKER_TTL`` seconds after its last heartbeat. Kept in process memory without
Redis and in Redis with it (one hash of heartbeats and one sorted set of their times per namespace,
both expiring when the namespace's workers all go quiet).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Protocol

from temporalio.api.worker.v1 import WorkerHeartbeat

from odin.visibility import query as q

# Seconds a worker stays listed after its last heartbeat (as a poller after its last poll).
WORKER_TTL = 300.0


class WorkerRegistry(Protocol):
    """Where the latest heartbeat of each worker is kept, per namespace, for ``WORKER_TTL`` seconds."""

    async def record(self, namespace_id: str, heartbeat: WorkerHeartbeat) -> None:
        """Keep a worker's latest heartbeat (by its ``worker_instance_key``), replacing the previous one."""

    async def get(self, namespace_id: str, worker_instance_key: str) -> WorkerHeartbeat | None: ...

    async def list(self, namespace_id: str) -> list[WorkerHeartbeat]:
        """The namespace's workers heard from within the TTL, most recent heartbeat first."""


def _newest_first(beats: list[tuple[float, WorkerHeartbeat]]) -> list[WorkerHeartbeat]:
    return [hb for _, hb in sorted(beats, key=lambda item: -item[0])]


class InMemoryWorkerRegistry:
    """Worker heartbeats in this process's memory (``odin dev``, one server without Redis)."""

    def __init__(self, ttl: float = WORKER_TTL) -> None:
        self.ttl = ttl
        # namespace id -> worker instance key -> (time recorded, heartbeat)
        self._workers: dict[str, dict[str, tuple[float, WorkerHeartbeat]]] = {}

    def _live(self, namespace_id: str) -> dict[str, tuple[float, WorkerHeartbeat]]:
        workers = self._workers.get(namespace_id, {})
        cutoff = time.time() - self.ttl
        for key in [k for k, (at, _) in workers.items() if at < cutoff]:
            del workers[key]
        return workers

    async def record(self, namespace_id: str, heartbeat: WorkerHeartbeat) -> None:
        self._live(namespace_id)
        self._workers.setdefault(namespace_id, {})[heartbeat.worker_instance_key] = (time.time(), heartbeat)

    async def get(self, namespace_id: str, worker_instance_key: str) -> WorkerHeartbeat | None:
        found = self._live(namespace_id).get(worker_instance_key)
        return found[1] if found else None

    async def list(self, namespace_id: str) -> list[WorkerHeartbeat]:
        return _newest_first(list(self._live(namespace_id).values()))


class RedisWorkerRegistry:
    """Worker heartbeats in Redis, shared by every server of the distributed shape."""

    def __init__(self, redis, prefix: str = "odin:", ttl: float = WORKER_TTL) -> None:
        self._redis = redis
        self._prefix = prefix
        self.ttl = ttl

    def _keys(self, namespace_id: str) -> tuple[str, str]:
        base = f"{self._prefix}workers:{{{namespace_id}}}:"
        return base + "heartbeats", base + "seen"

    async def record(self, namespace_id: str, heartbeat: WorkerHeartbeat) -> None:
        beats, seen = self._keys(namespace_id)
        now = time.time()
        key = heartbeat.worker_instance_key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(beats, key, heartbeat.SerializeToString())
            pipe.zadd(seen, {key: now})
            pipe.expire(beats, int(self.ttl) + 1)
            pipe.expire(seen, int(self.ttl) + 1)
            await pipe.execute()

    async def _drop_expired(self, namespace_id: str) -> None:
        beats, seen = self._keys(namespace_id)
        cutoff = time.time() - self.ttl
        expired = await self._redis.zrangebyscore(seen, "-inf", f"({cutoff}")
        if expired:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hdel(beats, *expired)
                pipe.zrem(seen, *expired)
                await pipe.execute()

    async def get(self, namespace_id: str, worker_instance_key: str) -> WorkerHeartbeat | None:
        await self._drop_expired(namespace_id)
        data = await self._redis.hget(self._keys(namespace_id)[0], worker_instance_key)
        return None if data is None else WorkerHeartbeat.FromString(data)

    async def list(self, namespace_id: str) -> list[WorkerHeartbeat]:
        await self._drop_expired(namespace_id)
        beats, seen = self._keys(namespace_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(beats)
            pipe.zrange(seen, 0, -1, withscores=True)
            data, times = await pipe.execute()
        at = {(k.decode() if isinstance(k, bytes) else k): score for k, score in times}
        found = []
        for k, v in data.items():
            key = k.decode() if isinstance(k, bytes) else k
            if key in at:
                found.append((at[key], WorkerHeartbeat.FromString(v)))
        return _newest_first(found)


# -- ListWorkers queries ---------------------------------------------------------------------

_STATUS_NAMES = {1: "Running", 2: "ShuttingDown", 3: "Shutdown"}


def _field(hb: WorkerHeartbeat, name: str) -> str | float | None:
    """A heartbeat's value for a ListWorkers query field (None: no such field, which matches nothing)."""
    if name == "WorkerInstanceKey":
        return hb.worker_instance_key
    if name == "WorkerIdentity":
        return hb.worker_identity
    if name == "HostName":
        return hb.host_info.host_name
    if name == "TaskQueue":
        return hb.task_queue
    if name == "DeploymentName":
        return hb.deployment_version.deployment_name
    if name == "BuildId":
        return hb.deployment_version.build_id
    if name == "SdkName":
        return hb.sdk_name
    if name == "SdkVersion":
        return hb.sdk_version
    if name == "Status":
        return _STATUS_NAMES.get(hb.status, "Unspecified")
    if name == "StartTime":
        return hb.start_time.ToNanoseconds() / 1e9
    if name == "HeartbeatTime":
        return hb.heartbeat_time.ToNanoseconds() / 1e9
    return None


def _comparable(value, name: str):
    """A query literal in the field's terms: times are RFC 3339 strings."""
    if name in ("StartTime", "HeartbeatTime") and isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return value


def _compare(actual, op: str, expected) -> bool:
    comparable = (isinstance(actual, str) and isinstance(expected, str)) or (
        isinstance(actual, float) and isinstance(expected, (int, float)) and not isinstance(expected, bool)
    )
    if not comparable:
        return False
    if op == "=":
        return actual == expected
    if op == "!=":
        return actual != expected
    return {"<": actual < expected, ">": actual > expected, "<=": actual <= expected, ">=": actual >= expected}[op]


def worker_matches(node, hb: WorkerHeartbeat) -> bool:
    """Whether a parsed list filter (``odin.visibility.query``) holds for a worker's heartbeat."""
    if node is None:
        return True
    if isinstance(node, q.And):
        return all(worker_matches(item, hb) for item in node.items)
    if isinstance(node, q.Or):
        return any(worker_matches(item, hb) for item in node.items)
    actual = _field(hb, node.name)
    if actual is None:
        return False
    if isinstance(node, q.Comparison):
        return _compare(actual, node.op, _comparable(node.value, node.name))
    if isinstance(node, q.In):
        hit = any(_compare(actual, "=", _comparable(v, node.name)) for v in node.values)
        return hit != node.negated
    if isinstance(node, q.StartsWith):
        return isinstance(actual, str) and actual.startswith(node.prefix) != node.negated
    if isinstance(node, q.Between):
        inside = _compare(actual, ">=", _comparable(node.low, node.name)) and _compare(
            actual, "<=", _comparable(node.high, node.name)
        )
        return inside != node.negated
    if isinstance(node, q.IsNull):
        return (actual in ("", 0.0)) != node.negated
    return False
