"""How a run ended, as JSON: the result endpoint's body and the web UI's result panel."""

from __future__ import annotations

import time
from collections.abc import Callable

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, HistoryEventFilterType, RetryState
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.api.rest.codec import payloads_values, to_json
from odin.api.rest.invoke import invoke
from odin.history.events import attributes_of
from odin.operations import Operation

RUNNING = "WORKFLOW_EXECUTION_STATUS_RUNNING"
_STATUS_BY_CLOSE_EVENT = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "WORKFLOW_EXECUTION_STATUS_COMPLETED",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "WORKFLOW_EXECUTION_STATUS_FAILED",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "WORKFLOW_EXECUTION_STATUS_CANCELED",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "WORKFLOW_EXECUTION_STATUS_TERMINATED",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "WORKFLOW_EXECUTION_STATUS_TIMED_OUT",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW",
}

OUTCOME_SCHEMA = {
    "type": "object",
    "required": ["workflowId", "status"],
    "properties": {
        "workflowId": {"type": "string"},
        "status": {"type": "string", "enum": [RUNNING, *_STATUS_BY_CLOSE_EVENT.values()]},
        "closeTime": {"type": "string", "format": "date-time"},
        "result": {"description": "COMPLETED: the workflow's return value."},
        "failure": {"type": "object", "description": "FAILED: the failure (message, type, stack trace, cause)."},
        "details": {"type": "array", "description": "CANCELED, TERMINATED: details given."},
        "reason": {"type": "string", "description": "TERMINATED: the reason given."},
        "identity": {"type": "string", "description": "TERMINATED: who terminated it."},
        "retryState": {"type": "string", "description": "FAILED, TIMED_OUT: why no retry follows."},
        "newExecutionRunId": {"type": "string", "description": "CONTINUED_AS_NEW: the next run."},
    },
}


def is_close(event: HistoryEvent) -> bool:
    return event.event_type in _STATUS_BY_CLOSE_EVENT


def outcome_json(workflow_id: str, event: HistoryEvent) -> dict:
    """The close event ``event`` of a run as ``{"workflowId", "status", ...}``."""
    a = attributes_of(event)
    body: dict = {"workflowId": workflow_id, "status": _STATUS_BY_CLOSE_EVENT[event.event_type]}
    body["closeTime"] = event.event_time.ToJsonString()
    kind = event.event_type
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        values = payloads_values(a.result)
        body["result"] = values[0] if values else None
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        body["failure"] = to_json(a.failure)
        body["retryState"] = RetryState.Name(a.retry_state)
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
        body["details"] = payloads_values(a.details)
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
        body.update(reason=a.reason, details=payloads_values(a.details), identity=a.identity)
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
        body["retryState"] = RetryState.Name(a.retry_state)
    else:
        body["newExecutionRunId"] = a.new_execution_run_id
    return body


def _next_run(event: HistoryEvent) -> str:
    """The run that carries on after ``event`` (continue-as-new, a retry, the next cron run)."""
    return getattr(attributes_of(event), "new_execution_run_id", "")


def await_outcome(namespace: str, workflow_id: str, run_id: str, wait: float, poll_limit: float) -> dict | None:
    """The outcome of the run (following continue-as-new, retries and cron like the SDKs'
    ``result()``), waiting up to ``wait`` seconds for it to close; None if it did not."""
    deadline = time.monotonic() + wait
    token = b""
    while True:
        remaining = max(0.0, deadline - time.monotonic())
        budget = min(remaining, poll_limit)
        req = ws.GetWorkflowExecutionHistoryRequest(
            namespace=namespace,
            execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
            history_event_filter_type=HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT,
            wait_new_event=budget > 0,
            next_page_token=token,
        )
        response = invoke(Operation.GetWorkflowExecutionHistory, namespace, _history_call(req, budget), timeout=budget + 15)
        events = response.history.events
        if events:
            if _next_run(events[-1]):
                run_id, token = _next_run(events[-1]), b""
                continue
            return outcome_json(workflow_id, events[-1])
        if time.monotonic() >= deadline:
            return None
        token = response.next_page_token  # keeps later polls on the run found first


def _history_call(req: ws.GetWorkflowExecutionHistoryRequest, budget: float) -> Callable:
    # The frontend waits up to (timeout - 1 s) for a history long poll.
    return lambda f: f.get_workflow_execution_history(req, budget + 1.0)
