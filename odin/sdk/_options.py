"""Options shared by the SDK's definitions: durations given as seconds or ``timedelta``, retry
policies given Celery-style, and the keyword options of the decorators and of starting a workflow
(as TypedDicts, so type checkers check them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypedDict, overload

import temporalio.common
import temporalio.workflow

Duration = float | int | timedelta


@overload
def as_timedelta(value: Duration) -> timedelta: ...
@overload
def as_timedelta(value: Duration | None) -> timedelta | None: ...
def as_timedelta(value: Duration | None) -> timedelta | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value
    if value < 0:
        raise ValueError(f"a duration cannot be negative: {value}")
    return timedelta(seconds=value)


@dataclass(frozen=True)
class Retry:
    """How a failed activity or workflow is tried again (Celery's ``max_retries`` and back-off,
    Temporal's retry policy): ``max_attempts`` counts the first try (0 = no limit)."""

    max_attempts: int = 0
    initial_interval: Duration = 1.0
    backoff: float = 2.0
    max_interval: Duration | None = None
    non_retryable: Sequence[str] = field(default_factory=tuple)

    def policy(self) -> temporalio.common.RetryPolicy:
        return temporalio.common.RetryPolicy(
            initial_interval=as_timedelta(self.initial_interval),
            backoff_coefficient=self.backoff,
            maximum_interval=as_timedelta(self.max_interval),
            maximum_attempts=self.max_attempts,
            non_retryable_error_types=list(self.non_retryable) or None,
        )


# What ``retry=`` takes.
RetryOption = Retry | temporalio.common.RetryPolicy | int


def retry_policy(value: RetryOption | None) -> temporalio.common.RetryPolicy | None:
    """``retry=`` as a ``Retry``, a temporalio ``RetryPolicy`` or just a number of attempts."""
    if value is None:
        return None
    if isinstance(value, temporalio.common.RetryPolicy):
        return value
    if isinstance(value, Retry):
        return value.policy()
    if isinstance(value, int):
        return Retry(max_attempts=value).policy()
    raise TypeError(f"retry must be a Retry, a RetryPolicy or a number of attempts, not {type(value).__name__}")


# Celery's defaults for a task that asks to be retried: 3 retries, 180 s apart.
CELERY_MAX_RETRIES = 3
CELERY_RETRY_DELAY = 180.0

# An activity that asks for no retry gets one attempt: Celery runs a task once unless told otherwise.
NO_RETRY = Retry(max_attempts=1)


def celery_retry(
    *,
    max_retries: int | None = CELERY_MAX_RETRIES,
    default_retry_delay: Duration = CELERY_RETRY_DELAY,
    retry_backoff: bool | int | float = False,
    retry_backoff_max: Duration = 600,
) -> Retry:
    """Celery's retry options as a policy: ``max_retries`` + 1 attempts (None: no limit), spaced
    ``default_retry_delay`` seconds, or with ``retry_backoff`` exponentially from that many seconds
    (``True``: 1) up to ``retry_backoff_max``."""
    if max_retries is not None and (not isinstance(max_retries, int) or max_retries < 0):
        raise ValueError(f"max_retries must be a number of retries (0 or more) or None, not {max_retries!r}")
    attempts = 0 if max_retries is None else max_retries + 1
    if retry_backoff:
        factor = int(max(1.0, float(retry_backoff)))
        return Retry(max_attempts=attempts, initial_interval=factor, backoff=2.0, max_interval=retry_backoff_max)
    return Retry(max_attempts=attempts, initial_interval=default_retry_delay, backoff=1.0)


def exception_types(value: Any, option: str) -> tuple[type[BaseException], ...]:
    """``autoretry_for``/``dont_autoretry_for``: a tuple of exception classes (or one class)."""
    if isinstance(value, type):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not all(isinstance(t, type) and issubclass(t, BaseException) for t in value):
        raise TypeError(f"{option} must be a tuple of exception classes, not {value!r}")
    return tuple(value)


class WorkflowOptions(TypedDict, total=False):
    """``@app.workflow(...)``'s options."""

    name: str | None
    queue: str | None
    execution_timeout: Duration | None
    retry: RetryOption | None
    sandboxed: bool
    priority: int | temporalio.common.Priority | None
    on_error: str


class ActivityOptions(TypedDict, total=False):
    """``@app.activity(...)``'s options."""

    name: str | None
    queue: str | None
    retry: RetryOption | None
    start_to_close_timeout: Duration | None
    schedule_to_close_timeout: Duration | None
    heartbeat_timeout: Duration | None
    auto_heartbeat: bool
    rate_limit: str | float | None
    priority: int | temporalio.common.Priority | None
    expires: Duration | None
    concurrency_key: str | Callable[..., str] | None
    max_concurrency: int | None
    autoretry_for: tuple[type[BaseException], ...] | type[BaseException]
    dont_autoretry_for: tuple[type[BaseException], ...] | type[BaseException]
    max_retries: int | None
    default_retry_delay: Duration
    retry_backoff: bool | int | float
    retry_backoff_max: Duration


class RunOptions(TypedDict, total=False):
    """How a workflow run is started, beside its arguments, id, queue and delay."""

    execution_timeout: Duration | None
    retry: RetryOption | None
    memo: Mapping[str, Any] | None
    id_reuse_policy: temporalio.common.WorkflowIDReusePolicy | None
    id_conflict_policy: temporalio.common.WorkflowIDConflictPolicy | None
    priority: int | temporalio.common.Priority | None
    expires: Duration | datetime | None


class StartOptions(RunOptions, total=False):
    """``WorkflowFunction.start``'s options (those of ``start_async``)."""

    id: str | None
    queue: str | None
    kwargs: dict[str, Any] | None
    start_delay: Duration | None


class ActivityCallOptions(TypedDict, total=False):
    """Options of ``workflow.execute_activity``/``start_activity``: Odin's names (``queue``,
    ``retry``, durations as seconds) or temporalio's, overriding the activity's own."""

    queue: str | None
    task_queue: str | None
    retry: RetryOption | None
    retry_policy: temporalio.common.RetryPolicy | None
    start_to_close_timeout: Duration | None
    schedule_to_close_timeout: Duration | None
    schedule_to_start_timeout: Duration | None
    heartbeat_timeout: Duration | None
    cancellation_type: temporalio.workflow.ActivityCancellationType
    activity_id: str | None
    summary: str | None
    priority: int | temporalio.common.Priority | None
    expires: Duration | None


class ChildOptions(TypedDict, total=False):
    """Options of ``workflow.start_child``/``execute_child``: Odin's names (``queue``, ``retry``,
    durations as seconds) or temporalio's."""

    id: str | None
    queue: str | None
    task_queue: str | None
    retry: RetryOption | None
    retry_policy: temporalio.common.RetryPolicy | None
    execution_timeout: Duration | None
    run_timeout: Duration | None
    task_timeout: Duration | None
    parent_close_policy: temporalio.workflow.ParentClosePolicy
    cancellation_type: temporalio.workflow.ChildWorkflowCancellationType
    id_reuse_policy: temporalio.common.WorkflowIDReusePolicy
    cron_schedule: str
    memo: Mapping[str, Any] | None
    search_attributes: temporalio.common.TypedSearchAttributes | None


class ContinueAsNewOptions(TypedDict, total=False):
    """Options of ``workflow.continue_as_new`` (temporalio's, passed on as they are)."""

    workflow: str
    task_queue: str | None
    run_timeout: timedelta | None
    task_timeout: timedelta | None
    retry_policy: temporalio.common.RetryPolicy | None
    memo: Mapping[str, Any] | None
    search_attributes: temporalio.common.TypedSearchAttributes | None
