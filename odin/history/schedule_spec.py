"""Schedule specs (``temporal.api.schedule.v1.ScheduleSpec``) to action times, as Temporal computes them (pure).

``compile_spec(spec)`` validates a spec and turns it into a ``CompiledSpec``: calendar strings and cron
strings become structured calendars, ``@every`` cron strings intervals, and a ``CRON_TZ=``/``TZ=``
prefix the spec's time zone. ``CompiledSpec.next_time(after, seed)`` gives the next nominal time and
the jittered one; ``matching_times(start, end, seed)`` answers ListScheduleMatchingTimes;
``described_spec(spec)`` is the spec DescribeSchedule shows. A bad spec raises ``InvalidScheduleSpec``
with Temporal's INVALID_ARGUMENT message.

Behaviour follows Temporal Server 1.32 (service/worker/scheduler), checked against the real server by
tests/history/test_schedule_spec.py, including its quirks: a calendar is searched field by field in
local time, a local time skipped by a DST change never fires, and in a repeated hour both copies
fire (in zones east of UTC the matching hour is shifted, as in Temporal). Jitter is a hash of the
nominal time and the seed ``"<namespace id>-<schedule id>"`` (``jitter_seed``), so it is repeatable.

No clock, no randomness, no I/O of its own: time zones come from ``zoneinfo``, whose data is treated
like code (read once and cached by the standard library).
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from google.protobuf.duration_pb2 import Duration
from temporalio.api.schedule.v1 import CalendarSpec, IntervalSpec, Range, ScheduleSpec, StructuredCalendarSpec

MIN_CALENDAR_YEAR = 2000
MAX_CALENDAR_YEAR = 2100  # Temporal never matches a time after this year
MAX_COMMENT_LENGTH = 200
MAX_MATCHING_TIMES = 1000  # ListScheduleMatchingTimes answers at most this many
# Temporal searches past excluded times without bound (up to the year 2100, which for a spec that
# excludes everything takes forever); Odin stops after this many, a day of a one-second interval.
MAX_EXCLUDED_CANDIDATES = 100_000

_NS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64_MAX = (1 << 63) - 1
_INT64_MIN = -(1 << 63)
_AFTER_LAST_YEAR = int(datetime(MAX_CALENDAR_YEAR + 1, 1, 1, tzinfo=UTC).timestamp())


class InvalidScheduleSpec(ValueError):
    """A spec Temporal refuses; ``message`` is its INVALID_ARGUMENT text."""

    def __init__(self, reason: str):
        self.reason = reason
        self.message = f"Invalid schedule spec: {reason}"
        super().__init__(self.message)


class ScheduleComputeLimit(RuntimeError):
    """``next_time`` gave up: every candidate time was excluded for too long a search."""


@dataclass(frozen=True)
class NextTime:
    nominal: datetime  # the time the spec matches
    actual: datetime  # nominal plus jitter: when the action should run


def jitter_seed(namespace_id: str, schedule_id: str) -> str:
    """The seed Temporal hashes with each nominal time to derive its jitter."""
    return f"{namespace_id}-{schedule_id}"


# --- Go-compatible parsing helpers ---------------------------------------------------------------

# Go's unicode.IsSpace: Python's isspace() also counts the ASCII separators 0x1c-0x1f.
def _go_space(c: str) -> bool:
    return c.isspace() and c not in "\x1c\x1d\x1e\x1f"


def _go_trim(s: str) -> str:
    start, end = 0, len(s)
    while start < end and _go_space(s[start]):
        start += 1
    while end > start and _go_space(s[end - 1]):
        end -= 1
    return s[start:end]


def _go_fields(s: str) -> list[str]:
    fields: list[str] = []
    current: list[str] = []
    for c in s:
        if _go_space(c):
            if current:
                fields.append("".join(current))
                current = []
        else:
            current.append(c)
    if current:
        fields.append("".join(current))
    return fields


_ATOI = re.compile(r"[+-]?[0-9]+\Z")


def _atoi(s: str) -> int:
    """Go's strconv.Atoi, with its error text."""
    if not _ATOI.match(s):
        raise ValueError(f'strconv.Atoi: parsing {_go_quote_plain(s)}: invalid syntax')
    value = int(s)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f'strconv.Atoi: parsing {_go_quote_plain(s)}: value out of range')
    return value


