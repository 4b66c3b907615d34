"""Activity lifecycle transitions: dispatch, completion, failure with retries, timeouts, heartbeats."""

from __future__ import annotations

import json
from dataclasses import dataclass

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, Payloads, Priority, SearchAttributes
from temporalio.api.enums.v1 import EventType as E
from temporalio.api.enums.v1 import RetryState, TimeoutType
from temporalio.api.errordetails.v1 import NotFoundFailure
from temporalio.api.failure.v1 import Failure, TimeoutFailureInfo
from temporalio.api.history.v1 import message_pb2 as h

from odin.errors import InvalidArgument, NotFound
from odin.history import retry
from odin.history.machine import StaleTask, TransferSpec, Transition
from odin.history.state import ActivityInfo, pack, unpack
from odin.history.tasks import TimerKind, TransferKind
from odin.history.tokens import ActivityTaskToken

_TIMEOUT_LABEL = {
    TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE: "StartToClose",
    TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START: "ScheduleToStart",
    TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE: "ScheduleToClose",
    TimeoutType.TIMEOUT_TYPE_HEARTBEAT: "Heartbeat",
}


def arm_timeout(t: Transition, a: ActivityInfo, fire_at: float, timeout_type: TimeoutType.ValueType) -> None:
    t.timer(
        TimerKind.ACTIVITY_TIMEOUT, fire_at, scheduled_event_id=a.scheduled_event_id, attempt=a.attempt, timeout_type=timeout_type
    )


def queue_priority(a: ActivityInfo) -> int:
    """The priority key an attempt is queued with: the one UpdateActivityOptions set, else the
    activity's own or its workflow's (0: the default)."""
    updated = unpack(Priority, a.priority)
    return (updated.priority_key if updated is not None else 0) or a.priority_key


def slot_lease(a: ActivityInfo) -> float:
    """How long an attempt's concurrency slot is held without news: its heartbeat timeout (each
    heartbeat renews it), else its longest possible run. A dead worker's slot comes back then."""
    return a.heartbeat or a.start_to_close or a.schedule_to_close


def dispatch(t: Transition, a: ActivityInfo) -> None:
    """Queue the current attempt and arm its schedule-to-start timeout."""
    data = {"scheduled_event_id": a.scheduled_event_id, "attempt": a.attempt, "queue": a.task_queue}
    key = queue_priority(a)
    if key:
        data["priority"] = key
    if a.concurrency_key:
        data["concurrency"] = [a.concurrency_key, a.max_concurrency, slot_lease(a)]
    s = t.state
    if s.deployment_build or s.override_behavior:
        data.update(s.routing_data())  # activities follow their workflow's version
    t.transfers.append(TransferSpec(TransferKind.ACTIVITY_TASK, data))
    if a.schedule_to_start:
        arm_timeout(t, a, a.scheduled_time + a.schedule_to_start, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START)


def record_started(t: Transition, scheduled_event_id: int, attempt: int, identity: str, request_id: str) -> ActivityInfo:
    s = t.state
    a = s.activities.get(scheduled_event_id)
    if not s.running or a is None or a.attempt != attempt or a.started:
        raise StaleTask("activity attempt is not pending")
    if a.paused:
        raise StaleTask("activity is paused")
    a.started_time = t.ts
    a.started_identity = identity
    a.last_worker_identity = identity
    a.request_id = request_id
    a.last_heartbeat_time = 0.0
    a.timeouts_from = 0.0
    if a.start_to_close:
        arm_timeout(t, a, t.ts + a.start_to_close, TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE)
    if a.heartbeat:
        arm_timeout(t, a, t.ts + a.heartbeat, TimeoutType.TIMEOUT_TYPE_HEARTBEAT)
    return a


# Temporal's answer to a token of an attempt that is over (timed out, reset, closed run).
TASK_NOT_FOUND = "invalid activityID or activity already timed out or invoking workflow is completed"


def for_token(t: Transition, token: ActivityTaskToken) -> ActivityInfo:
    s = t.state
    if not s.running:
        raise NotFound("workflow execution already completed", NotFoundFailure())
    a = s.activities.get(token.scheduled_event_id)
    if a is None or a.attempt != token.attempt or not a.started:
        raise NotFound(TASK_NOT_FOUND, NotFoundFailure())
    return a


