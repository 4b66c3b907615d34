"""The JSON codec: proto3 JSON with payloads as plain JSON values, both ways."""

from __future__ import annotations

import base64
import json

import pytest
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import WorkflowIdReusePolicy
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.converter import DataConverter

from odin.api.rest.codec import from_json, payload_value, to_json, value_payload
from odin.errors import InvalidArgument


@pytest.mark.parametrize("value", [None, 0, -3.5, "héllo", [1, "two", None], {"nested": {"list": [True, False]}}])
def test_values_round_trip_and_the_sdk_reads_them(value):
    payload = value_payload(value)
    assert payload.metadata["encoding"] == b"json/plain"
    assert payload_value(payload) == value
    assert DataConverter.default.payload_converter.from_payloads([payload])[0] == value


def test_sdk_payloads_read_as_json_and_other_encodings_pass_through():
    none, text = DataConverter.default.payload_converter.to_payloads([None, "text"])
    assert payload_value(none) is None  # binary/null
    assert payload_value(text) == "text"
    raw = Payload(metadata={"encoding": b"binary/plain", "x": b"\x00\x01"}, data=b"\xff\xfe")
    assert payload_value(raw) == {
        "metadata": {"encoding": base64.b64encode(b"binary/plain").decode(), "x": "AAE="},
        "data": "//4=",
    }
    broken = Payload(metadata={"encoding": b"json/plain"}, data=b"{not json")
    assert payload_value(broken)["data"] == base64.b64encode(b"{not json").decode()


def test_nested_payloads_in_messages_render_as_values():
    event = HistoryEvent(event_id=5)
    event.workflow_execution_failed_event_attributes.failure.CopyFrom(
        Failure(
            message="no",
            application_failure_info=ApplicationFailureInfo(type="E", details=Payloads(payloads=[value_payload({"a": 1})])),
        )
    )
    data = to_json(event)
    assert data["eventId"] == "5"
    assert data["workflowExecutionFailedEventAttributes"]["failure"]["applicationFailureInfo"]["details"] == [{"a": 1}]
    started = HistoryEvent(event_id=1)
    started.workflow_execution_started_event_attributes.memo.fields["note"].CopyFrom(value_payload("hi"))
    assert to_json(started)["workflowExecutionStartedEventAttributes"]["memo"] == {"fields": {"note": "hi"}}


def test_requests_parse_payload_fields_from_json_values():
    req = from_json(
        {
            "workflowType": {"name": "W"},
            "input": [1, {"b": [2]}],
            "memo": {"fields": {"k": "v"}},
            "header": {"fields": {"trace": {"id": 7}}},
            "workflow_run_timeout": "30s",
            "workflowIdReusePolicy": "WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE",
        },
        ws.StartWorkflowExecutionRequest,
    )
    assert [payload_value(p) for p in req.input.payloads] == [1, {"b": [2]}]
    assert payload_value(req.memo.fields["k"]) == "v"
    assert payload_value(req.header.fields["trace"]) == {"id": 7}
    assert req.workflow_run_timeout.seconds == 30
    assert req.workflow_id_reuse_policy == WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE


@pytest.mark.parametrize(
    "body",
    [[], {"input": "x"}, {"input": [float("nan")]}, {"unknown": 1}, {"workflowRunTimeout": 5}, {"workflowType": "W"}],
)
def test_bad_requests_are_invalid_argument(body):
    with pytest.raises(InvalidArgument):
        from_json(body, ws.StartWorkflowExecutionRequest)


@pytest.mark.parametrize(
    "data", [b"NaN", b"[1, Infinity]", b"-Infinity", b"[" * 5000 + b"]" * 5000, b"[" * 101 + b"]" * 101],
    ids=["nan", "infinity", "minus-infinity", "recursion-deep", "over-the-depth-limit"],
)
def test_payloads_that_are_not_strict_json_are_shown_as_they_are(data):
    # Python's json writes NaN; a worker may store anything. Answers must stay valid JSON.
    payload = Payload(metadata={"encoding": b"json/plain"}, data=data)
    shown = payload_value(payload)
    assert shown == {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()}, "data": base64.b64encode(data).decode()}
    assert json.loads(json.dumps(shown, allow_nan=False)) == shown
    deepest_shown = payload_value(Payload(metadata={"encoding": b"json/plain"}, data=b"[" * 100 + b"]" * 100))
    assert deepest_shown == json.loads(b"[" * 100 + b"]" * 100)  # up to the limit it is a value


@pytest.mark.parametrize(
    "body, message",
    [
        (
            {"workflowType": "Greeting"},
            'Invalid request body: workflowType must be a JSON object (temporal.api.common.v1.WorkflowType), '
            'e.g. {"name": "Greeting"}, not "Greeting".',
        ),
        (
            {"workflowType": {"name": "G"}, "taskQueue": "hello"},
            'Invalid request body: taskQueue must be a JSON object (temporal.api.taskqueue.v1.TaskQueue), '
            'e.g. {"name": "hello"}, not "hello".',
        ),
        (
            {"retryPolicy": 3},
            'Invalid request body: retryPolicy must be a JSON object (temporal.api.common.v1.RetryPolicy), '
            'e.g. {"initialInterval": ..., "backoffCoefficient": ..., "maximumInterval": ...}, not 3.',
        ),
    ],
)
def test_a_scalar_where_a_message_goes_says_what_to_write(body, message):
    with pytest.raises(InvalidArgument) as caught:
        from_json(body, ws.StartWorkflowExecutionRequest)
    assert caught.value.message == message


@pytest.mark.parametrize(
    "value, message",
    [
        ("7d", 'must be a duration in seconds, e.g. "604800s" for 7d, not "7d".'),
        ("1h30m", 'must be a duration in seconds, e.g. "5400s" for 1h30m, not "1h30m".'),
        ("a week", 'must be a duration in seconds, e.g. "604800s" for 7 days, not "a week".'),
    ],
)
def test_a_duration_not_in_seconds_says_how_to_write_it(value, message):
    with pytest.raises(InvalidArgument) as caught:
        from_json({"namespace": "n", "workflowExecutionRetentionPeriod": value}, ws.RegisterNamespaceRequest)
    assert caught.value.message == f"Invalid request body: workflowExecutionRetentionPeriod {message}"
    parsed = from_json({"namespace": "n", "workflowExecutionRetentionPeriod": "604800.5s"}, ws.RegisterNamespaceRequest)
    assert parsed.workflow_execution_retention_period.seconds == 604800
