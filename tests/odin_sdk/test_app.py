"""The Odin SDK against an in-process Odin: Celery's surface (delay, apply_async, get), sync and
async activities with retries and heartbeats, signals, queries, updates, children and
continue-as-new."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import shop
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowUpdateFailedError

from odin.sdk import TimeoutError as OdinTimeout
from tests.support.odin_apps import point


@pytest.fixture
def server(odin):
    """The ``odin`` server of conftest with ``shop.app`` pointed at it."""
    point(shop.app, odin)
    return odin


@pytest.fixture
async def worker(server):
    async with shop.app.worker(concurrency=4) as host:
        yield host


async def blocking(fn, *args, **kwargs):
    """Run Celery-style blocking calls off the loop the in-process server runs on."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def test_delay_and_get_with_retried_sync_activity_and_keyword_arguments(worker):
    order = f"o-{uuid.uuid4().hex[:6]}"
    handle = await blocking(shop.checkout.delay, order, 1999, express=True)
    assert handle.id.startswith("checkout-")
    assert await blocking(handle.get, timeout=30) == {"receipt": f"receipt-{order}-1999", "tracking": f"express:{order}"}
    assert shop.ATTEMPTS[order] == 3  # two failures retried by the server
    assert await blocking(lambda: handle.successful())
    assert worker.counters.activities_done >= 2 and worker.counters.activities_failed == 2


async def test_apply_async_with_id_countdown_and_queries(worker):
    order = f"o-{uuid.uuid4().hex[:6]}"
    handle = await blocking(shop.checkout.apply_async, (order, 5), id=f"order-{order}", countdown=1)
    assert handle.id == f"order-{order}"
    info = await handle.describe_async()
    assert info.status == WorkflowExecutionStatus.RUNNING
    result = await handle.result_async(timeout=30)
    assert result["tracking"] == f"ground:{order}"
    assert await handle.query_async("status") == "shipping"
    history = await handle.history_async()
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.first_workflow_task_backoff.ToTimedelta().total_seconds() == pytest.approx(1, abs=0.2)


async def test_signals_updates_validators_and_a_result_timeout(worker):
    handle = await shop.approval.start_async(f"o-{uuid.uuid4().hex[:6]}")
    with pytest.raises(OdinTimeout):
        await handle.result_async(timeout=0.5)
    assert await handle.update_async("note", "looks fine") == 1
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.update_async("note", "")  # rejected by the validator
    await handle.signal_async("decide", "approved")
    assert await handle.result_async(timeout=30) == "approved (1 notes)"


async def test_child_workflows_continue_as_new_and_heartbeats(worker):
    order = f"o-{uuid.uuid4().hex[:6]}"
    parent = await shop.parent.start_async(order)
    assert await parent.result_async(timeout=30) == f"child said ground:{order}"
    assert await (await shop.countdown.start_async(3)).result_async(timeout=30) == 0
    # slow_pack runs longer than its heartbeat timeout; the automatic heartbeat keeps it alive.
    assert await (await shop.pack.start_async(order)).result_async(timeout=30) == f"packed:{order}"


async def test_cancel_and_terminate(worker):
    handle = await shop.approval.start_async("to-cancel")
    await handle.cancel_async()
    with pytest.raises(WorkflowFailureError):
        await handle.result_async(timeout=30)
    assert await handle.status_async() == WorkflowExecutionStatus.CANCELED
    other = await shop.approval.start_async("to-terminate")
    await other.terminate_async("enough")
    assert await other.status_async() == WorkflowExecutionStatus.TERMINATED


async def test_calling_things_outside_a_workflow(server):
    assert shop.charge.__name__ == "charge"
    with pytest.raises(TypeError, match="delay"):
        shop.checkout("x", 1)
    shop.ATTEMPTS["local"] = 5
    assert shop.charge("local", 3) == "receipt-local-3"  # an activity called directly: a plain function


