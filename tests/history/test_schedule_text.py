"""odin.history.schedule_text: schedule specs in words, and calendars as cron lines (checked by
parsing each cron line back and comparing the times both match)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from temporalio.api.schedule.v1 import CalendarSpec, IntervalSpec, Range, ScheduleSpec, StructuredCalendarSpec

from odin.history.schedule_spec import compile_spec
from odin.history.schedule_text import HOUR, MINUTE, SECOND, SpecLine, cron_line, describe_duration, describe_spec, spec_summary


def interval(seconds: int, phase: int = 0) -> IntervalSpec:
    return IntervalSpec(interval=Duration(seconds=seconds), phase=Duration(seconds=phase))


@pytest.mark.parametrize(("spec", "lines"), [
    (ScheduleSpec(interval=[interval(3600)]), [SpecLine("every 1 hour")]),
    (ScheduleSpec(interval=[interval(5400, 900)]), [SpecLine("every 1 hour 30 minutes, offset by 15 minutes")]),
    (ScheduleSpec(interval=[interval(86400 * 2 + 1)]), [SpecLine("every 2 days 1 second")]),
    (ScheduleSpec(cron_string=["0 9 * * 1-5"], timezone_name="Europe/Paris"),
     [SpecLine("at 09:00 on Mon\u2013Fri (Europe/Paris)", "0 9 * * 1-5")]),
    (ScheduleSpec(cron_string=["CRON_TZ=Europe/Paris 0 9 * * MON-FRI"]),
     [SpecLine("at 09:00 on Mon\u2013Fri (Europe/Paris)", "0 9 * * 1-5")]),
    (ScheduleSpec(cron_string=["*/15 * * * *"]), [SpecLine("every 15 minutes (UTC)", "*/15 * * * *")]),
    (ScheduleSpec(cron_string=["* * * * *"]), [SpecLine("every minute (UTC)", "* * * * *")]),
    (ScheduleSpec(cron_string=["0 * * * *"]), [SpecLine("at minute 0 of every hour (UTC)", "0 * * * *")]),
    (ScheduleSpec(cron_string=["0,30 9-17 * * *"]), [SpecLine("at minutes 0 and 30 of hours 9\u201317 (UTC)", "0,30 9-17 * * *")]),
    (ScheduleSpec(cron_string=["*/5 9-17 * * *"]), [SpecLine("every 5 minutes during hours 9\u201317 (UTC)", "*/5 9-17 * * *")]),
    (ScheduleSpec(cron_string=["30 */2 * * *"]), [SpecLine("at minute 30, every 2 hours (UTC)", "30 */2 * * *")]),
    (ScheduleSpec(cron_string=["0 9,17 * * 0,6 # weekend"]),
     [SpecLine("at 09:00 and 17:00 on Sun and Sat (UTC) \u2014 weekend", "0 9,17 * * 0,6")]),
    (ScheduleSpec(cron_string=["0 12 1 */3 *"]),
     [SpecLine("at 12:00 on day 1 of the month in Jan, Apr, Jul and Oct (UTC)", "0 12 1 */3 *")]),
    # Both day fields must match in a schedule (cron would take either): no cron line for it.
    (ScheduleSpec(cron_string=["0 0 1-7 * 1"]), [SpecLine("at 00:00 on Mon, when the day of the month is 1\u20137 (UTC)")]),
    (ScheduleSpec(cron_string=["0 0 1 1 * 2027"]), [SpecLine("at 00:00 on day 1 of the month in Jan, in 2027 (UTC)")]),
    (ScheduleSpec(cron_string=["*/10 * * * * * *"]), [SpecLine("every 10 seconds (UTC)")]),
    (ScheduleSpec(cron_string=["*/10 0-4 9-17 * * * *"]), [SpecLine("every 10 seconds during minutes 0\u20134 of hours 9\u201317 (UTC)")]),
    (ScheduleSpec(cron_string=["30 * */6 * * * *"]), [SpecLine("at second 30 of every minute during hours 0, 6, 12 and 18 (UTC)")]),
    (ScheduleSpec(cron_string=["15,45 0 * * * * *"]), [SpecLine("at seconds 15 and 45 during minute 0 (UTC)")]),
    (ScheduleSpec(cron_string=["@daily", "@every 10m"]), [SpecLine("every 10 minutes"), SpecLine("at 00:00 (UTC)", "0 0 * * *")]),
    (ScheduleSpec(structured_calendar=[StructuredCalendarSpec(second=[Range(start=0)], minute=[Range(start=0)])]),
     [SpecLine("never (UTC)")]),  # no hour matches
    (ScheduleSpec(
        calendar=[CalendarSpec(hour="12", minute="30")],
        exclude_calendar=[CalendarSpec(hour="12", minute="30", day_of_week="sat,sun")],
        start_time=Timestamp(seconds=1_767_225_600), end_time=Timestamp(seconds=1_798_761_600), jitter=Duration(seconds=30),
    ), [
        SpecLine("at 12:30 (UTC)", "30 12 * * *"),
        SpecLine("except at 12:30 on Sun and Sat (UTC)"),
        SpecLine("not before 2026-01-01 00:00:00 UTC"),
        SpecLine("not after 2027-01-01 00:00:00 UTC"),
        SpecLine("each time delayed at random by up to 30 seconds"),
    ]),
    (ScheduleSpec(), [SpecLine("no times (runs only when triggered or backfilled)")]),
])
def test_specs_in_words(spec, lines):
    assert describe_spec(spec) == lines


def test_the_summary_joins_the_parts():
    spec = ScheduleSpec(interval=[interval(60)], cron_string=["0 9 * * *"], timezone_name="America/New_York")
    assert spec_summary(spec) == "every 1 minute; at 09:00 (America/New_York)"


def test_a_spec_already_canonical_reads_the_same_as_its_source():
    from odin.history.schedule_spec import described_spec

    spec = ScheduleSpec(cron_string=["CRON_TZ=Asia/Tokyo 15 8,20 * 1-6 *"])
    assert describe_spec(described_spec(spec)) == describe_spec(spec)
    assert describe_spec(spec) == [SpecLine("at 08:15 and 20:15 in Jan\u2013Jun (Asia/Tokyo)", "15 8,20 * 1-6 *")]


def test_ranges_beyond_a_field_are_cut_to_it():
    # Not a valid spec (DescribeSchedule never holds one), but describing it stays quick and sane.
    wide = StructuredCalendarSpec(
        second=[Range(start=-5, end=2**31 - 1, step=5)], minute=[Range(start=0)], hour=[Range(start=-1, end=2**31 - 1)],
        day_of_month=[Range(start=1, end=31)], month=[Range(start=1, end=12)], day_of_week=[Range(start=0, end=6, step=-1)],
    )
    assert describe_spec(ScheduleSpec(structured_calendar=[wide])) == [SpecLine("never (UTC)")]
    wide.day_of_week[0].step = 0
    assert describe_spec(ScheduleSpec(structured_calendar=[wide])) == [SpecLine("every 5 seconds during minute 0 (UTC)")]


def test_durations():
    assert describe_duration(Duration(seconds=0)) == "0 seconds"
    assert describe_duration(Duration(seconds=1)) == "1 second"
    assert describe_duration(Duration(seconds=90)) == "1 minute 30 seconds"
    assert describe_duration(Duration(seconds=1, nanos=500_000_000)) == "1.5 seconds"


# -- cron lines parse back to the same times ------------------------------------------------


def ranges(low: int, high: int) -> st.SearchStrategy[list[Range]]:
    one = st.tuples(st.integers(low, high), st.integers(low, high), st.integers(0, 4)).map(
        lambda t: Range(start=min(t[0], t[1]), end=max(t[0], t[1]), step=t[2])
    )
    return st.lists(one, min_size=1, max_size=3)


EVERY_DAY = [Range(start=1, end=31)]
EVERY_WEEKDAY = [Range(start=0, end=6)]
# One of the day fields stays whole: a cron line can say those calendars.
days = st.one_of(st.tuples(st.just(EVERY_DAY), ranges(0, 6)), st.tuples(ranges(1, 31), st.just(EVERY_WEEKDAY)))
calendars = st.builds(
    lambda minute, hour, month, day: StructuredCalendarSpec(
        second=[Range(start=0)], minute=minute, hour=hour, day_of_month=day[0], month=month, day_of_week=day[1]
    ),
    ranges(0, 59), ranges(0, 23), ranges(1, 12), days,
)


@given(calendars)
@settings(
    max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],  # no explain phase: its tracing makes each example slow
)
def test_a_cron_line_matches_the_times_of_its_calendar(cal):
    line = cron_line(cal)
    assert line is not None
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=400)
    ours = compile_spec(ScheduleSpec(structured_calendar=[cal])).matching_times(start, end, limit=200)
    parsed = compile_spec(ScheduleSpec(cron_string=[line])).matching_times(start, end, limit=200)
    assert parsed == ours, line


@given(ranges(0, 59), ranges(0, 59), st.lists(st.integers(0, 23).map(lambda h: Range(start=h)), min_size=1, max_size=2))
@settings(
    max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)
def test_the_words_are_built_from_the_times_the_spec_matches(second, minute, hour):
    cal = StructuredCalendarSpec(
        second=second, minute=minute, hour=hour, day_of_month=EVERY_DAY, month=[Range(start=1, end=12)], day_of_week=EVERY_WEEKDAY
    )
    start = datetime(2026, 3, 2, tzinfo=UTC)
    matched = compile_spec(ScheduleSpec(structured_calendar=[cal])).matching_times(start - timedelta(seconds=1), start + timedelta(days=1), limit=100_000)
    expected = {(t.hour, t.minute, t.second) for t in matched if t < start + timedelta(days=1)}
    described = {(h, m, s) for h in HOUR.values(hour) for m in MINUTE.values(minute) for s in SECOND.values(second)}
    assert described == expected
