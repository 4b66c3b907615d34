"""A run's history as the web UI shows it: one readable row per event, the timers still pending,
and activities, timers and children as bars over time (pure: events in, plain data out)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from odin.api.rest.codec import payload_value, to_json
from odin.api.rest.explain import FailureView, failure_view
from odin.api.rest.humane import duration_words
from odin.history.events import attributes_field, attributes_of

_PREFIX = len("EVENT_TYPE_")
# Fields worth a glance, in the order they are shown (dotted paths into the attributes' JSON).
_GLANCE = (
    "workflowType.name", "activityType.name", "activityId", "timerId", "startToFireTimeout", "signalName",
    "markerName", "taskQueue.name", "input", "result", "failure.message", "reason", "cause", "identity",
    "workflowId", "scheduledEventId", "startedEventId",
)
_GLANCE_LIMIT = 4


@dataclass
class Row:
    event_id: int
    time: str
    title: str
    kind: str  # workflow, task, activity, timer, signal, child, update, marker, other: the row's colour
    glance: list[tuple[str, str]]
    attributes: str  # pretty JSON
    failure: FailureView | None = None


@dataclass
class PendingTimer:
    timer_id: str
    started_event_id: int
    fires_at: str
    timeout: str


def title(event_type: int) -> str:
    """``EVENT_TYPE_ACTIVITY_TASK_SCHEDULED`` -> ``Activity Task Scheduled``."""
    return EventType.Name(event_type)[_PREFIX:].replace("_", " ").title()


def _kind(event_type: int) -> str:
    name = EventType.Name(event_type)
    for marker, kind in (
        ("WORKFLOW_TASK", "task"), ("ACTIVITY", "activity"), ("TIMER", "timer"), ("SIGNAL", "signal"),
        ("CHILD", "child"), ("UPDATE", "update"), ("MARKER", "marker"), ("WORKFLOW_EXECUTION", "workflow"),
    ):
        if marker in name:
            return kind
    return "other"


def _dig(data: dict, path: str):
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def rows(events: list[HistoryEvent]) -> list[Row]:
    out = []
    for event in events:
        attributes = to_json(attributes_of(event)) if event.HasField(attributes_field(event.event_type)) else {}
        glance = []
        summary = metadata_text(event.user_metadata.summary) if event.HasField("user_metadata") else ""
        if summary:
            glance.append(("summary", _short(summary)))
        for path in _GLANCE:
            value = _dig(attributes, path)
            if value not in (None, "", [], {}):
                glance.append((path.split(".")[0], _short(value)))
            if len(glance) == _GLANCE_LIMIT:
                break
        out.append(
            Row(
                event_id=event.event_id,
                time=event.event_time.ToJsonString(),
                title=title(event.event_type),
                kind=_kind(event.event_type),
                glance=glance,
                attributes=json.dumps(attributes, indent=2, ensure_ascii=False),
                failure=_failure(event),
            )
        )
    return out


def metadata_text(payload: Payload) -> str:
    """A user metadata summary or details payload as text (they are JSON strings as the SDKs send them)."""
    if not payload.data:
        return ""
    value = payload_value(payload)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def pending_timers(events: list[HistoryEvent]) -> list[PendingTimer]:
    started: dict[str, HistoryEvent] = {}
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            started[event.timer_started_event_attributes.timer_id] = event
        elif event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            started.pop(event.timer_fired_event_attributes.timer_id, None)
        elif event.event_type == EventType.EVENT_TYPE_TIMER_CANCELED:
            started.pop(event.timer_canceled_event_attributes.timer_id, None)
    timers = []
    for timer_id, event in started.items():
        timeout: timedelta = event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        fires_at = event.event_time.ToDatetime() + timeout
        timers.append(
            PendingTimer(timer_id, event.event_id, fires_at.strftime("%Y-%m-%dT%H:%M:%SZ"), f"{timeout.total_seconds():g}s")
        )
    return timers


def _failure(event: HistoryEvent) -> FailureView | None:
    field = event.WhichOneof("attributes")
    if field is None:
        return None
    attrs = getattr(event, field)
    if "failure" in attrs.DESCRIPTOR.fields_by_name and attrs.HasField("failure"):
        return failure_view(attrs.failure)
    return None


# -- the graphical timeline -----------------------------------------------------------------

# The SVG's coordinates: a label column, then the bars; one row per bar.
LABEL_WIDTH, CHART_LEFT, CHART_RIGHT, ROW_HEIGHT = 240, 250, 990, 20
MAX_BARS = 200

_E = EventType
# kind, the event that opens a bar, its name field, and the events that close it -> outcome.
_OPENS = {
    _E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "activity",
    _E.EVENT_TYPE_TIMER_STARTED: "timer",
    _E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED: "child",
}
_CLOSES = {
    _E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "completed", _E.EVENT_TYPE_ACTIVITY_TASK_FAILED: "failed",
    _E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "timed-out", _E.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "canceled",
    _E.EVENT_TYPE_TIMER_FIRED: "completed", _E.EVENT_TYPE_TIMER_CANCELED: "canceled",
    _E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED: "completed", _E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED: "failed",
    _E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT: "timed-out", _E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED: "canceled",
    _E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED: "failed", _E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED: "failed",
}


@dataclass
class Bar:
    label: str
    kind: str  # activity, timer, child
    outcome: str  # running, completed, failed, timed-out, canceled
    start: float  # seconds after the run's first event
    end: float
    event_id: int  # the event that opened it
    child_id: str = ""  # a child workflow's id, for a link to its page
    x: float = 0.0  # SVG coordinates
    y: float = 0.0
    width: float = 0.0
    title: str = ""  # the tooltip


@dataclass
class Gantt:
    bars: list[Bar]
    span: float  # seconds the chart covers
    height: int
    ticks: list[tuple[float, str]]  # (x, label) along the axis
    more: int  # bars left off past MAX_BARS


def _opened_by(event: HistoryEvent) -> int:
    """The id of the event that opened the bar ``event`` closes: an activity's scheduled event, a
    child's initiated event, a timer's started event."""
    field = event.WhichOneof("attributes")
    if field is None:
        return 0
    attrs = getattr(event, field)
    for name in ("scheduled_event_id", "initiated_event_id", "started_event_id"):
        if name in attrs.DESCRIPTOR.fields_by_name:
            return int(getattr(attrs, name))
    return 0


def _label(event: HistoryEvent, kind: str) -> str:
    if kind == "activity":
        a = event.activity_task_scheduled_event_attributes
        return f"{a.activity_type.name} ({a.activity_id})"
    if kind == "timer":
        t = event.timer_started_event_attributes
        return f"timer {t.timer_id} ({duration_words(t.start_to_fire_timeout.ToTimedelta().total_seconds())})"
    c = event.start_child_workflow_execution_initiated_event_attributes
    return f"{c.workflow_type.name} ({c.workflow_id})"


def gantt(events: list[HistoryEvent], now: datetime) -> Gantt:
    """Activities, timers and children as bars from their first event to their last (``now`` for
    those still open while the run runs; the close of the run for those it left open)."""
    if not events:
        return Gantt([], 0.0, 0, [], 0)
    origin = events[0].event_time.ToDatetime()
    last = events[-1]
    closed = is_close_type(last.event_type)
    end_of_run = last.event_time.ToDatetime() if closed else max(now.replace(tzinfo=None), last.event_time.ToDatetime())
    bars: dict[int, Bar] = {}
    for event in events:
        at = (event.event_time.ToDatetime() - origin).total_seconds()
        kind = _OPENS.get(event.event_type)
        if kind is not None:
            child = event.start_child_workflow_execution_initiated_event_attributes.workflow_id if kind == "child" else ""
            bars[event.event_id] = Bar(_label(event, kind), kind, "running", at, at, event.event_id, child)
        elif event.event_type in _CLOSES:
            bar = bars.get(_opened_by(event))
            if bar is not None:
                bar.end, bar.outcome = at, _CLOSES[event.event_type]
    span = max((end_of_run - origin).total_seconds(), 0.001)
    chosen = list(bars.values())
    shown, more = chosen[:MAX_BARS], max(len(chosen) - MAX_BARS, 0)
    scale = (CHART_RIGHT - CHART_LEFT) / span
    for i, bar in enumerate(shown):
        if bar.outcome == "running":
            bar.end = span
        bar.x = CHART_LEFT + bar.start * scale
        bar.width = max((bar.end - bar.start) * scale, 2.0)
        bar.y = 24 + i * ROW_HEIGHT
        bar.title = f"{bar.label}: {bar.outcome}, {duration_words(bar.end - bar.start)} (from +{duration_words(bar.start)})"
    ticks = [(CHART_LEFT + f * (CHART_RIGHT - CHART_LEFT), "0" if f == 0 else "+" + duration_words(span * f)) for f in (0, 0.5, 1)]
    return Gantt(shown, span, 24 + len(shown) * ROW_HEIGHT + 4, ticks, more)


def is_close_type(event_type: int) -> bool:
    return event_type in (
        _E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, _E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
        _E.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT, _E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
        _E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, _E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
    )
