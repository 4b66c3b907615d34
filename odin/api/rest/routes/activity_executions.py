"""Standalone activities (started by a client, run by a worker, no workflow): start, list, count,
describe, outcome, cancel, terminate, delete.

Bodies are the WorkflowService request messages in proto3 JSON (payloads as plain JSON values)
without the fields the path and ``?runId=`` give; an ``Idempotency-Key`` header becomes the call's
request id.
"""

from __future__ import annotations

from flask import Blueprint, current_app, url_for
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.api.rest.codec import from_json
from odin.api.rest.invoke import invoke
from odin.api.rest.openapi import Body, Doc, Reply, documented
from odin.api.rest.params import IDEMPOTENCY_KEY, NEXT_PAGE_TOKEN, PAGE_SIZE, Param, json_body, request_id
from odin.api.rest.routes import reply
from odin.operations import Operation

bp = Blueprint("activity_executions", __name__, url_prefix="/api/v1/namespaces/<namespace>")
TAG = "standalone activities"
IDENTITY = "odin-rest"
_CALL = ("namespace", "activityId", "runId")  # body fields the path gives
RUN_ID = Param("runId", "query", {"type": "string", "maxLength": 1000}, "A run of the activity id; its latest if omitted.", "")
QUERY = Param(
    "query", "query", {"type": "string", "maxLength": 10000},
    "A list filter over ActivityId, ActivityType, ExecutionStatus ('Running', 'Completed', 'Failed', 'Canceled', "
    "'Terminated', 'TimedOut', 'Paused'), TaskQueue, StartTime, CloseTime and the namespace's custom search "
    "attributes, e.g. `ActivityType = 'charge' AND ExecutionStatus = 'Running'`.", "",
)


@bp.get("/activities")
@documented(Doc(
    "List standalone activities", TAG, Operation.ListActivityExecutions, params=(QUERY, PAGE_SIZE, NEXT_PAGE_TOKEN),
    responses={200: Reply("A page of activities, newest first.", ws.ListActivityExecutionsResponse)},
))
def list_activities(namespace: str):
    req = ws.ListActivityExecutionsRequest(
        namespace=namespace, query=QUERY.read(), page_size=PAGE_SIZE.read() or 0, next_page_token=NEXT_PAGE_TOKEN.read()
    )
    return reply(invoke(Operation.ListActivityExecutions, namespace, lambda f: f.list_activity_executions(req)))


@bp.get("/activity-count")
@documented(Doc(
    "Count standalone activities", TAG, Operation.CountActivityExecutions, params=(QUERY,),
    responses={200: Reply("How many match (per status with GROUP BY ExecutionStatus).", ws.CountActivityExecutionsResponse)},
))
def count_activities(namespace: str):
    req = ws.CountActivityExecutionsRequest(namespace=namespace, query=QUERY.read())
    return reply(invoke(Operation.CountActivityExecutions, namespace, lambda f: f.count_activity_executions(req)))


@bp.post("/activities/<activity_id>")
@documented(Doc(
    "Start a standalone activity", TAG, Operation.StartActivityExecution, params=(IDEMPOTENCY_KEY,),
    body=Body(ws.StartActivityExecutionRequest, ("namespace", "activityId"), required=True),
    responses={
        201: Reply("Started (or already started by the same request id).", ws.StartActivityExecutionResponse, headers=("Location",)),
        200: Reply("One was running and the conflict policy said to use it.", ws.StartActivityExecutionResponse),
    },
    description=(
        'Body: `{"activityType": {"name": "charge"}, "taskQueue": {"name": "payments"}, "input": [42], '
        '"startToCloseTimeout": "30s"}` plus any other StartActivityExecutionRequest field; a start-to-close or '
        "schedule-to-close timeout is required. 409 ALREADY_EXISTS (details carry the run id) when the id is in use."
    ),
))
def start_activity(namespace: str, activity_id: str):
    req = from_json(json_body(), ws.StartActivityExecutionRequest)
    req.namespace, req.activity_id = namespace, activity_id
    req.request_id = request_id(req.request_id)
    req.identity = req.identity or IDENTITY
    response = invoke(Operation.StartActivityExecution, namespace, lambda f: f.start_activity_execution(req), target=activity_id)
    location = url_for(".describe_activity", namespace=namespace, activity_id=activity_id, runId=response.run_id)
    return reply(response, 201 if response.started else 200, {"Location": location})


