"""Redis-streams task queues: what the contract tests cannot show (reclaim, flushes, races, leaks)."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
import redis.asyncio as redis
from redis.exceptions import ResponseError

from odin.matching import WORKFLOW, TaskEntry
from odin.matching.redis_streams import GROUP, RedisTaskQueues
from tests.support.services import REDIS_URL


def _entry(n: int) -> TaskEntry:
    return TaskEntry(task_id=f"t{n}", namespace_id="ns", workflow_id=f"wf{n}", run_id=f"r{n}", scheduled_event_id=n)


async def eventually(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


class Inspect:
    """Looks at one queue's keys through the documented layout."""

    def __init__(self, client: redis.Redis, prefix: str, queues: RedisTaskQueues, queue: str = "q"):
        self.client = client
        self.base = f"{prefix}{{ns:{queue}:{WORKFLOW}}}:"
        self.streams = [f"{self.base}{p}" for p in range(queues.partitions)]

    async def consumers(self) -> list[str]:
        names = []
        for stream in self.streams:
            try:
                names += [c["name"] for c in await self.client.xinfo_consumers(stream, GROUP)]
            except ResponseError:  # no stream (yet)
                pass
        return names

    async def leftovers(self) -> int:
        """Stream entries plus index entries: zero once everything handed out was acknowledged."""
        lengths = [await self.client.xlen(stream) for stream in self.streams]
        return sum(lengths) + await self.client.hlen(self.base + "ids")

    async def delete_all(self) -> None:
        """What a FLUSHALL does to this queue."""
        keys = [key async for key in self.client.scan_iter(match=f"{self.base}*")]
        if keys:
            await self.client.delete(*keys)


async def test_entry_of_a_poller_that_died_is_handed_out_again(make_redis_queues):
    dead, alive = make_redis_queues(reclaim_idle=1.0), make_redis_queues(reclaim_idle=1.0)
    await dead.add("ns", "q", WORKFLOW, _entry(1))
    taken = await dead.poll("ns", "q", WORKFLOW, 1.0, "dead")
    assert taken == _entry(1) and taken.receipt
    await dead.close()  # never acknowledges
    assert await alive.poll("ns", "q", WORKFLOW, 0.2, "alive") is None  # not before reclaim_idle
    start = time.monotonic()
    again = await alive.poll("ns", "q", WORKFLOW, 5.0, "alive")
    assert again == _entry(1) and again.receipt != taken.receipt
    assert time.monotonic() - start < 3.0
    await alive.ack("ns", "q", WORKFLOW, again)
    assert await alive.poll("ns", "q", WORKFLOW, 0.05, "alive") is None


async def test_dead_pollers_consumers_are_deleted(make_redis_queues, redis_client, redis_prefix):
    queues = make_redis_queues(reclaim_idle=0.3)
    inspect = Inspect(redis_client, redis_prefix, queues)
    await queues.add("ns", "q", WORKFLOW, _entry(1))
    assert await queues.poll("ns", "q", WORKFLOW, 1.0, "w") == _entry(1)
    assert len(await inspect.consumers()) == 1  # holds the unacknowledged entry
    again = await queues.poll("ns", "q", WORKFLOW, 5.0, "w")
    await queues.ack("ns", "q", WORKFLOW, again)

    async def no_consumers() -> bool:
        return not await inspect.consumers()

    await eventually(no_consumers)
    assert await inspect.leftovers() == 0


async def test_survives_losing_every_key(make_redis_queues, redis_client, redis_prefix):
    queues = make_redis_queues()
    inspect = Inspect(redis_client, redis_prefix, queues)
    await queues.add("ns", "q", WORKFLOW, _entry(1))
    taken = await queues.poll("ns", "q", WORKFLOW, 1.0, "w")

    await inspect.delete_all()
    await queues.ack("ns", "q", WORKFLOW, taken)  # nothing left to acknowledge: no error
    await queues.add("ns", "q", WORKFLOW, _entry(1))  # the SQL sweep re-adds it: the index is gone too
    assert await queues.backlog("ns", "q", WORKFLOW) == 1
    assert await queues.poll("ns", "q", WORKFLOW, 1.0, "w") == _entry(1)

    # Keys vanish under a waiting poll: it carries on and gets what comes next.
    poll = asyncio.create_task(queues.poll("ns", "q", WORKFLOW, 5.0, "w"))
    await asyncio.sleep(0.1)
    await inspect.delete_all()
    await queues.add("ns", "q", WORKFLOW, _entry(2))
    assert await asyncio.wait_for(poll, 3) == _entry(2)


