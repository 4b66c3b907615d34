"""Replay check for SDK end-to-end tests: a recorded history must replay without non-determinism."""

from __future__ import annotations

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Replayer


async def assert_replays(handle: WorkflowHandle, *workflows: type, run_id: str | None = None, **replayer_kwargs) -> int:
    """Replay the run's stored history through ``temporalio.worker.Replayer`` with ``workflows``.

    Raises on non-determinism (the Replayer's default). Returns the number of events replayed so
    the caller can assert the history was not trivially empty."""
    if run_id is not None:
        handle = handle._client.get_workflow_handle(handle.id, run_id=run_id)
    history = await handle.fetch_history()
    result = await Replayer(workflows=list(workflows), **replayer_kwargs).replay_workflow(history)
    assert result.replay_failure is None, result.replay_failure
    return len(history.events)


async def assert_chain_replays(client: Client, workflow_id: str, first_run_id: str, *workflows: type) -> list[str]:
    """Replay every run of a continue-as-new / cron / retry chain; returns the run ids in order."""
    run_ids, run_id = [], first_run_id
    while run_id:
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        history = await handle.fetch_history()
        result = await Replayer(workflows=list(workflows)).replay_workflow(history)
        assert result.replay_failure is None, result.replay_failure
        run_ids.append(run_id)
        last = history.events[-1]
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id if last.HasField(
            "workflow_execution_continued_as_new_event_attributes"
        ) else ""
    return run_ids
