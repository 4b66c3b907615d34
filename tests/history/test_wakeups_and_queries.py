"""Contract of the ``Notifier`` and ``QueryRouter`` Protocols, in memory and through Redis.

The Redis variants use two clients, as two processes would: a wake-up or an answer sent through
one reaches a waiter on the other.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import QueryResultType
from temporalio.api.query.v1 import WorkflowQuery, WorkflowQueryResult

from odin.history import notifier
from odin.history.notifier import InMemoryNotifier, RedisNotifier, RunChange
from odin.history.queries import InMemoryQueryRouter, RedisQueryRouter
from tests.support.services import REDIS_URL


@pytest.fixture(params=["memory", "redis"])
async def notifiers(request):
    """(waiting side, notifying side)."""
    if request.param == "memory":
        n = InMemoryNotifier()
        yield n, n
        return
    prefix = request.getfixturevalue("redis_prefix")
    a, b = aioredis.from_url(REDIS_URL), aioredis.from_url(REDIS_URL)
    na, nb = RedisNotifier(a, prefix), RedisNotifier(b, prefix)
    yield na, nb
    await na.close()
    await nb.close()
    await a.aclose()
    await b.aclose()


@pytest.fixture(params=["memory", "redis"])
async def routers(request):
    """(caller's side, worker's side)."""
    if request.param == "memory":
        r = InMemoryQueryRouter()
        yield r, r
        return
    prefix = request.getfixturevalue("redis_prefix")
    a, b = aioredis.from_url(REDIS_URL), aioredis.from_url(REDIS_URL)
    yield RedisQueryRouter(a, prefix), RedisQueryRouter(b, prefix)
    await a.aclose()
    await b.aclose()


async def test_notify_wakes_a_waiter_on_the_same_key_only(notifiers):
    waiting, notifying = notifiers
    async with waiting.subscribe("ns/wf/run-1") as sub, waiting.subscribe("ns/wf/run-2") as other:
        await notifying.notify("ns/wf/run-1")
        assert await sub.wait(5.0) is True
        assert await other.wait(0.2) is False
        # A wake-up is consumed by the wait that saw it.
        assert await sub.wait(0.2) is False


async def test_a_wakeup_carries_the_summary_of_the_change(notifiers):
    waiting, notifying = notifiers
    async with waiting.subscribe("ns/wf/run") as sub:
        await notifying.notify("ns/wf/run", RunChange(next_event_id=7, running=True))
        await notifying.notify("ns/wf/run", RunChange(next_event_id=9, running=False))
        assert await sub.wait(5.0)
        while sub.change != RunChange(9, False):  # the latest summary wins
            assert await sub.wait(5.0)
        await notifying.notify("ns/wf/run")  # a wake-up without a summary: anything may have changed
        assert await sub.wait(5.0) and sub.change is None


async def test_a_notify_between_subscribe_and_wait_is_not_lost(notifiers):
    waiting, notifying = notifiers
    async with waiting.subscribe("k") as sub:
        await notifying.notify("k")
        await asyncio.sleep(0.1)
        assert await sub.wait(5.0) is True


async def test_many_waiters_on_one_key(notifiers):
    waiting, notifying = notifiers

    async def waiter():
        async with waiting.subscribe("shared") as sub:
            ready.release()
            return await sub.wait(5.0)

    ready = asyncio.Semaphore(0)
    tasks = [asyncio.create_task(waiter()) for _ in range(20)]
    for _ in range(20):
        await ready.acquire()
    await notifying.notify("shared")
    assert await asyncio.gather(*tasks) == [True] * 20


async def test_unsubscribed_keys_get_no_wakeups(notifiers):
    waiting, notifying = notifiers
    async with waiting.subscribe("k") as sub:
        pass
    await notifying.notify("k")  # nobody listens: no error
    async with waiting.subscribe("k") as sub:
        assert await sub.wait(0.2) is False


def _answer(text: str) -> WorkflowQueryResult:
    return WorkflowQueryResult(
        result_type=QueryResultType.QUERY_RESULT_TYPE_ANSWERED, answer=Payloads(payloads=[Payload(data=text.encode())])
    )


async def test_query_goes_to_the_worker_and_its_answer_back(routers):
    caller, worker = routers
    qid = str(uuid.uuid4())
    await caller.register(qid, WorkflowQuery(query_type="state"), ttl=10)
    assert (await worker.fetch(qid)).query_type == "state"
    waiting = asyncio.create_task(caller.wait(qid, 5.0))
    await asyncio.sleep(0.05)
    assert await worker.resolve(qid, _answer("42")) is True
    assert (await waiting).answer.payloads[0].data == b"42"
    # Answered once: a second answer and a late fetch find nothing.
    assert await worker.resolve(qid, _answer("43")) is False
    assert await worker.fetch(qid) is None
    await caller.discard(qid)


async def test_unanswered_query_times_out_and_a_late_answer_is_refused(routers):
    caller, worker = routers
    qid = str(uuid.uuid4())
    await caller.register(qid, WorkflowQuery(query_type="slow"), ttl=10)
    assert await caller.wait(qid, 0.2) is None
    await caller.discard(qid)
    assert await worker.fetch(qid) is None
    assert await worker.resolve(qid, _answer("late")) is False


async def test_unknown_query_ids(routers):
    caller, worker = routers
    assert await worker.fetch("nope") is None
    assert await worker.resolve("nope", _answer("x")) is False


async def test_a_redis_wait_longer_than_the_read_timeout_is_cut_into_pieces(redis_prefix):
    client = aioredis.from_url(REDIS_URL, socket_timeout=0.5)
    router = RedisQueryRouter(client, redis_prefix)
    try:
        qid = str(uuid.uuid4())
        await router.register(qid, WorkflowQuery(query_type="slow"), ttl=10)
        answer = asyncio.create_task(router.wait(qid, 3.0))
        await asyncio.sleep(1.2)  # longer than one read timeout
        assert await RedisQueryRouter(client, redis_prefix).resolve(qid, _answer("late but fine"))
        assert (await answer).answer.payloads[0].data == b"late but fine"
        assert await router.wait("other", 1.0) is None  # a timeout, not an error
    finally:
        await client.aclose()


async def test_buffered_queries_stay_on_their_run_until_taken_off(routers):
    caller, worker = routers
    run, other = f"ns/wf/{uuid.uuid4()}", f"ns/wf/{uuid.uuid4()}"
    q1, q2 = str(uuid.uuid4()), str(uuid.uuid4())
    for qid, name in ((q1, "a"), (q2, "b")):
        await caller.register(qid, WorkflowQuery(query_type=name), ttl=10)
        await caller.buffer(run, qid, ttl=10)
    # Every task started for the run sees them, as often as it is asked (a failed task's retry too).
    for _ in range(2):
        assert {k: v.query_type for k, v in (await worker.buffered(run)).items()} == {q1: "a", q2: "b"}
    assert await worker.buffered(other) == {}
    assert await caller.unbuffer(run, q1) is True
    assert await caller.unbuffer(run, q1) is False
    # A query whose caller gave up is not handed out, even while still buffered.
    await caller.discard(q2)
    assert await worker.buffered(run) == {}
    assert await caller.unbuffer(run, q2) is True


# -- publishing only while another process listens -------------------------------------------


@pytest.fixture
async def two_processes(redis_prefix):
    """Two Redis notifiers as two processes would have, and a raw subscriber on the wake-up channel
    of key ``k`` (one that counts what is published, without registering as a listener)."""
    a, b, raw = aioredis.from_url(REDIS_URL), aioredis.from_url(REDIS_URL), aioredis.from_url(REDIS_URL)
    na, nb = RedisNotifier(a, redis_prefix), RedisNotifier(b, redis_prefix)
    spy = raw.pubsub()
    await spy.subscribe(f"{redis_prefix}wake:k")
    assert (await spy.get_message(timeout=2.0))["type"] == "subscribe"
    yield na, nb, spy
    await spy.aclose()
    for n in (na, nb):
        await n.close()
    for c in (a, b, raw):
        await c.aclose()


async def _published(spy, within: float) -> list[bytes]:
    got, deadline = [], asyncio.get_running_loop().time() + within
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        message = await spy.get_message(timeout=left)
        if message and message["type"] == "message":
            got.append(message["data"])
    return got


async def test_a_commit_nobody_else_listens_for_is_not_published(two_processes):
    waiting, notifying, spy = two_processes
    # Only the notifying process waits on the key: the waiter is woken in the process, nothing is sent.
    async with notifying.subscribe("k") as sub:
        await notifying.notify("k", RunChange(3, True))
        assert await sub.wait(1.0) and sub.change == RunChange(3, True)
    assert await _published(spy, 0.3) == []
    # Once another process listens, every wake-up is published (its view of the listeners read anew).
    async with waiting.subscribe("k") as sub:
        await asyncio.sleep(notifier.VIEW_MAX_AGE)
        await notifying.notify("k", RunChange(5, True))
        assert await sub.wait(2.0) and sub.change == RunChange(5, True)
    assert await _published(spy, 0.3) == [RunChange(5, True).encode()]
    # A listener that closes is forgotten at the publishers' next read.
    await waiting.close()
    await asyncio.sleep(notifier.VIEW_MAX_AGE)
    await notifying.notify("k")
    assert await _published(spy, 0.3) == []


async def test_a_listener_registered_after_a_publisher_looked_still_wakes_up(two_processes):
    waiting, notifying, spy = two_processes
    await notifying.notify("k")  # the publisher reads the listeners now: none but itself
    async with waiting.subscribe("k") as sub:
        began = asyncio.get_running_loop().time()
        await notifying.notify("k", RunChange(4, True))  # skipped: its view is fresh and lacks the listener
        assert await _published(spy, 0.1) == []
        # The new listener wakes its waiters once publishers can no longer be using such a view.
        assert await sub.wait(notifier.LISTENER_SETTLE + 2.0)
        assert sub.change is None  # no summary: the waiter re-reads the run
        assert asyncio.get_running_loop().time() - began >= notifier.LISTENER_SETTLE - 0.2


async def test_a_listener_redis_forgot_registers_again_and_wakes_its_waiters(two_processes, redis_prefix, monkeypatch):
    monkeypatch.setattr(notifier, "LISTENER_RENEW", 0.2)
    waiting, notifying, spy = two_processes
    async with waiting.subscribe("k") as sub:
        await asyncio.sleep(notifier.LISTENER_SETTLE + 0.3)
        while await sub.wait(0.1):  # the wake-up of its first registration
            pass
        client = aioredis.from_url(REDIS_URL)
        try:
            await client.delete(f"{redis_prefix}wake-listeners")  # as a flush of Redis would
        finally:
            await client.aclose()
        await notifying.notify("k", RunChange(6, True))  # nobody registered: not published
        assert await _published(spy, 0.1) == []
        assert await sub.wait(notifier.LISTENER_SETTLE + 2.0)
        # Registered again: the publisher's next view has it.
        await asyncio.sleep(notifier.VIEW_MAX_AGE)
        await notifying.notify("k", RunChange(7, True))
        assert await _published(spy, 1.0) == [RunChange(7, True).encode()]