PAUSE_INFO = "TemporalPauseInfo"


def refresh_pause_info(t: Transition) -> None:
    """Keep the run's TemporalPauseInfo search attribute in step with its paused activities (as
    Temporal does: one "property:activityType=<type>" per paused type; gone when none is paused)."""
    s = t.state
    values = sorted({f"property:activityType={a.activity_type}" for a in s.activities.values() if a.paused})
    attributes = unpack(SearchAttributes, s.search_attributes) or SearchAttributes()
    if values:
        attributes.indexed_fields[PAUSE_INFO].CopyFrom(
            Payload(metadata={"encoding": b"json/plain", "type": b"KeywordList"}, data=json.dumps(values).encode())
        )
    elif PAUSE_INFO in attributes.indexed_fields:
        del attributes.indexed_fields[PAUSE_INFO]
    else:
        return
    s.search_attributes = pack(attributes)


def _close(t: Transition, a: ActivityInfo, event_type: E.ValueType, attributes: Message) -> None:
    if a.started:
        t.append(
            E.EVENT_TYPE_ACTIVITY_TASK_STARTED,
            h.ActivityTaskStartedEventAttributes(
                scheduled_event_id=a.scheduled_event_id,
                identity=a.started_identity,
                request_id=a.request_id,
                attempt=a.attempt,
                last_failure=unpack(Failure, a.last_failure),
            ),
            bufferable=True,
        )
    del t.state.activities[a.scheduled_event_id]
    if a.paused:
        refresh_pause_info(t)
    t.deliver(event_type, attributes)


def completed(t: Transition, a: ActivityInfo, result: Payloads | None, identity: str) -> None:
    _close(
        t,
        a,
        E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        h.ActivityTaskCompletedEventAttributes(result=result, scheduled_event_id=a.scheduled_event_id, identity=identity),
    )


def canceled(t: Transition, a: ActivityInfo, details: Payloads | None, identity: str) -> None:
    _close(
        t,
        a,
        E.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
        h.ActivityTaskCanceledEventAttributes(
            details=details,
            latest_cancel_requested_event_id=a.cancel_requested_event_id,
            scheduled_event_id=a.scheduled_event_id,
            identity=identity,
        ),
    )


def report_canceled(t: Transition, a: ActivityInfo, details: Payloads, identity: str) -> None:
    """A worker reports its activity canceled; only allowed once cancellation was requested."""
    if not a.cancel_requested:
        raise InvalidArgument("unable to mark activity as canceled without activity being request canceled first")
    canceled(t, a, details, identity)


def failed(t: Transition, a: ActivityInfo, failure: Failure, identity: str, last_heartbeat_details: Payloads) -> None:
    if last_heartbeat_details.payloads:
        a.heartbeat_details = pack(last_heartbeat_details)
        a.last_heartbeat_time = t.ts
    _retry_or_close(t, a, failure, identity, timed_out=False)


@dataclass(frozen=True)
class HeartbeatAnswer:
    """What a heartbeat tells the running attempt: stop because it was cancelled, paused or reset."""

    cancel_requested: bool = False
    paused: bool = False
    reset: bool = False


def heartbeat(t: Transition, a: ActivityInfo, details: Payloads) -> HeartbeatAnswer:
    """Record a heartbeat; returns what the worker should learn from it."""
    if details.payloads:
        a.heartbeat_details = pack(details)
    a.last_heartbeat_time = t.ts
    return HeartbeatAnswer(a.cancel_requested, a.paused, a.reset_requested)


def retry_due(t: Transition, scheduled_event_id: int, attempt: int) -> None:
    a = t.state.activities.get(scheduled_event_id)
    if not t.state.running or a is None or a.attempt != attempt or a.started:
        raise StaleTask("activity retry no longer pending")
    if a.paused:
        raise StaleTask("activity is paused; unpausing dispatches it")
    dispatch(t, a)


