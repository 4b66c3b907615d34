"""Contract of the ``TaskQueues`` Protocol; every backend must pass the same tests."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from odin.matching import ACTIVITY, WORKFLOW, TaskEntry
from odin.matching.memory import InMemoryTaskQueues


@pytest.fixture(params=["memory", "redis"])
def queues(request):
    if request.param == "memory":
        return InMemoryTaskQueues()
    return request.getfixturevalue("make_redis_queues")()


def _entry(n: int) -> TaskEntry:
    return TaskEntry(task_id=f"t{n}", namespace_id="ns", workflow_id=f"wf{n}", run_id=f"r{n}", scheduled_event_id=n)


async def test_fifo_and_dedupe(queues):
    for n in (1, 2, 1, 3):
        await queues.add("ns", "q", WORKFLOW, _entry(n))
    assert await queues.backlog("ns", "q", WORKFLOW) == 3
    got = [await queues.poll("ns", "q", WORKFLOW, 1.0, "w") for _ in range(3)]
    assert [e.task_id for e in got] == ["t1", "t2", "t3"]
    assert await queues.backlog("ns", "q", WORKFLOW) == 0


async def test_queues_are_separate_by_namespace_name_and_type(queues):
    await queues.add("ns", "q", ACTIVITY, _entry(1))
    assert await queues.poll("ns", "q", WORKFLOW, 0.05, "w") is None
    assert await queues.poll("other", "q", ACTIVITY, 0.05, "w") is None
    assert await queues.poll("ns", "q2", ACTIVITY, 0.05, "w") is None
    assert (await queues.poll("ns", "q", ACTIVITY, 0.05, "w")).task_id == "t1"


async def test_long_poll_returns_empty_at_deadline(queues):
    start = time.monotonic()
    assert await queues.poll("ns", "q", WORKFLOW, 0.3, "w") is None
    assert 0.25 <= time.monotonic() - start < 2.0


async def test_waiting_poller_gets_entry_added_later(queues):
    poll = asyncio.create_task(queues.poll("ns", "q", WORKFLOW, 5.0, "w"))
    await asyncio.sleep(0.05)
    await queues.add("ns", "q", WORKFLOW, _entry(7))
    assert (await asyncio.wait_for(poll, 2)).task_id == "t7"


async def test_cancelled_poll_loses_no_entry(queues):
    poll = asyncio.create_task(queues.poll("ns", "q", WORKFLOW, 5.0, "w"))
    await asyncio.sleep(0.05)
    poll.cancel()
    with pytest.raises(asyncio.CancelledError):
        await poll
    await queues.add("ns", "q", WORKFLOW, _entry(8))
    assert (await queues.poll("ns", "q", WORKFLOW, 1.0, "w")).task_id == "t8"


async def test_requeued_entry_is_handed_out_again(queues):
    await queues.add("ns", "q", WORKFLOW, _entry(1))
    await queues.add("ns", "q", WORKFLOW, _entry(2))
    first = await queues.poll("ns", "q", WORKFLOW, 1.0, "w")
    await queues.requeue("ns", "q", WORKFLOW, first)
    assert await queues.backlog("ns", "q", WORKFLOW) == 2
    got = [(await queues.poll("ns", "q", WORKFLOW, 1.0, "w")).task_id for _ in range(2)]
    assert got == (["t1", "t2"] if queues.requeue_first else ["t2", "t1"])
    assert await queues.poll("ns", "q", WORKFLOW, 0.05, "w") is None


async def test_pollers_tracked(queues):
    assert not await queues.has_recent_poller("ns", "q", WORKFLOW, 10)
    await queues.poll("ns", "q", WORKFLOW, 0.01, "worker-a")
    assert await queues.has_recent_poller("ns", "q", WORKFLOW, 10)
    assert [p.identity for p in await queues.pollers("ns", "q", WORKFLOW)] == ["worker-a"]


async def test_drained_queue_has_no_recent_poller(queues):
    await queues.poll("ns", "sticky", WORKFLOW, 0.01, "worker-a")
    assert await queues.has_recent_poller("ns", "sticky", WORKFLOW, 10)
    await queues.drain("ns", "sticky", WORKFLOW)
    assert not await queues.has_recent_poller("ns", "sticky", WORKFLOW, 10)


async def test_a_poll_ending_after_the_drain_leaves_the_queue_dead(queues):
    # ShutdownWorker drains the sticky queue while the worker's last poll still waits there; that
    # poll ends (and is recorded) only afterwards, which must not make the queue look alive again.
    poll = asyncio.create_task(queues.poll("ns", "sticky", WORKFLOW, 5.0, "worker-a"))
    await asyncio.sleep(0.1)
    await queues.drain("ns", "sticky", WORKFLOW)
    poll.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await poll
    assert not await queues.has_recent_poller("ns", "sticky", WORKFLOW, 10)


async def test_drain_returns_queued_entries(queues):
    await queues.add("ns", "sticky", WORKFLOW, _entry(1))
    await queues.add("ns", "sticky", WORKFLOW, _entry(2))
    drained = await queues.drain("ns", "sticky", WORKFLOW)
    assert [e.task_id for e in drained] == ["t1", "t2"]
    assert await queues.backlog("ns", "sticky", WORKFLOW) == 0


def _prioritized(n: int, priority: int) -> TaskEntry:
    return TaskEntry(task_id=f"t{n}", namespace_id="ns", workflow_id=f"wf{n}", run_id=f"r{n}", priority=priority)


async def test_higher_priority_goes_first_then_fifo(queues):
    # Priority keys: 1 highest, 0 = the default (3), beyond the levels = the lowest.
    for n, priority in [(1, 5), (2, 0), (3, 1), (4, 3), (5, 2), (6, 1), (7, 9)]:
        await queues.add("ns", "q", ACTIVITY, _prioritized(n, priority))
    assert await queues.backlog("ns", "q", ACTIVITY) == 7
    got = [(await queues.poll("ns", "q", ACTIVITY, 1.0, "w")).task_id for _ in range(7)]
    assert got == ["t3", "t6", "t5", "t2", "t4", "t1", "t7"]


async def test_requeued_entry_keeps_its_priority(queues):
    await queues.add("ns", "q", ACTIVITY, _prioritized(1, 1))
    await queues.add("ns", "q", ACTIVITY, _prioritized(2, 4))
    first = await queues.poll("ns", "q", ACTIVITY, 1.0, "w")
    assert first.task_id == "t1" and first.priority == 1
    await queues.requeue("ns", "q", ACTIVITY, first)
    assert (await queues.poll("ns", "q", ACTIVITY, 1.0, "w")).task_id == "t1"


async def test_drain_returns_entries_in_priority_order(queues):
    await queues.add("ns", "sticky", WORKFLOW, _prioritized(1, 4))
    await queues.add("ns", "sticky", WORKFLOW, _prioritized(2, 2))
    drained = await queues.drain("ns", "sticky", WORKFLOW)
    assert [(e.task_id, e.priority) for e in drained] == [("t2", 2), ("t1", 4)]


async def _poll_all(queues, count: int, rate: float | None, timeout: float = 5.0) -> list[float]:
    """Times at which ``count`` entries were handed out to four concurrent pollers."""
    times: list[float] = []

    async def poller(name: str) -> None:
        while len(times) < count:
            entry = await queues.poll("ns", "limited", ACTIVITY, timeout, name, max_per_second=rate)
            if entry is None:
                return
            times.append(time.monotonic())
            await queues.ack("ns", "limited", ACTIVITY, entry)

    await asyncio.wait_for(asyncio.gather(*(poller(f"w{i}") for i in range(4))), 30)
    return times


async def test_rate_limit_holds_for_all_pollers_together(queues):
    for n in range(12):
        await queues.add("ns", "limited", ACTIVITY, _entry(n))
    start = time.monotonic()
    times = await _poll_all(queues, 12, rate=20.0)
    assert len(times) == 12
    # One token, no burst: the first goes at once, each next one 1/20 s later at the earliest.
    elapsed = max(times) - start
    assert 11 / 20 * 0.9 <= elapsed < 11 / 20 + 1.5, elapsed
    # No burst: in any half second, at most the ten the rate allows (and one more for the edges).
    ordered = sorted(times)
    assert max(sum(1 for t in ordered if s <= t < s + 0.5) for s in ordered) <= 11, ordered


async def test_rate_limit_applies_to_polls_that_give_none(queues):
    for n in range(6):
        await queues.add("ns", "limited", ACTIVITY, _entry(n))
    # One per second: far slower than the polls below, even on a loaded machine.
    first = await queues.poll("ns", "limited", ACTIVITY, 1.0, "a", max_per_second=1.0)
    await queues.ack("ns", "limited", ACTIVITY, first)
    start = time.monotonic()
    second = await queues.poll("ns", "limited", ACTIVITY, 3.0, "b")  # the queue's rate holds
    await queues.ack("ns", "limited", ACTIVITY, second)
    assert time.monotonic() - start >= 0.9
    # A poll whose deadline comes before the next token returns nothing and takes nothing.
    assert await queues.poll("ns", "limited", ACTIVITY, 0.05, "c") is None
    assert await queues.backlog("ns", "limited", ACTIVITY) == 4


async def test_rate_limited_poll_that_waited_in_vain_gives_its_token_back(queues):
    assert await queues.poll("ns", "limited", ACTIVITY, 0.1, "a", max_per_second=1.0) is None
    await queues.add("ns", "limited", ACTIVITY, _entry(1))
    start = time.monotonic()
    assert (await queues.poll("ns", "limited", ACTIVITY, 2.0, "a", max_per_second=1.0)).task_id == "t1"
    assert time.monotonic() - start < 0.5


async def test_rate_limited_poll_waiting_on_an_empty_queue_gets_a_new_entry(queues):
    poll = asyncio.create_task(queues.poll("ns", "limited", ACTIVITY, 5.0, "a", max_per_second=2.0))
    await asyncio.sleep(0.1)
    await queues.add("ns", "limited", ACTIVITY, _entry(1))
    assert (await asyncio.wait_for(poll, 3)).task_id == "t1"


async def test_concurrency_slots_are_limited_renewed_and_released(queues):
    assert await queues.acquire_slot("ns", "customer-1", 2, "a", 30)
    assert await queues.acquire_slot("ns", "customer-1", 2, "b", 30)
    assert not await queues.acquire_slot("ns", "customer-1", 2, "c", 30)
    assert await queues.acquire_slot("ns", "customer-1", 2, "a", 30)  # a renewal, not a third slot
    assert await queues.acquire_slot("ns", "customer-2", 2, "c", 30)  # keys are separate
    assert await queues.acquire_slot("other", "customer-1", 2, "c", 30)  # and namespaces
    await queues.release_slot("ns", "customer-1", "b")
    await queues.release_slot("ns", "customer-1", "nobody")
    assert await queues.acquire_slot("ns", "customer-1", 2, "c", 30)
    assert not await queues.acquire_slot("ns", "customer-1", 2, "d", 30)


async def test_a_slot_whose_lease_ran_out_is_free_again(queues):
    assert await queues.acquire_slot("ns", "k", 1, "dead-worker", 0.2)
    assert not await queues.acquire_slot("ns", "k", 1, "b", 30)
    await asyncio.sleep(0.3)
    assert await queues.acquire_slot("ns", "k", 1, "b", 30)


async def test_stats_count_the_backlog_its_age_and_the_traffic_of_the_window(queues):
    from odin.matching import RATE_WINDOW, QueueStats

    assert await queues.stats("ns", "q", WORKFLOW) == QueueStats(0, 0.0, 0.0, 0.0)
    for n in (1, 2, 1, 3):  # the repeated add is no add
        await queues.add("ns", "q", WORKFLOW, _entry(n))
    await asyncio.sleep(0.3)
    stats = await queues.stats("ns", "q", WORKFLOW)
    assert (stats.backlog, stats.add_rate, stats.dispatch_rate) == (3, 3 / RATE_WINDOW, 0.0)
    assert 0.25 <= stats.backlog_age < 5
    assert (await queues.poll("ns", "q", WORKFLOW, 1.0, "w")).task_id == "t1"
    # A poller waiting when an entry comes is handed it at once: an add and a dispatch, no backlog.
    waiting = asyncio.create_task(queues.poll("ns", "q2", WORKFLOW, 5.0, "w"))
    await asyncio.sleep(0.05)
    await queues.add("ns", "q2", WORKFLOW, _entry(9))
    assert (await asyncio.wait_for(waiting, 2)).task_id == "t9"
    stats = await queues.stats("ns", "q", WORKFLOW)
    assert (stats.backlog, stats.add_rate, stats.dispatch_rate) == (2, 3 / RATE_WINDOW, 1 / RATE_WINDOW)
    for _ in range(2):
        await queues.poll("ns", "q", WORKFLOW, 1.0, "w")
    stats = await queues.stats("ns", "q", WORKFLOW)
    assert (stats.backlog, stats.backlog_age, stats.dispatch_rate) == (0, 0.0, 3 / RATE_WINDOW)
    await asyncio.sleep(0.2)  # the blocked poll's dispatch may be counted just after it returns
    assert await queues.stats("ns", "q2", WORKFLOW) == QueueStats(0, 0.0, 1 / RATE_WINDOW, 1 / RATE_WINDOW)
    assert await queues.stats("ns", "q", ACTIVITY) == QueueStats(0, 0.0, 0.0, 0.0)
