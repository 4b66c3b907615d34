"""The coordination primitives inside workflows, against an in-process Odin: WaitGroup, ErrGroup (the
first error cancels the siblings), Channel, the Result pipeline, DeterministicEffectStore (the
captured value comes back from history after a worker restart) and VersionGate."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
import seeded
from temporalio.api.enums.v1 import EventType

from odin.sdk import Channel, ChannelClosed, ErrGroup, Result, ResultError, WaitGroup, go
from tests.support.odin_apps import point


@pytest.fixture
async def seeded_app(odin):
    point(seeded.app, odin)
    yield seeded.app


async def run(wf, *args, timeout: float = 30):
    return await (await wf.start_async(*args)).result_async(timeout=timeout)


async def test_wait_group_err_group_channel_and_result_in_workflows(seeded_app):
    async with seeded_app.worker():
        assert await run(seeded.wait_group, 4) == [0, 1, 4, 9]
        assert await run(seeded.err_group, ["a", "b", "c"]) == ["A", "B", "C"]
        assert await run(seeded.channel, ["x", "y", "z", "w"], 2) == ["X", "Y", "Z", "W"]
        assert await run(seeded.channel, ["p", "q"], 0) == ["P", "Q"]  # unbuffered: hand-over
        assert await run(seeded.result_pipeline, 21) == {"value": 42, "log": ["ok"]}
        assert await run(seeded.result_pipeline, -5) == {"value": 0, "log": ["ok"]}  # recovered
        assert await run(seeded.result_pipeline, 600) == {"value": -1, "log": ["error: too large"]}


async def test_err_group_cancels_the_siblings_of_a_failed_job(seeded_app):
    seeded.CANCELLED.clear()
    async with seeded_app.worker():
        handle = await seeded.err_group_fails_fast.start_async(["s1", "s2"])
        assert await handle.result_async(timeout=30) == "failed: Activity task failed"
        history = await handle.history_async()
    types = [e.event_type for e in history.events]
    assert types.count(EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED) == 2
    assert sorted(seeded.CANCELLED) == ["s1", "s2"]  # and the running activities heard it


async def test_effect_store_returns_the_captured_value_after_a_worker_restart(seeded_app, tmp_path):
    record = tmp_path / "captures.txt"
    async with seeded_app.worker():
        handle = await seeded.effects.start_async(str(record))
        for _ in range(100):  # until the capture is recorded
            history = await handle.history_async()
            if any(e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED for e in history.events):
                break
            await asyncio.sleep(0.05)
    assert record.read_text() == "called\n"
    # A new worker knows nothing of the run: it replays the history to continue it.
    async with seeded_app.worker(max_cached_workflows=0):
        await handle.signal_async("release")
        captured = await handle.result_async(timeout=30)
    assert record.read_text() == "called\n"  # the replay took the value from the marker, not from the function
    history = await handle.history_async()
    markers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    assert len(markers) == 1
    assert datetime.fromisoformat(captured).tzinfo is not None


async def test_version_gate_takes_the_new_branch_for_new_runs(seeded_app):
    async with seeded_app.worker():
        handle = await seeded.versioned.start_async()
        assert await handle.result_async(timeout=30) == "v2"
        history = await handle.history_async()
    assert any(e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED for e in history.events)


# -- the primitives outside workflows (plain asyncio) -------------------------------------------


async def test_primitives_in_plain_asyncio():
    wg = WaitGroup()
    out: list[int] = []
    for i in range(3):
        wg.go(lambda i=i: asyncio.sleep(0.01 * i, result=out.append(i)))
    await wg.wait()
    assert sorted(out) == [0, 1, 2] and wg.count == 0
    with pytest.raises(ValueError):
        wg.done()

    eg = ErrGroup()
    eg.go(asyncio.sleep, 0.01, "a")
    slow = eg.go(asyncio.sleep, 10)
    eg.go(lambda: _boom())
    with pytest.raises(RuntimeError, match="boom"):
        await eg.wait()
    assert slow.cancelled()

    ch: Channel[int] = Channel(buffer_size=1)
    consumer = go(lambda: _collect(ch))
    for n in range(5):
        await ch.send(n)
    ch.close()
    assert await consumer == [0, 1, 2, 3, 4]
    with pytest.raises(ChannelClosed):
        await ch.send(9)

    async def fails():
        raise KeyError("x")

    with pytest.raises(ResultError, match="negative"):
        await Result.of(asyncio.sleep(0, result=-1)).ensure(lambda v: v >= 0, "negative")
    assert await Result.of(fails()).recover(lambda e: "recovered").then(str.upper) == "RECOVERED"


async def _boom():
    await asyncio.sleep(0.02)
    raise RuntimeError("boom")


async def _collect(ch: Channel) -> list:
    return [item async for item in ch]
