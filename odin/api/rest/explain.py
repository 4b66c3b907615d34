"""Why a run is not moving, and failures in readable parts, for the workflow page (pure: a
describe response and events in, plain data out)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus, WorkflowTaskFailedCause
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

# The Odin SDK fails a run of a type its workers lack with this failure type; a temporalio worker
# fails the workflow task instead, with a message like "Workflow class X is not registered".
NOT_REGISTERED_TYPE = "WorkflowTypeNotRegistered"
_NOT_REGISTERED = re.compile(r"workflow class .* is not registered", re.I)
# Workflow task failures that are the server's bookkeeping, not the workflow failing (a reset, new
# events arriving while the task ran, a sticky queue given up): the next task goes on normally.
_ROUTINE_CAUSES = frozenset({
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_STICKY_TASK_QUEUE,
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND,
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FAILOVER_CLOSE_COMMAND,
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW,
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_UPDATE,
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_PAUSE_REQUESTED_BEFORE_TASK_STARTED,
})
# Causes of chained failures shown under the top one, at most this deep.
_CAUSES = 5


@dataclass
class FailureView:
    type: str  # the application error type, or the failure's kind ("timeout", "canceled", ...)
    message: str
    stack: str
    source: str = ""
    causes: list[FailureView] = field(default_factory=list)


@dataclass
class Blocker:
    kind: str  # workflow-task, unknown-type, activity: the element's id and class
    title: str
    text: str
    failure: FailureView | None = None
    ref: str = ""  # which one, for an activity its id


def failure_view(failure: Failure) -> FailureView:
    """A failure as type, message and stack, with its chain of causes."""
    view = _one(failure)
    cause = failure.cause if failure.HasField("cause") else None
    while cause is not None and len(view.causes) < _CAUSES:
        view.causes.append(_one(cause))
        cause = cause.cause if cause.HasField("cause") else None
    return view


def _one(failure: Failure) -> FailureView:
    info = failure.WhichOneof("failure_info") or ""
    kind = failure.application_failure_info.type if info == "application_failure_info" else ""
    kind = kind or info.removesuffix("_failure_info").replace("_", " ")
    return FailureView(type=kind, message=failure.message, stack=failure.stack_trace, source=failure.source)


def _last(events: list[HistoryEvent], event_type: int) -> HistoryEvent | None:
    return next((e for e in reversed(events) if e.event_type == event_type), None)


def blockers(described: ws.DescribeWorkflowExecutionResponse, events: list[HistoryEvent]) -> list[Blocker]:
    """What keeps a running run from progressing (a failing workflow task, an unregistered workflow
    type, activities retrying or paused), or why a closed one failed at once (an unregistered type)."""
    info = described.workflow_execution_info
    out: list[Blocker] = []
    running = info.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
    if not running:
        closed = events[-1] if events else None
        if closed is not None and closed.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            failure = closed.workflow_execution_failed_event_attributes.failure
            if failure.application_failure_info.type == NOT_REGISTERED_TYPE:
                out.append(Blocker(
                    "unknown-type", f"Workflow type {info.type.name} is not registered",
                    f"No worker on task queue {info.task_queue} runs workflow type {info.type.name}, so the run failed "
                    "at once. Check the type's name, or start a worker that registers it.",
                    failure_view(failure),
                ))
        return out

    task = described.pending_workflow_task if described.HasField("pending_workflow_task") else None
    failed = _last(events, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    completed = _last(events, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    failing = (
        failed is not None
        and (completed is None or failed.event_id > completed.event_id)
        and failed.workflow_task_failed_event_attributes.cause not in _ROUTINE_CAUSES
    )
    if failing and failed is not None:
        a = failed.workflow_task_failed_event_attributes
        view = failure_view(a.failure)
        attempt = task.attempt if task is not None and task.attempt else 0
        worker = f" on worker {a.identity}" if a.identity else ""
        tries = f"attempt {attempt}" if attempt else "its last attempt"
        if _NOT_REGISTERED.search(a.failure.message):
            which = f"Worker {a.identity}" if a.identity else "The worker"
            out.append(Blocker(
                "unknown-type", f"Workflow type {info.type.name} is not registered",
                f"{which} polling task queue {info.task_queue} has no workflow type {info.type.name}; "
                f"the workflow task keeps failing ({tries}). Check the type's name, or start a worker that registers it.",
                view,
            ))
        else:
            C = WorkflowTaskFailedCause
            if a.cause == C.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR:
                what = f"The workflow code{worker} no longer matches the run's history (nondeterminism)"
            elif a.cause in (C.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE, C.WORKFLOW_TASK_FAILED_CAUSE_UNSPECIFIED):
                what = f"The workflow code fails{worker} ({_cause_words(a.cause)})"
            else:
                what = f"The server refused the workflow task's commands{worker} ({_cause_words(a.cause)})"
            out.append(Blocker(
                "workflow-task", "The workflow task is failing",
                f"{what}; the task is retried, now at {tries}. "
                "Fix the code and restart the worker: the run resumes from its history.",
                view,
            ))
    for p in described.pending_activities:
        limit = f" of {p.maximum_attempts}" if p.maximum_attempts else ""
        last_failure = failure_view(p.last_failure) if p.HasField("last_failure") else None
        if p.paused:
            manual = p.pause_info.manual
            by = f" by {manual.identity}" if manual.identity else ""
            why = f": {manual.reason}" if manual.reason else ""
            out.append(Blocker(
                "activity", f"Activity {p.activity_id} ({p.activity_type.name}) is paused",
                f"Paused{by}{why}. No new attempt starts until it is unpaused (attempt {p.attempt}{limit}).",
                last_failure, ref=p.activity_id,
            ))
        elif p.attempt > 1 and last_failure is not None:
            worker = f" on worker {p.last_worker_identity}" if p.last_worker_identity else ""
            out.append(Blocker(
                "activity", f"Activity {p.activity_id} ({p.activity_type.name}) is retrying",
                f"Attempt {p.attempt}{limit}; the last attempt failed{worker}.",
                last_failure, ref=p.activity_id,
            ))
    return out


def _cause_words(cause: WorkflowTaskFailedCause.ValueType) -> str:
    """``WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE`` -> ``workflow worker unhandled failure``."""
    try:
        name = WorkflowTaskFailedCause.Name(cause)
    except ValueError:
        return "unknown cause"
    return name.removeprefix("WORKFLOW_TASK_FAILED_CAUSE_").replace("_", " ").lower()
