"""Code changes against runs in flight: a VersionGate keeps old runs on their branch while new runs
take the new one; an unguarded incompatible change fails the workflow task with a message naming
the mismatch (and the worker's replay check refuses to start on it); reading the clock in workflow
code is refused."""

from __future__ import annotations

import asyncio
import uuid

import payments_broken
import payments_v1
import payments_v2
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.worker import Replayer

from odin.sdk import ReplayMismatch
from odin.sdk._worker import sandbox_runner
from tests.support.odin_apps import point


async def _wait_for_event(handle, event_type: int, timeout_s: float = 15.0):
    for _ in range(int(timeout_s / 0.05)):
        history = await handle.history_async()
        for e in history.events:
            if e.event_type == event_type:
                return e
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {EventType.Name(event_type)} in the history")


async def _wait_for_task_failure(handle) -> str:
    event = await _wait_for_event(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    return event.workflow_task_failed_event_attributes.failure.message


async def test_version_gate_keeps_old_runs_on_the_old_branch_across_a_deploy(odin):
    queue = point(payments_v1.app, odin)
    point(payments_v2.app, odin)
    payments_v2.app.task_queue = queue
    order_old, order_new = f"old-{uuid.uuid4().hex[:6]}", f"new-{uuid.uuid4().hex[:6]}"
    async with payments_v1.app.worker():
        old = await payments_v1.payment.start_async(order_old)
        await _wait_for_event(old, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)  # past the changed step
    # Deploy v2: a fresh worker replays the old run's history with the new code.
    async with payments_v2.app.worker(max_cached_workflows=0):
        await old.signal_async("approve")
        assert await old.result_async(timeout=30) == f"v1:{order_old}"
        new = await payments_v2.payment.start_async(order_new)
        await new.signal_async("approve")
        assert await new.result_async(timeout=30) == f"v2:{order_new}"
    # Both histories replay through v2's code.
    replayer = Replayer(workflows=[payments_v2.payment.cls], workflow_runner=sandbox_runner())
    for handle in (old, new):
        history = await handle.history_async()
        assert (await replayer.replay_workflow(history)).replay_failure is None


async def test_an_unguarded_change_fails_the_workflow_task_naming_the_mismatch(odin):
    queue = point(payments_v1.app, odin)
    point(payments_broken.app, odin)
    payments_broken.app.task_queue = queue
    async with payments_v1.app.worker():
        run = await payments_v1.payment.start_async(f"o-{uuid.uuid4().hex[:6]}")
        await _wait_for_event(run, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    # The worker's replay check refuses the broken code before it polls anything...
    with pytest.raises(ReplayMismatch, match=run.id):
        await payments_broken.app.worker(replay_check=10).check_replay()
    # ...and a worker that starts anyway fails the run's next workflow task with a clear message.
    async with payments_broken.app.worker(max_cached_workflows=0):
        await run.signal_async("approve")
        message = await _wait_for_task_failure(run)
    assert "Nondeterminism" in message or "nondetermin" in message.lower(), message
    assert "audit" in message and "wait_condition" not in message, message


async def test_reading_the_clock_in_workflow_code_is_refused(odin):
    point(payments_broken.app, odin)
    async with payments_broken.app.worker():
        handle = await payments_broken.clock_reader.start_async()
        message = await _wait_for_task_failure(handle)
    assert "datetime.datetime.now" in message and "workflow" in message, message
