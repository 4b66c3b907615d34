"""A run whose history reaches the event-count or byte-size limit is terminated, as Temporal does.

The expected history is what `temporal server start-dev --dynamic-config-value
limit.historyCount.error=20` recorded for the same workflow and worker: the change that brings the
history to 20 events is followed by WorkflowExecutionTerminated("Workflow history count exceeds
limit.", identity "history-service")."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import TerminatedError
from temporalio.worker import Worker


@activity.defn
async def step(i: int) -> int:
    return i


@workflow.defn
class TenSteps:
    @workflow.run
    async def run(self) -> int:
        for i in range(10):
            await workflow.execute_activity(step, i, start_to_close_timeout=timedelta(seconds=10))
        return 10


TEMPORAL_HISTORY = [
    "WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED",
    *(
        ["ACTIVITY_TASK_SCHEDULED", "ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_COMPLETED", "WORKFLOW_TASK_SCHEDULED",
         "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED"] * 3
    )[:-2],
    "WORKFLOW_EXECUTION_TERMINATED",
]


@pytest.mark.parametrize("limit", ["count", "size"])
async def test_a_run_at_its_history_limit_is_terminated(client, odin_server, task_queue, limit):
    engine = odin_server.runtime.engine
    if limit == "count":
        engine.history_count_limit = 20
    else:
        engine.history_size_limit = 1  # the first change past it terminates the run
    async with Worker(client, task_queue=task_queue, workflows=[TenSteps], activities=[step]):
        handle = await client.start_workflow(TenSteps.run, id=f"limits-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
        history = await handle.fetch_history()
    assert isinstance(info.value.cause, TerminatedError)
    terminated = history.events[-1].workflow_execution_terminated_event_attributes
    assert terminated.identity == "history-service"
    names = [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events]
    if limit == "count":
        assert terminated.reason == "Workflow history count exceeds limit."
        assert names == TEMPORAL_HISTORY
    else:
        assert terminated.reason == "Workflow history size exceeds limit."
        # The first change after the start (its workflow task starting) passes it: the started
        # task ends as a terminated run's does.
        assert names == [
            "WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_FAILED",
            "WORKFLOW_EXECUTION_TERMINATED",
        ]


async def test_workflow_tasks_suggest_continue_as_new_and_growth_is_logged(client, odin_server, task_queue, monkeypatch, caplog):
    # Lowered as `--dynamic-config-value limit.historyCount.suggestContinueAsNew=12` lowers it on
    # the real server, which then flagged the workflow tasks started at events 15, 21, ... (not 3 or 9).
    import logging

    from temporalio.api.enums.v1 import SuggestContinueAsNewReason
    from temporalio.api.namespace.v1 import UpdateNamespaceInfo
    from temporalio.api.workflowservice.v1 import UpdateNamespaceRequest

    from odin.history import engine

    # A namespace setting, as the dynamic config value is on the real server.
    await client.workflow_service.update_namespace(
        UpdateNamespaceRequest(
            namespace="default", update_info=UpdateNamespaceInfo(data={"odin.history_count_suggest_continue_as_new": "12"})
        )
    )
    monkeypatch.setattr(engine, "HISTORY_COUNT_WARN", 30)
    with caplog.at_level(logging.WARNING, logger="odin.history.engine"):
        async with Worker(client, task_queue=task_queue, workflows=[TenSteps], activities=[step]):
            handle = await client.start_workflow(TenSteps.run, id=f"suggest-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
            assert await handle.result() == 10
            history = await handle.fetch_history()
    flags = {
        e.event_id: e.workflow_task_started_event_attributes.suggest_continue_as_new
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    }
    assert flags[3] is False and flags[9] is False
    assert all(flag for event_id, flag in flags.items() if event_id >= 15)
    reasons = {
        e.event_id: list(e.workflow_task_started_event_attributes.suggest_continue_as_new_reasons)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    }
    # Temporal gives the reason too: [2] for the event count, as read off the real server.
    assert reasons[9] == [] and reasons[15] == [SuggestContinueAsNewReason.SUGGEST_CONTINUE_AS_NEW_REASON_TOO_MANY_HISTORY_EVENTS]
    warnings = [r for r in caplog.records if "past the warning limit" in r.getMessage()]
    assert len(warnings) == 1 and handle.id in warnings[0].getMessage()
