"""Child workflows and requests to other runs (signal / cancel external): commands and outcomes (pure).

The command handlers write the ``...Initiated`` event, remember the request in mutable state and
queue a transfer task; the engine carries the request out against the other run and reports the
outcome back through the functions below, which deliver the outcome event to this run.
"""

from __future__ import annotations

from typing import TypedDict

from google.protobuf.message import Message
from temporalio.api.command.v1 import message_pb2 as cmd
from temporalio.api.common.v1 import Header, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import CancelExternalWorkflowExecutionFailedCause as CancelCause
from temporalio.api.enums.v1 import EventType as E
from temporalio.api.enums.v1 import ParentClosePolicy, StartChildWorkflowExecutionFailedCause, TaskQueueKind
from temporalio.api.enums.v1 import SignalExternalWorkflowExecutionFailedCause as SignalCause
from temporalio.api.enums.v1 import WorkflowTaskFailedCause as Cause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.history.v1 import message_pb2 as h
from temporalio.api.taskqueue.v1 import TaskQueue

from odin.history.machine import StaleTask, TransferSpec, Transition
from odin.history.state import ChildInfo, ExternalRequest
from odin.history.tasks import TransferKind
from odin.history.validation import (
    MAX_ID_LENGTH,
    BadCommand,
    check_id,
    check_pending,
    check_run_options,
    check_search_attribute_sizes,
    check_size,
    check_text,
    checked_search_attributes,
)

# A child run's close event -> the event its parent records.
_CLOSE_TO_PARENT_EVENT = {
    E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED,
}


class _ChildFields(TypedDict):
    """What every child outcome event says of the child."""

    namespace: str
    namespace_id: str
    workflow_execution: WorkflowExecution
    workflow_type: WorkflowType
    initiated_event_id: int
    started_event_id: int


class _ExternalFields(TypedDict):
    """What every outcome event of a signal/cancel request says of its target."""

    namespace: str
    namespace_id: str
    workflow_execution: WorkflowExecution
    initiated_event_id: int


# -- commands -----------------------------------------------------------------------------


