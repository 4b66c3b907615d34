"""Fuzzing the gRPC door: hypothesis builds request messages for every implemented call (random
values in random fields, nested messages included) and the server must answer each with a
deliberate status, never INTERNAL or UNKNOWN, and stay healthy afterwards."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.api.operatorservice.v1 import service_pb2 as operator_pb2
from temporalio.api.workflowservice.v1 import service_pb2 as workflow_pb2

from odin.api.grpc.server import _OPERATOR_RPCS, _RPCS
from odin.config import Settings, sqlite_url_for_path
from odin.server import OdinServer

# Calls that wait (long polls, queries, updates) get few examples: each may take the deadline.
WAITING = {
    "PollWorkflowTaskQueue", "PollActivityTaskQueue", "GetWorkflowExecutionHistory", "QueryWorkflow",
    "UpdateWorkflowExecution", "PollWorkflowExecutionUpdate", "ExecuteMultiOperation",
}
# Calls that would change the shared namespace for the calls after them.
SKIPPED = {"DeleteNamespace", "UpdateNamespace"}

TEXT = st.one_of(
    st.sampled_from(["", "default", "wf-1", "x" * 1001, "a\x00b", "ü", "../..", "'; DROP TABLE x;--"]),
    st.text(max_size=20),
)
INTS = st.one_of(st.sampled_from([0, 1, -1, 2**31 - 1, -(2**31)]), st.integers(-1000, 10**6))


def _value(draw, field: FieldDescriptor, depth: int):
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return draw(TEXT)
    if t == FieldDescriptor.TYPE_BYTES:
        return draw(st.binary(max_size=40))
    if t == FieldDescriptor.TYPE_BOOL:
        return draw(st.booleans())
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return draw(st.floats(allow_nan=True, allow_infinity=True, width=32))
    if t == FieldDescriptor.TYPE_ENUM:
        return draw(st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), st.integers(-5, 100)))
    if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return draw(st.one_of(INTS, st.sampled_from([2**63 - 1, -(2**63)])))
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return draw(st.integers(0, 2**64 - 1))
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return draw(st.integers(0, 2**32 - 1))
    return draw(INTS)  # int32 kinds


def _fill(draw, message, depth: int) -> None:
    fields = list(message.DESCRIPTOR.fields)
    chosen = draw(st.lists(st.sampled_from(fields), max_size=min(len(fields), 6), unique_by=lambda f: f.name)) if fields else []
    for field in chosen:
        if field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                key_field, value_field = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
                if value_field.message_type is None:
                    getattr(message, field.name)[_value(draw, key_field, depth)] = _value(draw, value_field, depth)
                elif depth < 3:
                    _fill(draw, getattr(message, field.name)[_value(draw, key_field, depth)], depth + 1)
                continue
            if depth >= 3:
                continue
            if field.is_repeated:
                for _ in range(draw(st.integers(0, 2))):
                    _fill(draw, getattr(message, field.name).add(), depth + 1)
            else:
                _fill(draw, getattr(message, field.name), depth + 1)
                getattr(message, field.name).SetInParent()
        elif field.is_repeated:
            getattr(message, field.name).extend(_value(draw, field, depth) for _ in range(draw(st.integers(0, 2))))
        else:
            try:
                setattr(message, field.name, _value(draw, field, depth))
            except ValueError:  # e.g. a string proto3 refuses (invalid UTF-8 cannot be drawn, but be safe)
                pass


def _calls() -> list[tuple[str, str, object]]:
    calls = []
    for module, service, names in (
        (workflow_pb2, "WorkflowService", _RPCS),
        (operator_pb2, "OperatorService", _OPERATOR_RPCS),
    ):
        descriptor = module.DESCRIPTOR.services_by_name[service]
        for name in sorted(set(names) - SKIPPED):
            method = descriptor.methods_by_name[name]
            calls.append((name, f"/{descriptor.full_name}/{name}", method))
    return calls


CALLS = _calls()


@pytest.fixture(scope="module")
def server_port(tmp_path_factory):
    import asyncio
    import threading

    loop = asyncio.new_event_loop()
    server = OdinServer(Settings(database_url=sqlite_url_for_path(str(tmp_path_factory.mktemp("fuzz") / "odin.db")), grpc_port=0))
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield server.endpoints.grpc_port
    asyncio.run_coroutine_threadsafe(server.stop(grace=0.5), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.mark.parametrize("name, path, method", CALLS, ids=[c[0] for c in CALLS])
def test_no_generated_request_gets_an_internal_error(server_port, name, path, method):
    request_type = message_factory.GetMessageClass(method.input_type)
    response_type = message_factory.GetMessageClass(method.output_type)
    channel = grpc.insecure_channel(f"127.0.0.1:{server_port}")
    call = channel.unary_unary(path, request_serializer=request_type.SerializeToString, response_deserializer=response_type.FromString)
    seen: list[grpc.StatusCode] = []

    @given(data=st.data())
    @settings(
        max_examples=4 if name in WAITING else 60, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(data):
        request = request_type()
        _fill(data.draw, request, 0)
        if "namespace" in request_type.DESCRIPTOR.fields_by_name and data.draw(st.booleans()):
            request.namespace = "default"  # mostly a namespace that exists, to get past its lookup
        try:
            call(request, timeout=1.5)
            code = grpc.StatusCode.OK
        except grpc.RpcError as err:
            code = err.code()
            assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (name, request, err.details())
        seen.append(code)

    try:
        check()
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        channel.close()
    assert seen


def test_an_invalid_timestamp_in_a_list_filter_is_invalid_argument(server_port):
    # What the fuzzing found first: an out-of-range Timestamp made ListClosedWorkflowExecutions fail INTERNAL.
    from temporalio.api.filter.v1 import StartTimeFilter
    from temporalio.api.workflowservice.v1 import ListClosedWorkflowExecutionsRequest
    from temporalio.api.workflowservice.v1.service_pb2_grpc import WorkflowServiceStub

    with grpc.insecure_channel(f"127.0.0.1:{server_port}") as channel:
        request = ListClosedWorkflowExecutionsRequest(namespace="default", start_time_filter=StartTimeFilter())
        request.start_time_filter.earliest_time.nanos = -1
        with pytest.raises(grpc.RpcError) as info:
            WorkflowServiceStub(channel).ListClosedWorkflowExecutions(request, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Invalid EarliestTime" in info.value.details()
