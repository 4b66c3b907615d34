"""The reset run built by the pure core (``odin.history.reset``) from a run's history."""

from __future__ import annotations

import pytest
from builders import start_timer
from temporalio.api.common.v1 import Priority
from temporalio.api.enums.v1 import EventType as E
from temporalio.api.enums.v1 import ResetReapplyExcludeType as Exclude
from temporalio.api.enums.v1 import ResetReapplyType
from temporalio.api.enums.v1 import WorkflowTaskFailedCause as Cause
from temporalio.api.update.v1 import Acceptance, Outcome, Response
from temporalio.api.update.v1 import Meta as UpdateMeta
from test_machine import Run, at, complete_workflow, names, schedule_activity, start_request
from test_updates_machine import message, protocol, request

from odin.errors import InvalidArgument
from odin.history import reset, updates
from odin.history.state import MutableState
from odin.history.tasks import TimerKind, TransferKind

NEW = "00000000-0000-4000-8000-000000000002"
ALL = reset.Reapply()


def do_reset(run: Run, finish_event_id: int, *, later=None, reapply=ALL, now: float = 100.0, reason="why"):
    history = run.history
    return reset.new_run(
        MutableState.from_bytes(run.state.to_bytes()),
        history,
        finish_event_id=finish_event_id,
        new_run_id=NEW,
        reason=reason,
        request_id="reset-1",
        later_events=history[finish_event_id - 1 :] if later is None else later,
        reapply=reapply,
        now=at(now),
    )


def activity_then_signal_run() -> Run:
    """1 Started, 2-4 task, 5 ActivityScheduled, 6-7 activity, 8-10 task, 11 Signaled, 12-14 task,
    15 Completed."""
    run = Run()
    run.task(schedule_activity("a1", start_to_close=10))
    run.activity_started(5)
    run.activity_completed(5)
    run.task()
    run.signal("go")
    run.task(complete_workflow("done"))
    return run


def test_reset_to_a_completed_task_copies_the_events_before_it_and_fails_the_task():
    run = activity_then_signal_run()
    assert names(run.history)[9] == "WORKFLOW_TASK_COMPLETED"
    t = do_reset(run, 10)
    assert [e.event_id for e in t.events] == list(range(1, 13))
    assert t.events[:9] == run.history[:9]  # the same events, ids and times
    assert names(t.events)[9:] == ["WORKFLOW_TASK_FAILED", "WORKFLOW_EXECUTION_SIGNALED", "WORKFLOW_TASK_SCHEDULED"]
    failed = t.events[9].workflow_task_failed_event_attributes
    assert (failed.scheduled_event_id, failed.started_event_id) == (8, 9)
    assert failed.cause == Cause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW
    assert failed.failure.message == "why" and failed.failure.HasField("reset_workflow_failure_info")
    assert (failed.identity, failed.base_run_id, failed.new_run_id) == ("history-service", "run-1", NEW)
    s = t.state
    assert s.run_id == NEW and s.running and s.first_execution_run_id == "run-1"
    assert s.start_time == at(100).timestamp() and s.original_start_time == run.state.start_time
    assert s.reset_request_id == "reset-1" and not s.activities
    assert s.wft is not None and s.wft.scheduled_event_id == 12 and s.wft.attempt == 1 and not s.wft.sticky
    assert s.next_event_id == 13
    assert [x.kind for x in t.transfers] == [TransferKind.WORKFLOW_TASK]


def test_reset_to_a_scheduled_task_writes_its_started_event_first():
    run = activity_then_signal_run()
    t = do_reset(run, 3)  # rebuilt up to event 2, the first task scheduled
    assert names(t.events)[2:5] == ["WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_FAILED", "WORKFLOW_EXECUTION_SIGNALED"]
    assert t.events[2].workflow_task_started_event_attributes.identity == "history-service"


def test_pending_activities_are_queued_again():
    run = Run()
    run.task(schedule_activity("a1", start_to_close=10, schedule_to_close=60))
    run.signal("s")
    run.task()
    t = do_reset(run, 9)  # WorkflowTaskCompleted of the second task; activity 5 still pending
    assert list(t.state.activities) == [5]
    a = t.state.activities[5]
    assert a.attempt == 1 and a.scheduled_time == at(100).timestamp()
    kinds = [x.kind for x in t.transfers]
    assert kinds.count(TransferKind.ACTIVITY_TASK) == 1 and kinds[-1] == TransferKind.WORKFLOW_TASK
    assert any(x.kind == TimerKind.ACTIVITY_TIMEOUT and x.fire_at == at(160).timestamp() for x in t.timers)


def test_a_reset_run_keeps_priorities_and_concurrency_limits():
    run = Run(start_request(priority=Priority(priority_key=2)))
    run.task(schedule_activity("a1", start_to_close=10, priority=4, concurrency=b'{"key": "c-1", "max": 3}'))
    run.signal("s")
    run.task()
    t = do_reset(run, 9)
    assert t.state.priority == 2
    a = t.state.activities[5]
    assert (a.priority_key, a.concurrency_key, a.max_concurrency) == (4, "c-1", 3)
    [queued] = [x for x in t.transfers if x.kind == TransferKind.ACTIVITY_TASK]
    assert queued.data["priority"] == 4 and queued.data["concurrency"] == ["c-1", 3, 10]