def start_child(t: Transition, a: cmd.StartChildWorkflowExecutionCommandAttributes, completed_id: int) -> None:
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_CHILD_EXECUTION_ATTRIBUTES
    s = t.state
    check_id(a.workflow_id, "WorkflowId", bad)
    check_id(a.workflow_type.name, "WorkflowType", bad)
    queue = a.task_queue.name or s.task_queue
    if len(queue.encode()) > MAX_ID_LENGTH or len(a.namespace) > 255:
        raise BadCommand(bad, "TaskQueue or Namespace exceeds length limit.")
    check_text(queue, "TaskQueue", bad)
    check_text(a.namespace, "Namespace", bad)
    check_run_options(
        a,
        (a.workflow_execution_timeout, a.workflow_run_timeout, a.workflow_task_timeout),
        bad,
        "StartChildWorkflowExecutionCommand",
    )
    # A workflow id already in use (by a child of this run, or anything else) is not refused
    # here: the start fails later as it does in Temporal, with StartChildWorkflowExecutionFailed
    # (WORKFLOW_ALREADY_EXISTS) recorded for the workflow code.
    search = checked_search_attributes(t, a.search_attributes if a.HasField("search_attributes") else None)
    # Temporal's messages, with their odd space (read off Temporal Server 1.32).
    check_size(
        t, a.input.ByteSize(), "StartChildWorkflowExecution input",
        "StartChildWorkflowExecutionCommandAttributes. Input exceeds size limit.", bad,
    )
    check_size(
        t, a.memo.ByteSize(), "StartChildWorkflowExecution memo",
        "StartChildWorkflowExecutionCommandAttributes.Memo exceeds size limit.", bad, memo=True,
    )
    check_search_attribute_sizes(search, bad)
    check_pending(t.pending_limits, "children", len(s.children))
    namespace = a.namespace or s.namespace
    policy = a.parent_close_policy or ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE
    event = t.append(
        E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
        h.StartChildWorkflowExecutionInitiatedEventAttributes(
            namespace=namespace,
            namespace_id=s.namespace_id if namespace == s.namespace else "",
            workflow_id=a.workflow_id,
            workflow_type=a.workflow_type,
            task_queue=TaskQueue(name=queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            input=a.input,
            workflow_execution_timeout=a.workflow_execution_timeout,
            workflow_run_timeout=a.workflow_run_timeout,
            workflow_task_timeout=a.workflow_task_timeout,
            parent_close_policy=policy,
            control=a.control,
            workflow_task_completed_event_id=completed_id,
            workflow_id_reuse_policy=a.workflow_id_reuse_policy,
            retry_policy=a.retry_policy if a.HasField("retry_policy") else None,
            cron_schedule=a.cron_schedule,
            header=a.header,
            memo=a.memo,
            search_attributes=search,
            priority=a.priority,
        ),
    )
    s.children[event.event_id] = ChildInfo(
        initiated_event_id=event.event_id,
        workflow_id=a.workflow_id,
        workflow_type=a.workflow_type.name,
        namespace=namespace,
        parent_close_policy=policy,
    )
    t.transfers.append(TransferSpec(TransferKind.START_CHILD, {"initiated_event_id": event.event_id}))


def signal_external(t: Transition, a: cmd.SignalExternalWorkflowExecutionCommandAttributes, completed_id: int) -> None:
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SIGNAL_WORKFLOW_EXECUTION_ATTRIBUTES
    s = t.state
    check_id(a.execution.workflow_id, "WorkflowId", bad)
    check_id(a.signal_name, "SignalName", bad)
    check_pending(t.pending_limits, "signals", sum(r.kind == "signal" for r in s.external_requests.values()))
    check_size(
        t, a.input.ByteSize(), "SignalExternalWorkflowExecution input",
        "SignalExternalWorkflowExecutionCommandAttributes.Input exceeds size limit.", bad,
    )
    namespace = a.namespace or s.namespace
    event = t.append(
        E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
        h.SignalExternalWorkflowExecutionInitiatedEventAttributes(
            workflow_task_completed_event_id=completed_id,
            namespace=namespace,
            namespace_id=s.namespace_id if namespace == s.namespace else "",
            workflow_execution=a.execution,
            signal_name=a.signal_name,
            input=a.input,
            control=a.control,
            child_workflow_only=a.child_workflow_only,
            header=a.header,
        ),
    )
    _external(t, event.event_id, "signal", namespace, a.execution.workflow_id, a.execution.run_id, a.child_workflow_only)


def request_cancel_external(t: Transition, a: cmd.RequestCancelExternalWorkflowExecutionCommandAttributes, completed_id: int) -> None:
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_ATTRIBUTES
    s = t.state
    check_id(a.workflow_id, "WorkflowId", bad)
    check_pending(t.pending_limits, "cancels", sum(r.kind == "cancel" for r in s.external_requests.values()))
    namespace = a.namespace or s.namespace
    event = t.append(
        E.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
        h.RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(
            workflow_task_completed_event_id=completed_id,
            namespace=namespace,
            namespace_id=s.namespace_id if namespace == s.namespace else "",
            workflow_execution=WorkflowExecution(workflow_id=a.workflow_id, run_id=a.run_id),
            control=a.control,
            child_workflow_only=a.child_workflow_only,
            reason=a.reason,
        ),
    )
    _external(t, event.event_id, "cancel", namespace, a.workflow_id, a.run_id, a.child_workflow_only)


def _external(t: Transition, initiated_id: int, kind: str, namespace: str, workflow_id: str, run_id: str, child_only: bool) -> None:
    t.state.external_requests[initiated_id] = ExternalRequest(initiated_id, kind, namespace, workflow_id, run_id, child_only)
    t.transfers.append(TransferSpec(TransferKind(f"{kind}_external"), {"initiated_event_id": initiated_id}))


# -- outcomes reported by the engine --------------------------------------------------------


def pending_child(t: Transition, initiated_id: int) -> ChildInfo:
    c = t.state.children.get(initiated_id)
    if not t.state.running or c is None:
        raise StaleTask("child is no longer pending")
    return c


def child_started(t: Transition, initiated_id: int, run_id: str, header: Header | None = None) -> None:
    _record_started(t, initiated_id, run_id, header)
    t.wft_needed = True
    t.finish()


def _record_started(t: Transition, initiated_id: int, run_id: str, header: Header | None = None) -> None:
    s = t.state
    c = pending_child(t, initiated_id)
    if c.run_id:
        raise StaleTask("child start already recorded")
    c.run_id = run_id
    t.append(
        E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
        h.ChildWorkflowExecutionStartedEventAttributes(
            namespace=c.namespace,
            namespace_id=s.namespace_id if c.namespace == s.namespace else "",
            initiated_event_id=initiated_id,
            workflow_execution=WorkflowExecution(workflow_id=c.workflow_id, run_id=run_id),
            workflow_type=WorkflowType(name=c.workflow_type),
            header=header,
        ),
        bufferable=True,
    )


def child_start_failed(t: Transition, initiated_id: int, cause: StartChildWorkflowExecutionFailedCause.ValueType) -> None:
    """The child could not be started. Temporal 1.32 leaves the event's
    workflow_task_completed_event_id unset (0), and so does this."""
    s = t.state
    c = pending_child(t, initiated_id)
    if c.run_id:
        raise StaleTask("child already started")
    del s.children[initiated_id]
    t.deliver(
        E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED,
        h.StartChildWorkflowExecutionFailedEventAttributes(
            namespace=c.namespace,
            namespace_id=s.namespace_id if c.namespace == s.namespace else "",
            workflow_id=c.workflow_id,
            workflow_type=WorkflowType(name=c.workflow_type),
            cause=cause,
            initiated_event_id=initiated_id,
        ),
    )


def child_closed(t: Transition, initiated_id: int, child_run_id: str, close_event: HistoryEvent) -> None:
    """The child's run chain ended with ``close_event``; a start not yet recorded is recorded first."""
    s = t.state
    c = pending_child(t, initiated_id)
    if not c.run_id:
        _record_started(t, initiated_id, child_run_id)
    event_type = _CLOSE_TO_PARENT_EVENT.get(close_event.event_type)
    if event_type is None:
        raise StaleTask("not a closing event")
    del s.children[initiated_id]
    common = _ChildFields(
        namespace=c.namespace,
        namespace_id=s.namespace_id if c.namespace == s.namespace else "",
        workflow_execution=WorkflowExecution(workflow_id=c.workflow_id, run_id=c.run_id),
        workflow_type=WorkflowType(name=c.workflow_type),
        initiated_event_id=initiated_id,
        started_event_id=c.started_event_id,
    )
    attrs: Message
    if event_type == E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
        attrs = h.ChildWorkflowExecutionCompletedEventAttributes(
            result=close_event.workflow_execution_completed_event_attributes.result, **common
        )
    elif event_type == E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
        src = close_event.workflow_execution_failed_event_attributes
        attrs = h.ChildWorkflowExecutionFailedEventAttributes(failure=src.failure, retry_state=src.retry_state, **common)
    elif event_type == E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED:
        attrs = h.ChildWorkflowExecutionCanceledEventAttributes(
            details=close_event.workflow_execution_canceled_event_attributes.details, **common
        )
    elif event_type == E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT:
        attrs = h.ChildWorkflowExecutionTimedOutEventAttributes(
            retry_state=close_event.workflow_execution_timed_out_event_attributes.retry_state, **common
        )
    else:
        attrs = h.ChildWorkflowExecutionTerminatedEventAttributes(**common)
    t.deliver(event_type, attrs)


def pending_external(t: Transition, initiated_id: int) -> ExternalRequest:
    r = t.state.external_requests.get(initiated_id)
    if not t.state.running or r is None:
        raise StaleTask("external request is no longer pending")
    return r


def external_done(t: Transition, initiated_id: int, failed_cause: int, completed_id: int) -> None:
    """Record the outcome of a signal/cancel request; ``failed_cause`` 0 means it reached the target,
    else it is a ``SignalCause`` or a ``CancelCause`` (as the request's kind)."""
    s = t.state
    r = pending_external(t, initiated_id)
    del s.external_requests[initiated_id]
    common = _ExternalFields(
        namespace=r.namespace,
        namespace_id=s.namespace_id if r.namespace == s.namespace else "",
        workflow_execution=WorkflowExecution(workflow_id=r.workflow_id, run_id=r.run_id),
        initiated_event_id=initiated_id,
    )
    if r.kind == "signal":
        if not failed_cause:
            t.deliver(E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED, h.ExternalWorkflowExecutionSignaledEventAttributes(**common))
        else:
            t.deliver(
                E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
                h.SignalExternalWorkflowExecutionFailedEventAttributes(
                    cause=SignalCause.ValueType(failed_cause), workflow_task_completed_event_id=completed_id, **common
                ),
            )
    elif not failed_cause:
        t.deliver(
            E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
            h.ExternalWorkflowExecutionCancelRequestedEventAttributes(**common),
        )
    else:
        t.deliver(
            E.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
            h.RequestCancelExternalWorkflowExecutionFailedEventAttributes(
                cause=CancelCause.ValueType(failed_cause), workflow_task_completed_event_id=completed_id, **common
            ),
        )


NOT_FOUND_CAUSE = {
    "signal": SignalCause.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND,
    "cancel": CancelCause.CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND,
}
NAMESPACE_NOT_FOUND_CAUSE = {
    "signal": SignalCause.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_NAMESPACE_NOT_FOUND,
    "cancel": CancelCause.CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_NAMESPACE_NOT_FOUND,
}
