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
from test_machine import Run, complete_workflow, names, payloads

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
    assert run.state.updates["u1"].stage == updates.ADMITTED  # rolled back, to be sent again


def test_open_updates_are_dropped_when_the_run_closes_and_new_ones_refused():
    run = Run()
    run.task()
    run.step(lambda t: updates.admit(t, request("open")))
    run.start_wft()
    run.complete(complete_workflow())
    assert run.state.updates == {}
    with pytest.raises(NotFound):
        run.step(lambda t: updates.admit(t, request("late")))
