"""Standalone activities (pure): an activity a client starts and awaits without a workflow.

Its state is a ``StandaloneActivity``: the request's inputs, an ``ActivityInfo`` for the attempts
and, once closed, the outcome. The attempt lifecycle is the same code as a workflow's activities
(``odin.history.activities``): it runs on an ``ActivityTransition``, a transition over a one-activity
state that writes no history and turns the activity's outcome into the execution's close.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from google.protobuf.message import Message
from temporalio.api.common.v1 import Header, Payloads, Priority, SearchAttributes
from temporalio.api.enums.v1 import ActivityExecutionStatus as Status
from temporalio.api.enums.v1 import EventType as E
from temporalio.api.enums.v1 import PendingActivityState, TimeoutType
from temporalio.api.errordetails.v1 import NotFoundFailure
from temporalio.api.failure.v1 import CanceledFailureInfo, Failure, TerminatedFailureInfo
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.history.v1 import message_pb2 as h
from temporalio.api.sdk.v1 import UserMetadata

from odin.errors import NotFound
from odin.history import activities
from odin.history.machine import Transition
from odin.history.state import RUNNING, ActivityInfo, MutableState, RetryPolicyInfo, pack, unpack
from odin.history.tasks import TimerKind, TransferKind
from odin.history.tokens import StandaloneActivityTaskToken

# The key of the one activity in an ActivityTransition's state (activities are keyed by their
# scheduled event id in a workflow; a standalone activity has no events).
SLOT = 1

# Outbox kinds of a standalone activity's rows: the workflow kinds' counterparts, which the engine
# routes to the activity's row instead of a run.
TRANSFER_KINDS = {TransferKind.ACTIVITY_TASK: TransferKind.STANDALONE_ACTIVITY_TASK}
TIMER_KINDS = {
    TimerKind.ACTIVITY_TIMEOUT: TimerKind.STANDALONE_ACTIVITY_TIMEOUT,
    TimerKind.ACTIVITY_RETRY: TimerKind.STANDALONE_ACTIVITY_RETRY,
}

_CLOSED_BY_EVENT = {
    E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: Status.ACTIVITY_EXECUTION_STATUS_COMPLETED,
    E.EVENT_TYPE_ACTIVITY_TASK_FAILED: Status.ACTIVITY_EXECUTION_STATUS_FAILED,
    E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: Status.ACTIVITY_EXECUTION_STATUS_TIMED_OUT,
    E.EVENT_TYPE_ACTIVITY_TASK_CANCELED: Status.ACTIVITY_EXECUTION_STATUS_CANCELED,
}
FAILED_STATES = frozenset(
    {
        Status.ACTIVITY_EXECUTION_STATUS_FAILED,
        Status.ACTIVITY_EXECUTION_STATUS_CANCELED,
        Status.ACTIVITY_EXECUTION_STATUS_TERMINATED,
        Status.ACTIVITY_EXECUTION_STATUS_TIMED_OUT,
    }
)
STATUS_NAMES: dict[int, str] = {
    Status.ACTIVITY_EXECUTION_STATUS_RUNNING: "Running",
    Status.ACTIVITY_EXECUTION_STATUS_COMPLETED: "Completed",
    Status.ACTIVITY_EXECUTION_STATUS_FAILED: "Failed",
    Status.ACTIVITY_EXECUTION_STATUS_CANCELED: "Canceled",
    Status.ACTIVITY_EXECUTION_STATUS_TERMINATED: "Terminated",
    Status.ACTIVITY_EXECUTION_STATUS_TIMED_OUT: "TimedOut",
    Status.ACTIVITY_EXECUTION_STATUS_PAUSED: "Paused",
}
# Statuses of an execution that is not closed.
OPEN_STATES = frozenset({Status.ACTIVITY_EXECUTION_STATUS_RUNNING, Status.ACTIVITY_EXECUTION_STATUS_PAUSED})


@dataclass
class StandaloneActivity:
    namespace_id: str
    namespace: str
    activity_id: str
    run_id: str
    request_id: str
    identity: str
    start_time: float
    info: ActivityInfo  # the attempts (kept after the close, for DescribeActivityExecution)
    status: int = Status.ACTIVITY_EXECUTION_STATUS_RUNNING
    input: str | None = None  # Payloads
    header: str | None = None  # Header
    user_metadata: str | None = None  # UserMetadata
    priority: str | None = None  # Priority
    search_attributes: str | None = None  # SearchAttributes
    start_delay: float = 0.0
    close_time: float = 0.0
    result: str | None = None  # Payloads
    failure: str | None = None  # Failure
    retry_state: int = 0
    canceled_reason: str = ""
    cancel_request_id: str = ""
    terminate_request_id: str = ""
    # Changes committed so far (DescribeActivityExecution's state_transition_count and long-poll token).
    transitions: int = 0
    heartbeats: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.status == Status.ACTIVITY_EXECUTION_STATUS_RUNNING

    def to_bytes(self) -> bytes:
        return orjson.dumps(self, option=orjson.OPT_NON_STR_KEYS)

    @classmethod
    def from_bytes(cls, data: bytes) -> StandaloneActivity:
        raw: dict[str, Any] = orjson.loads(data)
        info = raw.pop("info")
        return cls(**raw, info=ActivityInfo(**{**info, "retry": RetryPolicyInfo(**info["retry"])}))


class ActivityTransition(Transition):
    """A transition of one standalone activity. The workflow activity code runs on it unchanged:
    its state holds the activity (while running) under ``SLOT``; events are not kept, and the
    activity's outcome (what would be delivered to a workflow) closes the execution."""

    def __init__(self, activity: StandaloneActivity, now: datetime):
        state = MutableState(
            namespace_id=activity.namespace_id,
            namespace=activity.namespace,
            workflow_id="",
            run_id=activity.run_id,
            first_execution_run_id=activity.run_id,
            workflow_type="",
            task_queue=activity.info.task_queue,
            start_time=activity.start_time,
            start_request_id=activity.request_id,
            workflow_task_timeout=0.0,
            status=RUNNING if activity.running else 0,
            search_attributes=activity.search_attributes,
        )
        if activity.running:
            state.activities[SLOT] = activity.info
        super().__init__(state, now)
        self.activity = activity

    def append(self, event_type: E.ValueType, attributes: Message, *, bufferable: bool = False) -> HistoryEvent:
        return HistoryEvent()  # a standalone activity keeps no history

    def deliver(self, event_type: E.ValueType, attributes: Message) -> None:
        a = self.activity
        a.status = _CLOSED_BY_EVENT[event_type]
        a.close_time = self.ts
        if a.info.started and event_type != E.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
            a.info.last_attempt_complete_time = self.ts
        if isinstance(attributes, h.ActivityTaskCompletedEventAttributes):
            a.result = pack(attributes.result)
        elif isinstance(attributes, h.ActivityTaskCanceledEventAttributes):
            a.failure = pack(
                Failure(
                    message="Activity canceled",
                    canceled_failure_info=CanceledFailureInfo(details=attributes.details),
                )
            )
        elif isinstance(attributes, h.ActivityTaskFailedEventAttributes | h.ActivityTaskTimedOutEventAttributes):
            a.failure = pack(attributes.failure)
            a.retry_state = attributes.retry_state
        self.closed = True