async def test_group_recreated_from_the_start_of_the_stream(make_redis_queues, redis_client, redis_prefix):
    queues = make_redis_queues()
    inspect = Inspect(redis_client, redis_prefix, queues)
    for n in range(4):
        await queues.add("ns", "q", WORKFLOW, _entry(n))
    for stream in inspect.streams:  # entries survive, the group does not
        if await redis_client.exists(stream):
            await redis_client.xgroup_destroy(stream, GROUP)
    got = [await queues.poll("ns", "q", WORKFLOW, 1.0, "w") for _ in range(4)]
    assert [e.task_id for e in got] == ["t0", "t1", "t2", "t3"]


async def test_add_is_a_no_op_until_the_handed_out_entry_is_acked(make_redis_queues):
    queues = make_redis_queues()
    await queues.add("ns", "q", WORKFLOW, _entry(1))
    taken = await queues.poll("ns", "q", WORKFLOW, 1.0, "w")
    await queues.add("ns", "q", WORKFLOW, _entry(1))
    assert await queues.backlog("ns", "q", WORKFLOW) == 0
    assert await queues.poll("ns", "q", WORKFLOW, 0.05, "w") is None
    await queues.ack("ns", "q", WORKFLOW, taken)
    await queues.ack("ns", "q", WORKFLOW, taken)  # twice: no-op
    await queues.add("ns", "q", WORKFLOW, _entry(1))
    assert await queues.backlog("ns", "q", WORKFLOW) == 1
    assert await queues.poll("ns", "q", WORKFLOW, 1.0, "w") == _entry(1)


async def test_fifo_across_partitions(make_redis_queues):
    queues = make_redis_queues(partitions=4)
    for n in range(30):
        await queues.add("ns", "q", WORKFLOW, _entry(n))
    got = [await queues.poll("ns", "q", WORKFLOW, 1.0, "w") for _ in range(30)]
    assert [e.task_id for e in got] == [f"t{n}" for n in range(30)]


async def test_fifty_concurrent_polls_each_entry_delivered_once(make_redis_queues, redis_client, redis_prefix):
    queues = make_redis_queues(reclaim_idle=60.0)
    inspect = Inspect(redis_client, redis_prefix, queues)
    polls = [asyncio.create_task(queues.poll("ns", "q", WORKFLOW, 5.0, f"w{i % 5}")) for i in range(50)]
    await asyncio.sleep(0.05)
    await asyncio.gather(*(queues.add("ns", "q", WORKFLOW, _entry(n)) for n in range(50)))
    got = await asyncio.wait_for(asyncio.gather(*polls), 10)
    assert sorted(e.task_id for e in got) == sorted(f"t{n}" for n in range(50))
    for entry in got:
        await queues.ack("ns", "q", WORKFLOW, entry)
    assert await queues.poll("ns", "q", WORKFLOW, 0.05, "w") is None
    assert await inspect.leftovers() == 0
    assert await inspect.consumers() == []


