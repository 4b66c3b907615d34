"""Regenerate tests/history/data/schedule_spec_golden.json from the real Temporal dev server.

    python bench/schedule_spec_golden.py [--address HOST:PORT] [--out PATH]

Without ``--address`` it starts ``temporal server start-dev`` on a throw-away SQLite file. For each
case below it creates a paused schedule with that ScheduleSpec (raw gRPC, so the spec goes out
exactly as written), and records what the server answers: the INVALID_ARGUMENT message for a bad
spec, otherwise the spec DescribeSchedule returns and the ListScheduleMatchingTimes answer for each
window. The namespace id is recorded too: Temporal seeds jitter with "<namespace id>-<schedule id>".
Not run in CI; tests/history/test_schedule_spec.py reads the file it writes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import uuid
from datetime import datetime
from pathlib import Path

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.schedule.v1 import Schedule, ScheduleAction, ScheduleSpec, ScheduleState
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflow.v1 import NewWorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import (
    CreateScheduleRequest,
    DeleteScheduleRequest,
    DescribeNamespaceRequest,
    DescribeScheduleRequest,
    ListScheduleMatchingTimesRequest,
)
from temporalio.service import RPCError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import connect, handle_interrupts, running_server, temporal_version  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "history" / "data" / "schedule_spec_golden.json"
NAMESPACE = "default"

# Windows used by many cases: the 2024 DST changes of New York (Mar 10, Nov 3) and Berlin (Mar 31, Oct 27).
NY_SPRING = ("2024-03-09T00:00:00Z", "2024-03-12T00:00:00Z")
NY_FALL = ("2024-11-02T00:00:00Z", "2024-11-05T00:00:00Z")
BER_SPRING = ("2024-03-30T00:00:00Z", "2024-04-02T00:00:00Z")
BER_FALL = ("2024-10-26T00:00:00Z", "2024-10-29T00:00:00Z")
DAY = ("2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z")
WEEKS = ("2024-05-01T00:00:00Z", "2024-06-15T00:00:00Z")
YEARS = ("2023-01-01T00:00:00Z", "2031-01-01T00:00:00Z")
# A zone given as TZif bytes (timezone_data) rather than by name.
BERLIN_TZIF = base64.b64encode(Path("/usr/share/zoneinfo/Europe/Berlin").read_bytes()).decode()


def cron(*strings: str, **extra) -> dict:
    return {"cronString": list(strings), **extra}


def rng(start: int, end: int = 0, step: int = 0) -> dict:
    out = {"start": start}
    if end:
        out["end"] = end
    if step:
        out["step"] = step
    return out


# (name, spec as proto3 JSON, windows). Bad specs have no windows.
CASES: list[tuple[str, dict, list[tuple[str, str]]]] = [
    # --- cron strings -----------------------------------------------------------------------------
    ("cron-noon-utc", cron("0 12 * * *"), [WEEKS]),
    ("cron-every-15-min", cron("*/15 * * * *"), [DAY]),
    ("cron-weekdays-9", cron("0 9 * * MON-FRI"), [WEEKS]),
    ("cron-dow-names", cron("0 12 * jan-mar sat,sun"), [("2024-01-01T00:00:00Z", "2024-05-01T00:00:00Z")]),
    ("cron-dow-two-letters", cron("0 12 * * Tu,th"), [WEEKS]),
    ("cron-sunday-as-7", cron("0 12 * * 7"), [WEEKS]),
    ("cron-dow-5-7", cron("0 12 * * 5-7"), [WEEKS]),
    ("cron-dow-1-7-step-2", cron("0 12 * * 1-7/2"), [WEEKS]),
    ("cron-dow-3-7-step-3", cron("0 12 * * 3-7/3"), [WEEKS]),
    ("cron-dow-0-7", cron("0 12 * * 0-7"), [WEEKS]),
    ("cron-dom-and-dow", cron("0 0 13 * FRI"), [YEARS]),
    ("cron-leap-day", cron("0 0 29 2 *"), [YEARS]),
    ("cron-31st", cron("0 6 31 * *"), [("2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z")]),
    ("cron-ranges-steps", cron("5-50/15 1,3-5,22 */10 * *"), [WEEKS]),
    ("cron-value-with-step", cron("7/20 10 * * *"), [DAY]),
    ("cron-6-fields-year", cron("0 0 1 1 * 2025-2027"), [YEARS]),
    ("cron-7-fields-seconds", cron("*/20 30 14 * * * *"), [DAY]),
    ("cron-7-fields-year-step", cron("15 0 0 1 jan * 2024/3"), [YEARS]),
    ("cron-comment", cron("0 12 * * * # at noon"), [DAY]),
    ("cron-hourly", cron("@hourly"), [DAY]),
    ("cron-daily", cron("@daily"), [WEEKS]),
    ("cron-midnight", cron("@midnight"), [WEEKS]),
    ("cron-weekly", cron("@weekly"), [WEEKS]),
    ("cron-monthly", cron("@monthly"), [YEARS]),
    ("cron-yearly", cron("@yearly"), [YEARS]),
    ("cron-annually", cron("@annually"), [YEARS]),
    ("cron-two-strings", cron("0 8 * * *", "30 20 * * *"), [WEEKS]),
    ("cron-every-90m", cron("@every 90m"), [DAY]),
    ("cron-every-phase", cron("@every 1h/15m"), [DAY]),
    ("cron-every-days", cron("@every 2d/3h"), [WEEKS]),
    ("cron-every-fraction", cron("@every 1.5h"), [DAY]),
    ("cron-every-compound", cron("@every 1h30m10s"), [DAY]),
    ("cron-every-comment", cron("@every 6h # four a day"), [DAY]),
    ("cron-tz-prefix", cron("CRON_TZ=America/New_York 0 9 * * MON-FRI"), [WEEKS, NY_SPRING, NY_FALL]),
    ("cron-tz-short-prefix", cron("TZ=Europe/Berlin 0 0 1 * *"), [YEARS]),
    ("cron-tz-same-as-spec", cron("TZ=Europe/Berlin 0 9 * * *", timezoneName="Europe/Berlin"), [BER_SPRING]),
    ("cron-tz-two-same", cron("TZ=Asia/Tokyo 0 9 * * *", "TZ=Asia/Tokyo 0 21 * * *"), [DAY]),
    ("cron-spaces", cron("  0   12  *  *  *  "), [DAY]),
    # --- time zones and DST -------------------------------------------------------------------------
    ("ny-0230-daily", cron("30 2 * * *", timezoneName="America/New_York"), [NY_SPRING, NY_FALL]),
    ("ny-0130-daily", cron("30 1 * * *", timezoneName="America/New_York"), [NY_SPRING, NY_FALL]),
    ("ny-hourly", cron("0 * * * *", timezoneName="America/New_York"), [NY_SPRING, NY_FALL]),
    ("ny-every-20-min-1-3h", cron("*/20 1-3 * * *", timezoneName="America/New_York"), [NY_SPRING, NY_FALL]),
    ("ny-hour-1-only", cron("0,30 1 * * *", timezoneName="America/New_York"), [NY_FALL]),
    ("ny-hour-2-only", cron("0,30 2 * * *", timezoneName="America/New_York"), [NY_SPRING, NY_FALL]),
    ("ny-interval-1h", {"interval": [{"interval": "3600s"}], "timezoneName": "America/New_York"}, [NY_FALL]),
    ("berlin-0230-daily", cron("30 2 * * *", timezoneName="Europe/Berlin"), [BER_SPRING, BER_FALL]),
    ("berlin-hourly", cron("0 * * * *", timezoneName="Europe/Berlin"), [BER_SPRING, BER_FALL]),
    ("berlin-half-hourly", cron("*/30 * * * *", timezoneName="Europe/Berlin"), [BER_SPRING, BER_FALL]),
    ("berlin-hour-1-only", cron("0,30 1 * * *", timezoneName="Europe/Berlin"), [BER_FALL]),
    ("berlin-hour-2-only", cron("0,30 2 * * *", timezoneName="Europe/Berlin"), [BER_SPRING, BER_FALL]),
    ("berlin-hour-3-only", cron("0,30 3 * * *", timezoneName="Europe/Berlin"), [BER_SPRING, BER_FALL]),
    ("kolkata-noon", cron("0 12 * * *", timezoneName="Asia/Kolkata"), [DAY]),
    ("lord-howe-quarter-hours", cron("*/15 1-2 * * *", timezoneName="Australia/Lord_Howe"),
     [("2024-04-06T12:00:00Z", "2024-04-07T12:00:00Z"), ("2024-10-05T12:00:00Z", "2024-10-06T12:00:00Z")]),
    ("santiago-midnight", cron("0 0 * * *", timezoneName="America/Santiago"),
     [("2024-04-04T00:00:00Z", "2024-04-10T00:00:00Z"), ("2024-09-05T00:00:00Z", "2024-09-11T00:00:00Z")]),
    ("santiago-sunday-midnight", cron("0 0 * * SUN", timezoneName="America/Santiago"),
     [("2024-09-01T00:00:00Z", "2024-09-20T00:00:00Z")]),
    ("utc-explicit", cron("0 12 * * *", timezoneName="UTC"), [DAY]),
    ("tz-data-bytes", cron("0 * * * *", timezoneName="My/Berlin", timezoneData=BERLIN_TZIF), [BER_FALL]),
    ("tz-data-bytes-no-name", cron("30 2 * * *", timezoneData=BERLIN_TZIF), [BER_SPRING]),
    # --- structured calendars, calendar strings -------------------------------------------------
    ("structured-basic", {"structuredCalendar": [{"hour": [rng(9, 17, 4)], "minute": [rng(0), rng(30)], "comment": "c"}]}, [DAY]),
    ("structured-empty", {"structuredCalendar": [{}]}, [("2024-05-01T00:00:00Z", "2024-05-01T00:00:05Z")]),
    ("structured-seconds", {"structuredCalendar": [{"second": [rng(10, 50, 20)], "minute": [rng(0, 59)], "hour": [rng(3)]}]},
     [("2024-05-01T03:00:00Z", "2024-05-01T03:05:00Z")]),
    ("structured-dom-and-dow", {"structuredCalendar": [{"hour": [rng(0)], "minute": [rng(0)], "second": [rng(0)], "dayOfMonth": [rng(1, 7)], "dayOfWeek": [rng(1)]}]}, [YEARS]),
    ("structured-year", {"structuredCalendar": [{"year": [rng(2025), rng(2028)], "month": [rng(6)], "dayOfMonth": [rng(15)]}]}, [YEARS]),
    ("structured-end-below-start", {"structuredCalendar": [{"hour": [rng(5)], "minute": [{"start": 10, "end": 0, "step": 5}]}]}, [DAY]),
    ("structured-step-default", {"structuredCalendar": [{"hour": [{"start": 1, "end": 4}]}]}, [DAY]),
    ("calendar-strings", {"calendar": [{"hour": "8-10", "minute": "*/20", "dayOfWeek": "mon-fri", "comment": "work"}]}, [WEEKS]),
    ("calendar-all-defaults", {"calendar": [{}]}, [WEEKS]),
    ("calendar-second-minute", {"calendar": [{"second": "*/30", "minute": "*", "hour": "*"}]}, [("2024-05-01T00:00:00Z", "2024-05-01T00:10:00Z")]),
    ("calendar-month-names", {"calendar": [{"month": "February,Aug", "dayOfMonth": "1"}]}, [YEARS]),
    ("calendar-year", {"calendar": [{"year": "2026-2030/2", "month": "7", "dayOfMonth": "4", "hour": "12"}]}, [YEARS]),
    ("calendar-and-structured", {"calendar": [{"hour": "6"}], "structuredCalendar": [{"hour": [rng(18)]}]}, [WEEKS]),
    # --- intervals ------------------------------------------------------------------------------
    ("interval-1h-phase", {"interval": [{"interval": "3600s", "phase": "900s"}]}, [DAY]),
    ("interval-36h", {"interval": [{"interval": "129600s"}]}, [WEEKS]),
    ("interval-7d-phase-2d", {"interval": [{"interval": "604800s", "phase": "172800s"}]}, [YEARS]),
    ("interval-fractional", {"interval": [{"interval": "90.5s"}]}, [("2024-05-01T00:00:00Z", "2024-05-01T00:30:00Z")]),
    ("interval-two", {"interval": [{"interval": "3600s"}, {"interval": "5400s", "phase": "60s"}]}, [DAY]),
    ("interval-and-calendar", {"interval": [{"interval": "7200s"}], "cronString": ["30 * * * *"]}, [DAY]),
    ("interval-cap-1000", {"interval": [{"interval": "1s"}]}, [("2024-05-01T00:00:00Z", "2024-05-01T01:00:00Z")]),
    # --- exclusions -----------------------------------------------------------------------------
    ("exclude-structured", {"cronString": ["0 * * * *"], "excludeStructuredCalendar": [{"hour": [rng(12, 13)], "minute": [rng(0, 59)], "second": [rng(0, 59)]}]}, [DAY]),
    ("exclude-calendar-string", {"cronString": ["0 12 * * *"], "excludeCalendar": [{"dayOfWeek": "sat,sun", "hour": "*", "minute": "*", "second": "*"}]}, [WEEKS]),
    ("exclude-default-calendar", {"interval": [{"interval": "1800s"}], "excludeCalendar": [{}]}, [DAY]),
    ("exclude-interval-tz", {"interval": [{"interval": "3600s"}], "timezoneName": "Europe/Berlin",
                             "excludeStructuredCalendar": [{"hour": [rng(0, 6)], "minute": [rng(0, 59)], "second": [rng(0, 59)]}]}, [BER_FALL]),
    # --- start, end, jitter ---------------------------------------------------------------------
    ("start-end", {"cronString": ["0 * * * *"], "startTime": "2024-05-01T05:00:00Z", "endTime": "2024-05-01T09:00:00Z"}, [DAY]),
    ("start-fraction", {"cronString": ["* * * * *"], "startTime": "2024-05-01T05:00:00.500Z"}, [("2024-05-01T04:58:00Z", "2024-05-01T05:03:00Z")]),
    ("start-off-grid", {"interval": [{"interval": "600s"}], "startTime": "2024-05-01T05:03:00Z"}, [DAY]),
    ("end-before-start", {"cronString": ["0 * * * *"], "startTime": "2024-05-01T09:00:00Z", "endTime": "2024-05-01T05:00:00Z"}, [DAY]),
    ("end-exact-match", {"cronString": ["0 * * * *"], "endTime": "2024-05-01T03:00:00Z"}, [DAY]),
    ("jitter-hourly", {"cronString": ["0 * * * *"], "jitter": "1800s"}, [DAY]),
    ("jitter-larger-than-gap", {"cronString": ["*/5 * * * *"], "jitter": "3600s"}, [("2024-05-01T00:00:00Z", "2024-05-01T02:00:00Z")]),
    ("jitter-interval-excluded", {"interval": [{"interval": "600s"}], "jitter": "3000s", "excludeStructuredCalendar": [{"minute": [rng(20, 29)], "hour": [rng(0, 23)], "second": [rng(0, 59)]}]}, [("2024-05-01T00:00:00Z", "2024-05-01T03:00:00Z")]),
    ("jitter-daily-tz", {"cronString": ["0 9 * * *"], "jitter": "7200.250s", "timezoneName": "America/New_York"}, [NY_SPRING, WEEKS]),
    ("jitter-sub-ms", {"cronString": ["* * * * *"], "jitter": "0.000500s"}, [("2024-05-01T00:00:00Z", "2024-05-01T00:05:00Z")]),
    ("jitter-negative", {"cronString": ["0 * * * *"], "jitter": "-60s"}, [DAY]),
    ("empty-spec", {}, [DAY]),
    # --- bad specs ------------------------------------------------------------------------------
    ("bad-cron-4-fields", cron("0 12 * *"), []),
    ("bad-cron-8-fields", cron("0 0 12 * * * 2025 x"), []),
    ("bad-cron-minute-60", cron("60 * * * *"), []),
    ("bad-cron-hour-24", cron("0 24 * * *"), []),
    ("bad-cron-dom-0", cron("0 0 0 * *"), []),
    ("bad-cron-dom-32", cron("0 0 32 * *"), []),
    ("bad-cron-month-13", cron("0 0 1 13 *"), []),
    ("bad-cron-dow-8", cron("0 0 * * 8"), []),
    ("bad-cron-letters", cron("a * * * *"), []),
    ("bad-cron-range-backwards", cron("0 5-2 * * *"), []),
    ("bad-cron-range-start", cron("0 25-26 * * *"), []),
    ("bad-cron-two-dashes", cron("1-2-3 * * * *"), []),
    ("bad-cron-step-zero", cron("*/0 * * * *"), []),
    ("bad-cron-step-missing", cron("5/ * * * *"), []),
    ("bad-cron-two-slashes", cron("3/5/7 * * * *"), []),
    ("bad-cron-step-letters", cron("*/x * * * *"), []),
    ("bad-cron-year-1999", cron("0 0 1 1 * 1999"), []),
    ("bad-cron-L", cron("0 0 L * *"), []),
    ("bad-cron-question-mark", cron("0 0 ? * MON"), []),
    ("bad-cron-empty", cron(""), []),
    ("bad-cron-reboot", cron("@reboot"), []),
    ("bad-cron-two-errors", cron("61 25 * * *"), []),
    ("bad-cron-month-two-letters", cron("0 0 1 ja *"), []),
    ("bad-every-missing", cron("@every"), []),
    ("bad-every-glued", cron("@every5m"), []),
    ("bad-every-unit", cron("@every 5x"), []),
    ("bad-every-no-unit", cron("@every 5"), []),
    ("bad-every-zero", cron("@every 0s"), []),
    ("bad-every-subsecond", cron("@every 500ms"), []),
    ("bad-every-phase-equal", cron("@every 1h/1h"), []),
    ("bad-every-phase-larger", cron("@every 1h/2h"), []),
    ("bad-every-phase-negative", cron("@every 1h/-1m"), []),
    ("bad-every-days-garbage", cron("@every 1dx"), []),
    ("bad-every-two-words", cron("@every 5m 3m"), []),
    ("bad-tz-prefix-only", cron("TZ=Europe/Berlin"), []),
    ("bad-tz-in-cron-unknown", cron("CRON_TZ=Mars/Olympus 0 12 * * *"), []),
    ("bad-tz-conflict-strings", cron("TZ=Europe/Berlin 0 9 * * *", "TZ=Asia/Tokyo 0 9 * * *"), []),
    ("bad-tz-conflict-strings-unset", cron("TZ=Europe/Berlin 0 9 * * *", "0 9 * * *"), []),
    ("bad-tz-conflict-spec", cron("TZ=Europe/Berlin 0 9 * * *", timezoneName="Asia/Tokyo"), []),
    ("bad-tz-unknown", cron("0 12 * * *", timezoneName="Mars/Olympus"), []),
    ("bad-tz-lowercase", cron("0 12 * * *", timezoneName="europe/berlin"), []),
    ("bad-tz-dotdot", cron("0 12 * * *", timezoneName="../etc/passwd"), []),
    ("bad-tz-data", cron("0 12 * * *", timezoneName="X", timezoneData=base64.b64encode(b"not a tzif file").decode()), []),
    ("bad-tz-data-and-cron-tz", cron("TZ=Europe/Berlin 0 12 * * *", timezoneData=BERLIN_TZIF), []),
    ("bad-interval-zero", {"interval": [{"interval": "0s"}]}, []),
    ("bad-interval-missing", {"interval": [{}]}, []),
    ("bad-interval-negative", {"interval": [{"interval": "-60s"}]}, []),
    ("bad-interval-subsecond", {"interval": [{"interval": "0.5s"}]}, []),
    ("bad-phase-equal", {"interval": [{"interval": "60s", "phase": "60s"}]}, []),
    ("bad-phase-larger", {"interval": [{"interval": "60s", "phase": "90s"}]}, []),
    ("bad-phase-negative", {"interval": [{"interval": "60s", "phase": "-1s"}]}, []),
    ("bad-structured-second-60", {"structuredCalendar": [{"second": [rng(60)]}]}, []),
    ("bad-structured-minute-end", {"structuredCalendar": [{"minute": [rng(0, 60)]}]}, []),
    ("bad-structured-hour-24", {"structuredCalendar": [{"hour": [rng(24)]}]}, []),
    ("bad-structured-dom-0", {"structuredCalendar": [{"dayOfMonth": [rng(0, 5)]}]}, []),
    ("bad-structured-month-13", {"structuredCalendar": [{"month": [rng(13)]}]}, []),
    ("bad-structured-year-1999", {"structuredCalendar": [{"year": [rng(1999)]}]}, []),
    ("bad-structured-year-2101", {"structuredCalendar": [{"year": [rng(2050, 2101)]}]}, []),
    ("bad-structured-dow-7", {"structuredCalendar": [{"dayOfWeek": [rng(7)]}]}, []),
    ("bad-structured-end-before-start", {"structuredCalendar": [{"hour": [rng(5, 3)]}]}, []),
    ("bad-structured-negative-step", {"structuredCalendar": [{"hour": [{"start": 1, "end": 5, "step": -1}]}]}, []),
    ("bad-structured-negative-start", {"structuredCalendar": [{"minute": [{"start": -1}]}]}, []),
    ("bad-structured-many", {"structuredCalendar": [{"second": [rng(60)], "hour": [rng(1, 30)], "dayOfWeek": [{"start": 0, "step": -2}]}]}, []),
    ("bad-structured-comment-long", {"structuredCalendar": [{"comment": "x" * 201}]}, []),
    ("ok-structured-comment-200", {"structuredCalendar": [{"comment": "x" * 200}]}, [("2024-05-01T00:00:00Z", "2024-05-01T00:00:03Z")]),
    # Temporal does not validate exclusions: out-of-range values are accepted and never match.
    ("exclude-structured-out-of-range", {"cronString": ["0 * * * *"], "excludeStructuredCalendar": [{"hour": [rng(24)], "minute": [rng(0, 70)], "second": [rng(0, 59)]}]}, [DAY]),
    ("exclude-structured-negative-step", {"cronString": ["0 * * * *"], "excludeStructuredCalendar": [{"hour": [{"start": 1, "end": 3, "step": -1}]}]}, [DAY]),
    ("exclude-structured-negative-value", {"cronString": ["0 * * * *"], "excludeStructuredCalendar": [{"hour": [{"start": -3}]}]}, [DAY]),
    ("bad-exclude-calendar", {"cronString": ["0 * * * *"], "excludeCalendar": [{"hour": "25"}]}, []),
    ("bad-calendar-string", {"calendar": [{"minute": "*/0", "dayOfWeek": "funday"}]}, []),
]


def to_timestamp(text: str) -> Timestamp:
    ts = Timestamp()
    ts.FromJsonString(text)
    return ts


async def record(client, namespace_id: str, name: str, spec_json: dict, windows) -> dict:
    schedule_id = f"golden-{name}-{uuid.uuid4().hex[:8]}"
    spec = json_format.ParseDict(spec_json, ScheduleSpec())
    action = ScheduleAction(start_workflow=NewWorkflowExecutionInfo(
        workflow_id=f"wf-{schedule_id}", workflow_type=WorkflowType(name="Golden"), task_queue=TaskQueue(name="golden")))
    case: dict = {"name": name, "spec": spec_json, "schedule_id": schedule_id, "jitter_seed": f"{namespace_id}-{schedule_id}"}
    service = client.workflow_service
    try:
        await service.create_schedule(CreateScheduleRequest(
            namespace=NAMESPACE, schedule_id=schedule_id, request_id=str(uuid.uuid4()),
            schedule=Schedule(spec=spec, action=action, state=ScheduleState(paused=True))))
    except RPCError as err:
        case["error"] = {"status": err.status.name, "message": err.message}
        return case
    try:
        described = await service.describe_schedule(DescribeScheduleRequest(namespace=NAMESPACE, schedule_id=schedule_id))
        case["described_spec"] = json_format.MessageToDict(described.schedule.spec)
        case["windows"] = []
        for start, end in windows:
            answer = await service.list_schedule_matching_times(ListScheduleMatchingTimesRequest(
                namespace=NAMESPACE, schedule_id=schedule_id, start_time=to_timestamp(start), end_time=to_timestamp(end)))
            case["windows"].append({"start": start, "end": end, "times": [t.ToJsonString() for t in answer.start_time]})
    finally:
        await service.delete_schedule(DeleteScheduleRequest(namespace=NAMESPACE, schedule_id=schedule_id))
    return case


async def generate(port_or_address: str) -> dict:
    address = port_or_address
    client = await connect(int(address)) if address.isdigit() else None
    if client is None:
        from temporalio.client import Client

        client = await Client.connect(address, namespace=NAMESPACE)
    ns = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=NAMESPACE))
    namespace_id = ns.namespace_info.id
    cases = []
    for name, spec_json, windows in CASES:
        cases.append(await record(client, namespace_id, name, spec_json, windows))
        print(f"{name}: {cases[-1].get('error', {}).get('message', 'ok')}", file=sys.stderr)
    return {
        "note": f"Read off the real Temporal Server ({temporal_version()}, i.e. Temporal Server 1.32) by "
                f"bench/schedule_spec_golden.py on {datetime.now().date().isoformat()}; do not edit by hand.",
        "namespace_id": namespace_id,
        "cases": cases,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="a running Temporal server (host:port); default: start a dev server")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    handle_interrupts()
    if args.address:
        data = asyncio.run(generate(args.address))
    else:
        with running_server("temporal") as server:
            data = asyncio.run(generate(str(server.port)))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}: {len(data['cases'])} cases")


if __name__ == "__main__":
    main()
