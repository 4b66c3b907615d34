"""The worker-heartbeat registries (``odin.matching.workers``): one contract for memory and Redis,
and the ListWorkers query filter."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis
from google.protobuf.timestamp_pb2 import Timestamp
from redis.exceptions import RedisError
from temporalio.api.worker.v1 import WorkerHeartbeat, WorkerHostInfo

from odin.matching.workers import InMemoryWorkerRegistry, RedisWorkerRegistry, worker_matches
from odin.visibility.query import parse
from tests.support.services import REDIS_URL, skip_or_fail


@pytest.fixture(params=["memory", "redis"])
async def make_registry(request, redis_prefix):
    """Build a registry of the parametrized kind; the Redis one's keys are deleted after the test."""
    client = None
    if request.param == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            await client.aclose()
            skip_or_fail(f"Redis is not reachable at {REDIS_URL}: {exc}")

    def make(ttl: float = 300.0):
        if client is None:
            return InMemoryWorkerRegistry(ttl=ttl)
        return RedisWorkerRegistry(client, prefix=redis_prefix, ttl=ttl)

    yield make
    if client is not None:
        keys = [key async for key in client.scan_iter(match=f"{redis_prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def beat(key: str, queue: str = "q", status: int = 1, host: str = "h1") -> WorkerHeartbeat:
    return WorkerHeartbeat(
        worker_instance_key=key, worker_identity=f"{key}@{host}", task_queue=queue, status=status,
        host_info=WorkerHostInfo(host_name=host), sdk_name="temporal-python", sdk_version="1.35.0",
        heartbeat_time=Timestamp(seconds=1_800_000_000),
    )


async def test_record_replaces_lists_newest_first_and_namespaces_are_apart(make_registry):
    registry = make_registry()
    await registry.record("ns1", beat("a"))
    await registry.record("ns1", beat("b"))
    await registry.record("ns2", beat("c"))
    await registry.record("ns1", beat("a", status=2))
    assert [hb.worker_instance_key for hb in await registry.list("ns1")] == ["a", "b"]
    assert (await registry.get("ns1", "a")).status == 2
    assert await registry.get("ns1", "c") is None
    assert [hb.worker_instance_key for hb in await registry.list("ns2")] == ["c"]


async def test_a_worker_is_forgotten_a_ttl_after_its_last_heartbeat(make_registry):
    registry = make_registry(ttl=1.0)
    await registry.record("ns", beat("a"))
    await asyncio.sleep(0.6)
    await registry.record("ns", beat("b"))
    await asyncio.sleep(0.6)
    assert [hb.worker_instance_key for hb in await registry.list("ns")] == ["b"]
    assert await registry.get("ns", "a") is None


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ("TaskQueue = 'q'", True),
        ("TaskQueue = 'other'", False),
        ("Status = 'Running'", True),
        ("Status = 'RUNNING'", False),  # the status is named as Temporal names it
        ("HostName STARTS_WITH 'h'", True),
        ("TaskQueue = 'q' AND HostName = 'h1'", True),
        ("TaskQueue = 'x' OR HostName = 'h1'", True),
        ("TaskQueue != 'q'", False),
        ("bogus = 1", False),  # an unknown field matches nothing (Temporal answers no workers too)
        ("HeartbeatTime > '2020-01-01T00:00:00Z'", True),
        ("HeartbeatTime < '2020-01-01T00:00:00Z'", False),
        ("SdkName = 'temporal-python' AND SdkVersion = '1.35.0'", True),
    ],
)
def test_list_workers_filters(query, matches):
    assert worker_matches(parse(query).where, beat("a")) is matches
