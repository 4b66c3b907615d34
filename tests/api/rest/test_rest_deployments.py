"""Worker deployments over REST (Temporal's HTTP paths) on SQLite and PostgreSQL: a versioned
worker registers its version by polling; list, describe, set current, ramp, metadata, describe a
version, and bad input with its status and message."""

from __future__ import annotations

import asyncio
import uuid

from rest_support import assert_error
from temporalio import workflow
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import Worker, WorkerDeploymentConfig


@workflow.defn(versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class RestVersioned:
    @workflow.run
    async def run(self) -> str:
        return "ok"


async def test_worker_deployments_over_rest(served, odin_server):
    api = served
    address = f"127.0.0.1:{odin_server.endpoints.grpc_port}"
    name = f"rest-deploy-{uuid.uuid4().hex[:8]}"
    await (await Client.connect(address)).workflow_service.register_namespace(
        ws.RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period={"seconds": 86400})
    )
    client = await Client.connect(address, namespace=name)
    ns = f"/api/v1/namespaces/{name}"
    for build in ("b1", "b2"):
        config = WorkerDeploymentConfig(version=WorkerDeploymentVersion("api", build), use_worker_versioning=True)
        async with Worker(client, task_queue="rest-q", workflows=[RestVersioned], deployment_config=config):
            for _ in range(600):
                if (await api.get(f"{ns}/worker-deployment-versions/api/{build}")).status_code == 200:
                    break
                await asyncio.sleep(0.05)

    listed = (await api.get(f"{ns}/worker-deployments")).get_json()
    assert [d["name"] for d in listed["workerDeployments"]] == ["api"]
    response = await api.post(f"{ns}/worker-deployments/api/set-current-version", json={"buildId": "b1"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["previousVersion"] == "__unversioned__"
    response = await api.post(f"{ns}/worker-deployments/api/set-ramping-version", json={"buildId": "b2", "percentage": 30})
    assert response.status_code == 200, response.get_data(as_text=True)
    described = (await api.get(f"{ns}/worker-deployments/api")).get_json()
    routing = described["workerDeploymentInfo"]["routingConfig"]
    assert (routing["currentVersion"], routing["rampingVersion"], routing["rampingVersionPercentage"]) == ("api.b1", "api.b2", 30)
    assert described["workerDeploymentInfo"]["lastModifierIdentity"] == "odin-rest"
    response = await api.post(
        f"{ns}/worker-deployment-versions/api/b2/update-metadata", json={"upsertEntries": {"release": "r42"}}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["metadata"]["entries"] == {"release": "r42"}
    version = (await api.get(f"{ns}/worker-deployment-versions/api/b2")).get_json()["workerDeploymentVersionInfo"]
    assert version["rampPercentage"] == 30 and version["taskQueueInfos"] == [{"name": "rest-q", "type": "TASK_QUEUE_TYPE_WORKFLOW"}]

    # Bad input changes nothing.
    before = (await api.get(f"{ns}/worker-deployments/api")).get_json()
    error = assert_error(
        await api.post(f"{ns}/worker-deployments/api/set-ramping-version", json={"buildId": "b2", "percentage": 101}),
        400, "INVALID_ARGUMENT",
    )
    assert error["message"] == "Percentage must be between 0 and 100 (inclusive)"
    assert_error(await api.post(f"{ns}/worker-deployments/api/set-current-version", json={"buildId": "nope"}), 404, "NOT_FOUND")
    assert_error(await api.delete(f"{ns}/worker-deployment-versions/api/b1"), 400, "FAILED_PRECONDITION")
    assert_error(await api.get(f"{ns}/worker-deployments/missing"), 404, "NOT_FOUND")
    assert (await api.get(f"{ns}/worker-deployments/api")).get_json() == before
