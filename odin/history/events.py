"""Building ``temporal.api.history.v1.HistoryEvent`` values (pure helpers)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflow.v1 import ResetPointInfo, ResetPoints

from odin.history.state import ResetPoint

_PREFIX = len("EVENT_TYPE_")


def attributes_field(event_type: EventType.ValueType) -> str:
    """``EVENT_TYPE_TIMER_FIRED`` -> ``timer_fired_event_attributes``."""
    return EventType.Name(event_type)[_PREFIX:].lower() + "_event_attributes"


def make_event(event_type: EventType.ValueType, attributes: Message, at: datetime | float) -> HistoryEvent:
    event = HistoryEvent(event_type=event_type, event_time=timestamp(at))
    getattr(event, attributes_field(event_type)).CopyFrom(attributes)
    if event_type in WORKER_MAY_IGNORE:
        event.worker_may_ignore = True
    return event


# Events a worker's SDK need not replay, marked so as Temporal marks them (an SDK fails a task
# whose history has an event it does not know how to apply otherwise).
WORKER_MAY_IGNORE = frozenset({EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED})


def attributes_of(event: HistoryEvent) -> Message:
    """The event's ``..._event_attributes`` message (which one depends on its type)."""
    attributes: Message = getattr(event, attributes_field(event.event_type))
    return attributes


def timestamp(at: datetime | float) -> Timestamp:
    if isinstance(at, datetime):
        ts = Timestamp()
        ts.FromDatetime(at)
        return ts
    # Epoch seconds, to the microsecond as ``datetime.fromtimestamp`` rounds them (half to even),
    # without building a datetime: every event's time goes through here.
    fraction, whole = math.modf(at)
    micros, secs = round(fraction * 1e6), int(whole)
    if micros >= 1_000_000:
        secs, micros = secs + 1, micros - 1_000_000
    elif micros < 0:
        secs, micros = secs - 1, micros + 1_000_000
    return Timestamp(seconds=secs, nanos=micros * 1000)


def duration(seconds: float) -> Duration:
    d = Duration()
    d.FromTimedelta(timedelta(seconds=seconds))
    return d


def optional_duration(seconds: float) -> Duration | None:
    """A timeout for a message field that Temporal leaves unset when there is none (0): the SDKs
    read an unset field as "no timeout" and a zero one as a zero timeout."""
    return duration(seconds) if seconds else None


# The longest duration Temporal's server honours: Go's time.Duration saturates at 2^63-1 ns
# (about 292 years). Longer ones (protobuf allows 10,000 years) are read as this, which keeps
# every deadline computed from them inside datetime's range.
MAX_NANOS = 2**63 - 1
MAX_SECONDS = MAX_NANOS / 1e9


def seconds(d: Duration) -> float:
    """A duration in seconds, at most ``MAX_SECONDS`` (negative ones stay negative: validation
    rejects them)."""
    return min(d.seconds + d.nanos / 1e9, MAX_SECONDS)


def reset_points(points: list[ResetPoint]) -> ResetPoints:
    """A run's auto-reset points as Temporal shows them (DescribeWorkflowExecution, and the
    ``prev_auto_reset_points`` a continued run starts with)."""
    return ResetPoints(
        points=[
            ResetPointInfo(
                build_id=p.build_id,
                run_id=p.run_id,
                first_workflow_task_completed_id=p.first_workflow_task_completed_id,
                create_time=timestamp(p.create_time),
                resettable=True,
            )
            for p in points
        ]
    )


def reset_points_of(points: ResetPoints) -> list[ResetPoint]:
    return [
        ResetPoint(p.build_id, p.run_id, p.first_workflow_task_completed_id, p.create_time.ToDatetime(UTC).timestamp())
        for p in points.points
    ]
