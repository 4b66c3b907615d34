"""Pure state-machine tests of workflow updates."""

from __future__ import annotations

import pytest
from google.protobuf.any_pb2 import Any as AnyProto
from temporalio.api.command.v1 import Command, ProtocolMessageCommandAttributes
from temporalio.api.enums.v1 import CommandType as C
from temporalio.api.enums.v1 import WorkflowTaskFailedCause as Cause
from temporalio.api.failure.v1 import Failure
from temporalio.api.protocol.v1 import Message
from temporalio.api.update.v1 import Acceptance, Input, Meta, Outcome, Rejection, Request, Response
from test_machine import Run, complete_workflow, names, payloads, start_request

from odin.errors import InvalidArgument, NotFound
from odin.history import updates
from odin.history.state import unpack


def request(uid: str = "u1") -> Request:
    return Request(meta=Meta(update_id=uid), input=Input(name="add"))


def message(uid: str, kind: str, body) -> Message:
    packed = AnyProto()
    packed.Pack(body)
    return Message(id=f"{uid}/{kind}", protocol_instance_id=uid, body=packed)


def protocol(uid: str, kind: str) -> Command:
    return Command(
        command_type=C.COMMAND_TYPE_PROTOCOL_MESSAGE,
        protocol_message_command_attributes=ProtocolMessageCommandAttributes(message_id=f"{uid}/{kind}"),
    )


def test_admit_schedules_a_task_and_deduplicates():
    run = Run()
    run.task()  # first task done; nothing pending
    assert run.state.wft is None
    run.step(lambda t: updates.admit(t, request()))
    assert run.state.wft is not None and run.state.updates["u1"].stage == updates.ADMITTED
    run.step(lambda t: updates.admit(t, request()))
    assert len(run.state.updates) == 1
    run.start_wft()
    msgs = updates.messages_for(run.state, run.state.wft)
    assert [m.id for m in msgs] == ["u1/request"]
    assert msgs[0].event_id == run.state.wft.started_event_id - 1


def test_accept_and_complete_write_events_reject_writes_none():
    run = Run()
    run.task()
    for uid in ("u1", "u2"):
        run.step(lambda t, uid=uid: updates.admit(t, request(uid)))
    run.start_wft()
    t = run.complete(
        protocol("u1", "accept"),
        protocol("u1", "complete"),
        messages=[
            message("u1", "accept", Acceptance(accepted_request_message_id="u1/request", accepted_request=request("u1"))),
            message("u1", "complete", Response(meta=Meta(update_id="u1"), outcome=Outcome(success=payloads("ok")))),
            message("u2", "reject", Rejection(rejected_request_message_id="u2/request", failure=Failure(message="no"))),
        ],
    )
    assert names(t.events) == ["WORKFLOW_TASK_COMPLETED", "WORKFLOW_EXECUTION_UPDATE_ACCEPTED", "WORKFLOW_EXECUTION_UPDATE_COMPLETED"]
    assert t.events[2].workflow_execution_update_completed_event_attributes.accepted_event_id == t.events[1].event_id
    assert unpack(Outcome, run.state.updates["u1"].outcome).success == payloads("ok")
    assert unpack(Outcome, run.state.updates["u2"].outcome).failure.message == "no"
    assert run.state.wft is None


def test_update_the_worker_ignored_is_rejected_by_the_server():
    run = Run()
    run.task()
    run.step(lambda t: updates.admit(t, request()))
    run.start_wft()
    run.complete()
    u = run.state.updates["u1"]
    assert u.stage == updates.COMPLETED
    assert unpack(Outcome, u.outcome).failure.message == updates.NOT_HANDLED


def test_update_admitted_during_a_task_goes_out_with_the_next_one():
    run = Run()
    run.start_wft()
    run.step(lambda t: updates.admit(t, request()))
    assert run.state.updates["u1"].stage == updates.ADMITTED
    run.complete()
    assert run.state.wft is not None  # scheduled for the update
    run.start_wft()
    assert run.state.updates["u1"].stage == updates.SENT


def test_failed_task_sends_its_updates_again():
    run = Run()
    run.task()
    run.step(lambda t: updates.admit(t, request()))
    run.start_wft()
    token = run.token()

    def fail(t):
        t.check_workflow_task(token)
        t.fail_workflow_task(Cause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE, Failure(message="x"))

    run.step(fail)
    assert run.state.updates["u1"].stage == updates.ADMITTED
    run.start_wft()
    assert [m.protocol_instance_id for m in updates.messages_for(run.state, run.state.wft)] == ["u1"]


def test_bad_messages_fail_the_task():
    run = Run()
    run.task()
    run.step(lambda t: updates.admit(t, request()))
    run.start_wft()
    t = run.complete(
        protocol("u1", "complete"),
        messages=[message("u1", "complete", Response(meta=Meta(update_id="u1"), outcome=Outcome(success=payloads("x"))))],
    )
    assert isinstance(t.deferred_error, InvalidArgument)
    assert run.history[-1].workflow_task_failed_event_attributes.cause == (
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE
    )
    # The worker saw the update: it fails with the task (Temporal's workflowTaskFailErr) rather
    # than going out again, and a new request with its id is a new update.
    assert run.state.updates["u1"].stage == updates.ABORTED
    assert run.state.updates["u1"].aborted == updates.TASK_FAILED
    run.step(lambda t: updates.admit(t, request()))
    assert run.state.updates["u1"].stage == updates.ADMITTED