def new_activity(
    *,
    namespace_id: str,
    namespace: str,
    activity_id: str,
    run_id: str,
    request_id: str,
    identity: str,
    activity_type: str,
    task_queue: str,
    schedule_to_close: float,
    schedule_to_start: float,
    start_to_close: float,
    heartbeat: float,
    retry: RetryPolicyInfo,
    start_delay: float,
    input: Payloads | None,
    header: Header | None,
    user_metadata: UserMetadata | None,
    priority: Priority | None,
    search_attributes: SearchAttributes | None,
    now: datetime,
) -> ActivityTransition:
    """A new execution (timeouts already normalized), its first attempt queued or, after a start
    delay, due by a retry timer; the schedule-to-close timeout armed."""
    ts = now.timestamp()
    due = ts + start_delay
    info = ActivityInfo(
        scheduled_event_id=SLOT,
        activity_id=activity_id,
        activity_type=activity_type,
        task_queue=task_queue,
        attempt=1,
        first_scheduled_time=due,
        scheduled_time=due,
        schedule_to_close=schedule_to_close,
        schedule_to_start=schedule_to_start,
        start_to_close=start_to_close,
        heartbeat=heartbeat,
        retry=retry,
        priority_key=priority.priority_key if priority is not None else 0,
    )
    activity = StandaloneActivity(
        namespace_id=namespace_id,
        namespace=namespace,
        activity_id=activity_id,
        run_id=run_id,
        request_id=request_id,
        identity=identity,
        start_time=ts,
        info=info,
        input=pack(input),
        header=pack(header),
        user_metadata=pack(user_metadata),
        priority=pack(priority),
        search_attributes=pack(search_attributes),
        start_delay=start_delay,
    )
    t = ActivityTransition(activity, now)
    if start_delay > 0:
        t.timer(TimerKind.ACTIVITY_RETRY, due, scheduled_event_id=SLOT, attempt=1)
    else:
        activities.dispatch(t, info)
    if schedule_to_close:
        activities.arm_timeout(t, info, due + schedule_to_close, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE)
    return t


