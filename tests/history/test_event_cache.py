"""The engine's cache of recently committed events (odin/history/event_cache.py): what it answers
from memory, and that an engine whose cache misses another process's writes still reads right."""

from __future__ import annotations

import uuid

import pytest
from temporalio.api.common.v1 import Header, Payloads, WorkflowType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.history import operations
from odin.history.engine import HistoryEngine
from odin.history.event_cache import EventCache
from odin.history.notifier import InMemoryNotifier
from odin.matching.memory import InMemoryTaskQueues


def _events(first: int, count: int, size: int = 0) -> list[HistoryEvent]:
    return [HistoryEvent(event_id=i, task_id=size and int("9" * size)) for i in range(first, first + count)]


def _ids(events: list[HistoryEvent]) -> list[int]:
    return [e.event_id for e in events]


def test_answers_a_range_that_ends_inside_the_tail():
    cache = EventCache()
    cache.add("r", _events(1, 3))
    cache.add("r", _events(4, 2))
    assert cache.suffix("r", 1, 6) == (1, _events(1, 5))
    assert cache.suffix("r", 3, 5) == (3, _events(3, 2))
    # The newest events are not here (another process wrote them): nothing is answered.
    assert cache.suffix("r", 1, 7) == (7, [])
    assert cache.suffix("other", 1, 2) == (2, [])


def test_a_gap_starts_the_tail_over_and_the_older_part_comes_from_elsewhere():
    cache = EventCache()
    cache.add("r", _events(1, 3))
    cache.add("r", _events(6, 2))  # 4 and 5 were written by someone else
    start, events = cache.suffix("r", 1, 8)
    assert (start, _ids(events)) == (6, [6, 7])


def test_answers_are_copies():
    cache = EventCache()
    cache.add("r", _events(1, 3))
    _, events = cache.suffix("r", 1, 4)
    events.append(HistoryEvent(event_id=99))
    assert _ids(cache.suffix("r", 1, 4)[1]) == [1, 2, 3]


def test_bounded_per_run_and_in_bytes():
    cache = EventCache(max_events_per_run=4)
    cache.add("r", _events(1, 6))
    assert _ids(cache.suffix("r", 1, 7)[1]) == [3, 4, 5, 6]
    one = _events(1, 1, size=8)[0].ByteSize()
    small = EventCache(max_bytes=3 * one)
    for run in "abcd":
        small.add(run, _events(1, 1, size=8))
    assert small.size_bytes <= 3 * one
    assert small.suffix("a", 1, 2) == (2, [])  # least recently used went first
    assert _ids(small.suffix("d", 1, 2)[1]) == [1]
    small.drop("d")
    assert small.suffix("d", 1, 2) == (2, [])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_engine_reads_match_the_store_when_another_engine_wrote_in_between(odin_server, monkeypatch):
    """Two engines on one database, as two server processes: B's writes are not in A's cache, and
    A's reads still return exactly what the store holds; A's own last writes cost no query."""
    a = odin_server.runtime.engine
    b = HistoryEngine(a.store, InMemoryTaskQueues(), InMemoryNotifier(), a.clock, a.num_shards)
    ns = await odin_server.runtime.frontend.namespace("default")
    workflow_id = f"cache-{uuid.uuid4().hex[:8]}"
    await odin_server.runtime.frontend.start_workflow_execution(
        ws.StartWorkflowExecutionRequest(
            namespace="default",
            workflow_id=workflow_id,
            workflow_type=WorkflowType(name="Anything"),
            task_queue=TaskQueue(name="nobody-polls"),
            request_id=str(uuid.uuid4()),
        )
    )
    for engine, name in ((b, "from-b-1"), (b, "from-b-2"), (a, "from-a")):
        await operations.signal(engine, ns.id, workflow_id, "", name, Payloads(), "test", Header(), str(uuid.uuid4()))
    s = (await a.load(ns.id, workflow_id)).state

    stored = await a.store.read_events(s.run_id, 1, s.next_event_id)
    assert [e.SerializeToString() for e in await a.read_events(s.run_id, 1, s.next_event_id)] == [
        e.SerializeToString() for e in stored
    ]
    assert [e.SerializeToString() for e in await a.read_events(s.run_id, 2, s.next_event_id, limit=2)] == [
        e.SerializeToString() for e in stored[1:3]
    ]

    queried = []
    real = a.store.read_events

    async def counting(*args, **kwargs):
        queried.append(args)
        return await real(*args, **kwargs)

    monkeypatch.setattr(a.store, "read_events", counting)
    [last] = await a.read_events(s.run_id, s.next_event_id - 1, s.next_event_id)
    assert last.workflow_execution_signaled_event_attributes.signal_name == "from-a"
    assert queried == []
    assert _ids(await a.read_events(s.run_id, 1, s.next_event_id)) == list(range(1, s.next_event_id))
    assert len(queried) == 1  # only the part B wrote

