"""POST /workflows/{id}/reset: a reset over REST while a temporalio worker runs the workflow."""

from __future__ import annotations

import asyncio

from rest_support import LONG_POLL, assert_error, start_body, wid
from rest_workflows import Counter
from temporalio.worker import Worker

NS = "/api/v1/namespaces/default"


async def history(api, workflow_id: str, run_id: str = "") -> list[dict]:
    suffix = f"?runId={run_id}" if run_id else ""
    return (await api.get(f"{NS}/workflows/{workflow_id}/history{suffix}")).get_json()["history"]["events"]


def completed_task_ids(events: list[dict]) -> list[int]:
    return [int(e["eventId"]) for e in events if e["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_COMPLETED"]


async def test_reset_over_rest(served_sqlite, sdk, task_queue):
    api, workflow_id = served_sqlite, wid("reset")
    async with Worker(sdk, task_queue=task_queue, workflows=[Counter]):
        started = await api.post(f"{NS}/workflows/{workflow_id}", json=start_body("Counter", task_queue))
        old_run = started.get_json()["runId"]
        handle = sdk.get_workflow_handle(workflow_id)
        for _ in range(100):  # the first task has completed: the workflow waits for signals
            if completed_task_ids(await history(api, workflow_id)):
                break
            await asyncio.sleep(0.05)
        await handle.signal("bump", 2)
        await handle.signal("finish")
        assert (await api.get(f"{NS}/workflows/{workflow_id}/result?wait={LONG_POLL}")).get_json()["result"] == 2

        point = completed_task_ids(await history(api, workflow_id))[0]
        body = {"workflowTaskFinishEventId": point, "reason": "again, over REST", "resetReapplyType": "RESET_REAPPLY_TYPE_SIGNAL"}
        reset = await api.post(f"{NS}/workflows/{workflow_id}/reset?runId={old_run}", json=body, headers={"Idempotency-Key": "k-1"})
        assert reset.status_code == 200, reset.get_json()
        new_run = reset.get_json()["runId"]
        assert new_run and new_run != old_run
        again = await api.post(f"{NS}/workflows/{workflow_id}/reset?runId={old_run}", json=body, headers={"Idempotency-Key": "k-1"})
        assert again.get_json() == {"runId": new_run}

        # The signals came after the point: reapplied, the new run ends the same way.
        assert (await api.get(f"{NS}/workflows/{workflow_id}/result?wait={LONG_POLL}")).get_json()["result"] == 2
        events = await history(api, workflow_id, new_run)
        failed = events[point - 1]
        assert failed["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_FAILED"
        attrs = failed["workflowTaskFailedEventAttributes"]
        assert attrs["cause"] == "WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW" and attrs["failure"]["message"] == "again, over REST"
        assert [e["workflowExecutionSignaledEventAttributes"]["signalName"] for e in events[point : point + 2]] == ["bump", "finish"]
        described = (await api.get(f"{NS}/workflows/{workflow_id}")).get_json()
        assert described["workflowExecutionInfo"]["execution"]["runId"] == new_run

    error = assert_error(
        await api.post(f"{NS}/workflows/{workflow_id}/reset", json={"workflowTaskFinishEventId": 1, "reason": "x"}), 400, "INVALID_ARGUMENT"
    )
    assert error["message"] == "Workflow task finish ID must be > 1 && <= workflow last event ID."
    missing = wid("missing")
    error = assert_error(await api.post(f"{NS}/workflows/{missing}/reset", json={"workflowTaskFinishEventId": 4}), 404, "NOT_FOUND")
    assert error["message"] == f"workflow not found for ID: {missing}"
    assert_error(await api.post(f"{NS}/workflows/{workflow_id}/reset", json={"resetReapplyType": "NOT_A_TYPE"}), 400, "INVALID_ARGUMENT")
