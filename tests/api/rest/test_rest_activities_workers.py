"""REST: pausing, unpausing, resetting a pending activity and changing its options; listing and
describing workers (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid

from rest_support import assert_error, start_body, wid
from rest_workflows import WaitsForAnActivity
from temporalio.api.worker.v1 import WorkerHeartbeat, WorkerHostInfo
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.worker import Worker

NS = "/api/v1/namespaces/default"


async def _pending(served, workflow_id: str) -> list[dict]:
    for _ in range(200):
        found = (await served.get(f"{NS}/workflows/{workflow_id}")).get_json().get("pendingActivities", [])
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("the activity was never scheduled")


async def test_activity_pause_unpause_reset_and_options(served, client, task_queue):
    async with Worker(client, task_queue=task_queue, workflows=[WaitsForAnActivity]):
        workflow_id = wid()
        queue = f"nobody-{uuid.uuid4().hex[:6]}"
        assert (await served.post(f"{NS}/workflows/{workflow_id}", json=start_body("WaitsForAnActivity", task_queue, queue))).status_code == 201
        [activity] = await _pending(served, workflow_id)
        assert activity["state"] == "PENDING_ACTIVITY_STATE_SCHEDULED"
        base = f"{NS}/workflows/{workflow_id}/activities/a1"

        paused = await served.post(f"{base}/pause", json={"reason": "maintenance"})
        assert (paused.status_code, paused.get_json()) == (200, {})
        [activity] = await _pending(served, workflow_id)
        assert activity["state"] == "PENDING_ACTIVITY_STATE_PAUSED" and activity["paused"] is True
        assert activity["pauseInfo"]["manual"] == {"identity": "odin-rest", "reason": "maintenance"}

        changed = await served.post(
            f"{base}/options", json={"activityOptions": {"startToCloseTimeout": "45s"}, "updateMask": "startToCloseTimeout"}
        )
        assert changed.status_code == 200
        assert changed.get_json()["activityOptions"]["startToCloseTimeout"] == "45s"
        assert changed.get_json()["activityOptions"]["taskQueue"]["name"] == queue

        assert (await served.post(f"{base}/unpause", json={})).status_code == 200
        [activity] = await _pending(served, workflow_id)
        assert activity["state"] == "PENDING_ACTIVITY_STATE_SCHEDULED" and "pauseInfo" not in activity
        assert (await served.post(f"{base}/reset", json={"keepPaused": True})).status_code == 200
        restored = await served.post(f"{base}/options", json={"restoreOriginal": True})
        assert restored.get_json()["activityOptions"]["startToCloseTimeout"] == "30s"

        error = assert_error(await served.post(f"{NS}/workflows/{workflow_id}/activities/nope/pause", json={}), 404, "NOT_FOUND")
        assert error["message"] == "Can't find pending activity with such ID. Invalid activityID or activity already completed"
        error = assert_error(await served.post(f"{base}/options", json={"activityOptions": {}}), 400, "INVALID_ARGUMENT")
        assert error["message"] == "UpdateMask is not provided"
        error = assert_error(await served.post(f"{base}/pause?runId=xyz", json={}), 400, "INVALID_ARGUMENT")
        assert error["message"] == "RunId is not valid UUID."
        assert_error(await served.post(f"{base}/pause", json={"bogusField": 1}), 400, "INVALID_ARGUMENT")
        await client.get_workflow_handle(workflow_id).terminate()


async def test_workers_list_and_describe(served, stub):
    key = str(uuid.uuid4())
    queue = f"q-{key[:6]}"
    await stub.RecordWorkerHeartbeat(
        ws.RecordWorkerHeartbeatRequest(
            namespace="default",
            identity="w@host",
            worker_heartbeat=[
                WorkerHeartbeat(
                    worker_instance_key=key, worker_identity="w@host", task_queue=queue, sdk_name="probe", status=1,
                    host_info=WorkerHostInfo(host_name="hostx", process_id="42"),
                )
            ],
        )
    )
    listed = await served.get(f"{NS}/workers?query=TaskQueue = '{queue}'")
    assert listed.status_code == 200
    assert listed.get_json()["workers"] == [
        {
            "workerInstanceKey": key, "workerIdentity": "w@host", "taskQueue": queue, "sdkName": "probe",
            "status": "WORKER_STATUS_RUNNING", "hostName": "hostx", "processId": "42",
        }
    ]
    assert (await served.get(f"{NS}/workers?query=TaskQueue = 'other'")).get_json() == {}
    described = await served.get(f"{NS}/workers/{key}")
    assert described.get_json()["workerInfo"]["workerHeartbeat"]["hostInfo"] == {"hostName": "hostx", "processId": "42"}
    error = assert_error(await served.get(f"{NS}/workers/nope"), 404, "NOT_FOUND")
    assert error["message"] == "Worker nope not found"
    error = assert_error(await served.get(f"{NS}/workers?query=TaskQueue ="), 400, "INVALID_ARGUMENT")
    assert error["message"].startswith("malformed query: ")