def _go_quote_plain(s: str) -> str:
    # strconv.Quote for the printable ASCII texts Atoi errors show; others are escaped bytewise.
    out = ['"']
    for b in s.encode():
        if b in (0x22, 0x5C):
            out.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    out.append('"')
    return "".join(out)


def _time_quote(s: bytes) -> str:
    # The quoting of Go's time package errors: bytes outside printable ASCII as \xNN.
    out = ['"']
    for b in s:
        if b >= 0x80 or b < 0x20:
            out.append(f"\\x{b:02x}")
        else:
            if b in (0x22, 0x5C):
                out.append("\\")
            out.append(chr(b))
    out.append('"')
    return "".join(out)


_UNITS = {b"ns": 1, b"us": 1000, "µs".encode(): 1000, "μs".encode(): 1000, b"ms": 10**6, b"s": _NS, b"m": 60 * _NS, b"h": 3600 * _NS}
_DAYS = re.compile(r"([0-9]+(\.[0-9]*)?|(\.[0-9]+))d")


def parse_go_duration(text: str) -> int:
    """Temporal's duration syntax (Go's time.ParseDuration plus ``d`` for 24 hours) in nanoseconds;
    errors carry Go's messages, quoting the text after days were rewritten to hours."""

    def days_to_hours(m: re.Match[str]) -> str:
        return "%fh" % (24 * float(m.group(0)[:-1]))

    text = _DAYS.sub(days_to_hours, text)
    orig = s = text.encode()
    invalid = ValueError("time: invalid duration " + _time_quote(orig))
    neg = False
    if s[:1] in (b"-", b"+"):
        neg, s = s[:1] == b"-", s[1:]
    if s == b"0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        if not (s[0] == 0x2E or 0x30 <= s[0] <= 0x39):
            raise invalid
        # the integer part; overflow is an error
        i, value = 0, 0
        while i < len(s) and 0x30 <= s[i] <= 0x39:
            if value > (1 << 63) // 10:
                raise invalid
            value = value * 10 + s[i] - 0x30
            if value > 1 << 63:
                raise invalid
            i += 1
        pre, s = i > 0, s[i:]
        # the fraction; digits past what fits are ignored
        frac, scale, post = 0, 1.0, False
        if s[:1] == b".":
            s = s[1:]
            i, overflow = 0, False
            while i < len(s) and 0x30 <= s[i] <= 0x39:
                if not overflow:
                    if frac > _INT64_MAX // 10:
                        overflow = True
                    else:
                        bigger = frac * 10 + s[i] - 0x30
                        if bigger > 1 << 63:
                            overflow = True
                        else:
                            frac, scale = bigger, scale * 10
                i += 1
            post, s = i > 0, s[i:]
        if not pre and not post:
            raise invalid
        i = 0
        while i < len(s) and not (s[i] == 0x2E or 0x30 <= s[i] <= 0x39):
            i += 1
        if i == 0:
            raise ValueError("time: missing unit in duration " + _time_quote(orig))
        unit_text, s = s[:i], s[i:]
        unit = _UNITS.get(unit_text)
        if unit is None:
            raise ValueError("time: unknown unit " + _time_quote(unit_text) + " in duration " + _time_quote(orig))
        if value > (1 << 63) // unit:
            raise invalid
        value *= unit
        if frac > 0:
            value += int(float(frac) * (float(unit) / scale))
            if value > 1 << 63:
                raise invalid
        total += value
        if total > 1 << 63:
            raise invalid
    if neg:
        return -total
    if total > _INT64_MAX:
        raise invalid
    return total


def _duration_ns(seconds: int, nanos: int) -> int:
    # durationpb.AsDuration: saturates at the int64 bounds.
    return max(_INT64_MIN, min(_INT64_MAX, seconds * _NS + nanos))


def _timestamp_ns(seconds: int, nanos: int) -> int:
    return seconds * _NS + nanos


def _set_duration(target: Duration, ns: int) -> None:
    seconds, nanos = int(ns / _NS), ns - int(ns / _NS) * _NS  # both carry the sign, as durationpb.New
    target.seconds, target.nanos = seconds, nanos


# --- calendar strings to structured calendars ----------------------------------------------------

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_INT, _YEAR, _MONTH, _DOW = range(4)


class _OutOfRange(ValueError):
    pass


