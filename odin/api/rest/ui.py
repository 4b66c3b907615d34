"""The web UI: server-rendered pages over the same frontend calls as the API (through ``invoke``,
so authentication and rate limits apply to it too). Its few mutations are POST forms carrying a
CSRF token; each answers with a redirect back to the page (post/redirect/get)."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import (
    Blueprint,
    Flask,
    current_app,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import Payloads, WorkflowExecution
from temporalio.api.deployment.v1 import WorkerDeploymentInfo
from temporalio.api.enums.v1 import (
    BatchOperationState,
    EventType,
    ResetReapplyExcludeType,
    ScheduleOverlapPolicy,
    WorkflowExecutionStatus,
)
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.schedule.v1 import BackfillRequest, SchedulePatch, TriggerImmediatelyRequest
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

# Submodules by their full name: ``from odin.api.rest import ...`` would import the package,
# whose __init__ imports this module.
import odin.api.rest.csrf as csrf
import odin.api.rest.explain as explain
import odin.api.rest.humane as humane
import odin.api.rest.session as session
import odin.api.rest.timeline as timeline
from odin.api.rest.codec import arguments, loads_strict, payloads_values, to_json, value_payload
from odin.api.rest.invoke import invoke
from odin.api.rest.openapi import FORM, HTML, Body, Doc, Reply, documented
from odin.api.rest.openapi import build as build_openapi
from odin.api.rest.outcome import is_close, outcome_json
from odin.api.rest.params import NEXT_PAGE_TOKEN, RUN_ID, Param
from odin.api.rest.routes.task_queues import QUEUE_TYPES
from odin.api.rest.routes.task_queues import describe as describe_task_queue
from odin.api.rest.routes.workers import list_workers_page
from odin.errors import InvalidArgument, OdinError
from odin.history.schedule_text import describe_duration, describe_spec, spec_summary
from odin.ids import new_id
from odin.operations import Operation
from odin.visibility import query as visibility_query
from odin.visibility.sql import STATUS_NAMES

bp = Blueprint("ui", __name__)
STATIC = Path(__file__).parent / "static"
TAG = "web UI"
IDENTITY = "odin-ui"
# A page shows at most this many events; longer histories are for the API's paging.
MAX_EVENTS = 2000

QUERY = Param("query", "query", {"type": "string", "maxLength": 10000}, "A list filter.", "")
STATUS = Param("status", "query", {"type": "string", "enum": ["", *STATUS_NAMES]}, "Only runs in this status.", "")
NAME = Param("name", "query", {"type": "string", "maxLength": 1000}, "A task queue name.", "")
PAGE_SIZE = Param("pageSize", "query", {"type": "integer", "minimum": 1, "maximum": 1000}, "Workflows per page.", 50)
SCHEDULE_PAGE_SIZE = Param("pageSize", "query", {"type": "integer", "minimum": 1, "maximum": 1000}, "Schedules per page.", 50)
_NOTICES = {
    "signal": "Signal sent.",
    "cancel": "Cancellation requested.",
    "terminate": "Workflow terminated.",
    "reset": "Workflow reset: this is the new run.",
    "pause-activity": "Activity paused: no new attempt starts until it is unpaused.",
    "unpause-activity": "Activity unpaused.",
}
DONE = Param("done", "query", {"type": "string", "enum": list(_NOTICES)}, "The action just taken.", "")

BATCH_DONE = Param("done", "query", {"type": "string", "enum": ["start", "stop"]}, "The action just taken.", "")
DEPLOY_DONE = Param("done", "query", {"type": "string", "enum": ["current", "ramp"]}, "The action just taken.", "")
_BATCH_NOTICES = {"start": "Batch started: it runs in the background.", "stop": "Batch stopped: what was done stays done."}

SCHEDULE_DONE = Param(
    "done", "query", {"type": "string", "enum": ["pause", "unpause", "trigger", "backfill"]}, "The action just taken.", ""
)
SCHEDULES_DONE = Param("done", "query", {"type": "string", "enum": ["delete"]}, "The action just taken.", "")
_SCHEDULE_NOTICES = {
    "pause": "Schedule paused.", "unpause": "Schedule unpaused.", "delete": "Schedule deleted.",
    "trigger": "Triggered: the run shows under recent actions once started.",
    "backfill": "Backfill requested: its runs show under recent actions once started.",
}
# The overlap policies a trigger or backfill may name ("" is the schedule's own).
OVERLAP_POLICIES = [p for p in ScheduleOverlapPolicy.keys() if p != "SCHEDULE_OVERLAP_POLICY_UNSPECIFIED"]
_OVERLAP_FIELD = {"type": "string", "enum": ["", *OVERLAP_POLICIES], "description": "An overlap policy; the schedule's when empty."}

_PAGE = {200: Reply("The page.", media=HTML)}
_SEE_OTHER = {303: Reply("Done; back to the workflow page.", media=HTML, headers=("Location",))}
_BACK_TO_SCHEDULE = {303: Reply("Done; back to the schedule page.", media=HTML, headers=("Location",))}


def _input_text(payloads: Payloads) -> str:
    """A run's input for its page: the arguments, and the keyword arguments the Odin SDK marked
    as such under ``kwargs``."""
    args, kwargs = arguments(payloads)
    shown: Any = args if kwargs is None else {"args": args, "kwargs": kwargs}
    return json.dumps(shown, indent=2, ensure_ascii=False)


# How long the stack-trace button waits for a worker to answer.
STACK_TRACE_WAIT = 10.0

# A running workflow's page says so when no worker has polled its task queue this recently.
POLLED_WITHIN = 120.0


def _unpolled(namespace: str, task_queue: str) -> bool:
    """Whether no worker polled ``task_queue`` for workflow tasks in the last ``POLLED_WITHIN``
    seconds (False when the caller may not describe the queue)."""
    try:
        described = describe_task_queue(namespace, task_queue, "TASK_QUEUE_TYPE_WORKFLOW")
    except OdinError:
        return False
    now = time.time()
    return not any(now - p.last_access_time.ToSeconds() < POLLED_WITHIN for p in described.pollers)


def _form(fields: dict, *, run_id: bool = True) -> Body:
    properties = {csrf.FIELD: {"type": "string"}, **({"run_id": {"type": "string"}} if run_id else {}), **fields}
    return Body(schema={"type": "object", "properties": properties, "required": [csrf.FIELD]}, media=FORM, required=True)


def _schedule_form(fields: dict) -> Body:
    return _form(fields, run_id=False)


# -- pages ----------------------------------------------------------------------------------


@bp.get("/")
@documented(Doc("Home: the default namespace's workflows", TAG, responses={302: Reply("Redirect.", media=HTML)}))
def home():
    namespace = current_app.extensions["odin"].settings.default_namespace
    return redirect(url_for(".workflows", namespace=namespace))


@bp.get("/static/<path:filename>")
@documented(Doc("Web UI assets (CSS, JavaScript)", TAG, responses={200: Reply("The file.", media="text/plain")}))
def static(filename: str):
    return send_from_directory(STATIC, filename, max_age=3600)


@bp.get("/namespaces")
@documented(Doc("Namespaces", TAG, Operation.ListNamespaces, params=(NEXT_PAGE_TOKEN,), responses=_PAGE))
def namespaces():
    req = ws.ListNamespacesRequest(page_size=100, next_page_token=NEXT_PAGE_TOKEN.read())
    response = invoke(Operation.ListNamespaces, None, lambda f: f.list_namespaces(req))
    return render_template(
        "namespaces.html",
        namespaces=[to_json(n) for n in response.namespaces],
        next_page_token=_token(response.next_page_token),
    )


@bp.get("/namespaces/<namespace>")
@documented(Doc("A namespace", TAG, Operation.DescribeNamespace, responses=_PAGE))
def namespace(namespace: str):
    described = invoke(Operation.DescribeNamespace, namespace, lambda f: f.describe_namespace(ws.DescribeNamespaceRequest(namespace=namespace)))
    return render_template("namespace.html", namespace=namespace, ns=to_json(described))


@bp.get("/namespaces/<namespace>/workflows")
@documented(Doc(
    "Workflows of a namespace", TAG, Operation.ListWorkflowExecutions, params=(QUERY, STATUS, PAGE_SIZE, NEXT_PAGE_TOKEN),
    responses={**_PAGE, 400: Reply("The page, with the query's error.", media=HTML)},
))
def workflows(namespace: str):
    text, status, size = QUERY.read(), STATUS.read(), PAGE_SIZE.read()
    context = dict(
        namespace=namespace, query=text, status=status, statuses=list(STATUS_NAMES), rows=[], count=None, error=None,
        page={"query": text or None, "status": status or None, "pageSize": size if size != PAGE_SIZE.default else None},
    )
    try:
        effective = with_status(search_box_query(text), status)
        req = ws.ListWorkflowExecutionsRequest(
            namespace=namespace, query=effective, page_size=size, next_page_token=NEXT_PAGE_TOKEN.read()
        )
        listed = invoke(Operation.ListWorkflowExecutions, namespace, lambda f: f.list_workflow_executions(req))
        counted = invoke(
            Operation.CountWorkflowExecutions, namespace,
            lambda f: f.count_workflow_executions(ws.CountWorkflowExecutionsRequest(namespace=namespace, query=effective)),
        )
    except InvalidArgument as err:  # a query typo is shown by the query box, not on an error page
        context["error"] = err.message
        return render_template("workflows.html", **context), 400
    context.update(
        rows=[to_json(e) for e in listed.executions],
        count=counted.count,
        batch_query=effective,
        can_terminate=session.allowed(Operation.StartBatchOperation, namespace)
        and session.allowed(Operation.TerminateWorkflowExecution, namespace),
        can_cancel=session.allowed(Operation.StartBatchOperation, namespace)
        and session.allowed(Operation.RequestCancelWorkflowExecution, namespace),
        next_page_token=_token(listed.next_page_token),
        first_page=bool(NEXT_PAGE_TOKEN.read()),
    )
    return render_template("workflows.html", **context)


@bp.get("/namespaces/<namespace>/workflows/<workflow_id>")
@documented(Doc("A workflow", TAG, Operation.DescribeWorkflowExecution, params=(RUN_ID, DONE), responses=_PAGE))
def workflow(namespace: str, workflow_id: str):
    execution = WorkflowExecution(workflow_id=workflow_id, run_id=RUN_ID.read())
    described = invoke(
        Operation.DescribeWorkflowExecution, namespace,
        lambda f: f.describe_workflow_execution(ws.DescribeWorkflowExecutionRequest(namespace=namespace, execution=execution)),
    )
    info = described.workflow_execution_info
    events = _history(namespace, info.execution)
    running = info.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
    started = events[0].workflow_execution_started_event_attributes if events else None
    return render_template(
        "workflow.html",
        namespace=namespace,
        workflow_id=workflow_id,
        run_id=info.execution.run_id,
        info=to_json(info),
        config=to_json(described.execution_config),
        summary=timeline.metadata_text(described.execution_config.user_metadata.summary),
        details=timeline.metadata_text(described.execution_config.user_metadata.details),
        running=running,
        unpolled=running and _unpolled(namespace, info.task_queue),
        poll_window=int(POLLED_WITHIN),
        input=_input_text(started.input) if started else None,
        outcome=outcome_json(workflow_id, events[-1]) if events and is_close(events[-1]) else None,
        pending_activities=[to_json(a) for a in described.pending_activities],
        pending_timers=timeline.pending_timers(events) if running else [],
        blockers=explain.blockers(described, events),
        pending_failures={p.activity_id: explain.failure_view(p.last_failure) for p in described.pending_activities
                          if p.HasField("last_failure")},
        gantt=timeline.gantt(events, datetime.now(UTC)),
        can_query=running and session.allowed(Operation.QueryWorkflow, namespace),
        rows=timeline.rows(events),
        truncated=len(events) >= MAX_EVENTS,
        notice=_NOTICES.get(DONE.read() or ""),
        can_signal=session.allowed(Operation.SignalWorkflowExecution, namespace),
        can_cancel=session.allowed(Operation.RequestCancelWorkflowExecution, namespace),
        can_terminate=session.allowed(Operation.TerminateWorkflowExecution, namespace),
        **_reset_form(namespace, events),
        can_pause=session.allowed(Operation.PauseActivity, namespace),
        can_unpause=session.allowed(Operation.UnpauseActivity, namespace),
    )


@bp.get("/namespaces/<namespace>/schedules")
@documented(Doc(
    "Schedules of a namespace", TAG, Operation.ListSchedules, params=(QUERY, SCHEDULE_PAGE_SIZE, NEXT_PAGE_TOKEN, SCHEDULES_DONE),
    responses={**_PAGE, 400: Reply("The page, with the query's error.", media=HTML)},
))
def schedules(namespace: str):
    text, size = QUERY.read(), SCHEDULE_PAGE_SIZE.read()
    context = dict(
        namespace=namespace, query=text, rows=[], error=None, notice=_SCHEDULE_NOTICES.get(SCHEDULES_DONE.read() or ""),
        page={"query": text or None, "pageSize": size if size != SCHEDULE_PAGE_SIZE.default else None},
    )
    req = ws.ListSchedulesRequest(namespace=namespace, query=text, maximum_page_size=size, next_page_token=NEXT_PAGE_TOKEN.read())
    try:
        listed = invoke(Operation.ListSchedules, namespace, lambda f: f.list_schedules(req))
    except InvalidArgument as err:  # shown by the query box
        context["error"] = err.message
        return render_template("schedules.html", **context), 400
    context.update(
        rows=[dict(to_json(e), spec_words=spec_summary(e.info.spec)) for e in listed.schedules],
        next_page_token=_token(listed.next_page_token),
        first_page=bool(NEXT_PAGE_TOKEN.read()),
    )
    return render_template("schedules.html", **context)


@bp.get("/namespaces/<namespace>/schedules/<schedule_id>")
@documented(Doc("A schedule", TAG, Operation.DescribeSchedule, params=(SCHEDULE_DONE,), responses=_PAGE))
def schedule(namespace: str, schedule_id: str):
    req = ws.DescribeScheduleRequest(namespace=namespace, schedule_id=schedule_id)
    described = invoke(Operation.DescribeSchedule, namespace, lambda f: f.describe_schedule(req))
    body = to_json(described)
    can_patch = session.allowed(Operation.PatchSchedule, namespace)
    return render_template(
        "schedule.html",
        namespace=namespace,
        schedule_id=schedule_id,
        spec_lines=describe_spec(described.schedule.spec),
        schedule=body.get("schedule", {}),
        info=body.get("info", {}),
        memo=body.get("memo"),
        search_attributes=body.get("searchAttributes"),
        notice=_SCHEDULE_NOTICES.get(SCHEDULE_DONE.read() or ""),
        overlap_policies=OVERLAP_POLICIES,
        can_pause=can_patch,
        can_trigger=can_patch,
        can_backfill=can_patch,
        can_delete=session.allowed(Operation.DeleteSchedule, namespace),
    )


@bp.get("/namespaces/<namespace>/batch-operations")
@documented(Doc("Batch operations of a namespace", TAG, Operation.ListBatchOperations, params=(NEXT_PAGE_TOKEN,), responses=_PAGE))
def batches(namespace: str):
    req = ws.ListBatchOperationsRequest(namespace=namespace, page_size=50, next_page_token=NEXT_PAGE_TOKEN.read())
    listed = invoke(Operation.ListBatchOperations, namespace, lambda f: f.list_batch_operations(req))
    return render_template(
        "batches.html",
        namespace=namespace,
        rows=[to_json(i) for i in listed.operation_info],
        next_page_token=_token(listed.next_page_token),
        first_page=bool(NEXT_PAGE_TOKEN.read()),
    )


@bp.get("/namespaces/<namespace>/batch-operations/<job_id>")
@documented(Doc("A batch operation: its progress", TAG, Operation.DescribeBatchOperation, params=(BATCH_DONE,), responses=_PAGE))
def batch(namespace: str, job_id: str):
    req = ws.DescribeBatchOperationRequest(namespace=namespace, job_id=job_id)
    described = invoke(Operation.DescribeBatchOperation, namespace, lambda f: f.describe_batch_operation(req))
    total = described.total_operation_count
    done = described.complete_operation_count + described.failure_operation_count
    return render_template(
        "batch.html",
        namespace=namespace,
        job_id=job_id,
        job=to_json(described),
        running=described.state == BatchOperationState.BATCH_OPERATION_STATE_RUNNING,
        done=done,
        percent=100 if not total else min(100, round(100 * done / total)),
        notice=_BATCH_NOTICES.get(BATCH_DONE.read() or ""),
        can_stop=session.allowed(Operation.StopBatchOperation, namespace),
    )


@bp.post("/namespaces/<namespace>/batch-operations")
@documented(Doc(
    "Terminate or cancel workflows as a batch (form)", TAG, Operation.StartBatchOperation,
    body=_form({
        "action": {"type": "string", "enum": ["terminate", "cancel"]},
        "scope": {"type": "string", "enum": ["selected", "query"], "description": "The checked runs, or all the query matches."},
        "run": {"type": "array", "items": {"type": "string"}, "description": "A checked run: its run id, a colon, its workflow id."},
        "query": {"type": "string"},
        "reason": {"type": "string"},
    }, run_id=False),
    responses={303: Reply("Started; on to the batch's page.", media=HTML, headers=("Location",))},
))
def start_batch(namespace: str):
    csrf.check_form()
    form = request.form
    action = form.get("action", "")
    if action not in ("terminate", "cancel"):
        raise InvalidArgument("Choose terminate or cancel.")
    req = ws.StartBatchOperationRequest(
        namespace=namespace,
        job_id=f"ui-{uuid.uuid4()}",
        reason=form.get("reason", "").strip() or f"{action.capitalize()} from the web UI",
    )
    if form.get("scope") == "query":
        req.visibility_query = form.get("query", "")
        if not req.visibility_query:
            raise InvalidArgument("There is no query: every workflow of the namespace would be affected. Filter first.")
    else:
        for value in form.getlist("run"):
            run_id, _, workflow_id = value.partition(":")
            req.executions.append(WorkflowExecution(workflow_id=workflow_id, run_id=run_id))
        if not req.executions:
            raise InvalidArgument("No workflows are selected.")
    if action == "terminate":
        req.termination_operation.identity = IDENTITY
    else:
        req.cancellation_operation.identity = IDENTITY
    invoke(Operation.StartBatchOperation, namespace, lambda f: f.start_batch_operation(req), target=req.job_id)
    return redirect(url_for(".batch", namespace=namespace, job_id=req.job_id, done="start"), 303)


@bp.post("/namespaces/<namespace>/batch-operations/<job_id>/stop")
@documented(Doc(
    "Stop a batch operation (form)", TAG, Operation.StopBatchOperation, body=_form({}, run_id=False),
    responses={303: Reply("Stopped; back to the batch's page.", media=HTML, headers=("Location",))},
))
def stop_batch(namespace: str, job_id: str):
    csrf.check_form()
    req = ws.StopBatchOperationRequest(namespace=namespace, job_id=job_id, reason="Stopped from the web UI", identity=IDENTITY)
    invoke(Operation.StopBatchOperation, namespace, lambda f: f.stop_batch_operation(req), target=job_id)
    return redirect(url_for(".batch", namespace=namespace, job_id=job_id, done="stop"), 303)


@bp.get("/namespaces/<namespace>/deployments")
@documented(Doc("Worker deployments of a namespace", TAG, Operation.ListWorkerDeployments, params=(DEPLOY_DONE,), responses=_PAGE))
def deployments(namespace: str):
    listed = invoke(
        Operation.ListWorkerDeployments, namespace,
        lambda f: f.list_worker_deployments(ws.ListWorkerDeploymentsRequest(namespace=namespace, page_size=100)),
    )
    shown = []
    for summary in listed.worker_deployments:
        info = _describe_deployment(namespace, summary.name)
        routing = info.routing_config
        versions = []
        for v in info.version_summaries:
            build_id = v.deployment_version.build_id or v.version.split(".", 1)[-1]
            pinned = _count(
                namespace,
                f"TemporalWorkerDeploymentVersion = '{info.name}:{build_id}' AND "
                "TemporalWorkflowVersioningBehavior = 'Pinned' AND ExecutionStatus = 'Running'",
            )
            current = routing.current_version == v.version
            ramping = routing.ramping_version == v.version
            # Share of new runs: the ramping version's percentage, the rest to the current one.
            share = routing.ramping_version_percentage if routing.ramping_version else 0.0
            versions.append({
                "build_id": build_id,
                "state": "current" if current else "ramping" if ramping else {1: "draining", 2: "drained"}.get(v.drainage_status, "inactive"),
                "ramp": share if ramping else 100.0 - share if current else None,
                "pinned": pinned,
                "created": to_json(v).get("createTime"),
            })
        shown.append({
            "name": info.name,
            "current": routing.current_version,
            "ramping": routing.ramping_version,
            "ramp": routing.ramping_version_percentage,
            "modifier": info.last_modifier_identity,
            "versions": versions,
        })
    return render_template(
        "deployments.html",
        namespace=namespace,
        deployments=shown,
        notice={"current": "The version is now current.", "ramp": "The ramp is set."}.get(DEPLOY_DONE.read() or ""),
        can_route=session.allowed(Operation.SetWorkerDeploymentCurrentVersion, namespace),
    )


def _describe_deployment(namespace: str, name: str) -> WorkerDeploymentInfo:
    req = ws.DescribeWorkerDeploymentRequest(namespace=namespace, deployment_name=name)
    return invoke(Operation.DescribeWorkerDeployment, namespace, lambda f: f.describe_worker_deployment(req)).worker_deployment_info


def _count(namespace: str, query: str) -> int:
    req = ws.CountWorkflowExecutionsRequest(namespace=namespace, query=query)
    return invoke(Operation.CountWorkflowExecutions, namespace, lambda f: f.count_workflow_executions(req)).count


@bp.post("/namespaces/<namespace>/deployments/<deployment_name>/current")
@documented(Doc(
    "Make a version current (form)", TAG, Operation.SetWorkerDeploymentCurrentVersion,
    body=_form({"build_id": {"type": "string"}}, run_id=False),
    responses={303: Reply("Done; back to the deployments page.", media=HTML, headers=("Location",))},
))
def set_current_version(namespace: str, deployment_name: str):
    csrf.check_form()
    req = ws.SetWorkerDeploymentCurrentVersionRequest(
        namespace=namespace, deployment_name=deployment_name, build_id=request.form.get("build_id", ""), identity=IDENTITY
    )
    invoke(Operation.SetWorkerDeploymentCurrentVersion, namespace, lambda f: f.set_worker_deployment_current_version(req), target=deployment_name)
    return redirect(url_for(".deployments", namespace=namespace, done="current"), 303)


@bp.post("/namespaces/<namespace>/deployments/<deployment_name>/ramp")
@documented(Doc(
    "Ramp new runs to a version (form)", TAG, Operation.SetWorkerDeploymentRampingVersion,
    body=_form({"build_id": {"type": "string"}, "percentage": {"type": "number"}}, run_id=False),
    responses={303: Reply("Done; back to the deployments page.", media=HTML, headers=("Location",))},
))
def set_ramping_version(namespace: str, deployment_name: str):
    csrf.check_form()
    raw = request.form.get("percentage", "").strip()
    try:
        percentage = float(raw)
    except ValueError:
        raise InvalidArgument(f"The ramp {raw!r} is not a percentage between 0 and 100.") from None
    req = ws.SetWorkerDeploymentRampingVersionRequest(
        namespace=namespace, deployment_name=deployment_name, build_id=request.form.get("build_id", ""),
        percentage=percentage, identity=IDENTITY,
    )
    invoke(Operation.SetWorkerDeploymentRampingVersion, namespace, lambda f: f.set_worker_deployment_ramping_version(req), target=deployment_name)
    return redirect(url_for(".deployments", namespace=namespace, done="ramp"), 303)


@bp.get("/namespaces/<namespace>/task-queues")
@documented(Doc("Find a task queue", TAG, params=(NAME,), responses={**_PAGE, 302: Reply("To the queue's page.", media=HTML)}))
def task_queue_lookup(namespace: str):
    name = NAME.read()
    if name:
        return redirect(url_for(".task_queue", namespace=namespace, task_queue=name))
    return render_template("task_queue_lookup.html", namespace=namespace)


@bp.get("/namespaces/<namespace>/task-queues/<task_queue>")
@documented(Doc("A task queue: pollers and backlog", TAG, Operation.DescribeTaskQueue, responses=_PAGE))
def task_queue(namespace: str, task_queue: str):
    kinds = {
        kind.removeprefix("TASK_QUEUE_TYPE_").lower(): to_json(describe_task_queue(namespace, task_queue, kind))
        for kind in QUEUE_TYPES
    }
    return render_template("task_queue.html", namespace=namespace, task_queue=task_queue, kinds=kinds)


@bp.get("/namespaces/<namespace>/workers")
@documented(Doc("Workers of a namespace", TAG, Operation.ListWorkers, responses=_PAGE))
def workers(namespace: str):
    found = list_workers_page(namespace)
    return render_template("workers.html", namespace=namespace, workers=[to_json(w) for w in found.workers_info])


@bp.get("/namespaces/<namespace>/workflows/<workflow_id>/stack-trace")
@documented(Doc(
    "A running workflow's stack trace (the __stack_trace query)", TAG, Operation.QueryWorkflow, params=(RUN_ID,), responses=_PAGE
))
def stack_trace(namespace: str, workflow_id: str):
    req = ws.QueryWorkflowRequest(namespace=namespace, execution=WorkflowExecution(workflow_id=workflow_id, run_id=RUN_ID.read()))
    req.query.query_type = "__stack_trace"
    limit = STACK_TRACE_WAIT
    response = invoke(Operation.QueryWorkflow, namespace, lambda f: f.query_workflow(req, limit), timeout=limit + 15)
    values = payloads_values(response.query_result)
    text = values[0] if values and isinstance(values[0], str) else json.dumps(values, indent=2, ensure_ascii=False)
    return render_template("stack_trace.html", namespace=namespace, workflow_id=workflow_id, run_id=req.execution.run_id, stack=text)


@bp.get("/api-docs")
@documented(Doc("The HTTP API's operations, grouped by tag", TAG, responses=_PAGE))
def api_docs():
    document = current_app.extensions.get("odin.openapi")
    if document is None:
        document = current_app.extensions["odin.openapi"] = build_openapi(current_app)
    return render_template("api_docs.html", groups=api_groups(document), info=document.get("info", {}))


def api_groups(document: dict) -> list[tuple[str, list[dict]]]:
    """An OpenAPI document's operations as (tag, [{method, path, summary, description}]), tags in
    the document's order (then first use), operations by path."""
    groups: dict[str, list[dict]] = {t["name"]: [] for t in document.get("tags", []) if "name" in t}
    for path, item in sorted(document.get("paths", {}).items()):
        for method, op in item.items():
            if method not in {"get", "put", "post", "delete", "patch", "head", "options"}:
                continue
            entry = {"method": method.upper(), "path": path, "summary": op.get("summary", ""), "description": op.get("description", "")}
            for tag in op.get("tags") or ["other"]:
                groups.setdefault(tag, []).append(entry)
    return [(tag, ops) for tag, ops in groups.items() if ops]


