"""Property tests: random operation sequences mixing children and external signal/cancel requests
with everything else a run does keep the history well formed."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.api.command.v1 import (
    Command,
    RequestCancelExternalWorkflowExecutionCommandAttributes,
    SignalExternalWorkflowExecutionCommandAttributes,
    StartChildWorkflowExecutionCommandAttributes,
)
from temporalio.api.common.v1 import WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import CommandType as C
from temporalio.api.enums.v1 import EventType as E
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.history.v1 import message_pb2 as h
from temporalio.api.workflowservice.v1 import RespondWorkflowTaskCompletedRequest
from test_properties import COMPLETE, FAST_PHASES, OPS, PAYLOADS, Driver, check_history, step

from odin.history import children, commands
from odin.history.events import attributes_of
from odin.history.machine import CHILD_OUTCOMES, wft_token

CHILD_IDS = ["c1", "c2", "c3"]
CHILD_OPS = ["complete_with_children"] * 6 + ["child_started"] * 4 + ["child_closed"] * 4 + [
    "child_start_failed",
    "external_done",
    "external_done",
]

_CLOSE_EVENTS = [
    (E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, "workflow_execution_completed_event_attributes", h.WorkflowExecutionCompletedEventAttributes(result=PAYLOADS)),
    (E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED, "workflow_execution_failed_event_attributes", h.WorkflowExecutionFailedEventAttributes()),
    (E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED, "workflow_execution_canceled_event_attributes", h.WorkflowExecutionCanceledEventAttributes()),
    (E.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT, "workflow_execution_timed_out_event_attributes", h.WorkflowExecutionTimedOutEventAttributes()),
    (E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, "workflow_execution_terminated_event_attributes", h.WorkflowExecutionTerminatedEventAttributes()),
]


def _close_event(i: int) -> HistoryEvent:
    event_type, field, attrs = _CLOSE_EVENTS[i]
    event = HistoryEvent(event_id=9, event_type=event_type)
    getattr(event, field).CopyFrom(attrs)
    return event


def _child_command(workflow_id: str) -> Command:
    return Command(
        command_type=C.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION,
        start_child_workflow_execution_command_attributes=StartChildWorkflowExecutionCommandAttributes(
            workflow_id=workflow_id, workflow_type=WorkflowType(name="Kid")
        ),
    )


SIGNAL_EXTERNAL = Command(
    command_type=C.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION,
    signal_external_workflow_execution_command_attributes=SignalExternalWorkflowExecutionCommandAttributes(
        execution=WorkflowExecution(workflow_id="other"), signal_name="go"
    ),
)
CANCEL_EXTERNAL = Command(
    command_type=C.COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION,
    request_cancel_external_workflow_execution_command_attributes=RequestCancelExternalWorkflowExecutionCommandAttributes(
        workflow_id="other"
    ),
)


def child_step(driver: Driver, data) -> None:
    s = driver.state
    if data.draw(st.booleans(), label="child op?"):
        step(driver, data, OPS)
        return
    op = data.draw(st.sampled_from(CHILD_OPS), label="child op")
    if op == "complete_with_children":
        if s.wft is None or not s.wft.started_event_id:
            return
        pending = {c.workflow_id for c in s.children.values()}
        cmds = []
        for _ in range(data.draw(st.integers(1, 3), label="n commands")):
            kind = data.draw(st.sampled_from(["child", "child", "signal", "cancel", "complete"]), label="kind")
            if kind == "child":
                free = [c for c in CHILD_IDS if c not in pending]
                # Now and then a duplicate id: the task must fail and nothing else change.
                wid = data.draw(st.sampled_from(free or CHILD_IDS), label="child id")
                pending.add(wid)
                cmds.append(_child_command(wid))
            elif kind == "signal":
                cmds.append(SIGNAL_EXTERNAL)
            elif kind == "cancel":
                cmds.append(CANCEL_EXTERNAL)
            else:
                cmds.append(COMPLETE)
        token = wft_token(s, s.wft)
        req = RespondWorkflowTaskCompletedRequest(commands=cmds, identity="w")
        driver.apply(lambda t: commands.complete_workflow_task(t, token, req))
        return
    if op == "external_done":
        if not s.external_requests:
            return
        iid = data.draw(st.sampled_from(sorted(s.external_requests)), label="request")
        cause = data.draw(st.sampled_from([0, children.NOT_FOUND_CAUSE[s.external_requests[iid].kind]]), label="cause")
        driver.apply(lambda t: children.external_done(t, iid, cause, 4))
        return
    # Child outcomes: mostly for a pending child, sometimes for an id that no longer waits.
    iids = sorted(s.children) or [2]
    iid = data.draw(st.sampled_from(iids + [iids[-1] + 1000]), label="initiated")
    if op == "child_started":
        driver.apply(lambda t: children.child_started(t, iid, f"run-{iid}"))
    elif op == "child_start_failed":
        driver.apply(lambda t: children.child_start_failed(t, iid, 1))
    else:
        close = _close_event(data.draw(st.integers(0, len(_CLOSE_EVENTS) - 1), label="close"))
        driver.apply(lambda t: children.child_closed(t, iid, f"run-{iid}", close))


def check_children(history) -> None:
    by_id = {e.event_id: e for e in history}
    started: dict[int, int] = {}
    closed: set[int] = set()
    failed: set[int] = set()
    external_outcomes: set[int] = set()
    for e in history:
        if e.event_type == E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            iid = e.child_workflow_execution_started_event_attributes.initiated_event_id
            assert by_id[iid].event_type == E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
            assert iid not in started and iid not in failed, "child started twice or after its start failed"
            started[iid] = e.event_id
        elif e.event_type == E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED:
            iid = e.start_child_workflow_execution_failed_event_attributes.initiated_event_id
            assert by_id[iid].event_type == E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
            assert iid not in started and iid not in failed
            failed.add(iid)
        elif e.event_type in CHILD_OUTCOMES:
            a = attributes_of(e)
            assert a.initiated_event_id in started, "child closed before it started"
            assert a.started_event_id == started[a.initiated_event_id]
            assert a.initiated_event_id not in closed, "child closed twice"
            closed.add(a.initiated_event_id)
        elif e.event_type in (
            E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED,
            E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
            E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
            E.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
        ):
            iid = attributes_of(e).initiated_event_id
            expected = (
                E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
                if e.event_type
                in (E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED, E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED)
                else E.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
            )
            assert by_id[iid].event_type == expected
            assert iid not in external_outcomes, "external request answered twice"
            external_outcomes.add(iid)


@settings(max_examples=150, deadline=None, phases=FAST_PHASES, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), steps=st.integers(20, 100))
def test_children_and_external_requests_keep_history_well_formed(data, steps):
    driver = Driver(0)
    for _ in range(steps):
        child_step(driver, data)
        s = driver.state
        if not s.running:
            assert not s.children and not s.external_requests
            if data.draw(st.booleans(), label="stop after close"):
                break
        # Every pending child or request has its initiated event in history.
        for iid in list(s.children) + list(s.external_requests):
            assert driver.history[iid - 1].event_type in (
                E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
                E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
                E.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
            )
        for c in s.children.values():
            if c.started_event_id:
                assert driver.history[c.started_event_id - 1].event_type == E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED
    check_history(driver.history)
    check_children(driver.history)
