"""Batch operations over REST (Temporal's HTTP paths) on SQLite and PostgreSQL: start by query and
by list, describe until done, list, stop, and bad input with its status and message."""

from __future__ import annotations

import asyncio
import uuid

from rest_support import assert_error
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client


async def _namespace(server) -> tuple[Client, str]:
    client = await Client.connect(f"127.0.0.1:{server.endpoints.grpc_port}")
    name = f"rest-batch-{uuid.uuid4().hex[:8]}"
    await client.workflow_service.register_namespace(
        ws.RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period={"seconds": 86400})
    )
    return client, name


async def _done(api, ns: str, job_id: str) -> dict:
    for _ in range(150):
        response = await api.get(f"{ns}/batch-operations/{job_id}")
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        if body["state"] != "BATCH_OPERATION_STATE_RUNNING":
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"batch {job_id} did not finish")


async def test_batch_operations_over_rest(served, odin_server):
    api = served
    _, name = await _namespace(odin_server)
    ns = f"/api/v1/namespaces/{name}"
    for i in range(3):
        started = await api.post(
            f"{ns}/workflows/rb-{i}", json={"workflowType": {"name": "RestBatch"}, "taskQueue": {"name": "rest-batch"}}
        )
        assert started.status_code == 201, started.get_data(as_text=True)

    # Signal by query, then terminate by list.
    created = await api.post(
        f"{ns}/batch-operations/sig-1",
        json={"visibilityQuery": "WorkflowType = 'RestBatch'", "reason": "poke all", "signalOperation": {"signal": "poke", "input": [{"n": 1}]}},
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.headers["Location"] == f"{ns}/batch-operations/sig-1"
    body = await _done(api, ns, "sig-1")
    assert body["state"] == "BATCH_OPERATION_STATE_COMPLETED" and body["operationType"] == "BATCH_OPERATION_TYPE_SIGNAL_WORKFLOW"
    assert (body["totalOperationCount"], body["completeOperationCount"]) == ("3", "3")
    assert (body["identity"], body["reason"], body["query"]) == ("odin-rest", "poke all", "WorkflowType = 'RestBatch'")
    history = (await api.get(f"{ns}/workflows/rb-0/history")).get_json()
    signaled = [e for e in history["history"]["events"] if e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"]
    assert [e["workflowExecutionSignaledEventAttributes"]["input"] for e in signaled] == [[{"n": 1}]]

    created = await api.post(
        f"{ns}/batch-operations/term-1",
        json={"executions": [{"workflowId": "rb-0"}, {"workflowId": "rb-2"}], "reason": "done", "terminationOperation": {"identity": "ops"}},
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    body = await _done(api, ns, "term-1")
    assert body["completeOperationCount"] == "2" and [e["businessId"] for e in body["executions"]] == ["rb-0", "rb-2"]
    statuses = {
        i: (await api.get(f"{ns}/workflows/rb-{i}")).get_json()["workflowExecutionInfo"]["status"] for i in range(3)
    }
    assert statuses == {
        0: "WORKFLOW_EXECUTION_STATUS_TERMINATED", 1: "WORKFLOW_EXECUTION_STATUS_RUNNING", 2: "WORKFLOW_EXECUTION_STATUS_TERMINATED",
    }

    listed = (await api.get(f"{ns}/batch-operations?pageSize=1")).get_json()
    assert [i["jobId"] for i in listed["operationInfo"]] == ["term-1"] and listed["nextPageToken"]
    rest = (await api.get(f"{ns}/batch-operations", query_string={"nextPageToken": listed["nextPageToken"]})).get_json()
    assert [i["jobId"] for i in rest["operationInfo"]] == ["sig-1"]

    # Bad input, a used job id, stopping what has ended, an unknown job.
    error = assert_error(
        await api.post(f"{ns}/batch-operations/bad", json={"visibilityQuery": "WorkflowType = 'x'", "terminationOperation": {}}),
        400, "INVALID_ARGUMENT",
    )
    assert error["message"].startswith("must provide required parameters: BatchType,Reason,Namespace")
    assert_error(await api.post(f"{ns}/batch-operations/bad", json={"reason": 5}), 400, "INVALID_ARGUMENT")
    # An operation of the API Odin does not run as a batch (one without an identity field) is refused.
    error = assert_error(
        await api.post(f"{ns}/batch-operations/acts", json={"executions": [{"workflowId": "rb-1"}], "reason": "r", "deleteActivitiesOperation": {}}),
        501, "UNIMPLEMENTED",
    )
    assert error["message"] == "Batch deletion of activities is not supported by this server."
    error = assert_error(
        await api.post(f"{ns}/batch-operations/term-1", json={"executions": [{"workflowId": "rb-1"}], "reason": "again", "terminationOperation": {}}),
        409, "ALREADY_EXISTS",
    )
    assert error["message"].startswith("Workflow execution already finished. WorkflowId: term-1, RunId: ")
    error = assert_error(await api.post(f"{ns}/batch-operations/term-1/stop", json={"reason": "x"}), 404, "NOT_FOUND")
    assert error["message"] == "workflow execution already completed"
    error = assert_error(await api.post(f"{ns}/batch-operations/term-1/stop", json={}), 400, "INVALID_ARGUMENT")
    assert error["message"] == "Reason is not set on request."
    error = assert_error(await api.get(f"{ns}/batch-operations/nope"), 404, "NOT_FOUND")
    assert error["message"] == "workflow not found for ID: nope"

    # Stop a slow job mid-way.
    created = await api.post(
        f"{ns}/batch-operations/slow",
        json={"executions": [{"workflowId": f"missing-{i}"} for i in range(40)], "reason": "slow", "maxOperationsPerSecond": 2,
              "cancellationOperation": {}},
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    stopped = await api.post(f"{ns}/batch-operations/slow/stop", json={"reason": "enough"})
    assert stopped.status_code == 200, stopped.get_data(as_text=True)
    body = (await api.get(f"{ns}/batch-operations/slow")).get_json()
    assert body["state"] == "BATCH_OPERATION_STATE_FAILED" and "closeTime" in body and int(body.get("completeOperationCount", 0)) < 40
