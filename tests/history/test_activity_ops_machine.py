"""Unit tests of the pure activity operations (``odin.history.activity_ops``): pause, unpause,
reset and new options, as Temporal 1.32 (``temporal server start-dev``) showed them."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.activity.v1 import ActivityOptions
from temporalio.api.common.v1 import RetryPolicy
from temporalio.api.enums.v1 import TimeoutType
from temporalio.api.taskqueue.v1 import TaskQueue
from test_machine import TS0, app_failure, names, payloads, policy, with_activity

from odin.errors import InvalidArgument, NotFound
from odin.history import activities, activity_ops
from odin.history.activity_ops import Selector
from odin.history.machine import StaleTask, TimerSpec, TransferSpec

A1 = Selector(activity_id="a1")


def pause(run, selector=A1, now=None):
    return run.step(lambda t: activity_ops.pause(t, activity_ops.select(t, selector), "me", "because"), now)


def unpause(run, selector=A1, reset_attempts=False, reset_heartbeat=False, delay=0.0, now=None):
    return run.step(
        lambda t: activity_ops.unpause(
            t, activity_ops.select(t, selector, paused_only=True), reset_attempts, reset_heartbeat, delay
        ),
        now,
    )


def reset(run, selector=A1, reset_heartbeat=False, keep_paused=False, delay=0.0, restore=False, now=None):
    return run.step(
        lambda t: activity_ops.reset(t, activity_ops.select(t, selector), reset_heartbeat, keep_paused, delay, restore),
        now,
    )


def update(run, options, paths, selector=A1, restore=False, now=None):
    return run.step(
        lambda t: activity_ops.update_options(t, activity_ops.select(t, selector), options, paths, restore), now
    )


def dispatched(t) -> list[TransferSpec]:
    return [x for x in t.transfers if x.kind == "activity_task"]


def test_a_paused_activity_is_not_started_until_unpaused():
    run, sched = with_activity(retry_policy=policy(initial=20))
    t = pause(run, now=1)
    a = run.state.activities[sched]
    assert (a.paused, a.pause_time, a.pause_identity, a.pause_reason) == (True, TS0 + 1, "me", "because")
    assert t.events == [] and t.transfers == []
    # The entry already queued is stale while paused: a poller taking it starts nothing.
    with pytest.raises(StaleTask):
        run.activity_started(sched)
    t = unpause(run, now=5)
    assert not run.state.activities[sched].paused
    assert dispatched(t) == [TransferSpec("activity_task", {"scheduled_event_id": sched, "attempt": 1, "queue": "tq"})]
    assert run.state.activities[sched].scheduled_time == TS0 + 5
    run.activity_started(sched)


def test_pausing_twice_keeps_the_first_pause():
    run, sched = with_activity()
    pause(run, now=1)
    run.step(lambda t: activity_ops.pause(t, activity_ops.select(t, A1), "other", "later"), now=2)
    a = run.state.activities[sched]
    assert (a.pause_time, a.pause_identity, a.pause_reason) == (TS0 + 1, "me", "because")


def test_a_running_attempt_goes_on_and_its_retry_waits_for_the_unpause():
    run, sched = with_activity(retry_policy=policy(initial=1))
    run.activity_started(sched, now=1)
    pause(run, now=2)
    run.heartbeat(sched, now=3)
    assert run.result == activities.HeartbeatAnswer(paused=True)
    t = run.activity_failed(sched, app_failure("boom"), now=4)
    a = run.state.activities[sched]
    assert (a.attempt, a.paused, a.started) == (2, True, False)
    assert t.events == []
    # The retry timer fires while paused: nothing is dispatched.
    with pytest.raises(StaleTask):
        run.retry_due(sched, 2, now=5)
    t = unpause(run, reset_attempts=True, now=9)
    a = run.state.activities[sched]
    assert (a.attempt, a.last_failure) == (1, None)
    assert dispatched(t) == [TransferSpec("activity_task", {"scheduled_event_id": sched, "attempt": 1, "queue": "tq"})]


def test_a_running_paused_attempt_may_still_complete():
    run, sched = with_activity()
    run.activity_started(sched, now=1)
    pause(run, now=2)
    t = run.activity_completed(sched, now=3)
    assert names(t.events) == ["ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_COMPLETED", "WORKFLOW_TASK_SCHEDULED"]


def test_unpause_with_jitter_arms_a_timer_and_reset_heartbeat_clears_the_details():
    run, sched = with_activity(retry_policy=policy(initial=1))
    run.activity_started(sched, now=1)
    run.activity_failed(sched, app_failure("boom"), now=2, details=payloads("progress"))
    assert run.state.activities[sched].heartbeat_details is not None
    pause(run, now=2.5)
    t = unpause(run, reset_heartbeat=True, delay=4.0, now=3)
    a = run.state.activities[sched]
    assert (a.heartbeat_details, a.last_heartbeat_time, a.attempt) == (None, 0.0, 2)
    assert dispatched(t) == []
    assert TimerSpec("activity_retry", TS0 + 7, {"scheduled_event_id": sched, "attempt": 2}) in t.timers
    run.retry_due(sched, 2, now=7)


def test_unpause_of_an_activity_that_is_not_paused_changes_nothing():
    run, sched = with_activity()
    before = run.state.to_bytes()
    t = unpause(run)
    assert t.transfers == [] and run.state.to_bytes() == before
    # ``unpause_all`` names only paused activities: none is NOT_FOUND (as Temporal answers).
    with pytest.raises(NotFound, match="Can't find pending activity with such ID"):
        unpause(run, selector=Selector(match_all=True))


def test_reset_of_a_waiting_activity_dispatches_attempt_one_now():
    run, sched = with_activity(retry_policy=policy(initial=20))
    run.activity_started(sched, now=1)
    run.activity_failed(sched, app_failure("boom"), now=2, details=payloads("p"))
    assert run.state.activities[sched].attempt == 2
    t = reset(run, reset_heartbeat=True, now=3)
    a = run.state.activities[sched]
    assert (a.attempt, a.last_failure, a.heartbeat_details, a.scheduled_time) == (1, None, None, TS0 + 3)
    assert dispatched(t) == [TransferSpec("activity_task", {"scheduled_event_id": sched, "attempt": 1, "queue": "tq"})]
    # The retry timer of attempt 2 is stale now.
    with pytest.raises(StaleTask):
        run.retry_due(sched, 2, now=22)


def test_reset_of_a_running_attempt_makes_its_token_stale_and_restarts_its_clocks():
    run, sched = with_activity(start_to_close=30, heartbeat=5, retry_policy=policy(initial=1))
    run.activity_started(sched, now=0)
    run.activity_failed(sched, app_failure("boom"), now=1)
    run.retry_due(sched, 2, now=2)
    run.activity_started(sched, now=2)
    old_token = run.activity_token(sched)
    t = reset(run, now=4)
    a = run.state.activities[sched]
    assert (a.attempt, a.started, a.reset_requested) == (1, True, True)
    assert a.last_failure is not None  # kept while the attempt runs (as Temporal shows it)
    stc, hb = TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE, TimeoutType.TIMEOUT_TYPE_HEARTBEAT
    assert TimerSpec("activity_timeout", TS0 + 34, {"scheduled_event_id": sched, "attempt": 1, "timeout_type": stc}) in t.timers
    assert TimerSpec("activity_timeout", TS0 + 9, {"scheduled_event_id": sched, "attempt": 1, "timeout_type": hb}) in t.timers
    with pytest.raises(NotFound, match="invalid activityID or activity already timed out"):
        run.step(lambda t: activities.for_token(t, old_token), now=5)
    # The worker never hears again; the re-armed heartbeat timeout retries it as attempt 2.
    run.activity_timeout(sched, 1, hb, now=9)
    a = run.state.activities[sched]
    assert (a.attempt, a.started, a.reset_requested) == (2, False, False)


def test_a_heartbeat_of_an_attempt_reset_in_place_answers_activity_reset():
    run, sched = with_activity()
    run.activity_started(sched, now=1)
    reset(run, now=2)
    run.heartbeat(sched, now=3)
    assert run.result == activities.HeartbeatAnswer(reset=True)
    run.heartbeat(sched, now=4)
    assert run.result == activities.HeartbeatAnswer(reset=True)


def test_reset_unpauses_unless_asked_to_keep_the_pause():
    run, sched = with_activity()
    pause(run)
    t = reset(run, keep_paused=True)
    assert run.state.activities[sched].paused and dispatched(t) == []
    t = reset(run)
    assert not run.state.activities[sched].paused
    assert len(dispatched(t)) == 1


def test_selection_by_type_and_errors():
    run, sched = with_activity()
    pause(run, selector=Selector(activity_type="Act"))
    assert run.state.activities[sched].paused
    with pytest.raises(NotFound, match="Can't find pending activity with such ID"):
        pause(run, selector=Selector(activity_id="nope"))
    with pytest.raises(InvalidArgument, match="Either Activity.Id or Activity.Type should be set on request."):
        Selector().check()
    run.terminate()
    with pytest.raises(NotFound, match="workflow execution already completed"):
        pause(run)


def test_update_options_field_by_field_and_restore():
    run, sched = with_activity(start_to_close=30, retry_policy=policy(initial=1))
    options = ActivityOptions(
        start_to_close_timeout=Duration(seconds=45),
        heartbeat_timeout=Duration(seconds=20),
        retry_policy=RetryPolicy(maximum_attempts=7),
    )
    update(run, options, ["start_to_close_timeout", "retry_policy.maximum_attempts"])
    a = run.state.activities[sched]
    assert (a.start_to_close, a.heartbeat, a.retry.maximum_attempts, a.retry.initial_interval) == (45, 0, 7, 1)
    shown = run.result
    assert shown.start_to_close_timeout.seconds == 45 and shown.retry_policy.maximum_attempts == 7
    # Paths it does not know are ignored (as Temporal ignores them).
    update(run, options, ["bogus"])
    assert run.state.activities[sched].heartbeat == 0
    update(run, ActivityOptions(), [], restore=True)
    a = run.state.activities[sched]
    assert (a.start_to_close, a.retry.maximum_attempts, a.original_options) == (30, 0, None)
    assert run.result.task_queue == TaskQueue(name="tq")


def test_update_options_validates_the_retry_policy():
    run, _ = with_activity()
    with pytest.raises(InvalidArgument, match="BackoffCoefficient cannot be less than 1 on retry policy."):
        update(run, ActivityOptions(retry_policy=RetryPolicy(backoff_coefficient=0.5)), ["retry_policy.backoff_coefficient"])


def test_a_longer_start_to_close_moves_the_running_attempts_deadline():
    run, sched = with_activity(start_to_close=10)
    run.activity_started(sched, now=0)
    update(run, ActivityOptions(start_to_close_timeout=Duration(seconds=60)), ["start_to_close_timeout"], now=1)
    stc = TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
    # The timer armed for the old deadline finds the new one and waits for it.
    t = run.activity_timeout(sched, 1, stc, now=10)
    assert t.events == []
    assert TimerSpec("activity_timeout", TS0 + 60, {"scheduled_event_id": sched, "attempt": 1, "timeout_type": stc}) in t.timers
    assert run.state.activities[sched].started


def test_a_new_task_queue_dispatches_a_waiting_attempt_there():
    run, sched = with_activity()
    t = update(run, ActivityOptions(task_queue=TaskQueue(name="other")), ["task_queue.name"])
    assert dispatched(t) == [TransferSpec("activity_task", {"scheduled_event_id": sched, "attempt": 1, "queue": "other"})]


def test_camel_case_mask_paths_are_understood():
    assert activity_ops.normalized_paths(["startToCloseTimeout", "retryPolicy.maximumAttempts"]) == [
        "start_to_close_timeout",
        "retry_policy.maximum_attempts",
    ]


def test_a_paused_running_attempt_does_not_time_out_until_unpaused():
    # Temporal 1.32: paused while running and never heard from again, the attempt stays running
    # past its start-to-close and heartbeat timeouts; unpaused, it times out at once.
    run, sched = with_activity(start_to_close=2, heartbeat=2, retry_policy=policy(initial=1))
    run.activity_started(sched, now=0)
    pause(run, now=0.5)
    stc, hb = TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE, TimeoutType.TIMEOUT_TYPE_HEARTBEAT
    for timeout_type in (stc, hb):
        with pytest.raises(StaleTask):
            run.activity_timeout(sched, 1, timeout_type, now=2)
    assert run.state.activities[sched].started
    t = unpause(run, now=4)
    assert TimerSpec("activity_timeout", TS0 + 4, {"scheduled_event_id": sched, "attempt": 1, "timeout_type": stc}) in t.timers
    run.activity_timeout(sched, 1, stc, now=4)
    a = run.state.activities[sched]
    assert (a.attempt, a.started) == (2, False)


def test_the_pause_info_search_attribute_follows_the_paused_activities():
    from temporalio.api.common.v1 import SearchAttributes

    from odin.history.state import unpack

    def pause_info(run):
        attributes = unpack(SearchAttributes, run.state.search_attributes)
        field = attributes.indexed_fields.get("TemporalPauseInfo") if attributes else None
        return None if field is None else (field.metadata["type"], field.data)

    run, sched = with_activity()
    assert pause_info(run) is None
    pause(run)
    assert pause_info(run) == (b"KeywordList", b'["property:activityType=Act"]')  # as Temporal 1.32 sets it
    unpause(run)
    assert pause_info(run) is None
    pause(run)
    reset(run)  # reset unpauses
    assert pause_info(run) is None
    unpause(run)
    run.activity_started(sched)
    pause(run)
    assert pause_info(run) is not None
    run.activity_completed(sched)  # a paused activity that completes is no longer paused anywhere
    assert pause_info(run) is None
