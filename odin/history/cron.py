"""Cron schedules of workflows (``cron_schedule`` on start): validation and the next start (pure).

Standard five-field expressions (with ``@hourly``-style aliases) are evaluated by croniter in UTC;
``@every <duration>`` (Go duration syntax, e.g. ``@every 90s``, ``@every 1h30m``) fires at fixed
intervals counted from the chain's first start, as Temporal's robfig/cron parser does.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from croniter import CroniterError, croniter

from odin.history.events import MAX_SECONDS

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


_ANY_TIME = datetime(2000, 1, 1, tzinfo=UTC)


class InvalidCronSchedule(ValueError):
    pass


def _every(schedule: str) -> float | None:
    if not schedule.startswith("@every"):
        return None
    text = schedule[len("@every") :].strip()
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise InvalidCronSchedule(f"Invalid CronSchedule {schedule!r}: bad duration after @every.")
    if total < 1.0:
        raise InvalidCronSchedule(f"Invalid CronSchedule {schedule!r}: the interval must be at least 1s.")
    if total > MAX_SECONDS:
        raise InvalidCronSchedule(f"Invalid CronSchedule {schedule!r}: the interval is too long.")
    return total


def validate(schedule: str) -> None:
    if _every(schedule) is not None:
        return
    if len(schedule.split()) != 5 and not schedule.startswith("@"):
        raise InvalidCronSchedule(f"Invalid CronSchedule {schedule!r}: expected five fields.")
    if not croniter.is_valid(schedule):
        raise InvalidCronSchedule(f"Invalid CronSchedule {schedule!r}.")
    try:  # a date that never comes (February 30th) is a schedule that never fires
        croniter(schedule, _ANY_TIME).get_next(datetime)
    except CroniterError:
        raise InvalidCronSchedule(f"Invalid CronSchedule {schedule!r}: it never fires.") from None


def backoff(schedule: str, chain_start: float, now: float) -> float:
    """Seconds from ``now`` until the next scheduled start strictly after ``now``."""
    every = _every(schedule)
    if every is not None:
        periods = math.floor((now - chain_start) / every) + 1
        return max(chain_start + periods * every - now, 0.0)
    base = datetime.fromtimestamp(now, UTC)
    nxt: datetime = croniter(schedule, base).get_next(datetime)
    return max(nxt.timestamp() - now, 0.0)