def _parse_value(s: str, low: int, high: int, mode: int) -> int:
    """One value of a calendar field; month names from three letters, weekday names from two."""
    names, shortest, first = (_MONTHS, 3, 1) if mode == _MONTH else (_WEEKDAYS, 2, 0) if mode == _DOW else ((), 0, 0)
    if names and len(s) >= shortest:
        lower = s.lower()
        for i, name in enumerate(names):
            if name.startswith(lower):
                if not low <= i + first <= high:
                    raise _OutOfRange
                return i + first
    value = _atoi(s)
    if not low <= value <= high:
        raise _OutOfRange
    return value


def _parse_field(text: str, field: str, default: str, low: int, high: int, mode: int) -> list[Range]:
    """A calendar field (``*``, ``x``, ``x-z``, ``x/y``, ``x-z/y``, comma lists) as ranges, written
    compactly as Temporal stores them (end 0 for a single value, step 0 for 1)."""
    s = _go_trim(text) or default
    if s == "*" and mode == _YEAR:
        return []  # every year: no ranges
    ranges: list[Range] = []
    for part in s.split(","):
        step, has_step = 1, False
        slashes = part.count("/")
        if slashes > 1:
            raise ValueError(f"{field} has too many slashes")
        if slashes == 1:
            part, step_text = part.split("/")
            if not step_text:
                raise ValueError(f"{field} missing step value")
            step = _atoi(step_text)
            if step < 1:
                raise ValueError(f"{field} has invalid Step")
            has_step = True
        start, end = low, high
        if part != "*":
            if "-" in part:
                if part.count("-") > 1:
                    raise ValueError(f"{field} has too many dashes")
                first, last = part.split("-")
                try:
                    start = _parse_value(first, low, high, mode)
                except ValueError:
                    raise ValueError(f"{field} Start is not in range [{low}-{high}]") from None
                try:
                    end = _parse_value(last, start, high, mode)
                except ValueError:
                    raise ValueError(f"{field} End is before Start or not in range [{low}-{high}]") from None
            else:
                try:
                    start = _parse_value(part, low, high, mode)
                except ValueError:
                    raise ValueError(f"{field} is not in range [{low}-{high}]") from None
                if not has_step:
                    end = start  # "x/y" runs to the maximum, plain "x" is just x
        if mode == _DOW and end == 7:
            # Sunday may be written 7: keep 0-6 ranges, adding a separate 0 when 7 was matched
            # and is not already covered by the start of the range.
            if (7 - start) % step == 0 and (step > 1 or start > 1):
                ranges.append(Range(start=0))
                if start == 7:
                    continue
            end = 6
        ranges.append(Range(start=start, end=0 if start == end else end, step=0 if step == 1 else step))
    return ranges


def _calendar_to_structured(cal: CalendarSpec) -> StructuredCalendarSpec:
    errors: list[str] = []

    def field(text: str, name: str, default: str, low: int, high: int, mode: int = _INT) -> list[Range]:
        try:
            return _parse_field(text, name, default, low, high, mode)
        except ValueError as exc:
            errors.append(str(exc))
            return []

    # Temporal parses in this order, which is the order of its error list.
    second = field(cal.second, "Second", "0", 0, 59)
    minute = field(cal.minute, "Minute", "0", 0, 59)
    hour = field(cal.hour, "Hour", "0", 0, 23)
    day_of_week = field(cal.day_of_week, "DayOfWeek", "*", 0, 7, _DOW)
    day_of_month = field(cal.day_of_month, "DayOfMonth", "*", 1, 31)
    month = field(cal.month, "Month", "*", 1, 12, _MONTH)
    year = field(cal.year, "Year", "*", MIN_CALENDAR_YEAR, MAX_CALENDAR_YEAR, _YEAR)
    if errors:
        raise InvalidScheduleSpec(", ".join(errors))
    return StructuredCalendarSpec(second=second, minute=minute, hour=hour, day_of_week=day_of_week, day_of_month=day_of_month,
                                  month=month, year=year, comment=cal.comment)


_PREDEFINED = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
               "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}


