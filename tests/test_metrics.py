"""Metrics of the parts below the doors, on the real parts: the Redis client and its pool, sync and
backlog matches of both queue backends, store calls and the sampled outbox gauges.
(tests/test_prometheus.py covers the doors, workflows and the shipped alerts and dashboard.)"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from odin import metrics, redisconn
from odin.config import Settings
from odin.matching import WORKFLOW, TaskEntry
from odin.matching.memory import InMemoryTaskQueues
from odin.matching.redis_streams import RedisTaskQueues
from odin.persistence import migrate
from odin.persistence.store import Batch, OutboxTask, SqlExecutionStore, open_database
from tests.support.services import REDIS_URL


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _entry() -> TaskEntry:
    n = uuid.uuid4().hex
    return TaskEntry(task_id=n, namespace_id="ns", workflow_id=f"wf-{n}", run_id=f"r-{n}", scheduled_event_id=2)


async def _matches(queues, queue: str) -> None:
    """One backlog match, one sync match and one poll timeout on ``queue``."""
    before = {m: value("poll_success_total", task_type=WORKFLOW, match=m) for m in ("sync", "backlog")}
    timeouts = value("poll_timeouts_total", task_type=WORKFLOW)
    await queues.add("ns", queue, WORKFLOW, _entry())
    assert await queues.poll("ns", queue, WORKFLOW, 2.0, "w1") is not None
    waiting = asyncio.ensure_future(queues.poll("ns", queue, WORKFLOW, 5.0, "w1"))
    await asyncio.sleep(0.3)
    await queues.add("ns", queue, WORKFLOW, _entry())
    assert await waiting is not None
    assert await queues.poll("ns", queue, WORKFLOW, 0.2, "w1") is None
    assert value("poll_success_total", task_type=WORKFLOW, match="backlog") == before["backlog"] + 1
    assert value("poll_success_total", task_type=WORKFLOW, match="sync") == before["sync"] + 1
    assert value("poll_timeouts_total", task_type=WORKFLOW) == timeouts + 1


async def test_in_memory_queues_count_sync_and_backlog_matches():
    await _matches(InMemoryTaskQueues(), f"q-{uuid.uuid4().hex[:8]}")


async def test_redis_client_counts_commands_pipelines_and_pool_and_its_queues_count_matches(redis_prefix):
    client = redisconn.connect(Settings(database_url="sqlite://", redis_url=REDIS_URL, redis_prefix=redis_prefix))
    try:
        sets, pipelines = value("redis_requests_total", command="SET"), value("redis_requests_total", command="PIPELINE")
        errors = value("redis_errors_total", command="INCRBY")
        await client.set(f"{redis_prefix}k", "v")
        async with client.pipeline(transaction=False) as pipe:
            pipe.get(f"{redis_prefix}k")
            pipe.get(f"{redis_prefix}k")
            assert await pipe.execute() == [b"v", b"v"]
        try:
            await client.incr(f"{redis_prefix}k")  # INCRBY (as redis-py sends it) on a string: Redis refuses
        except Exception:
            pass
        assert value("redis_requests_total", command="SET") == sets + 1
        assert value("redis_requests_total", command="PIPELINE") == pipelines + 1
        assert value("redis_errors_total", command="INCRBY") == errors + 1
        assert value("redis_latency_seconds_count", command="SET") >= 1
        assert value("connection_pool_connections", pool="redis", state="max") >= 1000  # redis_max_connections

        queues = RedisTaskQueues(client, prefix=redis_prefix)
        try:
            await _matches(queues, "q")
        finally:
            await queues.close()
    finally:
        await client.aclose()


async def test_store_calls_and_outbox_gauges(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'odin.db'}")
    await migrate.upgrade(db)
    store = SqlExecutionStore(db)
    try:
        calls = value("persistence_requests_total", operation="get_namespace")
        assert await store.get_namespace(name="nowhere") is None
        assert value("persistence_requests_total", operation="get_namespace") == calls + 1
        assert value("persistence_latency_seconds_count", operation="get_namespace") >= 1

        now = datetime.now(UTC)
        commits = value("persistence_requests_total", operation="commit")
        batch = Batch(
            transfer_tasks=[OutboxTask("t1", 0, "ns", "wf", "r", "workflow_task", {}, now - timedelta(seconds=30))],
            timer_tasks=[
                OutboxTask("t2", 1, "ns", "wf", "r", "user_timer", {}, now, now - timedelta(seconds=5)),
                OutboxTask("t3", 1, "ns", "wf", "r", "user_timer", {}, now, now + timedelta(hours=1)),
            ],
        )
        await store.commit(batch)
        assert value("persistence_requests_total", operation="commit") == commits + 1

        sampler = metrics.Sampler(lambda: store.outbox_stats(datetime.now(UTC), [0, 1]), InMemoryTaskQueues())
        await sampler.sample()
        assert value("history_outbox_depth", queue="transfer") == 1
        assert value("history_outbox_depth", queue="timer_due") == 1  # the one due; the other waits an hour
        assert 29 <= value("history_outbox_age_seconds", queue="transfer") < 60
        assert 4 <= value("history_outbox_age_seconds", queue="timer_due") < 60
        assert await store.outbox_stats(now, [5]) == {"transfer": (0, 0.0), "timer_due": (0, 0.0)}
        assert (await store.outbox_stats(now, None))["transfer"][0] == 1  # every shard
    finally:
        await store.close()
