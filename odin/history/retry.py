"""Retry policies: defaults, validation, back-off and the retry decision (pure)."""

from __future__ import annotations

from temporalio.api.common.v1 import RetryPolicy
from temporalio.api.enums.v1 import RetryState, TimeoutType
from temporalio.api.failure.v1 import Failure

from odin.history.events import MAX_NANOS, seconds
from odin.history.state import RetryPolicyInfo

DEFAULT_INITIAL_INTERVAL = 1.0
DEFAULT_BACKOFF_COEFFICIENT = 2.0
DEFAULT_MAXIMUM_INTERVAL_FACTOR = 100


class InvalidRetryPolicy(ValueError):
    pass


def normalize(policy: RetryPolicy | None) -> RetryPolicy:
    """Fill zero fields with Temporal's defaults and validate; returns a new policy."""
    p = RetryPolicy()
    if policy is not None:
        p.CopyFrom(policy)
    if seconds(p.initial_interval) < 0:
        raise InvalidRetryPolicy("InitialInterval cannot be negative on retry policy.")
    if p.initial_interval.ToNanoseconds() == 0:
        p.initial_interval.FromSeconds(int(DEFAULT_INITIAL_INTERVAL))
    if p.backoff_coefficient == 0:
        p.backoff_coefficient = DEFAULT_BACKOFF_COEFFICIENT
    if p.backoff_coefficient < 1:
        raise InvalidRetryPolicy("BackoffCoefficient cannot be less than 1 on retry policy.")
    if p.maximum_interval.ToNanoseconds() < 0:
        raise InvalidRetryPolicy("MaximumInterval cannot be negative on retry policy.")
    if p.maximum_interval.ToNanoseconds() == 0:
        p.maximum_interval.FromNanoseconds(
            min(p.initial_interval.ToNanoseconds() * DEFAULT_MAXIMUM_INTERVAL_FACTOR, MAX_NANOS)
        )
    if p.maximum_interval.ToNanoseconds() < p.initial_interval.ToNanoseconds():
        raise InvalidRetryPolicy("MaximumInterval cannot be less than InitialInterval on retry policy.")
    if p.maximum_attempts < 0:
        raise InvalidRetryPolicy("MaximumAttempts cannot be negative on retry policy.")
    return p


def info_of(policy: RetryPolicy) -> RetryPolicyInfo:
    return RetryPolicyInfo(
        initial_interval=seconds(policy.initial_interval),
        backoff_coefficient=policy.backoff_coefficient,
        maximum_interval=seconds(policy.maximum_interval),
        maximum_attempts=policy.maximum_attempts,
        non_retryable_error_types=list(policy.non_retryable_error_types),
    )


def backoff(info: RetryPolicyInfo, attempt: int) -> float:
    """Delay before attempt ``attempt + 1`` after attempt ``attempt`` failed."""
    try:
        delay = info.initial_interval * info.backoff_coefficient ** max(attempt - 1, 0)
    except OverflowError:  # long retry chains: the cap below applies
        delay = float("inf")
    if info.maximum_interval > 0:
        delay = min(delay, info.maximum_interval)
    return delay


_TIMEOUT_NAMES = {
    TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE: "TemporalTimeout:StartToClose",
    TimeoutType.TIMEOUT_TYPE_HEARTBEAT: "TemporalTimeout:Heartbeat",
    TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START: "TemporalTimeout:ScheduleToStart",
    TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE: "TemporalTimeout:ScheduleToClose",
}


def _non_retryable(failure: Failure, info: RetryPolicyInfo) -> bool:
    which = failure.WhichOneof("failure_info")
    if which in ("canceled_failure_info", "terminated_failure_info"):
        return True
    if which == "application_failure_info":
        app = failure.application_failure_info
        return app.non_retryable or app.type in info.non_retryable_error_types
    if which == "server_failure_info":
        return failure.server_failure_info.non_retryable
    if which == "timeout_failure_info":
        return _TIMEOUT_NAMES.get(failure.timeout_failure_info.timeout_type, "") in info.non_retryable_error_types
    return False


def decide(
    info: RetryPolicyInfo,
    attempt: int,
    failure: Failure,
    now: float,
    expiration: float,
    cancel_requested: bool = False,
) -> tuple[RetryState.ValueType, float]:
    """Return ``(retry_state, delay)``; ``RETRY_STATE_IN_PROGRESS`` means retry after ``delay`` s.

    ``expiration`` is the absolute deadline (schedule-to-close), 0 for none.
    """
    if cancel_requested:
        return RetryState.RETRY_STATE_CANCEL_REQUESTED, 0.0
    if failure.WhichOneof("failure_info") == "timeout_failure_info" and failure.timeout_failure_info.timeout_type in (
        TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START,
        TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE,
    ):
        return RetryState.RETRY_STATE_TIMEOUT, 0.0
    if _non_retryable(failure, info):
        return RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE, 0.0
    if info.maximum_attempts > 0 and attempt >= info.maximum_attempts:
        return RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED, 0.0
    delay = backoff(info, attempt)
    if failure.WhichOneof("failure_info") == "application_failure_info":
        explicit = failure.application_failure_info.next_retry_delay
        if explicit.ToNanoseconds() > 0:
            delay = seconds(explicit)
    if expiration and now + delay >= expiration:
        return RetryState.RETRY_STATE_TIMEOUT, 0.0
    return RetryState.RETRY_STATE_IN_PROGRESS, delay