async def test_cancelled_poll_loses_nothing_racing_an_add(make_redis_queues, redis_client, redis_prefix):
    queues = make_redis_queues(reclaim_idle=60.0)  # a lost entry would not come back within the test
    inspect = Inspect(redis_client, redis_prefix, queues)
    rnd = random.Random(7)
    outcomes = {"returned": 0, "cancelled": 0}

    async def after(delay: float, action) -> None:
        await asyncio.sleep(delay)
        if asyncio.iscoroutine(result := action()):
            await result

    async def waiting() -> bool:
        return await redis_client.zcard(inspect.base + "polling") == 1

    for n in range(60):
        poll = asyncio.create_task(queues.poll("ns", "q", WORKFLOW, 5.0, "w"))
        if n % 3:
            await eventually(waiting)  # blocked in XREADGROUP (else: anywhere in the poll)
        # Cancel from a little before the add to a little after the entry reached the poll.
        offset = rnd.uniform(-0.001, 0.002)
        await asyncio.gather(
            after(max(-offset, 0), lambda n=n: queues.add("ns", "q", WORKFLOW, _entry(n))),
            after(max(offset, 0), poll.cancel),
        )
        [outcome] = await asyncio.gather(poll, return_exceptions=True)
        if isinstance(outcome, TaskEntry):
            outcomes["returned"] += 1
            entry = outcome
        else:
            assert isinstance(outcome, asyncio.CancelledError)
            outcomes["cancelled"] += 1
            entry = await queues.poll("ns", "q", WORKFLOW, 2.0, "w")
        assert entry == _entry(n)
        await queues.ack("ns", "q", WORKFLOW, entry)
    assert outcomes["returned"] and outcomes["cancelled"], outcomes  # both sides of the race were run
    assert await queues.poll("ns", "q", WORKFLOW, 0.05, "w") is None
    assert await inspect.leftovers() == 0
    assert await inspect.consumers() == []


async def test_consumers_do_not_accumulate(make_redis_queues, redis_client, redis_prefix):
    queues = make_redis_queues(reclaim_idle=60.0)  # so the reclaimer's clean-up does not hide a leak
    inspect = Inspect(redis_client, redis_prefix, queues)
    for _ in range(5):
        assert await queues.poll("ns", "q", WORKFLOW, 0.01, "w") is None
    for n in range(20):
        await queues.add("ns", "q", WORKFLOW, _entry(n))
        entry = await queues.poll("ns", "q", WORKFLOW, 1.0, "w")
        if n % 2:
            await queues.ack("ns", "q", WORKFLOW, entry)
        else:
            await queues.requeue("ns", "q", WORKFLOW, entry)
            await queues.ack("ns", "q", WORKFLOW, await queues.poll("ns", "q", WORKFLOW, 1.0, "w"))
    for n in range(10):  # polls that wait, then get an entry
        poll = asyncio.create_task(queues.poll("ns", "q", WORKFLOW, 5.0, "w"))
        await asyncio.sleep(0.01)
        await queues.add("ns", "q", WORKFLOW, _entry(100 + n))
        await queues.ack("ns", "q", WORKFLOW, await poll)
    assert await inspect.leftovers() == 0

    async def settled() -> bool:
        return not await inspect.consumers() and not await redis_client.zcard(inspect.base + "polling")

    await eventually(settled)


async def test_backlog_and_drain(make_redis_queues, redis_client, redis_prefix):
    queues = make_redis_queues()
    for n in range(5):
        await queues.add("ns", "sticky", WORKFLOW, _entry(n))
    assert await queues.backlog("ns", "sticky", WORKFLOW) == 5
    first = await queues.poll("ns", "sticky", WORKFLOW, 1.0, "w")
    second = await queues.poll("ns", "sticky", WORKFLOW, 1.0, "w")
    assert await queues.backlog("ns", "sticky", WORKFLOW) == 3  # handed-out entries are not backlog
    await queues.requeue("ns", "sticky", WORKFLOW, first)
    assert await queues.backlog("ns", "sticky", WORKFLOW) == 4

    drained = await queues.drain("ns", "sticky", WORKFLOW)
    assert [e.task_id for e in drained] == ["t2", "t3", "t4", "t0"]
    assert all(e.receipt == "" for e in drained)
    assert await queues.backlog("ns", "sticky", WORKFLOW) == 0
    assert await queues.poll("ns", "sticky", WORKFLOW, 0.05, "w") is None
    await queues.add("ns", "sticky", WORKFLOW, _entry(2))  # drained ids are forgotten
    assert await queues.backlog("ns", "sticky", WORKFLOW) == 1

    await queues.ack("ns", "sticky", WORKFLOW, second)  # still acknowledged after the drain
    assert [e.task_id for e in await queues.drain("ns", "sticky", WORKFLOW)] == ["t2"]
    # Nothing queued or handed out: a dead sticky queue leaves no keys behind but the mark that it
    # is dead, which expires.
    left = [key async for key in redis_client.scan_iter(match=f"{redis_prefix}*sticky*")]
    assert [k.decode() if isinstance(k, bytes) else k for k in left] == [f"{redis_prefix}{{ns:sticky:{WORKFLOW}}}:pollers:closed"]
    assert 0 < await redis_client.ttl(left[0]) <= 300


