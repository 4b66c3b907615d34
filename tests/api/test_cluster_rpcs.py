"""GetClusterInfo and ListTaskQueuePartitions through the temporalio client's raw service stubs."""

from __future__ import annotations

import pytest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.service import RPCError, RPCStatusCode


async def test_get_cluster_info(client, odin_server):
    info = await client.workflow_service.get_cluster_info(ws.GetClusterInfoRequest())
    again = await client.workflow_service.get_cluster_info(ws.GetClusterInfoRequest())
    assert info.cluster_id and info.cluster_id == again.cluster_id
    assert info.history_shard_count == odin_server.frontend.engine.num_shards > 0
    assert info.persistence_store in ("sqlite", "postgresql")
    assert info.cluster_name == "active"


async def test_list_task_queue_partitions(client, task_queue):
    resp = await client.workflow_service.list_task_queue_partitions(
        ws.ListTaskQueuePartitionsRequest(namespace="default", task_queue=TaskQueue(name=task_queue))
    )
    assert [p.key for p in resp.workflow_task_queue_partitions] == [task_queue]
    assert [p.key for p in resp.activity_task_queue_partitions] == [task_queue]
    assert resp.workflow_task_queue_partitions[0].owner_host_name


@pytest.mark.parametrize(
    "namespace,queue,code",
    [("nope", "tq", RPCStatusCode.NOT_FOUND), ("default", "", RPCStatusCode.INVALID_ARGUMENT)],
)
async def test_list_task_queue_partitions_bad_input(client, namespace, queue, code):
    with pytest.raises(RPCError) as err:
        await client.workflow_service.list_task_queue_partitions(
            ws.ListTaskQueuePartitionsRequest(namespace=namespace, task_queue=TaskQueue(name=queue))
        )
    assert err.value.status == code
