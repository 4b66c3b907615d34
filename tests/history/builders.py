"""Command and value builders shared by the state-machine tests."""

from __future__ import annotations

from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from temporalio.api.command.v1 import (
    CancelTimerCommandAttributes,
    Command,
    RequestCancelActivityTaskCommandAttributes,
    StartTimerCommandAttributes,
)
from temporalio.api.enums.v1 import CommandType as C


def dur(seconds: float) -> Duration:
    d = Duration()
    d.FromTimedelta(timedelta(seconds=seconds))
    return d


def start_timer(timer_id: str = "t1", seconds: float | None = 30.0) -> Command:
    """A StartTimer command; ``seconds=None`` leaves its duration unset."""
    a = StartTimerCommandAttributes(timer_id=timer_id)
    if seconds is not None:
        a.start_to_fire_timeout.CopyFrom(dur(seconds))
    return Command(command_type=C.COMMAND_TYPE_START_TIMER, start_timer_command_attributes=a)


def cancel_timer(timer_id: str = "t1") -> Command:
    return Command(
        command_type=C.COMMAND_TYPE_CANCEL_TIMER,
        cancel_timer_command_attributes=CancelTimerCommandAttributes(timer_id=timer_id),
    )


def request_cancel_activity(scheduled_event_id: int) -> Command:
    return Command(
        command_type=C.COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK,
        request_cancel_activity_task_command_attributes=RequestCancelActivityTaskCommandAttributes(
            scheduled_event_id=scheduled_event_id
        ),
    )