async def test_pollers(make_redis_queues, redis_client, redis_prefix):
    queues = make_redis_queues()
    waiting = [asyncio.create_task(queues.poll("ns", "q", WORKFLOW, 5.0, "worker-a")) for _ in range(2)]
    await asyncio.sleep(0.05)
    await queues.add("ns", "q", WORKFLOW, _entry(1))
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    # One poll of worker-a ended; the other still waits, so worker-a counts however short the window.
    await asyncio.sleep(0.05)
    assert await queues.has_recent_poller("ns", "q", WORKFLOW, 0.0)
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)

    async def none_waiting() -> bool:
        return not await queues.has_recent_poller("ns", "q", WORKFLOW, 0.0)

    await eventually(none_waiting)
    assert await queues.has_recent_poller("ns", "q", WORKFLOW, 10.0)

    await redis_client.hset(f"{redis_prefix}{{ns:q:{WORKFLOW}}}:pollers", "gone", time.time() - 1000)
    [info] = await queues.pollers("ns", "q", WORKFLOW)
    assert info.identity == "worker-a" and time.time() - 1 < info.last_access_time <= time.time()


async def test_recent_poller_answer_is_reused_briefly(make_redis_queues, redis_client, redis_prefix, monkeypatch):
    monkeypatch.setattr("odin.matching.redis_streams.RECENT_POLLER_CACHE", 0.3)
    queues = make_redis_queues()
    await queues.poll("ns", "q", WORKFLOW, 0.01, "worker-a")
    assert await queues.has_recent_poller("ns", "q", WORKFLOW, 10.0)
    # Another process removes the pollers: the yes is reused (no round trip) for a moment only.
    await redis_client.delete(f"{redis_prefix}{{ns:q:{WORKFLOW}}}:pollers")
    assert await queues.has_recent_poller("ns", "q", WORKFLOW, 10.0)
    await asyncio.sleep(0.35)
    assert not await queues.has_recent_poller("ns", "q", WORKFLOW, 10.0)


async def test_drain_forgets_the_recent_poller(make_redis_queues):
    queues = make_redis_queues()
    await queues.poll("ns", "sticky", WORKFLOW, 0.01, "worker-a")
    assert await queues.has_recent_poller("ns", "sticky", WORKFLOW, 10.0)
    await queues.drain("ns", "sticky", WORKFLOW)
    assert not await queues.has_recent_poller("ns", "sticky", WORKFLOW, 10.0)


async def test_waits_are_cut_to_the_socket_timeout(redis_prefix, make_redis_queues):
    # make_redis_queues only deletes this test's keys afterwards.
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=0.6)
    queues = RedisTaskQueues(client, prefix=redis_prefix)
    try:
        start = time.monotonic()
        assert await queues.poll("ns", "q", WORKFLOW, 1.0, "w") is None
        assert 0.95 <= time.monotonic() - start < 2.0
        poll = asyncio.create_task(queues.poll("ns", "q", WORKFLOW, 3.0, "w"))
        await asyncio.sleep(0.8)
        await queues.add("ns", "q", WORKFLOW, _entry(1))
        assert await asyncio.wait_for(poll, 3) == _entry(1)
    finally:
        await queues.close()
        await client.aclose()


def test_a_client_without_an_explicit_socket_timeout_still_gets_bounded_waits():
    # redis-py reads with a default timeout (5 s) even when the caller names none.
    from odin.redisconn import block_limit, socket_timeout

    client = redis.Redis.from_url(REDIS_URL)
    assert socket_timeout(client) is not None
    assert block_limit(client) < socket_timeout(client)


@pytest.mark.parametrize("partitions", [1, 3])
async def test_partition_counts(make_redis_queues, partitions):
    queues = make_redis_queues(partitions=partitions)
    for n in range(6):
        await queues.add("ns", "q", WORKFLOW, _entry(n))
    got = [await queues.poll("ns", "q", WORKFLOW, 1.0, "w") for _ in range(6)]
    assert [e.task_id for e in got] == [f"t{n}" for n in range(6)]
    assert await queues.poll("ns", "q", WORKFLOW, 0.05, "w") is None