def _parse_cron(text: str) -> tuple[StructuredCalendarSpec | None, IntervalSpec | None, str]:
    """A cron string as a structured calendar or an interval, and the time zone of its prefix."""
    c, tz_name = _go_trim(text), ""
    if c.startswith(("TZ=", "CRON_TZ=")):
        tz, sep, rest = c.partition(" ")
        if not sep:
            raise InvalidScheduleSpec("CronString has time zone but missing fields")
        c, tz_name = rest, tz.partition("=")[2]
    c, _, comment = c.partition("#")
    c, comment = _go_trim(c), _go_trim(comment)
    if c.startswith("@every"):
        # Temporal drops the prefix's time zone for @every (an interval has none).
        return None, _parse_every(c), ""
    fields = _go_fields(_PREDEFINED.get(c, c))
    cal = CalendarSpec(comment=comment)
    if len(fields) == 5:
        cal.minute, cal.hour, cal.day_of_month, cal.month, cal.day_of_week = fields
    elif len(fields) == 6:
        cal.minute, cal.hour, cal.day_of_month, cal.month, cal.day_of_week, cal.year = fields
    elif len(fields) == 7:
        cal.second, cal.minute, cal.hour, cal.day_of_month, cal.month, cal.day_of_week, cal.year = fields
    else:
        raise InvalidScheduleSpec("CronString does not have 5-7 fields")
    return _calendar_to_structured(cal), None, tz_name


def _parse_every(c: str) -> IntervalSpec:
    _, sep, text = c.partition(" ")
    if not sep:
        raise InvalidScheduleSpec("CronString does not have interval after @every")
    interval_text, _, phase_text = text.partition("/")  # "@every 14h/3h": 3h past each 14h boundary
    spec = IntervalSpec()
    try:
        _set_duration(spec.interval, parse_go_duration(interval_text))
        if phase_text:
            _set_duration(spec.phase, parse_go_duration(phase_text))
    except ValueError as exc:
        raise InvalidScheduleSpec(str(exc)) from None
    return spec


# --- validation and canonical form ---------------------------------------------------------------


def _validate_structured(cal: StructuredCalendarSpec) -> None:
    errors: list[str] = []

    def check(ranges: Sequence[Range], field: str, low: int, high: int) -> None:
        for r in ranges:
            if not low <= r.start <= high:
                errors.append(f"{field} Start is not in range [{low}-{high}]")
            if r.end != 0 and (r.end < r.start or r.end > high):
                errors.append(f"{field} End is before Start or not in range [{low}-{high}]")
            if r.step < 0:
                errors.append(f"{field} has invalid Step")

    check(cal.second, "Second", 0, 59)
    check(cal.minute, "Minute", 0, 59)
    check(cal.hour, "Hour", 0, 23)
    check(cal.day_of_month, "DayOfMonth", 1, 31)
    check(cal.month, "Month", 1, 12)
    check(cal.year, "Year", MIN_CALENDAR_YEAR, MAX_CALENDAR_YEAR)
    check(cal.day_of_week, "DayOfWeek", 0, 6)
    if len(cal.comment.encode()) > MAX_COMMENT_LENGTH:
        errors.append("comment is too long")
    if errors:
        raise InvalidScheduleSpec("invalid calendar spec: " + ", ".join(errors))


def _validate_exclusion(cal: StructuredCalendarSpec) -> None:
    """Temporal does not validate exclusions: an out-of-range value just never matches, and we
    accept those too. But a negative value or step crashes its matcher (the call fails with
    INTERNAL), so Odin refuses them instead."""
    errors: list[str] = []
    fields = (("Second", cal.second), ("Minute", cal.minute), ("Hour", cal.hour), ("DayOfMonth", cal.day_of_month),
              ("Month", cal.month), ("Year", cal.year), ("DayOfWeek", cal.day_of_week))
    for field, ranges in fields:
        for r in ranges:
            if r.start < 0 and field != "Year":
                errors.append(f"{field} Start is negative")
            if r.step < 0:
                errors.append(f"{field} has invalid Step")
    if errors:
        raise InvalidScheduleSpec("invalid exclude calendar spec: " + ", ".join(errors))


def _validate_interval(iv: IntervalSpec) -> None:
    interval = _duration_ns(iv.interval.seconds, iv.interval.nanos)
    phase = _duration_ns(iv.phase.seconds, iv.phase.nanos)
    if interval < _NS:
        raise InvalidScheduleSpec("interval is too small")
    if phase < 0:
        raise InvalidScheduleSpec("phase is negative")
    if phase >= interval:
        raise InvalidScheduleSpec("phase cannot be greater than Interval")


