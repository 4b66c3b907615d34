"""Schedules: create, list, describe, update, patch (trigger, backfill, pause, unpause), delete,
matching times. The paths are Temporal's HTTP API's.

Bodies are the WorkflowService request messages in proto3 JSON (payloads as plain JSON values)
without the fields the path gives; on create an ``Idempotency-Key`` header becomes the request id
(a retry answers the same). Updates and patches are not deduplicated by request id: a retried
trigger or backfill starts again.
"""

from __future__ import annotations

from flask import Blueprint, url_for
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.api.rest.codec import from_json
from odin.api.rest.invoke import invoke
from odin.api.rest.openapi import Body, Doc, Reply, documented
from odin.api.rest.params import IDEMPOTENCY_KEY, NEXT_PAGE_TOKEN, PAGE_SIZE, Param, json_body, request_id
from odin.api.rest.routes import reply
from odin.operations import Operation

bp = Blueprint("schedules", __name__, url_prefix="/api/v1/namespaces/<namespace>")
TAG = "schedules"
IDENTITY = "odin-rest"

QUERY = Param(
    "query", "query", {"type": "string", "maxLength": 10000},
    "A list filter over `ScheduleId`, `TemporalSchedulePaused` and the namespace's custom search attributes, "
    "e.g. `TemporalSchedulePaused = false`.", "",
)
START_TIME = Param("startTime", "query", {"type": "string", "format": "date-time"}, "Times after this one (RFC 3339).")
END_TIME = Param("endTime", "query", {"type": "string", "format": "date-time"}, "Up to this time (RFC 3339), inclusive.")
_CALL = ("namespace", "scheduleId")  # body fields the path gives


@bp.get("/schedules")
@documented(Doc(
    "List schedules", TAG, Operation.ListSchedules, params=(QUERY, PAGE_SIZE, NEXT_PAGE_TOKEN),
    responses={200: Reply("A page of schedules, by schedule id.", ws.ListSchedulesResponse)},
))
def list_schedules(namespace: str):
    req = ws.ListSchedulesRequest(
        namespace=namespace, query=QUERY.read(), maximum_page_size=PAGE_SIZE.read() or 0, next_page_token=NEXT_PAGE_TOKEN.read()
    )
    return reply(invoke(Operation.ListSchedules, namespace, lambda f: f.list_schedules(req)))


@bp.post("/schedules/<schedule_id>")
@documented(Doc(
    "Create a schedule", TAG, Operation.CreateSchedule, params=(IDEMPOTENCY_KEY,),
    body=Body(ws.CreateScheduleRequest, _CALL, required=True),
    responses={201: Reply("Created (or already created by the same request id).", ws.CreateScheduleResponse, headers=("Location",))},
    description=(
        'Body: `{"schedule": {"spec": {"interval": [{"interval": "3600s"}]}, "action": {"startWorkflow": {"workflowId": '
        '"report", "workflowType": {"name": "Report"}, "taskQueue": {"name": "reports"}, "input": ["daily"]}}}}` plus '
        "any other CreateScheduleRequest field (initialPatch, memo, searchAttributes). 400 for a bad spec, 409 "
        "ALREADY_EXISTS when the id is taken."
    ),
))
def create_schedule(namespace: str, schedule_id: str):
    req = from_json(json_body(), ws.CreateScheduleRequest)
    req.namespace, req.schedule_id = namespace, schedule_id
    req.request_id = request_id(req.request_id)
    req.identity = req.identity or IDENTITY
    response = invoke(Operation.CreateSchedule, namespace, lambda f: f.create_schedule(req), target=schedule_id)
    return reply(response, 201, {"Location": url_for(".describe_schedule", namespace=namespace, schedule_id=schedule_id)})