async def test_odin_worker_command_runs_the_app_and_stops_gracefully(server):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "ODIN_ADDRESS": shop.app.address, "ODIN_TASK_QUEUE": shop.app.task_queue}
    proc = subprocess.Popen(
        [sys.executable, "-m", "odin.cli", "worker", "-A", "shop:app", "--status-every", "0.5", "-c", "2"],
        cwd=Path(__file__).parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        banner = await asyncio.to_thread(proc.stdout.readline)
        assert f"queues {shop.app.task_queue}" in banner, banner
        handle = await shop.checkout.start_async(f"cli-{uuid.uuid4().hex[:6]}", 7)
        assert (await handle.result_async(timeout=30))["tracking"].startswith("ground:")
        await asyncio.sleep(0.7)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.to_thread(proc.communicate, timeout=30)
    assert proc.returncode == 0, err
    assert "odin worker: stopped" in out
    assert "workflows 1 completed" in err and "activities 0 running" in err, err


def test_odin_worker_without_a_reachable_server_says_so_without_a_traceback():
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "ODIN_ADDRESS": "127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "-m", "odin.cli", "worker", "-A", "shop:app"],
        cwd=Path(__file__).parent, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 4  # the CLI's exit code for an unreachable server
    assert done.stderr.strip() == (
        "Error: cannot reach the server at 127.0.0.1:1 (--address / ODIN_ADDRESS): nothing listens there (connection refused)"
    )


async def test_cancellation_scopes(worker):
    # A scope's own timeout (workflow time) cancels what runs in it, the activity included...
    assert await (await shop.scoped.start_async(1.0, False)).result_async(timeout=30) == "cancelled"
    # ...as does cancelling it by hand; without either, the work finishes.
    assert await (await shop.scoped.start_async(0, True)).result_async(timeout=30) == "cancelled"
    assert await (await shop.scoped.start_async(60, False)).result_async(timeout=30) == "finished"
    # Cancelling the workflow is not the scope's doing: it goes through.
    handle = await shop.outer_cancel_passes_through.start_async()
    await handle.describe_async()
    await asyncio.sleep(0.3)
    await handle.cancel_async()
    with pytest.raises(WorkflowFailureError):
        await handle.result_async(timeout=30)
    assert await handle.status_async() == WorkflowExecutionStatus.CANCELED


async def test_class_based_workflows_with_handlers(worker):
    handle = await shop.Cart.start_async("ann")
    await handle.signal_async("add", "apple")
    await handle.signal_async("add", "pear")
    assert await handle.query_async("count") == 2
    assert await handle.update_async("checkout") == 2
    assert await handle.result_async(timeout=30) == {"owner": "ann", "items": ["apple", "pear"]}


async def test_graceful_shutdown_lets_running_activities_finish(server):
    host = shop.app.worker(grace=20)
    task = asyncio.ensure_future(host.run())
    handle = await shop.pack.start_async("graceful")  # an activity of ~2.5 s
    for _ in range(100):
        if host.counters.activities_running:
            break
        await asyncio.sleep(0.05)
    assert host.counters.activities_running == 1
    host.stop()  # what SIGTERM does
    await asyncio.wait_for(task, 30)
    assert host.counters.activities_done == 1 and host.counters.activities_failed == 0
    # The activity's result reached the server before the worker stopped: a new worker finishes the run.
    async with shop.app.worker():
        assert await handle.result_async(timeout=30) == "packed:graceful"


async def test_a_started_handle_follows_its_chain_across_continue_as_new(worker):
    handle = await shop.ledger.start_async(0, 0)
    first_run = handle.run_id
    for amount in (1, 2, 3):  # the third signal makes the run continue as new
        await handle.signal_async("add", amount)
    for _ in range(100):
        described = await handle.describe_async()
        if described.run_id != first_run:
            break
        await asyncio.sleep(0.05)
    assert described.run_id != first_run and described.status == WorkflowExecutionStatus.RUNNING
    assert not await blocking(handle.ready)
    await handle.signal_async("add", 10)  # reaches the new run, not the closed one
    assert await handle.query_async("total") == 16
    await handle.signal_async("close")
    assert await handle.result_async(timeout=30) == {"total": 16, "runs": 2}

    pinned = shop.app.get_handle(handle.id, run_id=first_run)  # an explicit run stays that run
    assert (await pinned.status_async()) == WorkflowExecutionStatus.CONTINUED_AS_NEW
    assert await blocking(pinned.ready)
