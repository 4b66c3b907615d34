"""The pure core's encodings: a run's state and task tokens as JSON (states and tokens written by
earlier releases, with the standard library's encoder, still read the same), and event times
from epoch seconds exactly as ``datetime.fromtimestamp`` would give them."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from odin.errors import InvalidArgument
from odin.history import tokens
from odin.history.events import timestamp
from odin.history.state import (
    ActivityInfo,
    ChildInfo,
    MutableState,
    ResetPoint,
    RetryPolicyInfo,
    TimerInfo,
    UpdateInfo,
    WorkflowTaskInfo,
)


def busy_state() -> MutableState:
    """A state with every nested kind filled in, int-keyed maps and text outside ASCII."""
    s = MutableState(
        namespace_id="ns-1", namespace="default", workflow_id="bestellung-ü-東京", run_id="r1",
        first_execution_run_id="r1", workflow_type="Order", task_queue="orders", start_time=1796695840.981481,
        start_request_id="req", workflow_task_timeout=10.0,
    )
    s.wft = WorkflowTaskInfo(12, 1, "orders", False, 1796695841.25, 10.0, suggest_continue_as_new=[1])
    retry = RetryPolicyInfo(non_retryable_error_types=["CardDeclined"])
    s.activities = {5: ActivityInfo(5, "1", "charge", "orders", 2, 1796695840.5, 1796695841.0, 0.0, 0.0, 30.0, 0.0, retry,
                                    original_options={"task_queue": "orders"})}
    s.timers = {"t1": TimerInfo("t1", 9, 1796699440.0)}
    s.children = {8: ChildInfo(8, "kid", "Kid", "default", 1)}
    s.updates = {"u1": UpdateInfo("u1", "admitted", 1, request="cmVx")}
    s.auto_reset_points = [ResetPoint("build-1", "r1", 4, 1796695841.5)]
    s.memo = "bWVtbw=="
    return s


def test_a_state_comes_back_equal_from_its_encoding():
    s = busy_state()
    data = s.to_bytes()
    assert MutableState.from_bytes(data) == s
    assert isinstance(data, bytes) and "東京".encode() in data  # UTF-8, not escaped


def test_a_state_written_by_the_standard_library_encoder_reads_the_same():
    s = busy_state()
    # The encoding of earlier releases: json.dumps of the dataclass tree, ASCII-escaped.
    old = json.dumps(dataclasses.asdict(s), separators=(",", ":")).encode()
    assert b"\\u6771" in old
    assert MutableState.from_bytes(old) == s
    assert json.loads(s.to_bytes()) == json.loads(old)


def test_a_token_round_trips_and_one_of_an_earlier_release_still_decodes():
    token = tokens.WorkflowTaskToken("ns-1", "bestellung-ü", "r1", 2, 3, 1)
    assert tokens.decode(tokens.encode(token), tokens.WorkflowTaskToken) == token
    old = b"\x01" + json.dumps({"k": "w", **dataclasses.asdict(token)}, separators=(",", ":")).encode()
    assert tokens.decode(old, tokens.WorkflowTaskToken) == token
    for bad in (b"\x01{", b"\x01[1]", b"\x01" + b"\xff\xfe", b"\x01{\"k\":\"w\"}", b"\x01NaN"):
        with pytest.raises(InvalidArgument):
            tokens.decode(bad, tokens.WorkflowTaskToken)


def _by_datetime(at: float) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime.fromtimestamp(at, UTC))
    return ts


@given(st.floats(min_value=-62_000_000_000.0, max_value=253_402_300_799.0, allow_nan=False))
def test_an_event_time_from_epoch_seconds_is_the_datetime_one(at):
    assert timestamp(at) == _by_datetime(at)


@pytest.mark.parametrize("at", [0, 0.0, 1.0000005, 1.0000015, 1796695840.9999996, -0.0000005, -1.5, -0.9999996, 1e-7, 12])
def test_event_times_at_the_rounding_edges(at):
    assert timestamp(at) == _by_datetime(at)
    assert timestamp(datetime.fromtimestamp(at, UTC)) == _by_datetime(at)
