"""Workflows: start, list, count, describe, history, result, signal, query, update, cancel, terminate, reset.

Bodies are the WorkflowService request messages in proto3 JSON (payloads as plain JSON values)
without the fields the path and ``?runId=`` give; an ``Idempotency-Key`` header becomes the
call's request id (the update id for updates).
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, url_for
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage as Stage
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.api.rest.codec import from_json
from odin.api.rest.invoke import invoke
from odin.api.rest.openapi import Body, Doc, Reply, documented
from odin.api.rest.outcome import OUTCOME_SCHEMA, RUNNING, await_outcome
from odin.api.rest.params import (
    IDEMPOTENCY_KEY,
    NEXT_PAGE_TOKEN,
    PAGE_SIZE,
    RUN_ID,
    Param,
    json_body,
    request_id,
)
from odin.api.rest.routes import reply
from odin.ids import new_id
from odin.operations import Operation

bp = Blueprint("workflows", __name__, url_prefix="/api/v1/namespaces/<namespace>")
TAG = "workflows"
IDENTITY = "odin-rest"

QUERY = Param(
    "query", "query", {"type": "string", "maxLength": 10000},
    "A list filter, e.g. `WorkflowType = 'Greeting' AND ExecutionStatus = 'Running' ORDER BY StartTime DESC`.", "",
)
HISTORY_PAGE_SIZE = Param("pageSize", "query", {"type": "integer", "minimum": 1, "maximum": 10000}, "Events per page.", 0)
WAIT_NEW_EVENT = Param(
    "waitNewEvent", "query", {"type": "boolean"},
    "Long poll: when the run has no events past the page token yet, wait for the next one.", False,
)
WAIT = Param(
    "wait", "query", {"type": "number", "minimum": 0},
    "Seconds to wait for the run to close (capped by the server's long-poll limit, 20 s by default).", 0.0,
)
_CALL = ("namespace", "workflowExecution")  # body fields the path gives


def _poll_limit() -> float:
    return float(current_app.config["ODIN_LONG_POLL_SECONDS"])


def _execution(workflow_id: str) -> WorkflowExecution:
    return WorkflowExecution(workflow_id=workflow_id, run_id=RUN_ID.read())


@bp.get("/workflows")
@documented(Doc(
    "List workflows", TAG, Operation.ListWorkflowExecutions, params=(QUERY, PAGE_SIZE, NEXT_PAGE_TOKEN),
    responses={200: Reply("A page of runs, newest first unless the query orders them.", ws.ListWorkflowExecutionsResponse)},
))
def list_workflows(namespace: str):
    req = ws.ListWorkflowExecutionsRequest(
        namespace=namespace, query=QUERY.read(), page_size=PAGE_SIZE.read() or 0, next_page_token=NEXT_PAGE_TOKEN.read()
    )
    return reply(invoke(Operation.ListWorkflowExecutions, namespace, lambda f: f.list_workflow_executions(req)))


@bp.get("/workflow-count")
@documented(Doc(
    "Count workflows", TAG, Operation.CountWorkflowExecutions, params=(QUERY,),
    responses={200: Reply("How many runs match (per group with GROUP BY ExecutionStatus).", ws.CountWorkflowExecutionsResponse)},
))
def count_workflows(namespace: str):
    req = ws.CountWorkflowExecutionsRequest(namespace=namespace, query=QUERY.read())
    return reply(invoke(Operation.CountWorkflowExecutions, namespace, lambda f: f.count_workflow_executions(req)))


@bp.post("/workflows/<workflow_id>")
@documented(Doc(
    "Start a workflow", TAG, Operation.StartWorkflowExecution, params=(IDEMPOTENCY_KEY,),
    body=Body(ws.StartWorkflowExecutionRequest, ("namespace", "workflowId"), required=True),
    responses={
        201: Reply("Started (or already started by the same request id).", ws.StartWorkflowExecutionResponse, headers=("Location",)),
        200: Reply("A run was already running and the conflict policy said to use it.", ws.StartWorkflowExecutionResponse),
    },
    description=(
        'Body: `{"workflowType": {"name": "Greeting"}, "taskQueue": {"name": "hello"}, "input": ["Odin"]}` plus any '
        "other StartWorkflowExecutionRequest field. 409 ALREADY_EXISTS (details carry the running run id) when the "
        "id is in use."
    ),
))
def start_workflow(namespace: str, workflow_id: str):
    req = from_json(json_body(), ws.StartWorkflowExecutionRequest)
    req.namespace, req.workflow_id = namespace, workflow_id
    req.request_id = request_id(req.request_id)
    req.identity = req.identity or IDENTITY
    response = invoke(Operation.StartWorkflowExecution, namespace, lambda f: f.start_workflow_execution(req), target=workflow_id)
    location = url_for(".describe_workflow", namespace=namespace, workflow_id=workflow_id, runId=response.run_id)
    return reply(response, 201 if response.started else 200, {"Location": location})


@bp.get("/workflows/<workflow_id>")
@documented(Doc(
    "Describe a workflow", TAG, Operation.DescribeWorkflowExecution, params=(RUN_ID,),
    responses={200: Reply("Status, times, pending activities and workflow task.", ws.DescribeWorkflowExecutionResponse)},
))
def describe_workflow(namespace: str, workflow_id: str):
    req = ws.DescribeWorkflowExecutionRequest(namespace=namespace, execution=_execution(workflow_id))
    return reply(invoke(Operation.DescribeWorkflowExecution, namespace, lambda f: f.describe_workflow_execution(req)))


@bp.get("/workflows/<workflow_id>/history")
@documented(Doc(
    "Workflow history", TAG, Operation.GetWorkflowExecutionHistory,
    params=(RUN_ID, HISTORY_PAGE_SIZE, NEXT_PAGE_TOKEN, WAIT_NEW_EVENT),
    responses={200: Reply("A page of history events; follow nextPageToken for more.", ws.GetWorkflowExecutionHistoryResponse)},
))
def workflow_history(namespace: str, workflow_id: str):
    req = ws.GetWorkflowExecutionHistoryRequest(
        namespace=namespace,
        execution=_execution(workflow_id),
        maximum_page_size=HISTORY_PAGE_SIZE.read(),
        next_page_token=NEXT_PAGE_TOKEN.read(),
        wait_new_event=WAIT_NEW_EVENT.read(),
    )
    limit = _poll_limit()
    # The frontend waits up to (timeout - 1 s) for a new event.
    response = invoke(
        Operation.GetWorkflowExecutionHistory, namespace, lambda f: f.get_workflow_execution_history(req, limit + 1.0), timeout=limit + 15
    )
    return reply(response)


@bp.get("/workflows/<workflow_id>/result")
@documented(Doc(
    "Workflow result", TAG, Operation.GetWorkflowExecutionHistory, params=(RUN_ID, WAIT),
    responses={
        200: Reply("The run closed: its status and result, failure or details.", schema=OUTCOME_SCHEMA),
        202: Reply("Still running after `wait` seconds; ask again.", schema=OUTCOME_SCHEMA),
    },
    description="Follows continue-as-new, retries and cron runs to the last run, as the SDKs' result() does.",
))
def workflow_result(namespace: str, workflow_id: str):
    wait = min(WAIT.read(), _poll_limit())
    body = await_outcome(namespace, workflow_id, RUN_ID.read(), wait, _poll_limit())
    if body is None:
        return jsonify(workflowId=workflow_id, status=RUNNING), 202
    return jsonify(body)


@bp.post("/workflows/<workflow_id>/signal/<signal_name>")
@documented(Doc(
    "Signal a workflow", TAG, Operation.SignalWorkflowExecution, params=(RUN_ID, IDEMPOTENCY_KEY),
    body=Body(ws.SignalWorkflowExecutionRequest, (*_CALL, "signalName")),
    responses={200: Reply("Delivered to the run's history.", ws.SignalWorkflowExecutionResponse)},
    description='Body: `{"input": [...]}` (the signal\'s arguments).',
))
def signal_workflow(namespace: str, workflow_id: str, signal_name: str):
    req = from_json(json_body(), ws.SignalWorkflowExecutionRequest)
    req.namespace, req.signal_name = namespace, signal_name
    req.workflow_execution.CopyFrom(_execution(workflow_id))
    req.request_id = request_id(req.request_id)
    req.identity = req.identity or IDENTITY
    return reply(invoke(Operation.SignalWorkflowExecution, namespace, lambda f: f.signal_workflow_execution(req), target=workflow_id))


@bp.post("/workflows/<workflow_id>/query/<query_type>")
@documented(Doc(
    "Query a workflow", TAG, Operation.QueryWorkflow, params=(RUN_ID,),
    body=Body(ws.QueryWorkflowRequest, ("namespace", "execution")),
    responses={200: Reply("The answer (queryResult), or queryRejected for a closed run.", ws.QueryWorkflowResponse)},
    description=(
        'Body: `{"query": {"queryArgs": [...]}}`. A query the workflow code fails answers 400 with a QueryFailedFailure; '
        "one no worker answers within the long-poll limit answers 504 DEADLINE_EXCEEDED."
    ),
))
def query_workflow(namespace: str, workflow_id: str, query_type: str):
    req = from_json(json_body(), ws.QueryWorkflowRequest)
    req.namespace = namespace
    req.execution.CopyFrom(_execution(workflow_id))
    req.query.query_type = query_type
    limit = _poll_limit()
    response = invoke(Operation.QueryWorkflow, namespace, lambda f: f.query_workflow(req, limit + 0.5), timeout=limit + 15)
    return reply(response)


@bp.post("/workflows/<workflow_id>/update/<update_name>")
@documented(Doc(
    "Update a workflow", TAG, Operation.UpdateWorkflowExecution, params=(RUN_ID, IDEMPOTENCY_KEY),
    body=Body(ws.UpdateWorkflowExecutionRequest, _CALL),
    responses={
        200: Reply("The update completed: outcome.success or outcome.failure.", ws.UpdateWorkflowExecutionResponse),
        202: Reply("Admitted or accepted, not completed within the long-poll limit (see stage).", ws.UpdateWorkflowExecutionResponse),
    },
    description=(
        'Body: `{"request": {"input": {"args": [...]}}}`. Waits for completion unless waitPolicy.lifecycleStage says '
        "otherwise; the Idempotency-Key is the update id."
    ),
))
def update_workflow(namespace: str, workflow_id: str, update_name: str):
    req = from_json(json_body(), ws.UpdateWorkflowExecutionRequest)
    req.namespace = namespace
    req.workflow_execution.CopyFrom(_execution(workflow_id))
    req.request.input.name = update_name
    req.request.meta.update_id = request_id(req.request.meta.update_id)
    req.request.meta.identity = req.request.meta.identity or IDENTITY
    if not req.wait_policy.lifecycle_stage:
        req.wait_policy.lifecycle_stage = Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED
    limit = _poll_limit()
    response = invoke(
        Operation.UpdateWorkflowExecution, namespace, lambda f: f.update_workflow_execution(req, limit + 1.0),
        timeout=limit + 15, target=workflow_id,
    )
    return reply(response, 200 if response.HasField("outcome") else 202)


@bp.post("/workflows/<workflow_id>/cancel")
@documented(Doc(
    "Request cancellation", TAG, Operation.RequestCancelWorkflowExecution, params=(RUN_ID, IDEMPOTENCY_KEY),
    body=Body(ws.RequestCancelWorkflowExecutionRequest, _CALL),
    responses={200: Reply("Cancellation requested; the workflow decides how to end.", ws.RequestCancelWorkflowExecutionResponse)},
))
def cancel_workflow(namespace: str, workflow_id: str):
    req = from_json(json_body(), ws.RequestCancelWorkflowExecutionRequest)
    req.namespace = namespace
    req.workflow_execution.CopyFrom(_execution(workflow_id))
    req.request_id = request_id(req.request_id)
    req.identity = req.identity or IDENTITY
    return reply(
        invoke(Operation.RequestCancelWorkflowExecution, namespace, lambda f: f.request_cancel_workflow_execution(req), target=workflow_id)
    )


@bp.post("/workflows/<workflow_id>/terminate")
@documented(Doc(
    "Terminate a workflow", TAG, Operation.TerminateWorkflowExecution, params=(RUN_ID,),
    body=Body(ws.TerminateWorkflowExecutionRequest, _CALL),
    responses={200: Reply("Terminated.", ws.TerminateWorkflowExecutionResponse)},
    description='Body: `{"reason": "...", "details": [...]}`.',
))
def terminate_workflow(namespace: str, workflow_id: str):
    req = from_json(json_body(), ws.TerminateWorkflowExecutionRequest)
    req.namespace = namespace
    req.workflow_execution.CopyFrom(_execution(workflow_id))
    req.identity = req.identity or IDENTITY
    return reply(
        invoke(Operation.TerminateWorkflowExecution, namespace, lambda f: f.terminate_workflow_execution(req), target=workflow_id)
    )


@bp.post("/workflows/<workflow_id>/reset")
@documented(Doc(
    "Reset a workflow", TAG, Operation.ResetWorkflowExecution, params=(RUN_ID, IDEMPOTENCY_KEY),
    body=Body(ws.ResetWorkflowExecutionRequest, _CALL),
    responses={200: Reply("The new run, made of the run's history up to the reset point.", ws.ResetWorkflowExecutionResponse)},
    description=(
        'Body: `{"workflowTaskFinishEventId": 10, "reason": "...", "resetReapplyType": "RESET_REAPPLY_TYPE_SIGNAL", '
        '"resetReapplyExcludeTypes": [...]}`. The reset point is a WorkflowTaskCompleted (or Failed, TimedOut) event id, '
        "or a WorkflowTaskStarted id; the run (the current one without ?runId=) is rebuilt up to it, a running current "
        "run is terminated, and the new run becomes current. A repeated Idempotency-Key answers with the same new run; "
        "without one, each call resets again."
    ),
))
def reset_workflow(namespace: str, workflow_id: str):
    req = from_json(json_body(), ws.ResetWorkflowExecutionRequest)
    req.namespace = namespace
    req.workflow_execution.CopyFrom(_execution(workflow_id))
    req.request_id = request_id(req.request_id) or new_id()
    req.identity = req.identity or IDENTITY
    return reply(invoke(Operation.ResetWorkflowExecution, namespace, lambda f: f.reset_workflow_execution(req), target=workflow_id))
