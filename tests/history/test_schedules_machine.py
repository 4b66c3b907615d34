"""The pure schedule machine (odin/history/schedules.py): what a schedule does at time T."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from google.protobuf.duration_pb2 import Duration
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.enums.v1 import ScheduleOverlapPolicy as Overlap
from temporalio.api.enums.v1 import WorkflowExecutionStatus as Status
from temporalio.api.enums.v1 import WorkflowIdReusePolicy
from temporalio.api.schedule.v1 import (
    BackfillRequest,
    IntervalSpec,
    Schedule,
    ScheduleAction,
    SchedulePatch,
    SchedulePolicies,
    ScheduleSpec,
    ScheduleState,
    TriggerImmediatelyRequest,
)
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflow.v1 import NewWorkflowExecutionInfo

from odin.history.schedules import (
    BACKFILLS_PER_STEP,
    MAX_BUFFER,
    RECHECK_SECONDS,
    RETENTION_SECONDS,
    Action,
    Closed,
    ScheduleMachine,
    ScheduleRuntime,
    conflict_token_bytes,
    conflict_token_value,
    new_runtime,
    scheduled_workflow_id,
    with_defaults,
)

NS = "00000000-0000-0000-0000-000000000001"
T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def schedule(every: int = 60, overlap: int = 0, catchup: int | None = None, **state) -> Schedule:
    policies = SchedulePolicies(overlap_policy=overlap)  # type: ignore[arg-type]
    if catchup is not None:
        policies.catchup_window.CopyFrom(Duration(seconds=catchup))
    return with_defaults(
        Schedule(
            spec=ScheduleSpec(interval=[IntervalSpec(interval=Duration(seconds=every))]),
            action=ScheduleAction(
                start_workflow=NewWorkflowExecutionInfo(
                    workflow_id="wf", workflow_type=WorkflowType(name="W"), task_queue=TaskQueue(name="q")
                )
            ),
            policies=policies,
            state=ScheduleState(**state),
        )
    )


def machine(s: Schedule, now: float, runtime: ScheduleRuntime | None = None) -> ScheduleMachine:
    copy = Schedule()
    copy.CopyFrom(s)
    return ScheduleMachine(copy, runtime or new_runtime(T0), 1, NS, "sched", now)


def take_all(m: ScheduleMachine) -> list:
    """Take every start the machine hands out now (each recorded as a running workflow)."""
    taken = []
    while (start := m.next_start()) is not None:
        wid = scheduled_workflow_id("wf", start.nominal, False)
        m.record_action(start, wid, f"run-{start.seq}")
        taken.append(start)
    return taken


def test_times_due_since_the_last_look_are_buffered_and_taken_in_order():
    m = machine(schedule(every=60), T0 + 185)
    m.advance()
    starts = [m.next_start()]
    assert [s.nominal - T0 for s in starts] == [60]
    # The other two overlap the first (SKIP by default): skipped once it runs.
    m.record_action(starts[0], "wf-1", "run-1")
    assert m.next_start() is None
    assert m.rt.overlap_skipped == 2
    assert m.rt.last_processed == T0 + 185


def test_catchup_window_misses_older_times_and_takes_the_rest():
    m = machine(schedule(every=60, overlap=Overlap.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL, catchup=600), T0 + 3600)
    m.advance()
    taken = take_all(m)
    # A time exactly a window old is still taken (as in Temporal: only older ones are missed).
    assert m.rt.missed_catchup == 49
    assert [s.nominal - T0 for s in taken] == [3600 - 60 * i for i in range(10, -1, -1)]


def test_catchup_window_has_a_ten_second_minimum():
    m = machine(schedule(every=1, overlap=Overlap.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL, catchup=1), T0 + 30)
    assert m.catchup_window == 10.0
    m.advance()
    assert len(take_all(m)) == 11 and m.rt.missed_catchup == 19


def test_skip_buffer_one_buffer_all_with_a_run_in_progress():
    for policy, buffered, skipped in (
        (Overlap.SCHEDULE_OVERLAP_POLICY_SKIP, 0, 3),
        (Overlap.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE, 1, 2),
        (Overlap.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL, 3, 0),
    ):
        m = machine(schedule(every=60, overlap=policy), T0 + 60)
        m.advance()
        assert len(take_all(m)) == 1
        m.now = T0 + 240
        m.advance()
        assert take_all(m) == []
        assert (len(m.rt.buffer), m.rt.overlap_skipped) == (buffered, skipped), policy
        # The run closes: the first buffered start goes.
        m.run_closed(Closed(m.rt.running[0].workflow_id, Status.WORKFLOW_EXECUTION_STATUS_COMPLETED))
        assert len(take_all(m)) == (1 if buffered else 0)
        assert m.rt.recent[0].status == Status.WORKFLOW_EXECUTION_STATUS_COMPLETED


def test_cancel_and_terminate_other_wait_for_the_run_they_end():
    for policy in (Overlap.SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER, Overlap.SCHEDULE_OVERLAP_POLICY_TERMINATE_OTHER):
        m = machine(schedule(every=60, overlap=policy), T0 + 60)
        m.advance()
        take_all(m)
        m.now = T0 + 180
        m.advance()
        assert m.next_start() is None
        assert (m.need_cancel, m.need_terminate) == (
            policy == Overlap.SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER,
            policy == Overlap.SCHEDULE_OVERLAP_POLICY_TERMINATE_OTHER,
        )
        assert len(m.rt.buffer) == 2  # both wait; once the run is gone the latest replaces the other
        assert m.next_wakeup() == m.now + 30  # looks again while it waits
        m.run_closed(Closed(m.rt.running[0].workflow_id, Status.WORKFLOW_EXECUTION_STATUS_TERMINATED))
        [start] = take_all(m)
        assert start.nominal == T0 + 180


def test_allow_all_starts_everything_and_does_not_track_runs():
    m = machine(schedule(every=60, overlap=Overlap.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL), T0 + 300)
    m.advance()
    assert len(take_all(m)) == 5
    assert m.rt.running == [] and m.rt.action_count == 5 and len(m.rt.recent) == 5


def test_pause_takes_nothing_but_a_trigger_still_runs():
    m = machine(schedule(every=60, paused=True), T0 + 300)
    m.advance()
    assert m.next_start() is None and m.rt.missed_catchup == 0
    assert m.next_wakeup() is None  # no timer while paused
    m.patch(SchedulePatch(trigger_immediately=TriggerImmediatelyRequest()))
    [start] = take_all(m)
    assert start.manual and start.nominal == T0 + 300


def test_pause_and_unpause_notes_and_conflict_token():
    m = machine(schedule(), T0)
    m.patch(SchedulePatch(pause="maintenance"))
    assert (m.schedule.state.paused, m.schedule.state.notes, m.conflict_token) == (True, "maintenance", 2)
    m.patch(SchedulePatch(unpause="done"))
    assert (m.schedule.state.paused, m.schedule.state.notes, m.conflict_token) == (False, "done", 3)


def test_limited_actions_count_down_and_stop():
    m = machine(schedule(every=60, overlap=Overlap.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL, limited_actions=True, remaining_actions=2), T0 + 300)
    assert len(m.future_action_times(10)) == 2
    m.advance()
    assert len(take_all(m)) == 2
    assert m.schedule.state.remaining_actions == 0
    assert m.future_action_times(10) == []
    # Out of actions: idle, so its only wake-up is its retention expiry after the last action.
    assert m.next_wakeup() == m.rt.recent[-1].actual_time + RETENTION_SECONDS


def test_backfill_is_inclusive_and_ignores_the_catchup_window():
    m = machine(schedule(every=60, overlap=Overlap.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL, catchup=10), T0 + 10_000)
    m.patch(SchedulePatch(backfill_request=[BackfillRequest(start_time=_ts(T0 + 60), end_time=_ts(T0 + 240))]))
    assert [s.nominal - T0 for s in take_all(m)] == [60, 120, 180, 240]


def test_a_long_backfill_is_buffered_a_bounded_number_at_a_time():
    # One second for 30 days: 2.6 million times; each step buffers at most BACKFILLS_PER_STEP.
    now = T0 + 40 * 86400
    m = machine(schedule(every=1, overlap=Overlap.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL), now, new_runtime(now))
    m.patch(SchedulePatch(backfill_request=[BackfillRequest(start_time=_ts(T0), end_time=_ts(T0 + 30 * 86400))]))
    assert [s.nominal - T0 for s in m.rt.buffer] == list(range(BACKFILLS_PER_STEP))
    assert m.next_wakeup() == m.now  # more to buffer: look again at once
    taken = take_all(m)
    m.advance()
    taken += take_all(m)
    assert [s.nominal - T0 for s in taken] == list(range(2 * BACKFILLS_PER_STEP))
    # The rest survives a save and load of the runtime.
    rt = ScheduleRuntime.from_json(m.rt.to_json())
    assert rt.backfills[0].start == T0 + 2 * BACKFILLS_PER_STEP - 1 and rt.backfills[0].end == T0 + 30 * 86400


def test_backfills_wait_while_half_the_buffer_is_full():
    m = machine(schedule(every=60, overlap=Overlap.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL), T0 + 10)
    m.rt.running.append(Action(T0, T0, "wf-running", "r"))
    m.patch(SchedulePatch(backfill_request=[BackfillRequest(start_time=_ts(T0), end_time=_ts(T0 + 86400 * 30))]))
    for _ in range(MAX_BUFFER):
        m.advance()
        assert m.next_start() is None  # a run is going: everything waits in the buffer
    assert len(m.rt.buffer) == MAX_BUFFER // 2 and m.rt.backfills
    # No busy loop: with the buffer half full the schedule waits for the run to close.
    assert m.next_wakeup() == m.now + RECHECK_SECONDS


def test_several_backfills_are_taken_in_order():
    m = machine(schedule(every=60, overlap=Overlap.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL), T0 + 10_000, new_runtime(T0 + 10_000))
    m.patch(
        SchedulePatch(
            backfill_request=[
                BackfillRequest(start_time=_ts(T0 + 600), end_time=_ts(T0 + 1200)),
                BackfillRequest(start_time=_ts(T0 + 60), end_time=_ts(T0 + 120)),
            ]
        )
    )
    taken = []
    while m.rt.backfills or m.rt.buffer:
        m.advance()
        taken += take_all(m)
    assert [s.nominal - T0 for s in taken] == [*range(600, 1201, 60), 60, 120]


def test_an_idle_schedule_expires_a_retention_period_after_its_last_event():
    end = T0 + 120
    s = schedule(every=60, overlap=Overlap.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL)
    s.spec.end_time.FromSeconds(int(end))
    m = machine(s, T0 + 130)
    m.advance()
    assert [x.nominal - T0 for x in take_all(m)] == [60, 120]
    assert m.retention_expiry() == T0 + 130 + RETENTION_SECONDS  # the last action was taken at 130
    assert not m.expired()
    m.now = T0 + 130 + RETENTION_SECONDS
    assert m.expired()
    # An update is an event: the period starts again.
    m.update(s)
    assert not m.expired() and m.retention_expiry() == m.now + RETENTION_SECONDS


def test_schedules_that_may_still_act_never_expire():
    far = T0 + 10 * RETENTION_SECONDS
    assert machine(schedule(every=60), far).retention_expiry() is None  # times ahead
    assert machine(schedule(every=60, paused=True), far).retention_expiry() is None  # paused
    m = machine(Schedule(action=schedule().action), far)  # no spec: only triggered
    m.patch(SchedulePatch(trigger_immediately=TriggerImmediatelyRequest()))
    assert m.retention_expiry() is None  # a start waits
    take_all(m)
    assert m.retention_expiry() == far + RETENTION_SECONDS


def test_times_before_an_update_are_not_taken():
    m = machine(schedule(every=60), T0 + 30)
    m.advance()
    m.now = T0 + 150
    m.update(schedule(every=60))
    m.advance()
    assert m.next_start() is None  # 60 and 120 are before the update
    assert m.conflict_token == 2
    assert m.future_action_times(1) == [T0 + 180]


def test_pause_on_failure():
    s = schedule()
    s.policies.pause_on_failure = True
    m = machine(s, T0 + 60)
    m.advance()
    take_all(m)
    wid = m.rt.running[0].workflow_id
    m.run_closed(Closed(wid, Status.WORKFLOW_EXECUTION_STATUS_FAILED, "boom"))
    assert m.schedule.state.paused and m.schedule.state.notes == f"paused due to workflow failure: {wid}: boom"
    m2 = machine(s, T0 + 60)
    m2.advance()
    take_all(m2)
    m2.run_closed(Closed(wid, Status.WORKFLOW_EXECUTION_STATUS_TIMED_OUT))
    assert m2.schedule.state.notes == f"paused due to workflow timeout: {wid}"
    m3 = machine(s, T0 + 60)
    m3.run_closed(Closed(wid, Status.WORKFLOW_EXECUTION_STATUS_TERMINATED))
    assert not m3.schedule.state.paused


def test_start_request_names_the_run_as_temporal_does():
    m = machine(schedule(), T0 + 60.7)
    m.advance()
    start = m.next_start()
    req = m.start_request(start, "default", "rid")
    assert req.workflow_id == "wf-2026-01-01T00:01:00Z"
    assert req.workflow_id_reuse_policy == WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
    fields = req.search_attributes.indexed_fields
    assert json.loads(fields["TemporalScheduledById"].data) == "sched"
    assert json.loads(fields["TemporalScheduledStartTime"].data) == "2026-01-01T00:01:00Z"
    assert req.identity == "temporal-scheduler-default-sched"
    assert scheduled_workflow_id("wf", T0, True) == "wf"


def test_runtime_round_trips_and_conflict_tokens_are_eight_bytes():
    m = machine(schedule(every=60, overlap=Overlap.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL), T0 + 300)
    m.advance()
    take_all(m)
    assert ScheduleRuntime.from_json(m.rt.to_json()) == m.rt
    assert conflict_token_bytes(1) == b"\0\0\0\0\0\0\0\x01"
    assert conflict_token_value(conflict_token_bytes(42)) == 42 and conflict_token_value(b"junk") == 0


def test_defaults_as_describe_shows_them():
    s = with_defaults(Schedule())
    assert s.policies.overlap_policy == Overlap.SCHEDULE_OVERLAP_POLICY_SKIP
    assert s.policies.catchup_window.seconds == 365 * 24 * 3600
    assert s.HasField("state")


def _ts(seconds: float):
    from google.protobuf.timestamp_pb2 import Timestamp

    return Timestamp(seconds=int(seconds))


def test_the_last_result_or_failure_goes_to_the_next_run():
    from temporalio.api.common.v1 import Payload, Payloads
    from temporalio.api.failure.v1 import Failure

    m = machine(schedule(every=60), T0 + 60)
    m.advance()
    [first] = take_all(m)
    assert not m.start_request(first, "default", "r").HasField("last_completion_result")
    result = Payloads(payloads=[Payload(data=b"1")])
    m.run_closed(Closed(m.rt.running[0].workflow_id, Status.WORKFLOW_EXECUTION_STATUS_COMPLETED, result=result.SerializeToString()))
    m.now = T0 + 120
    m.advance()
    [second] = take_all(m)
    assert m.start_request(second, "default", "r").last_completion_result == result
    failure = Failure(message="boom")
    m.run_closed(Closed(m.rt.running[0].workflow_id, Status.WORKFLOW_EXECUTION_STATUS_FAILED, "boom", failure=failure.SerializeToString()))
    m.now = T0 + 180
    m.advance()
    [third] = take_all(m)
    req = m.start_request(third, "default", "r")
    assert req.last_completion_result == result and req.continued_failure == failure