def timed_out(t: Transition, scheduled_event_id: int, attempt: int, timeout_type: TimeoutType.ValueType) -> None:
    s = t.state
    a = s.activities.get(scheduled_event_id)
    if not s.running or a is None:
        raise StaleTask("activity closed")
    if timeout_type != TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE and a.attempt != attempt:
        raise StaleTask("timer of an older attempt")
    if timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START and (a.started or a.paused):
        raise StaleTask("activity started in time, or paused (unpausing re-arms it)")
    if timeout_type in (TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE, TimeoutType.TIMEOUT_TYPE_HEARTBEAT):
        if not a.started:
            raise StaleTask("attempt not running")
        if a.paused:
            # A paused attempt's own clocks stop (as in Temporal); unpausing re-arms them.
            raise StaleTask("attempt paused")
    deadline = timeout_deadline(a, timeout_type)
    if deadline is None:
        raise StaleTask("the timeout was removed (UpdateActivityOptions)")
    if deadline > t.ts + 0.001:
        # A heartbeat, a reset or new options moved the deadline since this timer was armed.
        arm_timeout(t, a, deadline, timeout_type)
        return
    failure = timeout_failure(a, timeout_type)
    _retry_or_close(t, a, failure, a.started_identity, timed_out=True)


def timeout_deadline(a: ActivityInfo, timeout_type: TimeoutType.ValueType) -> float | None:
    """When the current attempt times out in this way, from the current state (None: no such timeout)."""
    if timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE:
        return a.first_scheduled_time + a.schedule_to_close if a.schedule_to_close else None
    if timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START:
        return a.scheduled_time + a.schedule_to_start if a.schedule_to_start else None
    started = max(a.started_time, a.timeouts_from)
    if timeout_type == TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE:
        return started + a.start_to_close if a.start_to_close else None
    return max(a.last_heartbeat_time, started) + a.heartbeat if a.heartbeat else None


def timeout_failure(a: ActivityInfo, timeout_type: TimeoutType.ValueType) -> Failure:
    failure = Failure(
        message=f"activity {_TIMEOUT_LABEL[timeout_type]} timeout",
        timeout_failure_info=TimeoutFailureInfo(
            timeout_type=timeout_type, last_heartbeat_details=unpack(Payloads, a.heartbeat_details)
        ),
    )
    last = unpack(Failure, a.last_failure)
    if last is not None:
        failure.cause.CopyFrom(last)
    return failure


def _retry_or_close(t: Transition, a: ActivityInfo, failure: Failure, identity: str, timed_out: bool) -> None:
    expiration = a.first_scheduled_time + a.schedule_to_close if a.schedule_to_close else 0.0
    state, delay = retry.decide(a.retry, a.attempt, failure, t.ts, expiration, a.cancel_requested)
    if state == RetryState.RETRY_STATE_IN_PROGRESS:
        a.attempt += 1
        a.scheduled_time = t.ts + delay
        a.started_time = 0.0
        a.started_identity = ""
        a.request_id = ""
        a.reset_requested = False
        a.timeouts_from = 0.0
        a.last_attempt_complete_time = t.ts
        a.last_failure = pack(failure)
        t.timer(TimerKind.ACTIVITY_RETRY, a.scheduled_time, scheduled_event_id=a.scheduled_event_id, attempt=a.attempt)
        return
    if timed_out:
        if state == RetryState.RETRY_STATE_TIMEOUT and failure.timeout_failure_info.timeout_type not in (
            TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START,
            TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE,
        ):
            cause = Failure()
            cause.CopyFrom(failure)
            failure = timeout_failure(a, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE)
            failure.message = "Not enough time to schedule next retry before activity ScheduleToClose timeout, giving up retrying"
            failure.cause.CopyFrom(cause)
        _close(
            t,
            a,
            E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
            h.ActivityTaskTimedOutEventAttributes(
                failure=failure, scheduled_event_id=a.scheduled_event_id, retry_state=state
            ),
        )
    else:
        _close(
            t,
            a,
            E.EVENT_TYPE_ACTIVITY_TASK_FAILED,
            h.ActivityTaskFailedEventAttributes(
                failure=failure, scheduled_event_id=a.scheduled_event_id, identity=identity, retry_state=state
            ),
        )
