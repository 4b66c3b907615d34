"""The build of the worker that completed each workflow task, recorded as Temporal 1.32 records it
(read off ``temporal server start-dev`` with the same worker): ``worker_version.build_id`` on
WorkflowTaskCompleted, no binary checksum, and the latest one in DescribeWorkflowExecution."""

from __future__ import annotations

import asyncio
import uuid

from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.worker import Worker


@workflow.defn
class WaitsForGo:
    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.go)
        return "ok"

    @workflow.signal
    def proceed(self) -> None:
        self.go = True


async def _latest_build(handle) -> str:
    return (await handle.describe()).raw_description.workflow_execution_info.most_recent_worker_version_stamp.build_id


async def test_each_completed_task_names_its_workers_build(client, task_queue):
    wid = f"builds-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=task_queue, workflows=[WaitsForGo], build_id="build-1"):
        handle = await client.start_workflow(WaitsForGo.run, id=wid, task_queue=task_queue)
        async with asyncio.timeout(10):
            while await _latest_build(handle) != "build-1":  # the first task completed; the run waits
                await asyncio.sleep(0.05)
    async with Worker(client, task_queue=task_queue, workflows=[WaitsForGo], build_id="build-2"):
        await handle.signal(WaitsForGo.proceed)
        assert await handle.result() == "ok"
    completed = [
        e.workflow_task_completed_event_attributes
        for e in (await handle.fetch_history()).events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]
    assert [(c.worker_version.build_id, c.binary_checksum) for c in completed] == [("build-1", ""), ("build-2", "")]
    assert await _latest_build(handle) == "build-2"
