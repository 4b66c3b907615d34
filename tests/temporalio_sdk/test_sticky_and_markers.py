"""Sticky execution (issue 3 item 7) and markers kept and replayed (item 8), through the SDK."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import grpc
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType, TaskQueueKind
from temporalio.api.enums.v1 import TimeoutType as PbTimeoutType
from temporalio.api.taskqueue.v1 import StickyExecutionAttributes, TaskQueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.api.workflowservice.v1 import service_pb2_grpc
from temporalio.worker import Worker

from tests.support.replay import assert_replays

_local_runs: dict[str, int] = {}


def _names(history) -> list[str]:
    return [EventType.Name(e.event_type)[len("EVENT_TYPE_") :] for e in history.events]


@workflow.defn
class Gate:
    def __init__(self) -> None:
        self.opened = False
        self.values: list = []

    @workflow.run
    async def run(self) -> list:
        self.values = [str(workflow.uuid4()), workflow.random().random()]
        await workflow.wait_condition(lambda: self.opened)
        return self.values + [str(workflow.uuid4())]

    @workflow.signal
    def open(self) -> None:
        self.opened = True

    @workflow.query
    def peek(self) -> list:
        return self.values


@activity.defn
async def count_run(key: str) -> int:
    _local_runs[key] = _local_runs.get(key, 0) + 1
    return _local_runs[key]


@workflow.defn
class Marked:
    @workflow.run
    async def run(self, key: str) -> str:
        n = await workflow.execute_local_activity(count_run, key, start_to_close_timeout=timedelta(seconds=5))
        branch = "new" if workflow.patched("use-new-branch") else "old"
        workflow.deprecate_patch("retired-change")
        await workflow.sleep(0.1)
        return f"{n}:{branch}"


WORKFLOWS = [Gate, Marked]


async def _wait_for(handle, name: str, count: int = 1):
    for _ in range(200):
        history = await handle.fetch_history()
        if _names(history).count(name) >= count:
            return history
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never appeared")


async def test_cached_run_is_served_on_the_sticky_queue_and_queries_are_answered(client, task_queue):
    async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(Gate.run, id=f"sticky-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
        await _wait_for(handle, "WORKFLOW_TASK_COMPLETED")
        values = await handle.query(Gate.peek)
        assert len(values) == 2
        await handle.signal(Gate.open)
        result = await handle.result()
        history = await handle.fetch_history()
    assert result[:2] == values
    scheduled = [e.workflow_task_scheduled_event_attributes.task_queue for e in history.events if e.HasField("workflow_task_scheduled_event_attributes")]
    assert scheduled[0].kind == TaskQueueKind.TASK_QUEUE_KIND_NORMAL
    assert scheduled[-1].kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY and scheduled[-1].normal_name == task_queue
    assert await assert_replays(handle, *WORKFLOWS) > 5


async def test_vanished_sticky_worker_times_out_and_the_task_moves_to_the_normal_queue(client, odin_server, task_queue):
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{odin_server.endpoints.grpc_port}")
    stub = service_pb2_grpc.WorkflowServiceStub(channel)
    sticky = f"{task_queue}-dead-sticky"
    handle = await client.start_workflow(Gate.run, id=f"vanish-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
    task = await stub.PollWorkflowTaskQueue(
        ws.PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=task_queue), identity="doomed"),
        timeout=10,
    )
    assert task.task_token
    # The worker completes its first task asking for stickiness, polls its sticky queue once, then dies.
    await stub.RespondWorkflowTaskCompleted(
        ws.RespondWorkflowTaskCompletedRequest(
            task_token=task.task_token,
            identity="doomed",
            sticky_attributes=StickyExecutionAttributes(
                worker_task_queue=TaskQueue(name=sticky, kind=TaskQueueKind.TASK_QUEUE_KIND_STICKY, normal_name=task_queue),
                schedule_to_start_timeout={"seconds": 1},
            ),
        ),
        timeout=10,
    )
    empty = await stub.PollWorkflowTaskQueue(
        ws.PollWorkflowTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=sticky, kind=TaskQueueKind.TASK_QUEUE_KIND_STICKY, normal_name=task_queue),
            identity="doomed",
        ),
        timeout=2,
    )
    assert not empty.task_token
    await channel.close()
    await handle.signal(Gate.open)
    history = await _wait_for(handle, "WORKFLOW_TASK_TIMED_OUT")
    timed_out = next(e for e in history.events if e.HasField("workflow_task_timed_out_event_attributes"))
    assert timed_out.workflow_task_timed_out_event_attributes.timeout_type == PbTimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START
    async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS):
        result = await asyncio.wait_for(handle.result(), 30)
        history = await handle.fetch_history()
    assert len(result) == 3
    scheduled = [e.workflow_task_scheduled_event_attributes.task_queue for e in history.events if e.HasField("workflow_task_scheduled_event_attributes")]
    assert [q.kind for q in scheduled[-2:]] == [TaskQueueKind.TASK_QUEUE_KIND_STICKY, TaskQueueKind.TASK_QUEUE_KIND_NORMAL]
    assert await assert_replays(handle, *WORKFLOWS) > 5


async def test_deterministic_values_survive_a_worker_restart(client, task_queue):
    async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(Gate.run, id=f"restart-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
        await _wait_for(handle, "WORKFLOW_TASK_COMPLETED")
        before = await handle.query(Gate.peek)
    # A new worker has no cache: it rebuilds the run from history and must draw the same values.
    async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS):
        assert await handle.query(Gate.peek) == before
        await handle.signal(Gate.open)
        result = await handle.result()
    assert result[:2] == before
    assert await assert_replays(handle, *WORKFLOWS) > 5


async def test_local_activity_and_patch_markers_are_recorded_and_replayed(client, task_queue):
    key = uuid.uuid4().hex[:8]
    async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=[count_run]):
        handle = await client.start_workflow(Marked.run, key, id=f"marked-{key}", task_queue=task_queue)
        assert await handle.result() == "1:new"
        history = await handle.fetch_history()
    markers = [e.marker_recorded_event_attributes.marker_name for e in history.events if e.HasField("marker_recorded_event_attributes")]
    assert "core_local_activity" in markers
    assert markers.count("core_patch") == 2
    assert "ACTIVITY_TASK_SCHEDULED" not in _names(history)
    # Replaying takes the local activity's result from its marker: it does not run again.
    assert await assert_replays(handle, *WORKFLOWS) > 5
    assert _local_runs[key] == 1