@bp.get("/schedules/<schedule_id>")
@documented(Doc(
    "Describe a schedule", TAG, Operation.DescribeSchedule,
    responses={200: Reply(
        "The schedule (spec in canonical form), its info (recent and future actions, running workflows, counters), "
        "memo, search attributes and conflict token.", ws.DescribeScheduleResponse,
    )},
))
def describe_schedule(namespace: str, schedule_id: str):
    req = ws.DescribeScheduleRequest(namespace=namespace, schedule_id=schedule_id)
    return reply(invoke(Operation.DescribeSchedule, namespace, lambda f: f.describe_schedule(req)))


@bp.post("/schedules/<schedule_id>/update")
@documented(Doc(
    "Update a schedule", TAG, Operation.UpdateSchedule,
    body=Body(ws.UpdateScheduleRequest, _CALL, required=True),
    responses={200: Reply("Updated, or dropped for a stale conflict token.", ws.UpdateScheduleResponse)},
    description=(
        'Body: `{"schedule": {...}, "conflictToken": "..."}`: the whole new schedule (spec, action, policies, state). '
        "With the conflictToken of a describe, the update applies only if nothing changed the schedule since; "
        "otherwise it is dropped and the call still answers 200, as Temporal's does."
    ),
))
def update_schedule(namespace: str, schedule_id: str):
    req = from_json(json_body(), ws.UpdateScheduleRequest)
    req.namespace, req.schedule_id = namespace, schedule_id
    req.identity = req.identity or IDENTITY
    return reply(invoke(Operation.UpdateSchedule, namespace, lambda f: f.update_schedule(req), target=schedule_id))


@bp.post("/schedules/<schedule_id>/patch")
@documented(Doc(
    "Patch a schedule: trigger, backfill, pause, unpause", TAG, Operation.PatchSchedule,
    body=Body(ws.PatchScheduleRequest, _CALL, required=True),
    responses={200: Reply("Applied.", ws.PatchScheduleResponse)},
    description=(
        'Body: `{"patch": {"triggerImmediately": {}}}`, `{"patch": {"backfillRequest": [{"startTime": ..., "endTime": ..., '
        '"overlapPolicy": "SCHEDULE_OVERLAP_POLICY_ALLOW_ALL"}]}}`, `{"patch": {"pause": "a note"}}` or '
        '`{"patch": {"unpause": "a note"}}`. Not deduplicated by request id: a retried trigger or backfill starts again.'
    ),
))
def patch_schedule(namespace: str, schedule_id: str):
    req = from_json(json_body(), ws.PatchScheduleRequest)
    req.namespace, req.schedule_id = namespace, schedule_id
    req.identity = req.identity or IDENTITY
    return reply(invoke(Operation.PatchSchedule, namespace, lambda f: f.patch_schedule(req), target=schedule_id))


@bp.delete("/schedules/<schedule_id>")
@documented(Doc(
    "Delete a schedule", TAG, Operation.DeleteSchedule,
    responses={200: Reply("Deleted; the workflows it started keep running.", ws.DeleteScheduleResponse)},
))
def delete_schedule(namespace: str, schedule_id: str):
    req = ws.DeleteScheduleRequest(namespace=namespace, schedule_id=schedule_id, identity=IDENTITY)
    return reply(invoke(Operation.DeleteSchedule, namespace, lambda f: f.delete_schedule(req), target=schedule_id))


@bp.get("/schedules/<schedule_id>/matching-times")
@documented(Doc(
    "Times a schedule's spec matches", TAG, Operation.ListScheduleMatchingTimes, params=(START_TIME, END_TIME),
    responses={200: Reply("The spec's action times in the range (at most 1000).", ws.ListScheduleMatchingTimesResponse)},
    description="Both startTime and endTime are required.",
))
def schedule_matching_times(namespace: str, schedule_id: str):
    req = ws.ListScheduleMatchingTimesRequest(
        namespace=namespace, schedule_id=schedule_id, start_time=START_TIME.read(), end_time=END_TIME.read()
    )
    return reply(invoke(Operation.ListScheduleMatchingTimes, namespace, lambda f: f.list_schedule_matching_times(req)))
