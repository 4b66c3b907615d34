"""Flow-control options of activities and workflows, checked when they are defined: Celery's
``rate_limit`` (a dispatch rate held by matching for all workers together), priority keys
(Temporal's: 1 is the highest) and Celery's priorities mapped onto them."""

from __future__ import annotations

import re

import temporalio.common

# Priority keys run from 1 (highest) to PRIORITY_LEVELS (lowest); unset is the middle one.
PRIORITY_LEVELS = 5
DEFAULT_PRIORITY = 3

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:/\s*([smh]))?\s*$")


def parse_rate(value: str | float | int | None, what: str = "rate_limit") -> float | None:
    """Celery's ``rate_limit`` in tasks per second: a number (per second) or ``"N/s"``, ``"N/m"``,
    ``"N/h"``. None or zero is no limit, as in Celery. ``ValueError`` for anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a number or a string like '10/m', not {value!r}")
    if isinstance(value, int | float):
        per_second = float(value)
    elif isinstance(value, str):
        match = _RATE.match(value)
        if match is None:
            raise ValueError(
                f"{what} {value!r} is not a rate: give tasks per second as a number, or 'N/s', 'N/m' or 'N/h'"
            )
        per_second = float(match.group(1)) / _UNITS[match.group(2) or "s"]
    else:
        raise TypeError(f"{what} must be a number or a string like '10/m', not {type(value).__name__}")
    if per_second != per_second or per_second < 0 or per_second == float("inf"):  # NaN too
        raise ValueError(f"{what} {value!r} must be a finite rate of at least zero")
    return per_second or None


def check_priority(value: int | temporalio.common.Priority | None, what: str = "priority") -> temporalio.common.Priority | None:
    """A priority key (1 highest .. 5 lowest; larger keys count as the lowest) or a temporalio
    ``Priority``, as the ``Priority`` to schedule with. ``ValueError`` for a key below 1."""
    if value is None or isinstance(value, temporalio.common.Priority):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be a priority key (an int, 1 highest to {PRIORITY_LEVELS} lowest), not {value!r}")
    if value < 1:
        raise ValueError(
            f"{what} {value} is not a priority key: keys run from 1 (highest) to {PRIORITY_LEVELS} (lowest), "
            f"{DEFAULT_PRIORITY} by default"
        )
    return temporalio.common.Priority(priority_key=value)


def celery_priority(value: int | None, highest_first: bool = True) -> temporalio.common.Priority | None:
    """A Celery priority (0-9) as a priority key. ``highest_first``: 0 is the highest, as on
    Celery's Redis and SQS transports; else 9 is, as on RabbitMQ. 0-9 spread over the five keys:
    0-1 -> 1, 2-3 -> 2, 4-5 -> 3, 6-7 -> 4, 8-9 -> 5 (reversed for RabbitMQ's order)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 9:
        raise ValueError(f"a Celery priority runs from 0 to 9, not {value!r}")
    rank = value if highest_first else 9 - value
    return temporalio.common.Priority(priority_key=1 + rank // 2)


def rate_limited_queue(queue: str, activity: str) -> str:
    """The task queue of a rate-limited activity: its own, so that matching can hold the rate for
    that activity alone (a queue's rate is Temporal's unit of rate limiting)."""
    return f"{queue}:rate:{activity}"
