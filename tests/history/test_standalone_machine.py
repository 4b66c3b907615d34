"""The pure standalone-activity transitions (odin.history.standalone), with no server: a start's
outbox specs, attempts, retries, outcomes, cancel, terminate and timeouts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import ActivityExecutionStatus as Status
from temporalio.api.enums.v1 import PendingActivityState, TimeoutType
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure

from odin.history import activities, standalone
from odin.history.standalone import SLOT, ActivityTransition, StandaloneActivity
from odin.history.state import RetryPolicyInfo, unpack
from odin.history.tasks import TimerKind, TransferKind

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _start(**overrides) -> ActivityTransition:
    args = dict(
        namespace_id="ns", namespace="default", activity_id="a1", run_id="r1", request_id="req", identity="me",
        activity_type="charge", task_queue="tq", schedule_to_close=0.0, schedule_to_start=0.0, start_to_close=10.0,
        heartbeat=0.0, retry=RetryPolicyInfo(initial_interval=1.0, maximum_attempts=2), start_delay=0.0, input=None,
        header=None, user_metadata=None, priority=None, search_attributes=None, now=T0,
    )
    return standalone.new_activity(**{**args, **overrides})


def _next(act: StandaloneActivity, seconds: float) -> ActivityTransition:
    """The next transition, from the stored form (as the engine loads it)."""
    return ActivityTransition(StandaloneActivity.from_bytes(act.to_bytes()), T0 + timedelta(seconds=seconds))


def test_a_start_queues_the_first_attempt_or_waits_for_its_delay():
    t = _start(schedule_to_close=60.0)
    assert [x.kind for x in t.transfers] == [TransferKind.ACTIVITY_TASK]
    assert [(x.kind, x.data["timeout_type"]) for x in t.timers] == [
        (TimerKind.ACTIVITY_TIMEOUT, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE)
    ]
    assert standalone.run_state(t.activity) == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
    delayed = _start(start_delay=5.0)
    assert delayed.transfers == [] and [(x.kind, x.fire_at) for x in delayed.timers] == [(TimerKind.ACTIVITY_RETRY, T0.timestamp() + 5)]


def test_failure_retries_then_the_last_attempt_fails_it():
    act = _start().activity
    t = _next(act, 1)
    activities.record_started(t, SLOT, 1, "worker", "req-1")
    t = _next(t.activity, 2)
    failure = Failure(message="boom", application_failure_info=ApplicationFailureInfo(type="E"))
    activities.failed(t, standalone.for_token(t, _token(1)), failure, "worker", Payloads())
    assert t.activity.running and t.activity.info.attempt == 2
    assert [x.kind for x in t.timers] == [TimerKind.ACTIVITY_RETRY]
    t = _next(t.activity, 3)
    activities.retry_due(t, SLOT, 2)
    activities.record_started(t, SLOT, 2, "worker", "req-2")
    t = _next(t.activity, 4)
    activities.failed(t, standalone.for_token(t, _token(2)), failure, "worker", Payloads())
    act = t.activity
    assert (act.status, t.closed, unpack(Failure, act.failure).message) == (Status.ACTIVITY_EXECUTION_STATUS_FAILED, True, "boom")
    assert t.state.activities == {}


def test_completion_and_stale_tokens():
    t = _next(_start().activity, 1)
    activities.record_started(t, SLOT, 1, "worker", "req-1")
    t = _next(t.activity, 2)
    with pytest.raises(Exception, match="invalid activityID"):
        standalone.for_token(t, _token(2))
    result = Payloads(payloads=[Payload(data=b'"ok"')])
    activities.completed(t, standalone.for_token(t, _token(1)), result, "worker")
    assert (t.activity.status, unpack(Payloads, t.activity.result)) == (Status.ACTIVITY_EXECUTION_STATUS_COMPLETED, result)
    with pytest.raises(standalone.Closed, match="activity is in terminal state Completed"):
        standalone.request_cancel(_next(t.activity, 3), "r", "me", "c1")
    with pytest.raises(standalone.Closed, match="invalid transition from Completed"):
        standalone.terminate(_next(t.activity, 3), "r", "me", "t1")


def test_cancel_before_start_closes_at_once_and_after_start_asks_the_worker():
    t = _next(_start().activity, 1)
    standalone.request_cancel(t, "not needed", "me", "c1")
    assert (t.activity.status, unpack(Failure, t.activity.failure).message) == (Status.ACTIVITY_EXECUTION_STATUS_CANCELED, "Activity canceled")
    standalone.request_cancel(_next(t.activity, 2), "again", "me", "c1")  # the same request: done already

    t = _next(_start().activity, 1)
    activities.record_started(t, SLOT, 1, "worker", "req-1")
    t = _next(t.activity, 2)
    standalone.request_cancel(t, "stop", "me", "c2")
    assert t.activity.running and standalone.run_state(t.activity) == PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED
    t = _next(t.activity, 3)
    assert activities.heartbeat(t, standalone.for_token(t, _token(1)), Payloads()).cancel_requested


def test_terminate_and_a_repeat():
    t = _next(_start().activity, 1)
    standalone.terminate(t, "enough", "me", "t1")
    assert (t.activity.status, unpack(Failure, t.activity.failure).message) == (Status.ACTIVITY_EXECUTION_STATUS_TERMINATED, "enough")
    standalone.terminate(_next(t.activity, 2), "enough", "me", "t1")
    with pytest.raises(standalone.Closed, match="already terminated with request ID t1"):
        standalone.terminate(_next(t.activity, 2), "enough", "me", "t2")


def test_equal_schedule_deadlines_time_out_as_schedule_to_start():
    t = _start(schedule_to_close=1.0, schedule_to_start=1.0, start_to_close=1.0)
    t = _next(t.activity, 1)
    standalone.timed_out(t, 1, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE)
    failure = unpack(Failure, t.activity.failure)
    assert (t.activity.status, failure.message) == (Status.ACTIVITY_EXECUTION_STATUS_TIMED_OUT, "activity ScheduleToStart timeout")


def _token(attempt: int):
    from odin.history.tokens import StandaloneActivityTaskToken

    return StandaloneActivityTaskToken(namespace_id="ns", activity_id="a1", run_id="r1", attempt=attempt)
