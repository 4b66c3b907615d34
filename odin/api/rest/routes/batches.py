"""Batch operations: start (terminate, cancel, signal, delete or reset the runs a query matches, or a list
of runs), list, describe, stop. The paths are Temporal's HTTP API's.

Bodies are the WorkflowService request messages in proto3 JSON (payloads as plain JSON values)
without the fields the path gives. A job id may be used once per namespace: a retried start answers
409 ALREADY_EXISTS.
"""

from __future__ import annotations

from flask import Blueprint, url_for
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.api.rest.codec import from_json
from odin.api.rest.invoke import invoke
from odin.api.rest.openapi import Body, Doc, Reply, documented
from odin.api.rest.params import NEXT_PAGE_TOKEN, PAGE_SIZE, json_body
from odin.api.rest.routes import reply
from odin.history.batches import operation_of
from odin.operations import Operation

bp = Blueprint("batches", __name__, url_prefix="/api/v1/namespaces/<namespace>")
TAG = "batch operations"
IDENTITY = "odin-rest"
_CALL = ("namespace", "jobId")  # body fields the path gives


@bp.get("/batch-operations")
@documented(Doc(
    "List batch operations", TAG, Operation.ListBatchOperations, params=(PAGE_SIZE, NEXT_PAGE_TOKEN),
    responses={200: Reply("A page of jobs, newest first: id, type, state, start and close times.", ws.ListBatchOperationsResponse)},
))
def list_batch_operations(namespace: str):
    req = ws.ListBatchOperationsRequest(
        namespace=namespace, page_size=PAGE_SIZE.read() or 0, next_page_token=NEXT_PAGE_TOKEN.read()
    )
    return reply(invoke(Operation.ListBatchOperations, namespace, lambda f: f.list_batch_operations(req)))


@bp.post("/batch-operations/<job_id>")
@documented(Doc(
    "Start a batch operation", TAG, Operation.StartBatchOperation,
    body=Body(ws.StartBatchOperationRequest, _CALL, required=True),
    responses={201: Reply("Started; the job runs in the background.", ws.StartBatchOperationResponse, headers=("Location",))},
    description=(
        'Body: `{"visibilityQuery": "WorkflowType = \'Report\' AND ExecutionStatus = \'Running\'", "reason": "cleanup", '
        '"terminationOperation": {}}`, or `"executions": [{"workflowId": "a"}, ...]` instead of the query; the '
        'operation is one of `terminationOperation`, `cancellationOperation`, `signalOperation` (`{"signal": "name", '
        '"input": [...]}`), `deletionOperation` (admin rights needed) or `resetOperation` (`{"options": '
        '{"firstWorkflowTask": {}}}`, or `lastWorkflowTask`, `workflowTaskId`, `buildId`). `maxOperationsPerSecond` limits the pace '
        "(50 when unset). 409 ALREADY_EXISTS when the job id was used; 429 RESOURCE_EXHAUSTED while the namespace "
        "runs another job."
    ),
))
def start_batch_operation(namespace: str, job_id: str):
    req = from_json(json_body(), ws.StartBatchOperationRequest)
    req.namespace, req.job_id = namespace, job_id
    op = operation_of(req)
    operation = getattr(req, op) if op else None
    # (Some operations of the API, e.g. the activity ones Odin refuses, have no identity field.)
    if operation is not None and "identity" in operation.DESCRIPTOR.fields_by_name and not operation.identity:
        operation.identity = IDENTITY
    response = invoke(Operation.StartBatchOperation, namespace, lambda f: f.start_batch_operation(req), target=job_id)
    return reply(response, 201, {"Location": url_for(".describe_batch_operation", namespace=namespace, job_id=job_id)})


@bp.get("/batch-operations/<job_id>")
@documented(Doc(
    "Describe a batch operation", TAG, Operation.DescribeBatchOperation,
    responses={200: Reply(
        "Type, state, start and close times, total/completed/failed counts, identity, reason, and the query or the "
        "list of executions.", ws.DescribeBatchOperationResponse,
    )},
))
def describe_batch_operation(namespace: str, job_id: str):
    req = ws.DescribeBatchOperationRequest(namespace=namespace, job_id=job_id)
    return reply(invoke(Operation.DescribeBatchOperation, namespace, lambda f: f.describe_batch_operation(req)))


@bp.post("/batch-operations/<job_id>/stop")
@documented(Doc(
    "Stop a batch operation", TAG, Operation.StopBatchOperation,
    body=Body(ws.StopBatchOperationRequest, _CALL, required=True),
    responses={200: Reply("Stopped: what was done stays done; the job reads as failed.", ws.StopBatchOperationResponse)},
    description='Body: `{"reason": "why"}` (required). 404 NOT_FOUND when the job is unknown or has ended.',
))
def stop_batch_operation(namespace: str, job_id: str):
    req = from_json(json_body(), ws.StopBatchOperationRequest)
    req.namespace, req.job_id = namespace, job_id
    req.identity = req.identity or IDENTITY
    return reply(invoke(Operation.StopBatchOperation, namespace, lambda f: f.stop_batch_operation(req), target=job_id))
