"""Pure state-machine tests for children, external requests, cron and workflow retries."""

from __future__ import annotations

import pytest
from temporalio.api.command.v1 import (
    Command,
    FailWorkflowExecutionCommandAttributes,
    RequestCancelExternalWorkflowExecutionCommandAttributes,
    SignalExternalWorkflowExecutionCommandAttributes,
    StartChildWorkflowExecutionCommandAttributes,
)
from temporalio.api.common.v1 import RetryPolicy, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import CommandType as C
from temporalio.api.enums.v1 import EventType as E
from temporalio.api.enums.v1 import ParentClosePolicy, RetryState
from temporalio.api.enums.v1 import WorkflowExecutionStatus as Status
from temporalio.api.enums.v1 import WorkflowTaskFailedCause as Cause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.history.v1 import message_pb2 as h
from test_machine import Run, app_failure, at, complete_workflow, names, payloads, start_request

from odin.errors import InvalidArgument
from odin.history import chains, children, cron
from odin.history.machine import StaleTask
from odin.history.start import ParentInfo, new_run


def start_child(workflow_id: str = "child-1", policy: int = 0, **fields) -> Command:
    return Command(
        command_type=C.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION,
        start_child_workflow_execution_command_attributes=StartChildWorkflowExecutionCommandAttributes(
            workflow_id=workflow_id, workflow_type=WorkflowType(name="Kid"), parent_close_policy=policy, **fields
        ),
    )


def child_close_event(result: str = "r") -> HistoryEvent:
    return HistoryEvent(
        event_id=5,
        event_type=E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        workflow_execution_completed_event_attributes=h.WorkflowExecutionCompletedEventAttributes(result=payloads(result)),
    )


def test_start_child_writes_initiated_and_queues_the_start():
    run = Run()
    t = run.task(start_child())
    assert names(t.events)[-1] == "START_CHILD_WORKFLOW_EXECUTION_INITIATED"
    initiated = t.events[-1]
    attrs = initiated.start_child_workflow_execution_initiated_event_attributes
    assert attrs.task_queue.name == "tq"  # inherited from the parent
    assert attrs.parent_close_policy == ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE  # the default
    assert [(x.kind, x.data) for x in t.transfers] == [("start_child", {"initiated_event_id": initiated.event_id})]
    assert run.state.children[initiated.event_id].workflow_id == "child-1"


def test_child_started_while_a_task_runs_is_buffered_and_its_id_reaches_the_close_event():
    run = Run()
    run.task(start_child())
    iid = next(iter(run.state.children))
    run.signal("wake")
    run.start_wft()
    run.step(lambda t: children.child_started(t, iid, "child-run"))
    run.step(lambda t: children.child_closed(t, iid, "child-run", child_close_event()))
    assert run.state.children == {}
    t = run.complete()  # the flush assigns ids to both buffered events
    started, closed = t.events[-3], t.events[-2]
    assert names([started, closed]) == ["CHILD_WORKFLOW_EXECUTION_STARTED", "CHILD_WORKFLOW_EXECUTION_COMPLETED"]
    assert closed.child_workflow_execution_completed_event_attributes.started_event_id == started.event_id
    assert names(t.events)[-1] == "WORKFLOW_TASK_SCHEDULED"


def test_child_close_before_its_start_was_recorded_records_both():
    run = Run()
    run.task(start_child())
    iid = next(iter(run.state.children))
    t = run.step(lambda t: children.child_closed(t, iid, "child-run", child_close_event()))
    assert names(t.events) == ["CHILD_WORKFLOW_EXECUTION_STARTED", "CHILD_WORKFLOW_EXECUTION_COMPLETED", "WORKFLOW_TASK_SCHEDULED"]
    assert t.events[1].child_workflow_execution_completed_event_attributes.started_event_id == t.events[0].event_id
    with pytest.raises(StaleTask):
        run.step(lambda t: children.child_started(t, iid, "child-run"))


def test_child_start_failure_and_children_with_a_pending_id():
    run = Run()
    run.task(start_child())
    iid = next(iter(run.state.children))
    t = run.step(lambda t: children.child_start_failed(t, iid, 1))
    assert names(t.events)[0] == "START_CHILD_WORKFLOW_EXECUTION_FAILED"
    assert t.events[0].start_child_workflow_execution_failed_event_attributes.cause == 1
    # A child id already pending, in a later task or twice in one, is not refused by the command
    # (as in Temporal): each start is initiated, and the one that finds the id taken fails later.
    run.task(start_child("c2"))
    run.signal("again")
    t = run.task(start_child("c2"), start_child("c2"))
    assert t.deferred_error is None
    assert names(t.events)[-2:] == ["START_CHILD_WORKFLOW_EXECUTION_INITIATED"] * 2
    assert [c.workflow_id for c in run.state.children.values()] == ["c2"] * 3
    assert [x.kind for x in t.transfers] == ["start_child", "start_child"]


