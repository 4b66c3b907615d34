"""Workflow updates (pure): admission, delivery in a workflow task, and the worker's protocol
messages (acceptance, rejection, response) turned into events.

An update is admitted into mutable state (durable, so any server process can answer for it) and
a workflow task is scheduled to carry it. The task's poll response holds the request as a
protocol message; the completion's messages accept or reject it and later respond. Acceptance
writes WorkflowExecutionUpdateAccepted, the response WorkflowExecutionUpdateCompleted; a rejection
writes nothing. When the run closes, accepted updates complete with a server failure (no event is
written) and updates not yet accepted are aborted: for good, or, when a successor carries the chain
on (continue-as-new, retry, cron), with an error that tells the caller to try again (the retry goes
to the successor). Outcomes and abort marks are kept for late and repeated callers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from google.protobuf.any_pb2 import Any as AnyProto
from temporalio.api.enums.v1 import EventType as E
from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage as Stage
from temporalio.api.enums.v1 import WorkflowTaskFailedCause as Cause
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.history.v1 import message_pb2 as h
from temporalio.api.protocol.v1 import Message
from temporalio.api.update.v1 import Acceptance, Outcome, Rejection, Request, Response

from odin.errors import NotFound, ResourceExhausted
from odin.history.state import MutableState, UpdateInfo, WorkflowTaskInfo, pack, unpack
from odin.history.validation import BadCommand, check_size

if TYPE_CHECKING:
    from odin.history.machine import Transition

ADMITTED, SENT, ACCEPTED, COMPLETED = "admitted", "sent", "accepted", "completed"
# Ended without an outcome; ``UpdateInfo.aborted`` says why (one of the reasons below).
ABORTED = "aborted"
CLOSED, CONTINUED, TASK_FAILED = "closed", "continued", "task_failed"
STAGES = {
    ADMITTED: Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED,
    SENT: Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED,
    ACCEPTED: Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED,
    COMPLETED: Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED,
}
# Completed outcomes kept per run for repeated and late callers.
MAX_COMPLETED = 500
MAX_OPEN = 50
BAD = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE
NOT_HANDLED = "Workflow Update is rejected because it wasn't processed by worker. Probably, Workflow Update is not supported by the worker."
COMPLETED_BEFORE = "Workflow Update failed because the Workflow completed before the Update completed."
# What callers of an aborted update are told (Temporal's wording), by reason.
ABORT_MESSAGES = {
    CLOSED: "workflow update was aborted by closing workflow",
    CONTINUED: "workflow operation can not be applied because workflow is closing",
    TASK_FAILED: "Unable to perform workflow execution update due to unexpected workflow task failure.",
}


def server_failure(message: str, failure_type: str) -> Failure:
    """An update failure the server makes up (the worker never answered)."""
    return Failure(
        message=message,
        source="Server",
        application_failure_info=ApplicationFailureInfo(type=failure_type, non_retryable=True),
    )


def admit(t: Transition, request: Request) -> UpdateInfo:
    """Admit an update, or return the one already known by that id (de-duplication)."""
    s = t.state
    uid = request.meta.update_id
    known = s.updates.get(uid)
    if known is not None and not (s.running and _forgotten(known)):
        return known
    if not s.running:
        raise NotFound("workflow execution already completed")
    if sum(u.stage not in (COMPLETED, ABORTED) for u in s.updates.values()) >= MAX_OPEN:
        raise ResourceExhausted("Too many updates in flight for this workflow execution.")
    s.update_seq += 1
    u = UpdateInfo(update_id=uid, stage=ADMITTED, seq=s.update_seq, request=pack(request))
    s.updates[uid] = u
    t.wft_needed = True
    t.finish()
    return u


def _forgotten(u: UpdateInfo) -> bool:
    """An update that left no trace in the history, so a new request with its id is a new update
    (as in Temporal): one rejected (never accepted), or one failed with its workflow task."""
    return (u.stage == COMPLETED and not u.accepted_event_id) or (u.stage == ABORTED and u.aborted == TASK_FAILED)


def has_admitted(s: MutableState) -> bool:
    return any(u.stage == ADMITTED for u in s.updates.values())


def send(s: MutableState, w: WorkflowTaskInfo) -> None:
    """A workflow task starts: it carries every admitted update."""
    for u in s.updates.values():
        if u.stage == ADMITTED:
            u.stage, u.sent_in = SENT, w.scheduled_event_id


def unsend(s: MutableState) -> None:
    """The carrying task failed or timed out: its updates go out again with the next one."""
    for u in s.updates.values():
        if u.stage == SENT:
            u.stage, u.sent_in = ADMITTED, 0


def messages_for(s: MutableState, w: WorkflowTaskInfo) -> list[Message]:
    out = []
    for u in sorted(s.updates.values(), key=lambda u: u.seq):
        if u.stage == SENT and u.sent_in == w.scheduled_event_id and not u.admitted_event_id:
            request = unpack(Request, u.request)
            assert request is not None  # a sent update still holds its request
            body = AnyProto()
            body.Pack(request)
            out.append(
                Message(
                    id=f"{u.update_id}/request",
                    protocol_instance_id=u.update_id,
                    event_id=w.started_event_id - 1,
                    body=body,
                )
            )
    return out


def _complete(s: MutableState, u: UpdateInfo, outcome: Outcome) -> None:
    u.stage, u.outcome, u.request = COMPLETED, pack(outcome), None
    _forget_old(s)


def _abort(s: MutableState, u: UpdateInfo, reason: str) -> None:
    u.stage, u.aborted, u.request, u.sent_in = ABORTED, reason, None, 0
    _forget_old(s)


def _forget_old(s: MutableState) -> None:
    done = sorted((x for x in s.updates.values() if x.stage in (COMPLETED, ABORTED)), key=lambda x: x.seq)
    for old in done[:-MAX_COMPLETED]:
        del s.updates[old.update_id]


def apply_message(t: Transition, message: Message, completed_id: int) -> None:
    s = t.state
    kind = message.body.TypeName()
    check_size(t, message.body.ByteSize(), f"protocol message {kind}", f"Message type {kind} exceeds size limit.", BAD)
    u = s.updates.get(message.protocol_instance_id)
    if u is None:
        raise BadCommand(BAD, f"Protocol message {message.id} names an unknown update {message.protocol_instance_id!r}.")
    body = message.body
    if body.Is(Acceptance.DESCRIPTOR):
        acceptance = Acceptance()
        body.Unpack(acceptance)
        if u.stage != SENT:
            raise BadCommand(BAD, f"Update {u.update_id} cannot be accepted: it is {u.stage}.")
        request = acceptance.accepted_request if acceptance.HasField("accepted_request") else unpack(Request, u.request)
        event = t.append(
            E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
            h.WorkflowExecutionUpdateAcceptedEventAttributes(
                protocol_instance_id=u.update_id,
                accepted_request_message_id=acceptance.accepted_request_message_id,
                accepted_request_sequencing_event_id=acceptance.accepted_request_sequencing_event_id,
                # Not repeated when the history holds the request already (as Temporal does).
                accepted_request=None if u.admitted_event_id else request,
            ),
        )
        u.stage, u.accepted_event_id = ACCEPTED, event.event_id
    elif body.Is(Rejection.DESCRIPTOR):
        rejection = Rejection()
        body.Unpack(rejection)
        if u.stage != SENT:
            raise BadCommand(BAD, f"Update {u.update_id} cannot be rejected: it is {u.stage}.")
        _complete(s, u, Outcome(failure=rejection.failure))
    elif body.Is(Response.DESCRIPTOR):
        response = Response()
        body.Unpack(response)
        if u.stage != ACCEPTED:
            raise BadCommand(BAD, f"Update {u.update_id} cannot complete: it is {u.stage}.")
        t.append(
            E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
            h.WorkflowExecutionUpdateCompletedEventAttributes(
                meta=response.meta, accepted_event_id=u.accepted_event_id, outcome=response.outcome
            ),
        )
        _complete(s, u, response.outcome)
    else:
        raise BadCommand(BAD, f"Protocol message {message.id} has an unknown body {body.type_url}.")


def finish_task_messages(t: Transition, w: WorkflowTaskInfo, messages: dict[str, Message], used: set[str], completed_id: int) -> None:
    """After a completion's commands: apply messages no command positioned (rejections), then
    reject the updates this task carried that the worker neither accepted nor rejected."""
    for message_id, message in messages.items():
        if message_id not in used:
            apply_message(t, message, completed_id)
    for u in list(t.state.updates.values()):
        if u.stage == SENT and u.sent_in == w.scheduled_event_id:
            _complete(t.state, u, Outcome(failure=server_failure(NOT_HANDLED, "UnprocessedUpdate")))


def abort_sent(s: MutableState, w: WorkflowTaskInfo) -> None:
    """The server failed the task carrying these updates (a bad command or message): the worker
    saw them, so they are not sent again; their callers are told the task failed."""
    for u in list(s.updates.values()):
        if u.stage == SENT and u.sent_in == w.scheduled_event_id:
            _abort(s, u, TASK_FAILED)


def close_open(s: MutableState, continued: bool) -> None:
    """The run closed. Accepted updates complete with a server failure (their callers know they
    were accepted and expect an outcome); updates not yet accepted are aborted."""
    for u in list(s.updates.values()):
        if u.stage == ACCEPTED:
            _complete(s, u, Outcome(failure=server_failure(COMPLETED_BEFORE, "AcceptedUpdateCompletedWorkflow")))
            u.completed_by_close = True
        elif u.stage in (ADMITTED, SENT):
            _abort(s, u, CONTINUED if continued else CLOSED)


def attachable(s: MutableState, update_id: str) -> bool:
    """Whether update-with-start joins the run's update with this id instead of starting: any
    update of a running run, and an update of a closed run that the worker accepted and completed
    (the history holds its outcome; a rejection leaves none)."""
    u = s.updates.get(update_id)
    if u is None:
        return False
    return s.running or (u.stage == COMPLETED and bool(u.accepted_event_id) and not u.completed_by_close)
