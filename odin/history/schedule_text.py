"""Schedule specs in words, for people reading them (pure).

``describe_spec(spec)`` turns a ``ScheduleSpec`` into ``SpecLine``s: one per interval ("every 1
hour"), calendar ("at 09:00 on Mon–Fri (Europe/Paris)") and exclusion, then its bounds and
jitter. A calendar that a five-field cron line can express also gets that line (``cron``); specs
are stored in their canonical form (cron strings become calendars, see ``schedule_spec``), so the
line is derived from the calendar, not the text the schedule was created with.

Calendar fields are read as ``schedule_spec`` matches them: a range's end below its start is the
start alone, a step of 0 is 1, day of week 7 is Sunday, an empty field (other than the year)
matches nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.duration_pb2 import Duration
from temporalio.api.schedule.v1 import IntervalSpec, Range, ScheduleSpec, StructuredCalendarSpec

from odin.history.schedule_spec import canonical_spec, clean_spec

WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# A calendar matching at most this many times of day lists them ("at 09:00 and 17:30").
MAX_LISTED_TIMES = 6
DASH = "\u2013"  # en dash, for ranges in words ("Mon–Fri")


@dataclass(frozen=True)
class SpecLine:
    """One part of a spec: in words, and as a five-field cron line when one can say it."""

    words: str
    cron: str | None = None


@dataclass(frozen=True)
class _Field:
    low: int
    high: int

    def values(self, ranges: Sequence[Range]) -> list[int]:
        """The field's values the ranges match (only those within the field: a range is never walked
        past it)."""
        out: set[int] = set()
        for r in ranges:
            step = r.step or 1
            if step < 0:
                continue  # matches nothing, as in schedule_spec
            first = r.start if r.start >= self.low else r.start + -(-(self.low - r.start) // step) * step
            out.update(range(first, min(max(r.end, r.start), self.high) + 1, step))
        return sorted(out)

    def full(self, values: Sequence[int]) -> bool:
        return len(values) == self.high - self.low + 1

    def step(self, values: Sequence[int]) -> int | None:
        """k when ``values`` are low, low+k, ... to the top of the field (k > 1, three values at
        least): "every k"."""
        if len(values) < 3 or values[0] != self.low:
            return None
        k = values[1] - values[0]
        expected = list(range(self.low, self.high + 1, k))
        return k if k > 1 and list(values) == expected else None


SECOND, MINUTE, HOUR = _Field(0, 59), _Field(0, 59), _Field(0, 23)
DAY_OF_MONTH, MONTH, DAY_OF_WEEK = _Field(1, 31), _Field(1, 12), _Field(0, 6)


def _runs(values: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive values as (first, last) runs."""
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and runs[-1][1] == v - 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    return runs