def test_parent_close_applies_policies_to_started_children_only():
    run = Run()
    run.task(
        start_child("a", ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE),
        start_child("b", ParentClosePolicy.PARENT_CLOSE_POLICY_ABANDON),
        start_child("c", ParentClosePolicy.PARENT_CLOSE_POLICY_REQUEST_CANCEL),
        start_child("d"),
    )
    by_id = {c.workflow_id: iid for iid, c in run.state.children.items()}
    for wid in "abc":
        run.step(lambda t, wid=wid: children.child_started(t, by_id[wid], f"run-{wid}"))
    t = run.task(complete_workflow())
    policy = [x for x in t.transfers if x.kind == "parent_close_policy"]
    assert [(c["workflow_id"], c["policy"]) for c in policy[0].data["children"]] == [
        ("a", ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE),
        ("c", ParentClosePolicy.PARENT_CLOSE_POLICY_REQUEST_CANCEL),
    ]
    assert run.state.children == {}


def test_child_run_reports_to_its_parent_only_when_the_chain_ends():
    parent = ParentInfo("default", "ns-id", "parent", "parent-run", 5, "parent", "parent-run")
    t = new_run(namespace_id="ns-id", namespace="default", run_id="run-1", request=start_request(), now=at(0), parent=parent)
    started = t.events[0].workflow_execution_started_event_attributes
    assert started.parent_workflow_execution.workflow_id == "parent"
    assert started.parent_initiated_event_id == 5
    run = Run()
    run.state = t.state
    done = run.task(complete_workflow())
    [note] = [x for x in done.transfers if x.kind == "child_closed"]
    assert note.data["parent_run_id"] == "parent-run" and note.data["initiated_event_id"] == 5


def test_external_signal_and_cancel_commands_and_outcomes():
    run = Run()
    t = run.task(
        Command(
            command_type=C.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION,
            signal_external_workflow_execution_command_attributes=SignalExternalWorkflowExecutionCommandAttributes(
                execution=WorkflowExecution(workflow_id="other"), signal_name="go"
            ),
        ),
        Command(
            command_type=C.COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION,
            request_cancel_external_workflow_execution_command_attributes=RequestCancelExternalWorkflowExecutionCommandAttributes(
                workflow_id="other"
            ),
        ),
    )
    assert sorted(x.kind for x in t.transfers) == ["cancel_external", "signal_external"]
    signal_id, cancel_id = sorted(run.state.external_requests)
    ok = run.step(lambda t: children.external_done(t, signal_id, 0, 4))
    assert names(ok.events)[0] == "EXTERNAL_WORKFLOW_EXECUTION_SIGNALED"
    failed = run.step(lambda t: children.external_done(t, cancel_id, children.NOT_FOUND_CAUSE["cancel"], 4))
    assert names(failed.events)[0] == "REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED"
    with pytest.raises(StaleTask):
        run.step(lambda t: children.external_done(t, cancel_id, 0, 4))


def test_external_command_without_target_fails_the_task():
    run = Run()
    t = run.task(
        Command(
            command_type=C.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION,
            signal_external_workflow_execution_command_attributes=SignalExternalWorkflowExecutionCommandAttributes(
                signal_name="go"
            ),
        )
    )
    assert isinstance(t.deferred_error, InvalidArgument)
    assert run.state.external_requests == {}
    assert run.history[-1].workflow_task_failed_event_attributes.cause == (
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SIGNAL_WORKFLOW_EXECUTION_ATTRIBUTES
    )


def test_workflow_retry_names_a_successor_until_attempts_run_out():
    policy = RetryPolicy(maximum_attempts=2)
    run = Run(start_request(retry_policy=policy))
    fail = Command(
        command_type=C.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION,
        fail_workflow_execution_command_attributes=FailWorkflowExecutionCommandAttributes(failure=app_failure("x")),
    )
    t = run.task(fail)
    failed = t.events[-1].workflow_execution_failed_event_attributes
    assert failed.retry_state == RetryState.RETRY_STATE_IN_PROGRESS
    assert failed.new_execution_run_id == t.successor.run_id
    assert t.successor.attempt == 2 and t.successor.backoff == 1.0
    assert run.state.status == Status.WORKFLOW_EXECUTION_STATUS_FAILED
    nxt = chains.successor_run(t, run.history[0].workflow_execution_started_event_attributes, t.successor)
    assert nxt.state.attempt == 2 and nxt.state.first_wft_backoff
    retry_run = Run()
    retry_run.state = nxt.state
    retry_run.state.first_wft_backoff = False
    retry_run.step(lambda t: t.schedule_workflow_task())
    last = retry_run.task(fail)
    assert last.successor is None
    assert last.events[-1].workflow_execution_failed_event_attributes.retry_state == RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED


def test_cron_completion_names_a_successor_with_the_result():
    run = Run(start_request(cron_schedule="@every 60s"))
    assert run.state.first_wft_backoff  # the first run waits for its schedule too
    run.step(lambda t: t.first_workflow_task_due(), now=60)
    t = run.task(complete_workflow("r1"), now=61)
    assert t.successor.last_completion_result == payloads("r1")
    assert t.successor.backoff == pytest.approx(59.0)
    assert not [x for x in t.transfers if x.kind == "child_closed"]


@pytest.mark.parametrize("schedule", ["@every 1s", "@every 1h30m", "*/5 * * * *", "@daily", "0 12 * * MON"])
def test_cron_accepts(schedule):
    cron.validate(schedule)
    assert cron.backoff(schedule, 0.0, 1000.0) > 0


@pytest.mark.parametrize("schedule", ["", "@every", "@every 0s", "@every 5x", "61 * * * *", "* * *", "every day"])
def test_cron_rejects(schedule):
    with pytest.raises(cron.InvalidCronSchedule):
        cron.validate(schedule)
