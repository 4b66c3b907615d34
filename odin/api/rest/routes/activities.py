"""A workflow's pending activities: pause, unpause, reset, new options.

Bodies are the WorkflowService request messages in proto3 JSON without the fields the path gives
(namespace, workflow execution, activity id); e.g. ``{"reason": "..."}`` to pause,
``{"resetAttempts": true}`` to unpause, ``{"keepPaused": true}`` to reset,
``{"activityOptions": {...}, "updateMask": "startToCloseTimeout"}`` for new options.
"""

from __future__ import annotations

from flask import Blueprint
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.api.rest.codec import from_json
from odin.api.rest.invoke import invoke
from odin.api.rest.openapi import Body, Doc, Reply, documented
from odin.api.rest.params import RUN_ID, json_body
from odin.api.rest.routes import reply
from odin.operations import Operation

bp = Blueprint("activities", __name__, url_prefix="/api/v1/namespaces/<namespace>/workflows/<workflow_id>/activities")
TAG = "activities"
IDENTITY = "odin-rest"
_CALL = ("namespace", "execution", "id", "type", "matchAll", "unpauseAll")  # body fields the path gives


def _addressed(req, namespace: str, workflow_id: str, activity_id: str):
    req.namespace = namespace
    req.execution.CopyFrom(WorkflowExecution(workflow_id=workflow_id, run_id=RUN_ID.read()))
    req.id = activity_id
    req.identity = req.identity or IDENTITY
    return req


@bp.post("/<activity_id>/pause")
@documented(Doc(
    "Pause an activity", TAG, Operation.PauseActivity, params=(RUN_ID,),
    body=Body(ws.PauseActivityRequest, _CALL),
    responses={200: Reply(
        "Paused: no attempt starts until it is unpaused; a running attempt goes on (its heartbeats answer "
        "activityPaused) and its retry waits.", ws.PauseActivityResponse,
    )},
))
def pause_activity(namespace: str, workflow_id: str, activity_id: str):
    req = _addressed(from_json(json_body(), ws.PauseActivityRequest), namespace, workflow_id, activity_id)
    return reply(invoke(Operation.PauseActivity, namespace, lambda f: f.pause_activity(req), target=workflow_id))


@bp.post("/<activity_id>/unpause")
@documented(Doc(
    "Unpause an activity", TAG, Operation.UnpauseActivity, params=(RUN_ID,),
    body=Body(ws.UnpauseActivityRequest, _CALL),
    responses={200: Reply("Unpaused: its next attempt is dispatched now (or within the jitter).", ws.UnpauseActivityResponse)},
))
def unpause_activity(namespace: str, workflow_id: str, activity_id: str):
    req = _addressed(from_json(json_body(), ws.UnpauseActivityRequest), namespace, workflow_id, activity_id)
    return reply(invoke(Operation.UnpauseActivity, namespace, lambda f: f.unpause_activity(req), target=workflow_id))


@bp.post("/<activity_id>/reset")
@documented(Doc(
    "Reset an activity", TAG, Operation.ResetActivity, params=(RUN_ID,),
    body=Body(ws.ResetActivityRequest, _CALL),
    responses={200: Reply(
        "Reset to attempt 1 (dispatched now unless it runs or stays paused); unpaused unless keepPaused.",
        ws.ResetActivityResponse,
    )},
))
def reset_activity(namespace: str, workflow_id: str, activity_id: str):
    req = _addressed(from_json(json_body(), ws.ResetActivityRequest), namespace, workflow_id, activity_id)
    return reply(invoke(Operation.ResetActivity, namespace, lambda f: f.reset_activity(req), target=workflow_id))


@bp.post("/<activity_id>/options")
@documented(Doc(
    "Change an activity's options", TAG, Operation.UpdateActivityOptions, params=(RUN_ID,),
    body=Body(ws.UpdateActivityOptionsRequest, _CALL),
    responses={200: Reply("The activity's options now.", ws.UpdateActivityOptionsResponse)},
    description='Body: `{"activityOptions": {"startToCloseTimeout": "45s"}, "updateMask": "startToCloseTimeout"}`, '
    'or `{"restoreOriginal": true}`.',
))
def update_activity_options(namespace: str, workflow_id: str, activity_id: str):
    req = _addressed(from_json(json_body(), ws.UpdateActivityOptionsRequest), namespace, workflow_id, activity_id)
    return reply(
        invoke(Operation.UpdateActivityOptions, namespace, lambda f: f.update_activity_options(req), target=workflow_id)
    )
