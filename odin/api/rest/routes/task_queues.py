"""Task queues: pollers and backlog."""

from __future__ import annotations

from flask import Blueprint
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.api.rest.invoke import invoke
from odin.api.rest.openapi import Doc, Reply, documented
from odin.api.rest.params import Param
from odin.api.rest.routes import reply
from odin.operations import Operation

bp = Blueprint("task_queues", __name__, url_prefix="/api/v1/namespaces/<namespace>/task-queues")

QUEUE_TYPES = ("TASK_QUEUE_TYPE_WORKFLOW", "TASK_QUEUE_TYPE_ACTIVITY")
TASK_QUEUE_TYPE = Param(
    "taskQueueType", "query", {"type": "string", "enum": list(QUEUE_TYPES)}, "Which kind of task.", QUEUE_TYPES[0]
)


def describe(namespace: str, name: str, kind: str) -> ws.DescribeTaskQueueResponse:
    """One kind of a task queue, pollers and backlog (shared with the web UI)."""
    req = ws.DescribeTaskQueueRequest(
        namespace=namespace,
        task_queue=TaskQueue(name=name),
        task_queue_type=TaskQueueType.Value(kind),
        include_task_queue_status=True,
    )
    return invoke(Operation.DescribeTaskQueue, namespace, lambda f: f.describe_task_queue(req))


@bp.get("/<task_queue>")
@documented(Doc(
    "Describe a task queue", "task queues", Operation.DescribeTaskQueue, params=(TASK_QUEUE_TYPE,),
    responses={200: Reply("Recent pollers and the backlog (taskQueueStatus.backlogCountHint).", ws.DescribeTaskQueueResponse)},
))
def describe_task_queue(namespace: str, task_queue: str):
    return reply(describe(namespace, task_queue, TASK_QUEUE_TYPE.read()))
