"""RecordMarker keeps exactly what the worker sent: an absent failure stays absent."""

from __future__ import annotations

from temporalio.api.command.v1 import Command, RecordMarkerCommandAttributes
from temporalio.api.enums.v1 import CommandType as C
from temporalio.api.failure.v1 import Failure
from test_machine import Run, payloads


def marker(failure: Failure | None = None) -> Command:
    a = RecordMarkerCommandAttributes(marker_name="core_local_activity", details={"data": payloads("x")})
    if failure is not None:
        a.failure.CopyFrom(failure)
    return Command(command_type=C.COMMAND_TYPE_RECORD_MARKER, record_marker_command_attributes=a)


def test_marker_without_failure_has_no_failure_field():
    run = Run()
    t = run.task(marker())
    attrs = t.events[-1].marker_recorded_event_attributes
    assert not attrs.HasField("failure")
    assert not attrs.HasField("header")
    assert attrs.details["data"] == payloads("x")


def test_marker_with_failure_keeps_it():
    run = Run()
    t = run.task(marker(Failure(message="local activity failed")))
    attrs = t.events[-1].marker_recorded_event_attributes
    assert attrs.HasField("failure") and attrs.failure.message == "local activity failed"