def _accepted_and_admitted(run: Run) -> None:
    """Update "acc" accepted by the worker, then "adm" admitted while the next task (for a signal) runs."""
    run.task()
    run.step(lambda t: updates.admit(t, request("acc")))
    run.start_wft()
    run.complete(
        protocol("acc", "accept"),
        messages=[message("acc", "accept", Acceptance(accepted_request_message_id="acc/request", accepted_request=request("acc")))],
    )
    run.signal()
    run.start_wft()
    run.step(lambda t: updates.admit(t, request("adm")))
    assert [u.stage for u in run.state.updates.values()] == [updates.ACCEPTED, updates.ADMITTED]


def _fail_workflow() -> Command:
    from temporalio.api.command.v1 import FailWorkflowExecutionCommandAttributes

    return Command(
        command_type=C.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION,
        fail_workflow_execution_command_attributes=FailWorkflowExecutionCommandAttributes(failure=Failure(message="x")),
    )


@pytest.mark.parametrize("close", ["complete", "fail", "terminate"])
def test_closing_fails_accepted_updates_and_aborts_the_rest(close):
    run = Run()
    _accepted_and_admitted(run)
    if close == "terminate":
        t = run.terminate()
    else:
        t = run.complete(complete_workflow() if close == "complete" else _fail_workflow())
    assert not any(n.startswith("WORKFLOW_EXECUTION_UPDATE") for n in names(t.events))  # no event for either
    accepted, admitted = run.state.updates["acc"], run.state.updates["adm"]
    assert accepted.stage == updates.COMPLETED
    failure = unpack(Outcome, accepted.outcome).failure
    assert failure.message == "Workflow Update failed because the Workflow completed before the Update completed."
    assert failure.source == "Server"
    assert failure.application_failure_info.type == "AcceptedUpdateCompletedWorkflow"
    assert failure.application_failure_info.non_retryable
    assert (admitted.stage, admitted.aborted) == (updates.ABORTED, updates.CLOSED)
    # A known id still finds its update; a new one is refused.
    assert run.step(lambda t: updates.admit(t, request("acc"))).state.updates["acc"] is not None
    with pytest.raises(NotFound):
        run.step(lambda t: updates.admit(t, request("late")))


def test_continue_as_new_aborts_updates_not_yet_accepted_for_a_retry():
    # Temporal answers their callers RESOURCE_EXHAUSTED ("workflow is closing"); SDKs send them
    # again, and the new run takes them then.
    from temporalio.api.command.v1 import ContinueAsNewWorkflowExecutionCommandAttributes

    run = Run()
    _accepted_and_admitted(run)
    t = run.complete(
        Command(
            command_type=C.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION,
            continue_as_new_workflow_execution_command_attributes=ContinueAsNewWorkflowExecutionCommandAttributes(),
        )
    )
    assert unpack(Outcome, run.state.updates["acc"].outcome).failure.application_failure_info.type == (
        "AcceptedUpdateCompletedWorkflow"
    )
    assert (run.state.updates["adm"].stage, run.state.updates["adm"].aborted) == (updates.ABORTED, updates.CONTINUED)
    [successor] = t.new_runs
    assert successor.state.updates == {}


def test_a_retried_run_aborts_its_updates_not_yet_accepted_for_a_retry():
    from temporalio.api.common.v1 import RetryPolicy

    run = Run(start_request(retry_policy=RetryPolicy(maximum_attempts=3)))
    _accepted_and_admitted(run)
    t = run.complete(_fail_workflow())
    assert t.successor is not None
    assert run.state.updates["adm"].aborted == updates.CONTINUED


def test_an_update_the_worker_ignored_is_rejected_with_temporals_failure():
    run = Run()
    run.task()
    run.step(lambda t: updates.admit(t, request()))
    run.start_wft()
    run.complete()
    failure = unpack(Outcome, run.state.updates["u1"].outcome).failure
    assert (failure.source, failure.application_failure_info.type) == ("Server", "UnprocessedUpdate")


def test_update_with_start_attaches_to_updates_the_worker_completed_or_a_running_run_knows():
    run = Run()
    _accepted_and_admitted(run)
    assert updates.attachable(run.state, "acc") and updates.attachable(run.state, "adm")
    assert not updates.attachable(run.state, "unknown")
    run.complete(
        protocol("acc", "complete"),
        messages=[message("acc", "complete", Response(meta=Meta(update_id="acc"), outcome=Outcome(success=payloads("5"))))],
    )
    run.step(lambda t: updates.admit(t, request("cut")))
    run.start_wft()
    run.complete(
        protocol("cut", "accept"),
        messages=[message("cut", "accept", Acceptance(accepted_request_message_id="cut/request", accepted_request=request("cut")))],
    )
    run.terminate()
    # Closed: only the update the worker accepted and completed is joined; not one the close cut
    # short (accepted, then failed by the server), nor one rejected (the worker never handled "adm").
    assert updates.attachable(run.state, "acc")
    assert run.state.updates["cut"].stage == updates.COMPLETED and not updates.attachable(run.state, "cut")
    assert run.state.updates["adm"].stage == updates.COMPLETED and not updates.attachable(run.state, "adm")


def test_a_rejected_update_id_can_be_used_again_while_the_run_runs():
    # Temporal keeps no trace of a rejection: the same id sent again is a new update.
    run = Run()
    run.task()
    run.step(lambda t: updates.admit(t, request()))
    run.start_wft()
    run.complete(messages=[message("u1", "reject", Rejection(rejected_request_message_id="u1/request", failure=Failure(message="no")))])
    assert unpack(Outcome, run.state.updates["u1"].outcome).failure.message == "no"  # for late pollers
    run.step(lambda t: updates.admit(t, request()))
    assert run.state.updates["u1"].stage == updates.ADMITTED and run.state.wft is not None
