"""Operator changes to a run's pending activities: pause, unpause, reset, new options (pure).

What each does, as Temporal does it:

- **Pause**: no attempt is dispatched while paused. An attempt already running goes on (its
  heartbeats answer ``activity_paused``, and the SDKs stop the activity); if it fails or times out
  and may retry, the retry waits for the unpause. A completion is recorded as usual.
- **Unpause**: an activity waiting for its next attempt is dispatched now (or within ``jitter``),
  optionally with its attempt count back at 1 and its heartbeat details cleared.
- **Reset**: the attempt count goes back to 1 (with no retry wait when no attempt runs). A running
  attempt's token no longer matches, so its next heartbeat or completion is NOT_FOUND, and its
  start-to-close and heartbeat clocks restart; the activity is unpaused unless ``keep_paused``.
- **Update options**: task queue, timeouts, retry policy or priority, field by field as the update
  mask names them; ``restore_original`` puts back the options it was scheduled with.

The functions take the transition and the activities the request selected (``select``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from temporalio.api.activity.v1 import ActivityOptions
from temporalio.api.common.v1 import Priority, RetryPolicy
from temporalio.api.enums.v1 import TaskQueueKind, TimeoutType
from temporalio.api.errordetails.v1 import NotFoundFailure
from temporalio.api.taskqueue.v1 import TaskQueue

from odin.errors import InvalidArgument, NotFound
from odin.history import activities, retry
from odin.history.activities import arm_timeout, dispatch
from odin.history.events import duration, seconds
from odin.history.machine import Transition
from odin.history.state import ActivityInfo, RetryPolicyInfo, pack, unpack
from odin.history.tasks import TimerKind

NO_SUCH_ACTIVITY = "Can't find pending activity with such ID. Invalid activityID or activity already completed"
NEITHER_ID_NOR_TYPE = "Either Activity.Id or Activity.Type should be set on request."

# Update-mask paths UpdateActivityOptions applies (others are ignored, as Temporal ignores them).
_TIMEOUTS = {
    "schedule_to_close_timeout": "schedule_to_close",
    "schedule_to_start_timeout": "schedule_to_start",
    "start_to_close_timeout": "start_to_close",
    "heartbeat_timeout": "heartbeat",
}
_RETRY_FIELDS = ("initial_interval", "backoff_coefficient", "maximum_interval", "maximum_attempts", "non_retryable_error_types")


@dataclass(frozen=True)
class Selector:
    """Which pending activities a request names: one by id, all of a type, or all."""

    activity_id: str = ""
    activity_type: str = ""
    match_all: bool = False

    def check(self) -> None:
        if not (self.activity_id or self.activity_type or self.match_all):
            raise InvalidArgument(NEITHER_ID_NOR_TYPE)


def select(t: Transition, selector: Selector, paused_only: bool = False) -> list[ActivityInfo]:
    """The run's pending activities the selector names; NOT_FOUND when none (or the run is closed).
    ``match_all`` with ``paused_only`` (UnpauseActivity's ``unpause_all``) names the paused ones."""
    s = t.state
    if not s.running:
        raise NotFound("workflow execution already completed", NotFoundFailure())
    found = [
        a
        for a in s.activities.values()
        if (selector.match_all and (a.paused or not paused_only))
        or (selector.activity_id and a.activity_id == selector.activity_id)
        or (not selector.activity_id and selector.activity_type and a.activity_type == selector.activity_type)
    ]
    if not found:
        raise NotFound(NO_SUCH_ACTIVITY, NotFoundFailure())
    return found


def pause(t: Transition, found: Iterable[ActivityInfo], identity: str, reason: str) -> None:
    for a in found:
        if a.paused:
            continue  # pausing again keeps the first pause's time, identity and reason
        a.paused = True
        a.pause_time = t.ts
        a.pause_identity = identity
        a.pause_reason = reason
    activities.refresh_pause_info(t)


def unpause(
    t: Transition, found: Iterable[ActivityInfo], reset_attempts: bool, reset_heartbeat: bool, delay: float
) -> None:
    """Unpause; ``delay`` is the (already drawn) jitter before the next attempt is dispatched."""
    for a in found:
        if not a.paused:
            continue
        _clear_pause(a)
        if not a.started:
            a.last_failure = None
        if reset_heartbeat:
            _clear_heartbeat(a)
        if reset_attempts:
            _restart_attempts(t, a)
        if a.started:
            _rearm_running(t, a)
        else:
            _schedule_now(t, a, delay)
    activities.refresh_pause_info(t)


def reset(
    t: Transition,
    found: Iterable[ActivityInfo],
    reset_heartbeat: bool,
    keep_paused: bool,
    delay: float,
    restore_original_options: bool,
) -> None:
    for a in found:
        if restore_original_options:
            _restore(t, a)
        if not keep_paused:
            _clear_pause(a)
        if reset_heartbeat:
            _clear_heartbeat(a)
        if not a.started:
            a.last_failure = None
        _restart_attempts(t, a)
        if not a.started and not a.paused:
            _schedule_now(t, a, delay)
    activities.refresh_pause_info(t)


def update_options(
    t: Transition, found: Iterable[ActivityInfo], options: ActivityOptions, paths: list[str], restore_original: bool
) -> ActivityOptions:
    """Apply new options to each activity; returns the options of the last one updated."""
    result = ActivityOptions()
    for a in found:
        if restore_original:
            _restore(t, a)
        else:
            _remember_original(a)
            _apply(t, a, options, paths)
        result = options_of(a)
        if restore_original:
            result.task_queue.ClearField("kind")  # as Temporal answers a restore
    return result


def options_of(a: ActivityInfo) -> ActivityOptions:
    """An activity's current options, as UpdateActivityOptions and DescribeWorkflowExecution show them."""
    return ActivityOptions(
        task_queue=TaskQueue(name=a.task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        schedule_to_close_timeout=duration(a.schedule_to_close),
        schedule_to_start_timeout=duration(a.schedule_to_start),
        start_to_close_timeout=duration(a.start_to_close),
        heartbeat_timeout=duration(a.heartbeat),
        retry_policy=retry_policy_of(a.retry),
        priority=unpack(Priority, a.priority) or Priority(),
    )


def retry_policy_of(info: RetryPolicyInfo) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=duration(info.initial_interval),
        backoff_coefficient=info.backoff_coefficient,
        maximum_interval=duration(info.maximum_interval),
        maximum_attempts=info.maximum_attempts,
        non_retryable_error_types=info.non_retryable_error_types,
    )


def normalized_paths(paths: Iterable[str]) -> list[str]:
    """Mask paths in snake case (proto JSON clients send camelCase)."""
    return [".".join(_snake(part) for part in p.split(".")) for p in paths]


# -- helpers ---------------------------------------------------------------------------------


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _clear_pause(a: ActivityInfo) -> None:
    a.paused = False
    a.pause_time = 0.0
    a.pause_identity = ""
    a.pause_reason = ""


def _clear_heartbeat(a: ActivityInfo) -> None:
    a.heartbeat_details = None
    a.last_heartbeat_time = 0.0


def _restart_attempts(t: Transition, a: ActivityInfo) -> None:
    """Attempt count back to 1. A running attempt keeps running under the new count (its token
    is now stale) with its start-to-close and heartbeat clocks restarted."""
    if a.attempt == 1 and not a.started:
        return
    a.attempt = 1
    if a.started:
        a.reset_requested = True
        a.timeouts_from = t.ts
        if a.start_to_close:
            arm_timeout(t, a, t.ts + a.start_to_close, TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE)
        if a.heartbeat:
            arm_timeout(t, a, t.ts + a.heartbeat, TimeoutType.TIMEOUT_TYPE_HEARTBEAT)


def _rearm_running(t: Transition, a: ActivityInfo) -> None:
    """A running attempt's start-to-close and heartbeat timers, at their deadlines (at once if
    passed): they were ignored while it was paused."""
    for timeout_type in (TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE, TimeoutType.TIMEOUT_TYPE_HEARTBEAT):
        deadline = activities.timeout_deadline(a, timeout_type)
        if deadline is not None:
            arm_timeout(t, a, max(deadline, t.ts), timeout_type)


def _schedule_now(t: Transition, a: ActivityInfo, delay: float) -> None:
    """Dispatch the waiting attempt now, or after ``delay`` seconds."""
    a.scheduled_time = t.ts + delay
    if delay > 0:
        t.timer(TimerKind.ACTIVITY_RETRY, a.scheduled_time, scheduled_event_id=a.scheduled_event_id, attempt=a.attempt)
    else:
        dispatch(t, a)


def _remember_original(a: ActivityInfo) -> None:
    if a.original_options is None:
        a.original_options = {
            "task_queue": a.task_queue,
            "schedule_to_close": a.schedule_to_close,
            "schedule_to_start": a.schedule_to_start,
            "start_to_close": a.start_to_close,
            "heartbeat": a.heartbeat,
            "retry": vars(a.retry).copy(),
            "priority": a.priority,
        }


def _restore(t: Transition, a: ActivityInfo) -> None:
    original = a.original_options
    if original is None:
        return
    queue = a.task_queue
    a.task_queue = original["task_queue"]
    a.schedule_to_close = original["schedule_to_close"]
    a.schedule_to_start = original["schedule_to_start"]
    a.start_to_close = original["start_to_close"]
    a.heartbeat = original["heartbeat"]
    a.retry = RetryPolicyInfo(**original["retry"])
    a.priority = original["priority"]
    a.original_options = None
    _after_change(t, a, queue)


def _apply(t: Transition, a: ActivityInfo, options: ActivityOptions, paths: list[str]) -> None:
    queue = a.task_queue
    for path in paths:
        head, _, rest = path.partition(".")
        if head in _TIMEOUTS:
            setattr(a, _TIMEOUTS[head], seconds(getattr(options, head)))
        elif head == "task_queue" and rest in ("", "name"):
            if not options.task_queue.name:
                raise InvalidArgument("TaskQueue is not set on request.")
            a.task_queue = options.task_queue.name
        elif head == "retry_policy" and not rest:
            a.retry = retry.info_of(_checked_policy(options.retry_policy))
        elif head == "retry_policy" and rest in _RETRY_FIELDS:
            merged = retry_policy_of(a.retry)
            if rest == "non_retryable_error_types":
                del merged.non_retryable_error_types[:]
                merged.non_retryable_error_types.extend(options.retry_policy.non_retryable_error_types)
            elif rest in ("initial_interval", "maximum_interval"):
                getattr(merged, rest).CopyFrom(getattr(options.retry_policy, rest))
            else:
                setattr(merged, rest, getattr(options.retry_policy, rest))
            a.retry = retry.info_of(_checked_policy(merged))
        elif head == "priority":
            a.priority = pack(options.priority)
    _after_change(t, a, queue)


def _checked_policy(policy: RetryPolicy) -> RetryPolicy:
    try:
        return retry.normalize(policy)
    except retry.InvalidRetryPolicy as exc:
        raise InvalidArgument(str(exc)) from None


def _after_change(t: Transition, a: ActivityInfo, old_queue: str) -> None:
    """Re-arm what new options move: a waiting attempt goes to its (new) queue; the timers of a
    running one find their new deadlines when they fire (shorter ones are armed now)."""
    if a.schedule_to_close:
        arm_timeout(t, a, a.first_scheduled_time + a.schedule_to_close, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE)
    if not a.started:
        if a.task_queue != old_queue and a.scheduled_time <= t.ts and not a.paused:
            dispatch(t, a)
        return
    for timeout_type, value in (
        (TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE, a.start_to_close),
        (TimeoutType.TIMEOUT_TYPE_HEARTBEAT, a.heartbeat),
    ):
        if value:
            arm_timeout(t, a, max(a.started_time, a.timeouts_from) + value, timeout_type)
