"""User metadata (summaries and details) of a start and of commands, kept as Temporal 1.32 keeps it
(read off ``temporal server start-dev`` with this workflow): on the events the start and the
commands wrote, in DescribeWorkflowExecution's execution config, and passed on to a child."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.converter import DataConverter
from temporalio.worker import Worker


@activity.defn
async def noted() -> str:
    return "a"


@workflow.defn
class Annotated:
    @workflow.run
    async def run(self) -> str:
        await workflow.execute_activity(noted, start_to_close_timeout=timedelta(seconds=10), summary="act summary")
        await workflow.sleep(0.05, summary="timer summary")
        await workflow.execute_child_workflow(
            AnnotatedChild.run, id=f"{workflow.info().workflow_id}-child", static_summary="child summary", static_details="child details"
        )
        return "ok"


@workflow.defn
class AnnotatedChild:
    @workflow.run
    async def run(self) -> str:
        return "c"


def _text(payload) -> str | None:
    return DataConverter.default.payload_converter.from_payload(payload, str) if payload.data else None


async def test_summaries_and_details_are_kept_and_described(client, task_queue):
    wid = f"meta-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=task_queue, workflows=[Annotated, AnnotatedChild], activities=[noted]):
        handle = await client.start_workflow(
            Annotated.run, id=wid, task_queue=task_queue, static_summary="wf summary", static_details="wf details"
        )
        assert await handle.result() == "ok"
    described = await handle.describe()
    assert (await described.static_summary(), await described.static_details()) == ("wf summary", "wf details")
    child = await client.get_workflow_handle(f"{wid}-child").describe()
    assert (await child.static_summary(), await child.static_details()) == ("child summary", "child details")

    found = [
        (EventType.Name(e.event_type), _text(e.user_metadata.summary), _text(e.user_metadata.details))
        for e in (await handle.fetch_history()).events
        if e.HasField("user_metadata")
    ]
    assert found == [
        ("EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", "wf summary", "wf details"),
        ("EVENT_TYPE_ACTIVITY_TASK_SCHEDULED", "act summary", None),
        ("EVENT_TYPE_TIMER_STARTED", "timer summary", None),
        ("EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED", "child summary", "child details"),
    ]
