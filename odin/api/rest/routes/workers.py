"""Workers: the processes that reported themselves with worker heartbeats (RecordWorkerHeartbeat,
or the last one ShutdownWorker carries), listed for a few minutes after their last word."""

from __future__ import annotations

from flask import Blueprint
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.api.rest.invoke import invoke
from odin.api.rest.openapi import Doc, Reply, documented
from odin.api.rest.params import NEXT_PAGE_TOKEN, PAGE_SIZE, Param
from odin.api.rest.routes import reply
from odin.operations import Operation

bp = Blueprint("workers", __name__, url_prefix="/api/v1/namespaces/<namespace>/workers")
TAG = "workers"
QUERY = Param(
    "query", "query", {"type": "string", "maxLength": 10000},
    "A filter on WorkerInstanceKey, WorkerIdentity, HostName, TaskQueue, DeploymentName, BuildId, SdkName, "
    "SdkVersion, Status ('Running', 'ShuttingDown', 'Shutdown'), StartTime, HeartbeatTime; e.g. "
    "`TaskQueue = 'orders' AND Status = 'Running'`.", "",
)


def list_workers_page(namespace: str, query: str = "", page_size: int = 0, token: bytes = b"") -> ws.ListWorkersResponse:
    """One page of the namespace's workers (shared with the web UI)."""
    req = ws.ListWorkersRequest(namespace=namespace, query=query, page_size=page_size, next_page_token=token)
    return invoke(Operation.ListWorkers, namespace, lambda f: f.list_workers(req))


@bp.get("")
@documented(Doc(
    "List workers", TAG, Operation.ListWorkers, params=(QUERY, PAGE_SIZE, NEXT_PAGE_TOKEN),
    responses={200: Reply("Workers heard from recently, latest heartbeat first.", ws.ListWorkersResponse)},
))
def list_workers(namespace: str):
    return reply(list_workers_page(namespace, QUERY.read(), PAGE_SIZE.read(), NEXT_PAGE_TOKEN.read()))


@bp.get("/<worker_instance_key>")
@documented(Doc(
    "Describe a worker", TAG, Operation.DescribeWorker,
    responses={200: Reply("The worker's latest heartbeat.", ws.DescribeWorkerResponse)},
))
def describe_worker(namespace: str, worker_instance_key: str):
    req = ws.DescribeWorkerRequest(namespace=namespace, worker_instance_key=worker_instance_key)
    return reply(invoke(Operation.DescribeWorker, namespace, lambda f: f.describe_worker(req)))
