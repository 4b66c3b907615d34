"""The first milestone of the protocol guide: activity, timer, signal and query with the real SDK."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.worker import Worker

from tests.support.services import ALL_DATABASES

# Also on MariaDB: the protocol's core path on every database (the rest of the matrix runs on two).
pytestmark = pytest.mark.parametrize("database_url", ALL_DATABASES, indirect=True)


@activity.defn
async def greet(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class GreetingWorkflow:
    def __init__(self) -> None:
        self._name: str | None = None
        self._stage = "started"

    @workflow.run
    async def run(self, who: str) -> str:
        greeting = await workflow.execute_activity(greet, who, start_to_close_timeout=timedelta(seconds=10))
        self._stage = "slept"
        await workflow.sleep(1)
        self._stage = "waiting"
        await workflow.wait_condition(lambda: self._name is not None)
        self._stage = "done"
        return f"{greeting} / {self._name}"

    @workflow.signal
    def set_name(self, name: str) -> None:
        self._name = name

    @workflow.query
    def stage(self) -> str:
        return self._stage


EXPECTED = [
    "WORKFLOW_EXECUTION_STARTED",
    "WORKFLOW_TASK_SCHEDULED",
    "WORKFLOW_TASK_STARTED",
    "WORKFLOW_TASK_COMPLETED",
    "ACTIVITY_TASK_SCHEDULED",
    "ACTIVITY_TASK_STARTED",
    "ACTIVITY_TASK_COMPLETED",
    "WORKFLOW_TASK_SCHEDULED",
    "WORKFLOW_TASK_STARTED",
    "WORKFLOW_TASK_COMPLETED",
    "TIMER_STARTED",
    "TIMER_FIRED",
    "WORKFLOW_TASK_SCHEDULED",
    "WORKFLOW_TASK_STARTED",
    "WORKFLOW_TASK_COMPLETED",
    "WORKFLOW_EXECUTION_SIGNALED",
    "WORKFLOW_TASK_SCHEDULED",
    "WORKFLOW_TASK_STARTED",
    "WORKFLOW_TASK_COMPLETED",
    "WORKFLOW_EXECUTION_COMPLETED",
]


@pytest.mark.parametrize("max_cached_workflows", [1000, 0], ids=["sticky", "no-cache"])
async def test_activity_timer_signal_query(client, task_queue, max_cached_workflows):
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[GreetingWorkflow],
        activities=[greet],
        max_cached_workflows=max_cached_workflows,
    ):
        handle = await client.start_workflow(
            GreetingWorkflow.run, "Odin", id=f"greet-{uuid.uuid4()}", task_queue=task_queue
        )
        for _ in range(100):
            if await handle.query(GreetingWorkflow.stage) == "waiting":
                break
            await asyncio.sleep(0.1)
        assert await handle.query(GreetingWorkflow.stage) == "waiting"
        await handle.signal(GreetingWorkflow.set_name, "Freya")
        assert await handle.result() == "Hello, Odin! / Freya"
        assert await handle.query(GreetingWorkflow.stage) == "done"
        history = await handle.fetch_history()
    names = [EventType.Name(e.event_type)[len("EVENT_TYPE_") :] for e in history.events]
    assert names == EXPECTED
    assert [e.event_id for e in history.events] == list(range(1, 21))
    completed = history.events[3].workflow_task_completed_event_attributes
    assert completed.sdk_metadata.sdk_name == "temporal-python"