def timed_out(t: ActivityTransition, attempt: int, timeout_type: TimeoutType.ValueType) -> None:
    """A timeout timer fired. Timeouts due at the same moment go in Temporal's order (its timer
    sequence sorts them by type): a schedule-to-close timer of an attempt that never started
    and whose schedule-to-start deadline has come too is a schedule-to-start timeout (the default
    schedule-to-start timeout equals schedule-to-close)."""
    a = t.state.activities.get(SLOT)
    if (
        timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE
        and a is not None
        and not a.started
        and not a.paused
        and a.schedule_to_start
        and a.scheduled_time + a.schedule_to_start <= t.ts + 0.001
    ):
        activities.timed_out(t, SLOT, a.attempt, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START)
        return
    activities.timed_out(t, SLOT, attempt, timeout_type)


def for_token(t: ActivityTransition, token: StandaloneActivityTaskToken) -> ActivityInfo:
    """The running attempt a worker's token names (NOT_FOUND when it is over)."""
    a = t.state.activities.get(SLOT)
    if not t.activity.running or a is None or a.attempt != token.attempt or not a.started:
        raise NotFound(activities.TASK_NOT_FOUND, NotFoundFailure())
    return a


def attempt_by_id(t: ActivityTransition) -> ActivityInfo:
    """The current attempt, for the calls that address the activity by id (async completion):
    as in Temporal, also one not started yet, unless it is paused."""
    a = t.state.activities.get(SLOT)
    if not t.activity.running or a is None or (a.paused and not a.started):
        raise NotFound(f"activity not found for ID: {t.activity.activity_id}", NotFoundFailure())
    return a


def shown_status(act: StandaloneActivity) -> int:
    """The status callers see: a running activity an operator paused shows as paused."""
    if act.running and act.info.paused:
        return Status.ACTIVITY_EXECUTION_STATUS_PAUSED
    return act.status


class Closed(Exception):
    """A cancel or terminate of an activity that is closed (Temporal's wording as the message)."""


def _closed(act: StandaloneActivity) -> Closed:
    return Closed(f"activity is in terminal state {STATUS_NAMES.get(act.status, 'Unspecified')}")


def request_cancel(t: ActivityTransition, reason: str, identity: str, request_id: str) -> None:
    """Cancel: at once while no attempt runs; otherwise the worker learns of it from its next
    heartbeat and reports the attempt canceled. Repeats (and cancels of a closed one with the
    same request id) change nothing."""
    act = t.activity
    if not act.running:
        if request_id and request_id == act.cancel_request_id:
            return
        raise _closed(act)
    a = t.state.activities[SLOT]
    if a.cancel_requested:
        return
    a.cancel_requested = True
    act.canceled_reason = reason
    act.cancel_request_id = request_id
    if not a.started:
        activities.canceled(t, a, Payloads(), identity)


def terminate(t: ActivityTransition, reason: str, identity: str, request_id: str) -> None:
    act = t.activity
    if not act.running:
        if request_id and request_id == act.terminate_request_id:
            return
        if act.status == Status.ACTIVITY_EXECUTION_STATUS_TERMINATED:
            raise Closed(f"already terminated with request ID {act.terminate_request_id}")
        raise Closed(f"invalid transition from {STATUS_NAMES.get(act.status, 'Unspecified')}")
    act.status = Status.ACTIVITY_EXECUTION_STATUS_TERMINATED
    act.close_time = t.ts
    act.terminate_request_id = request_id
    act.failure = pack(Failure(message=reason, terminated_failure_info=TerminatedFailureInfo()))
    t.state.activities.clear()
    t.closed = True


def run_state(act: StandaloneActivity) -> int:
    """The attempt's state as DescribeActivityExecution shows it (unspecified once closed)."""
    a = act.info
    if not act.running:
        return PendingActivityState.PENDING_ACTIVITY_STATE_UNSPECIFIED
    if a.cancel_requested:
        return PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED
    if a.paused:
        return PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED
    if a.started:
        return PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
    return PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED


def failure_of(act: StandaloneActivity) -> Failure | None:
    return unpack(Failure, act.failure)
