"""Flow control through the real temporalio SDK: priority keys order a backlogged queue (activities
inherit their workflow's), and ``max_task_queue_activities_per_second`` is held by matching for all
the queue's workers together."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import grpc
import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue, TaskQueueMetadata
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, PollActivityTaskQueueRequest
from temporalio.client import Client
from temporalio.common import Priority
from temporalio.worker import Worker

from tests.api.test_grpc_errors import expect_error

STARTED: list[tuple[str, float]] = []


@activity.defn
async def record(name: str) -> str:
    STARTED.append((name, time.monotonic()))
    return name


@workflow.defn
class Fanout:
    @workflow.run
    async def run(self, queue: str, items: list[tuple[str, int]]) -> list[str]:
        # priority 0: the activity inherits the workflow's priority key
        calls = [
            workflow.execute_activity(
                record, name, task_queue=queue, start_to_close_timeout=timedelta(seconds=30),
                priority=Priority(priority_key=key) if key else Priority.default,
            )
            for name, key in items
        ]
        return list(await asyncio.gather(*calls))


async def _backlog(client, queue: str, count: int) -> None:
    """Wait until ``count`` activity tasks wait on ``queue`` (no worker polls it yet)."""
    request = DescribeTaskQueueRequest(
        namespace="default", task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, include_task_queue_status=True,
    )
    for _ in range(200):
        described = await client.workflow_service.describe_task_queue(request)
        if described.task_queue_status.backlog_count_hint >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{queue} never had {count} activity tasks waiting")


async def test_backlogged_activities_go_out_by_priority(client, task_queue):
    activities = f"{task_queue}-act"
    items = [("low", 5), ("default-1", 3), ("urgent-1", 1), ("high", 2), ("urgent-2", 1), ("default-2", 0), ("low-2", 4)]
    STARTED.clear()
    async with Worker(client, task_queue=task_queue, workflows=[Fanout]):
        handle = await client.start_workflow(Fanout.run, args=[activities, items], id=f"fan-{uuid.uuid4().hex[:6]}",
                                             task_queue=task_queue)
        await _backlog(client, activities, len(items))
        async with Worker(client, task_queue=activities, activities=[record], max_concurrent_activities=1):
            await handle.result()
    # default-2 has no key of its own and inherits the workflow's (none: the default, 3).
    assert [name for name, _ in STARTED] == ["urgent-1", "urgent-2", "high", "default-1", "default-2", "low-2", "low"]


async def test_activities_inherit_the_workflows_priority(client, task_queue):
    activities = f"{task_queue}-act"
    STARTED.clear()
    async with Worker(client, task_queue=task_queue, workflows=[Fanout]):
        handles = [
            await client.start_workflow(
                Fanout.run, args=[activities, [(f"{name}-{i}", 0) for i in range(2)]], id=f"{name}-{uuid.uuid4().hex[:6]}",
                task_queue=task_queue, priority=Priority(priority_key=key) if key else Priority.default,
            )
            for name, key in [("batch", 5), ("interactive", 1), ("normal", 0)]
        ]
        await _backlog(client, activities, 6)
        async with Worker(client, task_queue=activities, activities=[record], max_concurrent_activities=1):
            for handle in handles:
                await handle.result()
        first = await handles[1].fetch_history()
    assert [name for name, _ in STARTED] == [
        "interactive-0", "interactive-1", "normal-0", "normal-1", "batch-0", "batch-1"
    ]
    started = first.events[0].workflow_execution_started_event_attributes
    assert started.priority.priority_key == 1


async def test_activity_rate_limit_holds_across_workers(client, task_queue):
    activities = f"{task_queue}-act"
    count, rate = 12, 8.0
    STARTED.clear()
    async with Worker(client, task_queue=task_queue, workflows=[Fanout]):
        handle = await client.start_workflow(Fanout.run, args=[activities, [(f"a{i}", 0) for i in range(count)]],
                                             id=f"rate-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        await _backlog(client, activities, count)
        # Two workers, each on a client of its own (as two processes would be).
        clients = [await Client.connect(client.service_client.config.target_host) for _ in range(2)]
        workers = [
            Worker(clients[i], task_queue=activities, activities=[record], identity=f"w{i}",
                   max_task_queue_activities_per_second=rate)
            for i in range(2)
        ]
        async with workers[0], workers[1]:
            await handle.result()
    assert len(STARTED) == count
    times = sorted(t for _, t in STARTED)
    # One token, no burst: twelve starts take at least eleven intervals of 1/8 s, whichever worker.
    assert times[-1] - times[0] >= (count - 1) / rate * 0.9
    observed = (count - 1) / (times[-1] - times[0])
    assert observed <= rate * 1.1, observed


async def test_a_non_positive_rate_limit_is_refused(stub, task_queue):
    request = PollActivityTaskQueueRequest(
        namespace="default", task_queue=TaskQueue(name=task_queue), identity="w",
        task_queue_metadata=TaskQueueMetadata(max_tasks_per_second={"value": 0.0}),
    )
    await expect_error(stub.PollActivityTaskQueue(request, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "MaxTasksPerSecond")


pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
