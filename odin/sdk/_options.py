"""Options shared by the SDK's definitions: durations given as seconds or ``timedelta``, and retry
policies given Celery-style."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import temporalio.common

Duration = float | int | timedelta


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


def retry_policy(value: Retry | temporalio.common.RetryPolicy | int | None) -> temporalio.common.RetryPolicy | None:
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