@bp.get("/activities/<activity_id>")
@documented(Doc(
    "Describe a standalone activity", TAG, Operation.DescribeActivityExecution, params=(RUN_ID,),
    responses={200: Reply(
        "Status, attempt, timeouts, retry policy, last failure, heartbeat details, times, its input and (once "
        "closed) its outcome.", ws.DescribeActivityExecutionResponse,
    )},
))
def describe_activity(namespace: str, activity_id: str):
    req = ws.DescribeActivityExecutionRequest(
        namespace=namespace, activity_id=activity_id, run_id=RUN_ID.read(), include_input=True, include_outcome=True,
        include_heartbeat_details=True, include_last_failure=True,
    )
    return reply(invoke(Operation.DescribeActivityExecution, namespace, lambda f: f.describe_activity_execution(req, 0.0)))


@bp.get("/activities/<activity_id>/outcome")
@documented(Doc(
    "Wait for a standalone activity's outcome", TAG, Operation.PollActivityExecution, params=(RUN_ID,),
    responses={200: Reply(
        "Its result or failure once closed; an answer without `outcome` means it still runs (ask again).",
        ws.PollActivityExecutionResponse,
    )},
))
def activity_outcome(namespace: str, activity_id: str):
    req = ws.PollActivityExecutionRequest(namespace=namespace, activity_id=activity_id, run_id=RUN_ID.read())
    limit = float(current_app.config["ODIN_LONG_POLL_SECONDS"])
    response = invoke(
        Operation.PollActivityExecution, namespace, lambda f: f.poll_activity_execution(req, limit + 1.0), timeout=limit + 15
    )
    return reply(response)


@bp.post("/activities/<activity_id>/cancel")
@documented(Doc(
    "Request a standalone activity's cancellation", TAG, Operation.RequestCancelActivityExecution, params=(RUN_ID, IDEMPOTENCY_KEY),
    body=Body(ws.RequestCancelActivityExecutionRequest, _CALL),
    responses={200: Reply(
        "Canceled at once if no attempt runs; otherwise the worker learns of it from its next heartbeat.",
        ws.RequestCancelActivityExecutionResponse,
    )},
))
def cancel_activity(namespace: str, activity_id: str):
    req = from_json(json_body(), ws.RequestCancelActivityExecutionRequest)
    req.namespace, req.activity_id, req.run_id = namespace, activity_id, RUN_ID.read()
    req.request_id = request_id(req.request_id)
    req.identity = req.identity or IDENTITY
    return reply(invoke(
        Operation.RequestCancelActivityExecution, namespace, lambda f: f.request_cancel_activity_execution(req), target=activity_id
    ))


@bp.post("/activities/<activity_id>/terminate")
@documented(Doc(
    "Terminate a standalone activity", TAG, Operation.TerminateActivityExecution, params=(RUN_ID, IDEMPOTENCY_KEY),
    body=Body(ws.TerminateActivityExecutionRequest, _CALL),
    responses={200: Reply("Terminated; a running attempt's next call finds it gone.", ws.TerminateActivityExecutionResponse)},
))
def terminate_activity(namespace: str, activity_id: str):
    req = from_json(json_body(), ws.TerminateActivityExecutionRequest)
    req.namespace, req.activity_id, req.run_id = namespace, activity_id, RUN_ID.read()
    req.request_id = request_id(req.request_id)
    req.identity = req.identity or IDENTITY
    return reply(invoke(
        Operation.TerminateActivityExecution, namespace, lambda f: f.terminate_activity_execution(req), target=activity_id
    ))


@bp.delete("/activities/<activity_id>")
@documented(Doc(
    "Delete a standalone activity", TAG, Operation.DeleteActivityExecution, params=(RUN_ID,),
    responses={200: Reply("Deleted (admin rights needed).", ws.DeleteActivityExecutionResponse)},
))
def delete_activity(namespace: str, activity_id: str):
    req = ws.DeleteActivityExecutionRequest(namespace=namespace, activity_id=activity_id, run_id=RUN_ID.read())
    return reply(invoke(Operation.DeleteActivityExecution, namespace, lambda f: f.delete_activity_execution(req), target=activity_id))