def canonical_spec(spec: ScheduleSpec) -> ScheduleSpec:
    """The spec as Temporal stores it: calendars, exclude calendars and cron strings turned into
    structured calendars and intervals, a cron time zone moved to ``timezone_name``; validated."""
    out = ScheduleSpec()
    out.CopyFrom(spec)
    out.structured_calendar.extend(_calendar_to_structured(c) for c in spec.calendar)
    out.ClearField("calendar")
    out.exclude_structured_calendar.extend(_calendar_to_structured(c) for c in spec.exclude_calendar)
    out.ClearField("exclude_calendar")
    cron_tz: str | None = None
    for text in spec.cron_string:
        structured, interval, tz_name = _parse_cron(text)
        if cron_tz is not None and tz_name != cron_tz:
            raise InvalidScheduleSpec("conflicting timezone names")  # all strings agree, prefix or none
        cron_tz = tz_name
        if structured is not None:
            out.structured_calendar.append(structured)
        if interval is not None:
            out.interval.append(interval)
    out.ClearField("cron_string")
    if cron_tz:
        if (out.timezone_name and out.timezone_name != cron_tz) or out.timezone_data:
            raise InvalidScheduleSpec("conflicting timezone names")
        out.timezone_name = cron_tz
    for cal in out.structured_calendar:
        _validate_structured(cal)
    for cal in out.exclude_structured_calendar:
        _validate_exclusion(cal)
    for iv in out.interval:
        _validate_interval(iv)
    return out


def clean_spec(spec: ScheduleSpec) -> ScheduleSpec:
    """A copy with the range defaults DescribeSchedule fills in: end at least start, step 1."""
    out = ScheduleSpec()
    out.CopyFrom(spec)
    for cal in [*out.structured_calendar, *out.exclude_structured_calendar]:
        for ranges in (cal.second, cal.minute, cal.hour, cal.day_of_month, cal.month, cal.year, cal.day_of_week):
            for r in ranges:
                if r.end < r.start:
                    r.end = r.start
                if r.step == 0:
                    r.step = 1
    return out


def described_spec(spec: ScheduleSpec) -> ScheduleSpec:
    """The spec DescribeSchedule returns for a schedule created with ``spec``."""
    return clean_spec(canonical_spec(spec))


def _load_zone(spec: ScheduleSpec) -> tzinfo:
    name = spec.timezone_name
    if spec.timezone_data:
        try:
            return ZoneInfo.from_file(io.BytesIO(spec.timezone_data), key=name or None)
        except Exception:
            raise InvalidScheduleSpec("malformed time zone information") from None
    if name in ("", "UTC", "Local"):  # "Local" is the server's zone in Temporal; Odin's servers run in UTC
        return UTC
    if ".." in name or name[0] in "/\\":
        raise InvalidScheduleSpec("time: invalid location name")
    try:
        return ZoneInfo(name)
    except Exception:  # not found, a directory, not a TZif file...
        raise InvalidScheduleSpec(f"unknown time zone {name}") from None


# --- local time in a zone, as Go's time package computes it --------------------------------------


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (months 1-12)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


class _Zone:
    """A time zone with the two operations the calendar search needs, at one-second resolution."""

    def __init__(self, tz: tzinfo):
        self.tz = tz
        self.fixed = tz is UTC

    def offset(self, unix: int) -> int:
        if self.fixed:
            return 0
        delta = datetime.fromtimestamp(unix, self.tz).utcoffset()
        return int(delta.total_seconds()) if delta else 0

    def local(self, unix: int) -> datetime:
        return datetime.fromtimestamp(unix, self.tz)

    def date(self, y: int, mo: int, d: int, h: int, mi: int, s: int) -> int:
        """Unix seconds of a wall-clock time (fields may overflow), like Go's time.Date: a time
        skipped by a DST change moves by the change, a repeated time takes the offset in force
        at the wall-clock reading taken as UTC (the earlier copy west of UTC, the later east)."""
        y, mo = y + (mo - 1) // 12, (mo - 1) % 12 + 1
        wall = (_days_from_civil(y, mo, 1) + d - 1) * 86400 + h * 3600 + mi * 60 + s
        return wall - self.offset(wall - self.offset(wall))