def _and(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def _listed(values: Sequence[int], name: Sequence[str] | None = None) -> str:
    """``[1, 2, 3, 5]`` -> ``1–3 and 5``; runs of three or more become ranges."""

    def show(v: int) -> str:
        return name[v] if name is not None else str(v)

    parts: list[str] = []
    for first, last in _runs(values):
        if last - first >= 2:
            parts.append(f"{show(first)}{DASH}{show(last)}")
        else:
            parts.extend(show(v) for v in range(first, last + 1))
    return _and(parts)


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _units(values: Sequence[int], unit: str) -> str:
    """``minute 0`` / ``minutes 0 and 30``."""
    return f"{unit}{'' if len(values) == 1 else 's'} {_listed(values)}"


def describe_duration(d: Duration) -> str:
    """``5400s`` -> ``1 hour 30 minutes``."""
    total = d.seconds
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if total >= size:
            parts.append(_plural(total // size, unit))
            total %= size
    if total or d.nanos or not parts:
        if d.nanos:
            parts.append(f"{total + d.nanos / 1e9:g} seconds")
        else:
            parts.append(_plural(total, "second"))
    return " ".join(parts)


def describe_interval(iv: IntervalSpec) -> str:
    words = f"every {describe_duration(iv.interval)}"
    if iv.phase.seconds or iv.phase.nanos:
        words += f", offset by {describe_duration(iv.phase)}"
    return words


def _time_of_day(seconds: list[int], minutes: list[int], hours: list[int]) -> str:
    if not seconds or not minutes or not hours:
        return "never"
    if len(seconds) * len(minutes) * len(hours) <= MAX_LISTED_TIMES:
        show_seconds = seconds != [0]
        times = [
            f"{h:02d}:{m:02d}" + (f":{s:02d}" if show_seconds else "")
            for h in hours for m in minutes for s in seconds
        ]
        return f"at {_and(times)}"
    during_hours = "" if HOUR.full(hours) else f" during hours {_listed(hours)}"
    if seconds != [0]:
        step = SECOND.step(seconds)
        words = "every second" if SECOND.full(seconds) else f"every {step} seconds" if step else f"at {_units(seconds, 'second')}"
        if MINUTE.full(minutes):
            return words + (" of every minute" if words.startswith("at") else "") + during_hours
        words += f" during {_units(minutes, 'minute')}"
        return words + ("" if HOUR.full(hours) else f" of hours {_listed(hours)}")
    if MINUTE.full(minutes) or MINUTE.step(minutes):
        return ("every minute" if MINUTE.full(minutes) else f"every {MINUTE.step(minutes)} minutes") + during_hours
    at = f"at {_units(minutes, 'minute')}"
    if HOUR.full(hours):
        return f"{at} of every hour"
    if HOUR.step(hours):
        return f"{at}, every {HOUR.step(hours)} hours"  # from midnight: one run per such hour
    return f"{at} of hours {_listed(hours)}"


def _years(ranges: Sequence[Range]) -> str:
    parts = []
    for r in ranges:
        end, step = max(r.end, r.start), r.step or 1
        if end == r.start:
            parts.append(str(r.start))
        else:
            parts.append(f"{r.start}{DASH}{end}" + (f" every {step} years" if step > 1 else ""))
    return _and(parts)


def describe_calendar(cal: StructuredCalendarSpec, timezone: str = "") -> str:
    """``at 09:00 on Mon–Fri (Europe/Paris)``; without a time zone the calendar is in UTC."""
    seconds, minutes, hours = SECOND.values(cal.second), MINUTE.values(cal.minute), HOUR.values(cal.hour)
    days, months = DAY_OF_MONTH.values(cal.day_of_month), MONTH.values(cal.month)
    weekdays = sorted({v % 7 for v in _Field(0, 7).values(cal.day_of_week)})
    if not (days and months and weekdays):
        words = "never"
    else:
        words = _time_of_day(seconds, minutes, hours)
        if words != "never":
            if not DAY_OF_WEEK.full(weekdays):
                words += f" on {_listed(weekdays, WEEKDAYS)}"
            if not DAY_OF_MONTH.full(days):
                if DAY_OF_WEEK.full(weekdays):
                    words += f" on {_units(days, 'day')} of the month"
                else:
                    words += f", when the day of the month is {_listed(days)}"
            if not MONTH.full(months):
                words += f" in {_listed([m - 1 for m in months], MONTHS)}"
            if cal.year:
                words += f", in {_years(cal.year)}"
    words += f" ({timezone or 'UTC'})"
    if cal.comment:
        words += f" \u2014 {cal.comment}"
    return words


def _cron_field(values: Sequence[int], f: _Field) -> str:
    if f.full(values):
        return "*"
    step = f.step(values)
    if step:
        return f"*/{step}"
    parts = []
    for first, last in _runs(values):
        if last - first >= 2:
            parts.append(f"{first}-{last}")
        else:
            parts.extend(str(v) for v in range(first, last + 1))
    return ",".join(parts)


def cron_line(cal: StructuredCalendarSpec) -> str | None:
    """The calendar as ``minute hour day-of-month month day-of-week``, if it fires on second 0
    in every year (what a five-field cron line can say)."""
    seconds, minutes, hours = SECOND.values(cal.second), MINUTE.values(cal.minute), HOUR.values(cal.hour)
    days, months = DAY_OF_MONTH.values(cal.day_of_month), MONTH.values(cal.month)
    weekdays = sorted({v % 7 for v in _Field(0, 7).values(cal.day_of_week)})
    if seconds != [0] or cal.year or not (minutes and hours and days and months and weekdays):
        return None
    if not DAY_OF_MONTH.full(days) and not DAY_OF_WEEK.full(weekdays):
        return None  # cron matches either day field; a schedule needs both
    return " ".join((
        _cron_field(minutes, MINUTE), _cron_field(hours, HOUR), _cron_field(days, DAY_OF_MONTH),
        _cron_field(months, MONTH), _cron_field(weekdays, DAY_OF_WEEK),
    ))


def _when(ts_seconds: int) -> str:
    return datetime.fromtimestamp(ts_seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_spec(spec: ScheduleSpec) -> list[SpecLine]:
    """The spec in words, part by part. Cron strings and calendars are read in their canonical
    form; a spec ``canonical_spec`` refuses is described as it is."""
    try:
        spec = clean_spec(canonical_spec(spec))
    except ValueError:
        pass
    tz = spec.timezone_name
    lines = [SpecLine(describe_interval(iv)) for iv in spec.interval]
    lines += [SpecLine(describe_calendar(cal, tz), cron_line(cal)) for cal in spec.structured_calendar]
    if not lines:
        lines.append(SpecLine("no times (runs only when triggered or backfilled)"))
    lines += [SpecLine(f"except {describe_calendar(cal, tz)}") for cal in spec.exclude_structured_calendar]
    if spec.HasField("start_time"):
        lines.append(SpecLine(f"not before {_when(spec.start_time.seconds)}"))
    if spec.HasField("end_time"):
        lines.append(SpecLine(f"not after {_when(spec.end_time.seconds)}"))
    if spec.jitter.seconds or spec.jitter.nanos:
        lines.append(SpecLine(f"each time delayed at random by up to {describe_duration(spec.jitter)}"))
    return lines


def spec_summary(spec: ScheduleSpec) -> str:
    """The spec in one line: its parts joined by semicolons."""
    return "; ".join(line.words for line in describe_spec(spec))
