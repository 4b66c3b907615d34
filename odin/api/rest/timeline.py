"""A run's history as the web UI shows it: one readable row per event, and the timers still
pending (pure: events in, plain data out)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from odin.api.rest.codec import payload_value, to_json
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