# -- actions --------------------------------------------------------------------------------


@bp.post("/namespaces/<namespace>/workflows/<workflow_id>/signal")
@documented(Doc(
    "Signal a workflow (form)", TAG, Operation.SignalWorkflowExecution,
    body=_form({"signal_name": {"type": "string"}, "args": {"type": "string", "description": "A JSON array of arguments."}}),
    responses=_SEE_OTHER,
))
def signal(namespace: str, workflow_id: str):
    csrf.check_form()
    name, raw = request.form.get("signal_name", ""), request.form.get("args", "").strip() or "[]"
    try:
        args = loads_strict(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(f"The signal's arguments are not JSON: {exc}") from None
    if not isinstance(args, list):
        raise InvalidArgument("The signal's arguments must be a JSON array, e.g. [1, \"two\"].")
    req = ws.SignalWorkflowExecutionRequest(
        namespace=namespace, workflow_execution=_form_execution(workflow_id), signal_name=name, identity=IDENTITY
    )
    req.input.payloads.extend(value_payload(a) for a in args)
    invoke(Operation.SignalWorkflowExecution, namespace, lambda f: f.signal_workflow_execution(req), target=workflow_id)
    return _back(namespace, workflow_id, "signal")


@bp.post("/namespaces/<namespace>/workflows/<workflow_id>/cancel")
@documented(Doc("Request cancellation (form)", TAG, Operation.RequestCancelWorkflowExecution, body=_form({}), responses=_SEE_OTHER))
def cancel(namespace: str, workflow_id: str):
    csrf.check_form()
    req = ws.RequestCancelWorkflowExecutionRequest(
        namespace=namespace, workflow_execution=_form_execution(workflow_id), identity=IDENTITY, reason="Canceled from the web UI"
    )
    invoke(Operation.RequestCancelWorkflowExecution, namespace, lambda f: f.request_cancel_workflow_execution(req), target=workflow_id)
    return _back(namespace, workflow_id, "cancel")


@bp.post("/namespaces/<namespace>/workflows/<workflow_id>/activities/<activity_id>/pause")
@documented(Doc(
    "Pause an activity (form)", TAG, Operation.PauseActivity, body=_form({"reason": {"type": "string"}}), responses=_SEE_OTHER
))
def pause_activity(namespace: str, workflow_id: str, activity_id: str):
    csrf.check_form()
    req = ws.PauseActivityRequest(
        namespace=namespace,
        execution=_form_execution(workflow_id),
        id=activity_id,
        identity=IDENTITY,
        reason=request.form.get("reason", "").strip() or "Paused from the web UI",
    )
    invoke(Operation.PauseActivity, namespace, lambda f: f.pause_activity(req), target=workflow_id)
    return _back(namespace, workflow_id, "pause-activity")


@bp.post("/namespaces/<namespace>/workflows/<workflow_id>/activities/<activity_id>/unpause")
@documented(Doc("Unpause an activity (form)", TAG, Operation.UnpauseActivity, body=_form({}), responses=_SEE_OTHER))
def unpause_activity(namespace: str, workflow_id: str, activity_id: str):
    csrf.check_form()
    req = ws.UnpauseActivityRequest(
        namespace=namespace, execution=_form_execution(workflow_id), id=activity_id, identity=IDENTITY
    )
    invoke(Operation.UnpauseActivity, namespace, lambda f: f.unpause_activity(req), target=workflow_id)
    return _back(namespace, workflow_id, "unpause-activity")


@bp.post("/namespaces/<namespace>/workflows/<workflow_id>/terminate")
@documented(Doc(
    "Terminate a workflow (form)", TAG, Operation.TerminateWorkflowExecution, body=_form({"reason": {"type": "string"}}), responses=_SEE_OTHER
))
def terminate(namespace: str, workflow_id: str):
    csrf.check_form()
    req = ws.TerminateWorkflowExecutionRequest(
        namespace=namespace,
        workflow_execution=_form_execution(workflow_id),
        identity=IDENTITY,
        reason=request.form.get("reason", "").strip() or "Terminated from the web UI",
    )
    invoke(Operation.TerminateWorkflowExecution, namespace, lambda f: f.terminate_workflow_execution(req), target=workflow_id)
    return _back(namespace, workflow_id, "terminate")


@bp.post("/namespaces/<namespace>/schedules/<schedule_id>/pause")
@documented(Doc(
    "Pause a schedule (form)", TAG, Operation.PatchSchedule, body=_schedule_form({"note": {"type": "string"}}),
    responses=_BACK_TO_SCHEDULE,
))
def pause_schedule(namespace: str, schedule_id: str):
    csrf.check_form()
    note = request.form.get("note", "").strip() or "Paused from the web UI"
    return _patch_schedule(namespace, schedule_id, SchedulePatch(pause=note), "pause")


@bp.post("/namespaces/<namespace>/schedules/<schedule_id>/unpause")
@documented(Doc(
    "Unpause a schedule (form)", TAG, Operation.PatchSchedule, body=_schedule_form({"note": {"type": "string"}}),
    responses=_BACK_TO_SCHEDULE,
))
def unpause_schedule(namespace: str, schedule_id: str):
    csrf.check_form()
    note = request.form.get("note", "").strip() or "Unpaused from the web UI"
    return _patch_schedule(namespace, schedule_id, SchedulePatch(unpause=note), "unpause")


@bp.post("/namespaces/<namespace>/schedules/<schedule_id>/trigger")
@documented(Doc(
    "Run a schedule's action now (form)", TAG, Operation.PatchSchedule, body=_schedule_form({"overlap_policy": _OVERLAP_FIELD}),
    responses=_BACK_TO_SCHEDULE,
))
def trigger_schedule(namespace: str, schedule_id: str):
    csrf.check_form()
    trigger = TriggerImmediatelyRequest(overlap_policy=_form_overlap())
    return _patch_schedule(namespace, schedule_id, SchedulePatch(trigger_immediately=trigger), "trigger")


@bp.post("/namespaces/<namespace>/schedules/<schedule_id>/backfill")
@documented(Doc(
    "Backfill a schedule (form)", TAG, Operation.PatchSchedule,
    body=_schedule_form({
        "start_time": {"type": "string", "description": "RFC 3339, or YYYY-MM-DDTHH:MM in UTC."},
        "end_time": {"type": "string", "description": "RFC 3339, or YYYY-MM-DDTHH:MM in UTC."},
        "overlap_policy": _OVERLAP_FIELD,
    }),
    responses=_BACK_TO_SCHEDULE,
))
def backfill_schedule(namespace: str, schedule_id: str):
    csrf.check_form()
    start, end = _form_time("start_time", "start"), _form_time("end_time", "end")
    if end.ToNanoseconds() <= start.ToNanoseconds():
        raise InvalidArgument("The backfill's end must be after its start.")
    backfill = BackfillRequest(start_time=start, end_time=end, overlap_policy=_form_overlap())
    return _patch_schedule(namespace, schedule_id, SchedulePatch(backfill_request=[backfill]), "backfill")


@bp.post("/namespaces/<namespace>/schedules/<schedule_id>/delete")
@documented(Doc(
    "Delete a schedule (form)", TAG, Operation.DeleteSchedule, body=_schedule_form({}),
    responses={303: Reply("Done; back to the schedules.", media=HTML, headers=("Location",))},
))
def delete_schedule(namespace: str, schedule_id: str):
    csrf.check_form()
    req = ws.DeleteScheduleRequest(namespace=namespace, schedule_id=schedule_id, identity=IDENTITY)
    invoke(Operation.DeleteSchedule, namespace, lambda f: f.delete_schedule(req), target=schedule_id)
    return redirect(url_for(".schedules", namespace=namespace, done="delete"), 303)


def _reset_form(namespace: str, events: list[HistoryEvent]) -> dict:
    """The reset form's context: whether the caller may reset, the points to offer (each
    completed workflow task, the first and the last named), and a request id for this form."""
    if not session.allowed(Operation.ResetWorkflowExecution, namespace):
        return {"can_reset": False, "reset_points": []}
    completed = [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]
    points = []
    for i, e in enumerate(completed):
        which = [name for name, yes in (("first", i == 0), ("last", i == len(completed) - 1)) if yes]
        label = f"Event {e.event_id}: workflow task completed" + (f" ({' and '.join(which)} workflow task)" if which else "")
        points.append({"event_id": e.event_id, "label": label, "last": i == len(completed) - 1})
    return {"can_reset": bool(points), "reset_points": points, "reset_request_id": new_id()}


@bp.post("/namespaces/<namespace>/workflows/<workflow_id>/reset")
@documented(Doc(
    "Reset a workflow (form)", TAG, Operation.ResetWorkflowExecution,
    body=_form({
        "event_id": {"type": "integer", "description": "The WorkflowTaskCompleted event to reset to."},
        "reason": {"type": "string"},
        "exclude_signals": {"type": "string", "description": "Present: signals after the point are not reapplied."},
        "request_id": {"type": "string", "description": "The form's request id: submitting it twice resets once."},
    }),
    responses={303: Reply("Done; to the new run's page.", media=HTML, headers=("Location",))},
))
def reset(namespace: str, workflow_id: str):
    csrf.check_form()
    try:
        event_id = int(request.form.get("event_id", ""))
    except ValueError:
        raise InvalidArgument("Choose the event to reset to.") from None
    req = ws.ResetWorkflowExecutionRequest(
        namespace=namespace,
        workflow_execution=_form_execution(workflow_id),
        workflow_task_finish_event_id=event_id,
        reason=request.form.get("reason", "").strip() or "Reset from the web UI",
        request_id=request.form.get("request_id", "") or new_id(),
        identity=IDENTITY,
    )
    if request.form.get("exclude_signals"):
        req.reset_reapply_exclude_types.append(ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL)
    response = invoke(Operation.ResetWorkflowExecution, namespace, lambda f: f.reset_workflow_execution(req), target=workflow_id)
    return redirect(url_for(".workflow", namespace=namespace, workflow_id=workflow_id, runId=response.run_id, done="reset"), 303)


# -- signing in (when authentication is on) ------------------------------------------------

NEXT = Param("next", "query", {"type": "string", "maxLength": 2000}, "Where to go after signing in.", "")


def _local(target: str) -> str:
    """Only paths on this site, so the sign-in page cannot be used to send people elsewhere."""
    return target if target.startswith("/") and not target.startswith("//") else url_for(".home")


@bp.get("/login")
@documented(Doc("Sign in with a token", TAG, params=(NEXT,), responses=_PAGE))
def login():
    return render_template("login.html", next=_local(NEXT.read() or "/"), error=None)


@bp.post("/login")
@documented(Doc(
    "Sign in (form): a JWT or API key, checked, then kept in an HttpOnly cookie", TAG,
    body=Body(
        schema={"type": "object", "properties": {csrf.FIELD: {"type": "string"}, "token": {"type": "string"},
                                                 "next": {"type": "string"}}, "required": [csrf.FIELD, "token"]},
        media=FORM, required=True,
    ),
    responses={**_SEE_OTHER, 401: Reply("The token was refused.", media=HTML)},
))
def login_submit():
    csrf.check_form()
    token, target = request.form.get("token", "").strip(), _local(request.form.get("next", "/"))
    try:
        session_gate = current_app.extensions["odin"].get().frontend.gate
        session_gate.authenticator.authenticate(f"Bearer {token}")
    except OdinError as err:
        return render_template("login.html", next=target, error=err.message), 401
    response = redirect(target, code=303)
    response.set_cookie(session.COOKIE, token, httponly=True, samesite="Strict", secure=request.is_secure)
    return response


@bp.post("/logout")
@documented(Doc("Sign out (form)", TAG, body=_form({}), responses=_SEE_OTHER))
def logout():
    csrf.check_form()
    response = redirect(url_for(".login"), code=303)
    response.delete_cookie(session.COOKIE)
    return response


# -- helpers --------------------------------------------------------------------------------


# What a workflow id typed into the query box looks like: one word of id characters, no operators.
_PLAUSIBLE_ID = re.compile(r"[^\s'\"`()=<>!,]+")


def search_box_query(text: str) -> str:
    """The list filter for what was typed into the workflows page's box: a valid query as it is,
    else a plausible workflow id (``reminder-ann``) as ``WorkflowId = '...'``; anything else stays
    as typed, so its parse error is shown."""
    text = text.strip()
    if not text or not _PLAUSIBLE_ID.fullmatch(text):
        return text
    try:
        visibility_query.parse(text)
        return text
    except visibility_query.QueryError:
        return visibility_query.render(visibility_query.Query(visibility_query.Comparison("WorkflowId", "=", text)))


def with_status(text: str, status: str) -> str:
    """The list filter ``text`` narrowed to runs in ``status`` (kept whole: ORDER BY stays last)."""
    if not status:
        return text
    try:
        parsed = visibility_query.parse(text)
    except visibility_query.QueryError as exc:
        raise InvalidArgument(f"Invalid query: {exc}") from None
    only = visibility_query.Comparison("ExecutionStatus", "=", status)
    where = only if parsed.where is None else visibility_query.And((parsed.where, only))
    return visibility_query.render(visibility_query.Query(where, parsed.order_by, parsed.group_by))


def _history(namespace: str, execution: WorkflowExecution) -> list[HistoryEvent]:
    events: list[HistoryEvent] = []
    token = b""
    while len(events) < MAX_EVENTS:
        req = ws.GetWorkflowExecutionHistoryRequest(
            namespace=namespace, execution=execution, next_page_token=token, maximum_page_size=1000
        )
        page = invoke(Operation.GetWorkflowExecutionHistory, namespace, lambda f, req=req: f.get_workflow_execution_history(req, 5.0))
        events.extend(page.history.events)
        token = page.next_page_token
        if not token or not page.history.events:
            break
    return events[:MAX_EVENTS]


def _form_execution(workflow_id: str) -> WorkflowExecution:
    return WorkflowExecution(workflow_id=workflow_id, run_id=request.form.get("run_id", ""))


def _back(namespace: str, workflow_id: str, done: str):
    run_id = request.form.get("run_id", "")
    return redirect(url_for(".workflow", namespace=namespace, workflow_id=workflow_id, runId=run_id or None, done=done), 303)


def _patch_schedule(namespace: str, schedule_id: str, patch: SchedulePatch, done: str):
    req = ws.PatchScheduleRequest(namespace=namespace, schedule_id=schedule_id, patch=patch, identity=IDENTITY)
    invoke(Operation.PatchSchedule, namespace, lambda f: f.patch_schedule(req), target=schedule_id)
    return redirect(url_for(".schedule", namespace=namespace, schedule_id=schedule_id, done=done), 303)


def _form_overlap() -> ScheduleOverlapPolicy.ValueType:
    name = request.form.get("overlap_policy", "")
    if not name:
        return ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED
    if name not in OVERLAP_POLICIES:
        raise InvalidArgument(f"Unknown overlap policy {name!r}; use one of {', '.join(OVERLAP_POLICIES)}.")
    return ScheduleOverlapPolicy.Value(name)


def _form_time(field: str, what: str) -> Timestamp:
    """A form's time: RFC 3339, or a browser's ``YYYY-MM-DDTHH:MM[:SS]`` read as UTC."""
    raw = request.form.get(field, "").strip()
    if not raw:
        raise InvalidArgument(f"The backfill's {what} time is missing.")
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"The backfill's {what} time {raw!r} is not a time like 2024-05-01T09:00.") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    ts = Timestamp()
    try:
        ts.FromDatetime(when)
    except (ValueError, OverflowError):
        raise InvalidArgument(f"The backfill's {what} time {raw!r} is out of range.") from None
    return ts