def _days_in_month(month: int, year: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 + ((0b1010110101010 >> month) & 1)


def _matcher(ranges: Sequence[Range]) -> Callable[[int], bool]:
    """Membership in a list of ranges (end below start is start alone, step 0 is 1). Values
    outside 0-63 never match, as in Temporal's bit sets."""
    spans = [(r.start, max(r.end, r.start), r.step or 1) for r in ranges]
    bits = 0
    for v in range(64):
        if any(start <= v <= end and (v - start) % step == 0 for start, end, step in spans if step > 0):
            bits |= 1 << v
    return lambda v: bool((bits >> v) & 1) if 0 <= v < 64 else False


def _year_matcher(ranges: Sequence[Range]) -> Callable[[int], bool]:
    if not ranges:
        return lambda y: True  # no ranges: every year
    spans = [(r.start, max(r.end, r.start), r.step or 1) for r in ranges]
    return lambda y: any(start <= y <= end and (y - start) % step == 0 for start, end, step in spans if step > 0)


class _Calendar:
    def __init__(self, cal: StructuredCalendarSpec, zone: _Zone):
        self.zone = zone
        self.year = _year_matcher(cal.year)
        self.month = _matcher(cal.month)
        self.day_of_month = _matcher(cal.day_of_month)
        self.day_of_week = _matcher(cal.day_of_week)
        self.hour = _matcher(cal.hour)
        self.minute = _matcher(cal.minute)
        self.second = _matcher(cal.second)

    def matches(self, unix: int) -> bool:
        t = self.zone.local(unix)
        return (self.year(t.year) and self.month(t.month) and self.day_of_month(t.day) and self.day_of_week(_weekday(t))
                and self.hour(t.hour) and self.minute(t.minute) and self.second(t.second))

    def next(self, after: int) -> int | None:
        """The first matching second after ``after``, searched field by field in local time.

        ``dst`` is one hour while the search walks the second copy of a repeated hour: the wall
        clock reads the same, the instant is an hour later. A wall-clock time that does not exist
        (skipped by a DST change) is passed over."""
        zone = self.zone
        t = zone.local(after)
        y, mo, d, h, mi, s = t.year, t.month, t.day, t.hour, t.minute, t.second
        dst = 3600 if zone.local(after - 3600).hour == h else 0
        s += 1
        while True:
            if s >= 60:
                mi, s = mi + 1, 0
            if mi >= 60:
                prev = zone.date(y, mo, d, h, 0, 0)
                h, mi = h + 1, 0
                if dst == 0 and zone.date(y, mo, d, h, 0, 0) - prev > 3600:
                    h, dst = h - 1, 3600  # the hour just walked repeats: walk its second copy
                else:
                    dst = 0
            if h >= 24:
                d, h = d + 1, 0
            if d > _days_in_month(mo, y):
                mo, d = mo + 1, 1
            if mo > 12:
                y, mo = y + 1, 1
            if y > MAX_CALENDAR_YEAR:
                return None
            if not self.year(y):
                y, mo, d, h, mi, s, dst = y + 1, 1, 1, 0, 0, 0, 0
                continue
            if not self.month(mo):
                while mo <= 12 and not self.month(mo):
                    mo += 1
                d, h, mi, s, dst = 1, 0, 0, 0, 0
                if mo > 12:
                    continue
            while not (self.day_of_month(d) and self.day_of_week(_weekday(zone.local(zone.date(y, mo, d, h, mi, s))))):
                d, h, mi, s, dst = d + 1, 0, 0, 0, 0
                if d > _days_in_month(mo, y):
                    break
            if d > _days_in_month(mo, y):
                continue
            while h < 24 and not self.hour(h):
                h, mi, s, dst = h + 1, 0, 0, 0
            if h >= 24:
                continue
            while mi < 60 and not self.minute(mi):
                mi, s = mi + 1, 0
            if mi >= 60:
                continue
            while s < 60 and not self.second(s):
                s += 1
            if s >= 60:
                continue
            found = zone.date(y, mo, d, h, mi, s)
            if zone.local(found).hour != h:  # skipped by a DST change: go on from the next hour
                h, mi, s = h + 1, 0, 0
                continue
            return found + dst


def _weekday(t: datetime) -> int:
    return (t.weekday() + 1) % 7  # Sunday is 0


# --- jitter --------------------------------------------------------------------------------------

_M32 = 0xFFFFFFFF
_C1, _C2 = 0xCC9E2D51, 0x1B873593


def _rotr(v: int, shift: int) -> int:
    return ((v >> shift) | (v << (32 - shift))) & _M32 if shift else v


def _fmix(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def _mur(a: int, h: int) -> int:
    a = (_rotr((a * _C1) & _M32, 17) * _C2) & _M32
    h = _rotr(h ^ a, 19)
    return (h * 5 + 0xE6546B64) & _M32


def _fetch(data: bytes, i: int) -> int:
    return int(struct.unpack_from("<I", data, i)[0])


def farmhash32(data: bytes) -> int:
    """FarmHash's 32-bit fingerprint (the "mk" variant), which Temporal uses to place jitter."""
    n = len(data)
    if n <= 4:
        b, c = 0, 9
        for byte in data:
            b = (b * _C1 + (byte - 256 if byte > 127 else byte)) & _M32  # bytes are signed chars
            c ^= b
        return _fmix(_mur(b, _mur(n, c)))
    if n <= 12:
        a, b, c = n, n * 5, 9
        d = b
        a = (a + _fetch(data, 0)) & _M32
        b = (b + _fetch(data, n - 4)) & _M32
        c = (c + _fetch(data, (n >> 1) & 4)) & _M32
        return _fmix(_mur(c, _mur(b, _mur(a, d))))
    if n <= 24:
        a, b, c = _fetch(data, (n >> 1) - 4), _fetch(data, 4), _fetch(data, n - 8)
        d, e, f = _fetch(data, n >> 1), _fetch(data, 0), _fetch(data, n - 4)
        h = (d * _C1 + n) & _M32
        a = (_rotr(a, 12) + f) & _M32
        h = (_mur(c, h) + a) & _M32
        a = (_rotr(a, 3) + c) & _M32
        h = (_mur(e, h) + a) & _M32
        a = (_rotr((a + f) & _M32, 12) + d) & _M32
        h = (_mur(b, h) + a) & _M32
        return _fmix(h)

    def mixed(i: int) -> int:
        return (_rotr((_fetch(data, i) * _C1) & _M32, 17) * _C2) & _M32

    h, g = n, (_C1 * n) & _M32
    f = g
    a0, a1, a2, a3, a4 = mixed(n - 4), mixed(n - 8), mixed(n - 16), mixed(n - 12), mixed(n - 20)
    h = (_rotr(h ^ a0, 19) * 5 + 0xE6546B64) & _M32
    h = (_rotr(h ^ a2, 19) * 5 + 0xE6546B64) & _M32
    g = (_rotr(g ^ a1, 19) * 5 + 0xE6546B64) & _M32
    g = (_rotr(g ^ a3, 19) * 5 + 0xE6546B64) & _M32
    f = (_rotr((f + a4) & _M32, 19) + 113) & _M32
    for i in range(0, (n - 1) // 20 * 20, 20):
        a, b, c, d, e = (_fetch(data, i + k) for k in (0, 4, 8, 12, 16))
        h, g, f = (h + a) & _M32, (g + b) & _M32, (f + c) & _M32
        h = (_mur(d, h) + e) & _M32
        g = (_mur(c, g) + a) & _M32
        f = (_mur((b + e * _C1) & _M32, f) + d) & _M32
        f = (f + g) & _M32
        g = (g + f) & _M32
    g = (_rotr((_rotr(g, 11) * _C1) & _M32, 17) * _C1) & _M32
    f = (_rotr((_rotr(f, 11) * _C1) & _M32, 17) * _C1) & _M32
    h = (_rotr((h + g) & _M32, 19) * 5 + 0xE6546B64) & _M32
    h = (_rotr(h, 17) * _C1) & _M32
    h = (_rotr((h + f) & _M32, 19) * 5 + 0xE6546B64) & _M32
    return (_rotr(h, 17) * _C1) & _M32


# Seconds from 0001-01-01 to 1970-01-01: Go's binary time encoding counts from year 1.
_GO_UNIX_TO_INTERNAL = 62135596800


def _jitter_ms(seed: str, nominal: int, max_jitter_ns: int) -> int:
    """Milliseconds added to ``nominal`` (unix seconds): Go's binary encoding of the UTC time
    followed by the seed, fingerprinted, scaled into [0, max_jitter)."""
    encoded = struct.pack(">BqiH", 1, nominal + _GO_UNIX_TO_INTERNAL, 0, 0xFFFF) + seed.encode()
    span = min(max(max_jitter_ns, 0) // 1_000_000, _M32)
    return (farmhash32(encoded) * span) >> 32


# --- the compiled spec ---------------------------------------------------------------------------


def _to_ns(t: datetime) -> int:
    if t.tzinfo is None:
        raise ValueError("schedule times must be timezone-aware")
    delta = t - _EPOCH
    return (delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000


def _from_ns(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


class CompiledSpec:
    """A validated spec, ready to give action times. ``spec`` is its canonical form."""

    def __init__(self, spec: ScheduleSpec):
        self.spec = canonical_spec(spec)
        zone = _Zone(_load_zone(self.spec))
        self._calendars = [_Calendar(c, zone) for c in self.spec.structured_calendar]
        self._excludes = [_Calendar(c, zone) for c in self.spec.exclude_structured_calendar]
        self._intervals = [
            (max(_trunc_div(_duration_ns(iv.interval.seconds, iv.interval.nanos), _NS), 1),
             max(_trunc_div(_duration_ns(iv.phase.seconds, iv.phase.nanos), _NS), 0))
            for iv in self.spec.interval
        ]
        self._start_ns = _timestamp_ns(self.spec.start_time.seconds, self.spec.start_time.nanos)  # unset: the epoch
        self._end_ns = _timestamp_ns(self.spec.end_time.seconds, self.spec.end_time.nanos) if self.spec.HasField("end_time") else None
        self._jitter_ns = _duration_ns(self.spec.jitter.seconds, self.spec.jitter.nanos)

    def _raw_next(self, after: int) -> int | None:
        """The first second after ``after`` (unix seconds) that a calendar or interval matches."""
        best: int | None = None
        for cal in self._calendars:
            t = cal.next(after)
            if t is not None and (best is None or t < best):
                best = t
        for interval, phase in self._intervals:
            t = (_trunc_div(after - phase, interval) + 1) * interval + phase
            if best is None or t < best:
                best = t
        return best

    def excluded(self, t: datetime) -> bool:
        """Whether an exclusion calendar matches ``t`` (to the second)."""
        unix = _to_ns(t) // _NS
        return any(cal.matches(unix) for cal in self._excludes)

    def next_time(self, after: datetime, seed: str = "", max_iterations: int | None = MAX_EXCLUDED_CANDIDATES) -> NextTime | None:
        """The first action time strictly after ``after`` (to the second; the spec's start time
        counts from the second before it), or None when the spec has no more. ``seed`` is
        ``jitter_seed(namespace_id, schedule_id)``. Jitter never reaches the following nominal
        time. Raises ScheduleComputeLimit after ``max_iterations`` excluded candidates."""
        cursor = max(_to_ns(after), self._start_ns - _NS) // _NS
        iterations = 0
        while True:
            nominal = self._raw_next(cursor)
            if nominal is None or self._past_end(nominal):
                return None
            if not any(cal.matches(nominal) for cal in self._excludes):
                break
            cursor = nominal
            iterations += 1
            if max_iterations is not None and iterations >= max_iterations:
                raise ScheduleComputeLimit(f"no time found after {iterations} excluded candidates")
        max_jitter = self._jitter_ns
        following = self._raw_next(nominal)
        if following is not None:
            max_jitter = min(max_jitter, (following - nominal) * _NS)
        actual = nominal * _NS + _jitter_ms(seed, nominal, max_jitter) * 1_000_000
        return NextTime(nominal=_from_ns(nominal * _NS), actual=_from_ns(actual))

    def _past_end(self, unix: int) -> bool:
        return (self._end_ns is not None and unix * _NS > self._end_ns) or unix >= _AFTER_LAST_YEAR

    def matching_times(self, start: datetime, end: datetime, seed: str = "", limit: int = MAX_MATCHING_TIMES) -> list[datetime]:
        """ListScheduleMatchingTimes: the (jittered) action times after ``start`` up to and
        including ``end``, at most ``limit``. Each search starts from the previous jittered time."""
        end_ns, out, cursor = _to_ns(end), [], start
        for _ in range(limit):
            found = self.next_time(cursor, seed)
            if found is None or _to_ns(found.actual) > end_ns:
                break
            out.append(found.actual)
            cursor = found.actual
        return out


def compile_spec(spec: ScheduleSpec) -> CompiledSpec:
    """Validate ``spec`` (raising InvalidScheduleSpec) and compile it."""
    return CompiledSpec(spec)
