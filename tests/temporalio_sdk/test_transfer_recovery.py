"""Transfer tasks that act on other runs survive a server stop between their commit and their
execution: the row stays in SQL and the next server carries it out.

The first server's ``TransferProcessor.submit`` is replaced by a no-op: that simulates a process
that dies right after committing the parent's task (the only stand-in in this test; the store,
engine and SDK are real).
"""

from __future__ import annotations

import asyncio
import uuid

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

from tests.support.replay import assert_replays

with workflow.unsafe.imports_passed_through():
    from odin.config import Settings
    from odin.server import OdinServer


@workflow.defn
class Kid:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"hello {name}"


@workflow.defn
class Mum:
    @workflow.run
    async def run(self, child_id: str) -> str:
        return await workflow.execute_child_workflow(Kid.run, "kid", id=child_id)


async def _history_has(handle, event_field: str, timeout: float = 20.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        history = await handle.fetch_history()
        if any(e.HasField(event_field) for e in history.events):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_child_start_left_in_sql_is_carried_out_after_restart(database_url, task_queue):
    key = uuid.uuid4().hex[:8]
    first = OdinServer(Settings(database_url=database_url, grpc_port=0))
    await first.start()
    first.frontend.engine.transfers.submit = lambda task: None
    try:
        client = await Client.connect(f"127.0.0.1:{first.endpoints.grpc_port}")
        async with Worker(client, task_queue=task_queue, workflows=[Mum, Kid]):
            handle = await client.start_workflow(Mum.run, f"kid-{key}", id=f"mum-{key}", task_queue=task_queue)
            assert await _history_has(handle, "start_child_workflow_execution_initiated_event_attributes")
            await asyncio.sleep(0.3)
            history = await handle.fetch_history()
            assert not any(e.HasField("child_workflow_execution_started_event_attributes") for e in history.events)
    finally:
        await first.stop(grace=0.2)

    second = OdinServer(Settings(database_url=database_url, grpc_port=0))
    await second.start()
    try:
        client = await Client.connect(f"127.0.0.1:{second.endpoints.grpc_port}")
        async with Worker(client, task_queue=task_queue, workflows=[Mum, Kid]):
            handle = client.get_workflow_handle(f"mum-{key}")
            assert await asyncio.wait_for(handle.result(), 30) == "hello kid"
            assert await assert_replays(handle, Mum, Kid) > 5
    finally:
        await second.stop(grace=0.2)