def test_pending_timers_keep_their_fire_time():
    run = Run()
    run.task(start_timer("t1", 30))
    run.signal("s", now=5)
    run.task(now=6)
    t = do_reset(run, 9, now=10)
    assert list(t.state.timers) == ["t1"]
    [timer] = [x for x in t.timers if x.kind == TimerKind.USER_TIMER]
    assert timer.fire_at == at(30).timestamp() and timer.data == {"timer_id": "t1", "started_event_id": 5}


def test_signals_after_the_point_are_reapplied_unless_excluded():
    run = activity_then_signal_run()
    assert names(do_reset(run, 4).events)[-2:] == ["WORKFLOW_EXECUTION_SIGNALED", "WORKFLOW_TASK_SCHEDULED"]
    excluded = do_reset(run, 4, reapply=reset.Reapply.of(0, [Exclude.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL]))
    assert names(excluded.events)[-2:] == ["WORKFLOW_TASK_FAILED", "WORKFLOW_TASK_SCHEDULED"]
    assert "WORKFLOW_EXECUTION_SIGNALED" not in names(excluded.events)


def test_reapply_type_reading():
    assert reset.Reapply.of(ResetReapplyType.RESET_REAPPLY_TYPE_UNSPECIFIED, []) == reset.Reapply(True, True)
    assert reset.Reapply.of(ResetReapplyType.RESET_REAPPLY_TYPE_SIGNAL, []) == reset.Reapply(True, False)
    assert reset.Reapply.of(ResetReapplyType.RESET_REAPPLY_TYPE_NONE, []) == reset.Reapply(False, False)
    assert reset.Reapply.of(ResetReapplyType.RESET_REAPPLY_TYPE_ALL_ELIGIBLE, [Exclude.RESET_REAPPLY_EXCLUDE_TYPE_UPDATE]) == (
        reset.Reapply(True, False)
    )


@pytest.mark.parametrize(
    ("finish_event_id", "message"),
    [
        (0, reset.FINISH_ID_RANGE),
        (1, reset.FINISH_ID_RANGE),
        (16, reset.FINISH_ID_RANGE),  # the run has 15 events
        (6, "Can only reset workflow to event ID in range [WorkflowTaskScheduled +1, WorkflowTaskStarted + 1]: 6"),
        (15, "Can only reset workflow to event ID in range [WorkflowTaskScheduled +1, WorkflowTaskStarted + 1]: 15"),
    ],
)
def test_bad_reset_points(finish_event_id, message):
    run = activity_then_signal_run()
    with pytest.raises(InvalidArgument) as err:
        do_reset(run, finish_event_id)
    assert err.value.message == message


def test_every_task_boundary_is_a_reset_point():
    run = activity_then_signal_run()
    points = [e.event_id + 1 for e in run.history if e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_STARTED]
    points += [e.event_id for e in run.history if e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]
    for point in points:
        t = do_reset(run, point)
        assert t.state.wft is not None and t.events[-1].event_type == E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED


def test_the_state_survives_its_encoding():
    run = activity_then_signal_run()
    t = do_reset(run, 10)
    assert MutableState.from_bytes(t.state.to_bytes()) == t.state


def test_auto_reset_points_one_per_build_id_rebuilt_for_the_new_run():
    run = Run()
    run.task(binary_checksum="build-a")
    run.signal("s")
    run.task(binary_checksum="build-a")
    run.signal("s")
    run.task(binary_checksum="build-b")
    assert [(p.build_id, p.run_id, p.first_workflow_task_completed_id) for p in run.state.auto_reset_points] == [
        ("build-a", "run-1", 4), ("build-b", "run-1", 12)
    ]
    t = do_reset(run, 12)
    assert [(p.build_id, p.run_id, p.first_workflow_task_completed_id) for p in t.state.auto_reset_points] == [("build-a", NEW, 4)]


def test_an_update_after_the_point_goes_in_again_as_an_admitted_event():
    run = Run()
    run.task()  # 2-4
    run.step(lambda t: updates.admit(t, request("u1")))  # a task is scheduled to carry it: 5
    run.start_wft()
    run.complete(
        protocol("u1", "accept"),
        protocol("u1", "complete"),
        messages=[
            message("u1", "accept", Acceptance(accepted_request_message_id="u1/request", accepted_request=request("u1"))),
            message("u1", "complete", Response(meta=UpdateMeta(update_id="u1"), outcome=Outcome())),
        ],
    )
    t = do_reset(run, 4)
    assert names(t.events)[3:] == ["WORKFLOW_TASK_FAILED", "WORKFLOW_EXECUTION_UPDATE_ADMITTED", "WORKFLOW_TASK_SCHEDULED"]
    u = t.state.updates["u1"]
    assert (u.stage, u.admitted_event_id) == (updates.ADMITTED, 5)
    # The worker reads it from the history: no protocol message carries it too.
    run2 = Run()
    run2.state, run2.history = t.state, list(t.events)
    run2.start_wft()
    assert updates.messages_for(run2.state, run2.state.wft) == []
    done = run2.complete(
        protocol("u1", "accept"),
        messages=[message("u1", "accept", Acceptance(accepted_request_message_id="u1/request", accepted_request_sequencing_event_id=5))],
    )
    accepted = done.events[-1].workflow_execution_update_accepted_event_attributes
    assert accepted.accepted_request_sequencing_event_id == 5 and not accepted.HasField("accepted_request")
    assert not do_reset(run, 4, reapply=reset.Reapply(signals=True, updates=False)).state.updates
