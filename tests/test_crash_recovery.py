"""SIGKILL `odin dev` while workflows sleep on timers; a restart on the same file finishes them all."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker


@activity.defn
async def double(x: int) -> int:
    return 2 * x


@workflow.defn
class SleepThenDouble:
    @workflow.run
    async def run(self, x: int) -> int:
        await workflow.sleep(4)
        return await workflow.execute_activity(double, x, start_to_close_timeout=timedelta(seconds=10))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _start_dev(db: str, grpc_port: int, http_port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "odin.cli", "dev", "--db", db, "--grpc-port", str(grpc_port), "--http-port", str(http_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = await asyncio.to_thread(proc.stdout.readline)
    assert "gRPC on 127.0.0.1:" in line, line
    return proc


async def test_sigkill_while_sleeping_loses_nothing(tmp_path):
    db = str(tmp_path / "odin.db")
    grpc_port, http_port = _free_port(), _free_port()
    task_queue = f"crash-{uuid.uuid4().hex[:8]}"
    proc = await _start_dev(db, grpc_port, http_port)
    try:
        client = await Client.connect(f"127.0.0.1:{grpc_port}")
        async with Worker(client, task_queue=task_queue, workflows=[SleepThenDouble], activities=[double]):
            handles = [
                await client.start_workflow(SleepThenDouble.run, i, id=f"crash-{i}-{uuid.uuid4()}", task_queue=task_queue)
                for i in range(5)
            ]
            # Wait until every workflow has started its timer, then kill the server without warning.
            for handle in handles:
                for _ in range(100):
                    if (await handle.describe()).history_length >= 5:
                        break
                    await asyncio.sleep(0.1)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    proc = await _start_dev(db, grpc_port, http_port)
    try:
        client = await Client.connect(f"127.0.0.1:{grpc_port}")
        async with Worker(client, task_queue=task_queue, workflows=[SleepThenDouble], activities=[double]):
            results = await asyncio.wait_for(
                asyncio.gather(*(client.get_workflow_handle(h.id).result() for h in handles)), timeout=60
            )
        assert results == [2 * i for i in range(5)]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0, proc.stdout.read()
    assert os.path.exists(db)


async def test_sigkill_during_a_one_second_schedule_skips_and_repeats_no_action(tmp_path):
    """`odin dev` is SIGKILLed while a one-second schedule (allow all) takes actions and comes
    back 3 s later: every second from the first action to the last started exactly one run."""
    from datetime import datetime

    from temporalio.client import (
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleIntervalSpec,
        ScheduleOverlapPolicy,
        SchedulePolicy,
        ScheduleSpec,
    )

    db = str(tmp_path / "odin.db")
    grpc_port, http_port = _free_port(), _free_port()
    schedule_id = f"crash-{uuid.uuid4().hex[:8]}"
    proc = await _start_dev(db, grpc_port, http_port)
    try:
        client = await Client.connect(f"127.0.0.1:{grpc_port}")
        handle = await client.create_schedule(
            schedule_id,
            Schedule(
                action=ScheduleActionStartWorkflow("Unpolled", id="tick", task_queue=f"none-{schedule_id}"),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=1))]),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
            ),
        )
        await asyncio.sleep(3.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        await asyncio.sleep(3)
        proc = await _start_dev(db, grpc_port, http_port)
        client = await Client.connect(f"127.0.0.1:{grpc_port}")
        handle = client.get_schedule_handle(schedule_id)
        await asyncio.sleep(3)
        await handle.pause()
        d = await handle.describe()
        runs = [w.id async for w in client.list_workflows(f"TemporalScheduledById = '{schedule_id}'")]
        assert len(runs) == len(set(runs)) == d.info.num_actions >= 8
        seconds = sorted(int(datetime.strptime(r.removeprefix("tick-"), "%Y-%m-%dT%H:%M:%SZ").timestamp()) for r in runs)
        assert seconds == list(range(seconds[0], seconds[-1] + 1)), "a second was skipped"
    finally:
        proc.kill()
        proc.wait()