def _token(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _when(value: str | None) -> str:
    """An RFC 3339 time as ``2024-05-01 12:00:03 UTC``."""
    if not value:
        return ""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return value


def _status(value: str | None) -> str:
    """``WORKFLOW_EXECUTION_STATUS_TIMED_OUT`` -> ``Timed Out``."""
    return (value or "").removeprefix("WORKFLOW_EXECUTION_STATUS_").replace("_", " ").title()


def _local_time(value: str | None, zone: str) -> str:
    """An RFC 3339 time on the wall clock of ``zone`` (``Tue 09:00 CET``); empty if it cannot be read."""
    try:
        when = datetime.fromisoformat((value or "").replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
    except (ValueError, KeyError, ZoneInfoNotFoundError):
        return ""
    return when.strftime("%a %H:%M %Z" if when.second == 0 else "%a %H:%M:%S %Z")


def _duration(value: str | None) -> str:
    """A proto3 JSON duration (``31536000s``) in words (``365 days``)."""
    if not value:
        return ""
    d = Duration()
    try:
        d.FromJsonString(value)
    except ValueError:
        return value
    return describe_duration(d)


def _ago(value: str | None) -> str:
    """An RFC 3339 time relative to now (``3 minutes ago``); empty if it cannot be read."""
    try:
        when = datetime.fromisoformat((value or "").replace("Z", "+00:00"))
    except ValueError:
        return ""
    return humane.relative(when if when.tzinfo else when.replace(tzinfo=UTC), datetime.now(UTC))


def _human(value: str | float | int | None) -> str:
    """A duration, as proto3 JSON (``259200s``) or seconds, in words (``3 days``)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        d = Duration()
        try:
            d.FromJsonString(value)
        except ValueError:
            return value
        return humane.duration_words(d.ToTimedelta().total_seconds())
    return humane.duration_words(float(value))


def _enum_words(value: str | None, prefix: str) -> str:
    """``SCHEDULE_OVERLAP_POLICY_BUFFER_ONE`` -> ``buffer one``."""
    return (value or "").removeprefix(prefix).replace("_", " ").lower()


def register(app: Flask) -> None:
    app.register_blueprint(bp)
    app.jinja_env.globals.update(auth_enabled=session.auth_enabled, signed_in=lambda: session.principal())
    app.jinja_env.filters.update(
        when=_when, status=_status, enum_words=_enum_words, duration=_duration, local_time=_local_time, ago=_ago, human=_human, tojson_pretty=lambda v: json.dumps(v, indent=2, ensure_ascii=False)
    )
