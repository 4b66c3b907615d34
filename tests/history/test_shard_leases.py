"""Shard leases in Redis (docs/architecture.md#shards): a fair share each, renewal, hand-over on a clean stop and on
expiry, and range_id fencing of a holder that lost its lease without noticing."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from odin.config import sqlite_url_for_path
from odin.errors import ShardOwnershipLost
from odin.history.shards import RedisShardLeases, StaticShards, shard_for
from odin.persistence import migrate
from odin.persistence.store import SqlExecutionStore, open_database
from tests.support.services import REDIS_URL

SHARDS = 8
TTL = 0.8


@pytest.fixture
async def store(tmp_path):
    db = open_database(sqlite_url_for_path(str(tmp_path / "odin.db")))
    await migrate.upgrade(db)
    store = SqlExecutionStore(db)
    await store.init_cluster(SHARDS)
    yield store
    await store.close()


@pytest.fixture
async def leases(store, redis_prefix):
    """Make lease holders; every one still running is stopped at the end."""
    clients, made = [], []

    def make(owner: str) -> RedisShardLeases:
        client = aioredis.from_url(REDIS_URL)
        clients.append(client)
        holder = RedisShardLeases(client, store, SHARDS, prefix=redis_prefix, owner=owner, ttl=TTL)
        made.append(holder)
        return holder

    yield make
    for holder in made:
        await holder.stop()
    for client in clients:
        await client.aclose()


async def until(condition, within: float = 10.0):
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def test_shard_for_is_stable_and_in_range():
    assert shard_for("ns", "wf-1", 512) == shard_for("ns", "wf-1", 512)
    assert {shard_for("ns", f"wf-{i}", 16) for i in range(2000)} == set(range(16))


async def test_a_lone_holder_takes_every_shard(leases, store):
    a = leases("a")
    await a.start()
    assert sorted(a.owned()) == list(range(SHARDS))
    assert set((await store.shard_range_ids()).values()) == {1}
    assert a.owned() == await store.shard_range_ids()


async def test_holders_split_the_shards_evenly_and_every_shard_is_held_once(leases):
    a, b = leases("a"), leases("b")
    await a.start()
    await b.start()
    # a gives its surplus back on its next rounds; b takes it.
    await until(lambda: len(a.owned()) == SHARDS // 2 and len(b.owned()) == SHARDS // 2)
    assert set(a.owned()).isdisjoint(b.owned())
    assert set(a.owned()) | set(b.owned()) == set(range(SHARDS))


async def test_a_clean_stop_hands_the_shards_over(leases):
    a, b = leases("a"), leases("b")
    await a.start()
    await b.start()
    await until(lambda: len(b.owned()) == SHARDS // 2)
    await a.stop()
    await until(lambda: len(b.owned()) == SHARDS, within=TTL * 4)


async def test_an_expired_lease_moves_and_the_old_holder_is_fenced(leases, store):
    a = leases("a")
    await a.start()
    before = a.owned()
    # a stops renewing without releasing anything (as if its process froze).
    a._task.cancel()
    b = leases("b")
    await b.start()
    assert b.owned() == {}  # a's leases have not expired yet
    await until(lambda: len(b.owned()) == SHARDS, within=TTL * 6)
    assert all(b.owned()[s] == before[s] + 1 for s in range(SHARDS))
    # a stops trusting its leases once they may have expired...
    assert a.owned() == {}
    # ...and a write made under its old range is refused.
    with pytest.raises(ShardOwnershipLost):
        await store.delete_timer_task("any", fence=(3, before[3]))
    await store.delete_timer_task("any", fence=(3, b.owned()[3]))


async def test_static_shards_own_everything_and_fence_an_older_process(store):
    old = StaticShards(store, SHARDS, "old")
    await old.start()
    new = StaticShards(store, SHARDS, "new")
    await new.start()
    assert sorted(new.owned()) == list(range(SHARDS))
    with pytest.raises(ShardOwnershipLost):
        await store.delete_timer_task("any", fence=(0, old.owned()[0]))


async def test_membership_follows_the_redis_clock_not_a_holders_jumping_wall_clock(leases, monkeypatch):
    # A holder whose wall clock is half a minute ahead (or behind) must neither hide the others
    # from itself nor look dead to them: both still count two members and split the shards.
    a, b = leases("a"), leases("b")
    await a.start()
    await b.start()
    real = time.time
    for skew in (30.0, -30.0):
        monkeypatch.setattr(time, "time", lambda skew=skew: real() + skew)
        assert sorted(await a.live_members()) == ["a", "b"]
        assert sorted(await b.live_members()) == ["a", "b"]
    monkeypatch.setattr(time, "time", real)
    await until(lambda: len(a.owned()) == SHARDS // 2 and len(b.owned()) == SHARDS // 2)
