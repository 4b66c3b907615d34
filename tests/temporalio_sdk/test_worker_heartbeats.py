"""Worker heartbeats from the temporalio SDK: RecordWorkerHeartbeat while it runs, the last one on
ShutdownWorker; ListWorkers and DescribeWorker show them (as Temporal 1.32 does)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import WorkerStatus
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker


@activity.defn
async def noop() -> None:
    return None


@pytest.fixture(scope="module")
def quick_heartbeats() -> Runtime:
    """A runtime whose workers heartbeat every second (the SDK's default is 60 s)."""
    return Runtime(telemetry=TelemetryConfig(), worker_heartbeat_interval=timedelta(seconds=1))


async def test_a_running_sdk_worker_is_listed_and_its_shutdown_is_seen(odin_server, quick_heartbeats, task_queue):
    client = await Client.connect(
        f"127.0.0.1:{odin_server.endpoints.grpc_port}", namespace="default", runtime=quick_heartbeats
    )
    query = f"TaskQueue = '{task_queue}'"

    async def listed(status: int):
        for _ in range(100):
            found = await client.workflow_service.list_workers(ws.ListWorkersRequest(namespace="default", query=query))
            if found.workers and found.workers[0].status == status:
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"no worker with status {WorkerStatus.Name(status)}")

    async with Worker(client, task_queue=task_queue, activities=[noop]):
        found = await listed(WorkerStatus.WORKER_STATUS_RUNNING)
        [worker] = found.workers
        assert (worker.task_queue, worker.sdk_name) == (task_queue, "temporal-python")
        assert worker.worker_identity and worker.host_name and worker.process_id
        [info] = found.workers_info
        assert info.worker_heartbeat.worker_instance_key == worker.worker_instance_key
        assert info.worker_heartbeat.HasField("activity_task_slots_info")
        counted = await client.workflow_service.count_workers(ws.CountWorkersRequest(namespace="default", query=query))
        assert counted.count == 1
        described = await client.workflow_service.describe_worker(
            ws.DescribeWorkerRequest(namespace="default", worker_instance_key=worker.worker_instance_key)
        )
        assert described.worker_info.worker_heartbeat.worker_identity == worker.worker_identity
    # The last heartbeat came with ShutdownWorker.
    await listed(WorkerStatus.WORKER_STATUS_SHUTTING_DOWN)

    with pytest.raises(RPCError) as caught:
        await client.workflow_service.describe_worker(ws.DescribeWorkerRequest(namespace="default", worker_instance_key="nope"))
    assert (caught.value.status, caught.value.message) == (RPCStatusCode.NOT_FOUND, "Worker nope not found")
