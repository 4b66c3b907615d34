"""``odin.sdk.testing``: an in-process Odin whose clock skips to the next timer when nothing is
running, and replay of exported JSON histories before a deploy."""

from __future__ import annotations

import json
import time
import uuid

import payments_broken
import payments_v1
import pytest
import reminders
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest

from odin.api.rest.codec import to_json
from odin.sdk.testing import TestEnvironment, load_history, replay


async def test_a_week_long_sleep_takes_moments(tmp_path):
    async with TestEnvironment() as env:
        env.bind(reminders.app)
        reminders.app.task_queue = f"rem-{uuid.uuid4().hex[:6]}"
        began = time.monotonic()
        async with reminders.app.worker():
            handle = await reminders.reminder.start_async("ann")
            result = await handle.result_async(timeout=30)
            # Retry back-offs are waits too: an hour between attempts, skipped.
            key = uuid.uuid4().hex
            assert await (await reminders.hourly_retry.start_async(key)).result_async(timeout=30) == 2
            # A wait_condition timeout of two days passes when no signal comes...
            assert await (await reminders.deadline.start_async(48)).result_async(timeout=30) == "deadline passed"
        assert time.monotonic() - began < 20
    assert result["message"] == "reminded ann"
    assert result["waited_days"] == pytest.approx(7, abs=0.01)
    assert env.skipped_seconds >= 7 * 86400 + 3600 + 48 * 3600 - 60  # less the real time that passed anyway


async def test_time_can_be_moved_by_hand_and_running_work_is_not_skipped():
    async with TestEnvironment(time_skipping=False) as env:
        env.bind(reminders.app)
        reminders.app.task_queue = f"rem-{uuid.uuid4().hex[:6]}"
        async with reminders.app.worker():
            handle = await reminders.deadline.start_async(1)
            await handle.describe_async()
            before = env.now()
            await env.sleep(1800)  # half an hour: the deadline is still ahead
            await handle.signal_async("done")
            assert await handle.result_async(timeout=30) == "done in time"
        assert (env.now() - before).total_seconds() >= 1800


async def test_exported_histories_replay_before_a_deploy(tmp_path):
    async with TestEnvironment() as env:
        env.bind(payments_v1.app)
        payments_v1.app.task_queue = f"pay-{uuid.uuid4().hex[:6]}"
        async with payments_v1.app.worker():
            handle = await payments_v1.payment.start_async("o-9")
            await handle.signal_async("approve")
            await handle.result_async(timeout=30)
        # Export the history the way the REST API shows it (payloads as plain JSON).
        response = await (await env.client()).workflow_service.get_workflow_execution_history(
            GetWorkflowExecutionHistoryRequest(namespace="default", execution={"workflow_id": handle.id})
        )
    exported = tmp_path / "history.json"
    exported.write_text(json.dumps({"workflowId": handle.id, **to_json(response)}))
    workflow_id, history = load_history(exported)
    assert workflow_id == handle.id and history.events[0].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED

    await replay(payments_v1.app, exported)  # the code it ran with: fine
    with pytest.raises(Exception, match="(?i)nondetermin"):
        await replay(payments_broken.app, exported)  # an incompatible change: caught before deploy


async def test_cli_exports_a_history_and_replays_it(tmp_path):
    import asyncio
    import os
    import subprocess
    import sys
    from pathlib import Path

    async with TestEnvironment() as env:
        env.bind(payments_v1.app)
        payments_v1.app.task_queue = f"pay-{uuid.uuid4().hex[:6]}"
        async with payments_v1.app.worker():
            handle = await payments_v1.payment.start_async("o-10")
            await handle.signal_async("approve")
            await handle.result_async(timeout=30)
        exported = tmp_path / "h.json"
        env_vars = {**os.environ, "ODIN_ADDRESS": env.address}
        export = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "odin.cli", "workflow", "history", handle.id, "-o", str(exported)],
            env=env_vars, capture_output=True, text=True, timeout=60,
        )
        assert export.returncode == 0, export.stderr
    here = Path(__file__).parent

    def replay_with(spec: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "odin.cli", "workflow", "replay", "-A", spec, str(exported)],
                              cwd=here, capture_output=True, text=True, timeout=60)

    good = await asyncio.to_thread(replay_with, "payments_v1:app")
    assert good.returncode == 0 and "ok" in good.stdout, good.stdout + good.stderr
    bad = await asyncio.to_thread(replay_with, "payments_broken:app")
    assert bad.returncode != 0 and "MISMATCH" in bad.stdout, bad.stdout + bad.stderr
