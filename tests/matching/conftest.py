"""Redis fixtures of the matching tests: each test's keys live under a fresh prefix, deleted after it."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as redis
from redis.exceptions import RedisError

from odin.matching.redis_streams import RedisTaskQueues
from tests.support.services import REDIS_URL, skip_or_fail


@pytest.fixture
async def redis_client():
    client = redis.Redis.from_url(REDIS_URL, decode_responses=False)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        skip_or_fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    yield client
    await client.aclose()


@pytest.fixture
def redis_prefix() -> str:
    return f"odin-test-{uuid.uuid4().hex}:"


@pytest.fixture
async def make_redis_queues(redis_client, redis_prefix):
    """Build ``RedisTaskQueues`` under this test's prefix; all are closed and their keys deleted after."""
    made: list[RedisTaskQueues] = []

    def make(**options) -> RedisTaskQueues:
        queues = RedisTaskQueues(redis_client, prefix=redis_prefix, **{"reclaim_idle": 0.5, **options})
        made.append(queues)
        return queues

    yield make
    for queues in made:
        await queues.close()
    keys = [key async for key in redis_client.scan_iter(match=f"{redis_prefix}*", count=1000)]
    if keys:
        await redis_client.delete(*keys)
