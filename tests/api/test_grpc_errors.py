"""gRPC error contract of the WorkflowService door (protocol guide §1.7), driven with raw gRPC.

Every case sends a request the server must refuse and checks three things: the status code,
a message that says what was wrong, and that nothing changed (no run was created, no task was
queued, or the history of an existing run is exactly what it was before the bad request).
"""

from __future__ import annotations

import logging
import random
import time
import uuid

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from temporalio.api.command.v1 import (
    Command,
    CompleteWorkflowExecutionCommandAttributes,
    ScheduleActivityTaskCommandAttributes,
    StartTimerCommandAttributes,
)
from temporalio.api.common.v1 import (
    ActivityType,
    Payload,
    Payloads,
    RetryPolicy,
    WorkflowExecution,
    WorkflowType,
)
from temporalio.api.enums.v1 import (
    CommandType,
    EventType,
    NamespaceState,
    TaskQueueKind,
    WorkflowTaskFailedCause,
)
from temporalio.api.enums.v1 import WorkflowExecutionStatus as Status
from temporalio.api.errordetails.v1 import (
    NamespaceNotFoundFailure,
    WorkflowExecutionAlreadyStartedFailure,
)
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DeprecateNamespaceRequest,
    DescribeNamespaceRequest,
    DescribeWorkflowExecutionRequest,
    GetSystemInfoRequest,
    GetWorkflowExecutionHistoryRequest,
    ListNamespacesRequest,
    PollActivityTaskQueueRequest,
    PollNexusTaskQueueRequest,
    PollWorkflowTaskQueueRequest,
    PollWorkflowTaskQueueResponse,
    RecordActivityTaskHeartbeatRequest,
    RegisterNamespaceRequest,
    RequestCancelWorkflowExecutionRequest,
    RespondActivityTaskCompletedRequest,
    RespondWorkflowTaskCompletedRequest,
    RespondWorkflowTaskFailedRequest,
    SignalWorkflowExecutionRequest,
    StartWorkflowExecutionRequest,
    TerminateWorkflowExecutionRequest,
)
from temporalio.api.workflowservice.v1.service_pb2_grpc import WorkflowServiceStub

from odin.history import tokens

NS = "default"
SERVICE = "temporal.api.workflowservice.v1.WorkflowService"
IDENTITY = "errors-test@host"
POLL_TIMEOUT = 5  # the server answers an empty poll about 1 s before this deadline
EMPTY_POLL_TIMEOUT = 2  # for polls that are expected to find nothing (answered after ~1 s)


# -- helpers ------------------------------------------------------------------------------


@pytest.fixture
async def health_stub(odin_server):
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{odin_server.endpoints.grpc_port}")
    try:
        yield health_pb2_grpc.HealthStub(channel)
    finally:
        await channel.close()


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def expect_error(call, code: grpc.StatusCode, *fragments: str) -> grpc.aio.AioRpcError:
    """Await ``call``; it must fail with ``code`` and a message naming every fragment."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    err = info.value
    assert err.code() == code, f"expected {code.name}, got {err.code().name}: {err.details()!r}"
    message = err.details() or ""
    assert message.strip(), f"{code.name} without a message"
    for fragment in fragments:
        assert fragment.lower() in message.lower(), f"{fragment!r} not in message {message!r}"
    return err


def status_details(err: grpc.aio.AioRpcError) -> list:
    """The ``google.rpc.Status.details`` (``Any`` list) carried in the trailers, if any."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            assert status.code == err.code().value[0]
            return list(status.details)
    return []


def start_request(workflow_id: str, task_queue: str, **fields) -> StartWorkflowExecutionRequest:
    req = StartWorkflowExecutionRequest(
        namespace=NS,
        workflow_id=workflow_id,
        workflow_type=WorkflowType(name="ErrorsWorkflow"),
        task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        identity=IDENTITY,
        request_id=str(uuid.uuid4()),
    )
    for name, value in fields.items():
        field = getattr(req, name)
        if hasattr(field, "CopyFrom"):
            field.CopyFrom(value)
        else:
            setattr(req, name, value)
    return req


async def start(stub: WorkflowServiceStub, workflow_id: str, task_queue: str, **fields) -> str:
    response = await stub.StartWorkflowExecution(start_request(workflow_id, task_queue, **fields), timeout=10)
    assert response.run_id and response.started
    return response.run_id


async def history(stub: WorkflowServiceStub, workflow_id: str, run_id: str = "") -> list:
    response = await stub.GetWorkflowExecutionHistory(
        GetWorkflowExecutionHistoryRequest(
            namespace=NS, execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id), maximum_page_size=1000
        ),
        timeout=10,
    )
    assert not response.next_page_token
    return list(response.history.events)


def types(events) -> list[str]:
    return [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events]


async def describe(stub: WorkflowServiceStub, workflow_id: str, run_id: str = ""):
    return await stub.DescribeWorkflowExecution(
        DescribeWorkflowExecutionRequest(namespace=NS, execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id)),
        timeout=10,
    )


async def assert_no_workflow(stub: WorkflowServiceStub, workflow_id: str) -> None:
    """No run exists for ``workflow_id`` in the default namespace."""
    await expect_error(describe(stub, workflow_id), grpc.StatusCode.NOT_FOUND, workflow_id)
    await expect_error(history(stub, workflow_id), grpc.StatusCode.NOT_FOUND, workflow_id)


async def poll_wft(stub: WorkflowServiceStub, task_queue: str, timeout: float = POLL_TIMEOUT) -> PollWorkflowTaskQueueResponse:
    return await stub.PollWorkflowTaskQueue(
        PollWorkflowTaskQueueRequest(
            namespace=NS,
            task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            identity=IDENTITY,
        ),
        timeout=timeout,
    )


async def assert_queue_empty(stub: WorkflowServiceStub, task_queue: str) -> None:
    """No workflow task was queued on ``task_queue`` (a poll comes back empty). A queued task is
    handed out at once, so a poll that outlives its deadline on a loaded machine found none too."""
    try:
        response = await poll_wft(stub, task_queue, timeout=EMPTY_POLL_TIMEOUT)
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err
        return
    assert not response.task_token, f"unexpected workflow task for {response.workflow_execution}"


async def started_workflow_task(stub: WorkflowServiceStub, task_queue: str) -> tuple[str, str, PollWorkflowTaskQueueResponse]:
    """Start a run and take its first workflow task; returns (workflow id, run id, poll response)."""
    workflow_id = uid("wf")
    run_id = await start(stub, workflow_id, task_queue)
    task = await poll_wft(stub, task_queue)
    assert task.task_token, "the first workflow task was not delivered"
    assert task.workflow_execution.run_id == run_id
    assert task.started_event_id == 3
    return workflow_id, run_id, task


def complete_command(text: str = "done") -> Command:
    return Command(
        command_type=CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
        complete_workflow_execution_command_attributes=CompleteWorkflowExecutionCommandAttributes(
            result=Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())])
        ),
    )


def complete_request(token: bytes, *commands: Command) -> RespondWorkflowTaskCompletedRequest:
    return RespondWorkflowTaskCompletedRequest(
        namespace=NS, task_token=token, identity=IDENTITY, commands=list(commands)
    )


async def completed_workflow(stub: WorkflowServiceStub, task_queue: str) -> tuple[str, str, bytes, list]:
    """A run closed by a CompleteWorkflowExecution command; returns (wid, rid, used token, history)."""
    workflow_id, run_id, task = await started_workflow_task(stub, task_queue)
    await stub.RespondWorkflowTaskCompleted(complete_request(task.task_token, complete_command()), timeout=10)
    events = await history(stub, workflow_id, run_id)
    assert types(events) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_COMPLETED",
    ]
    return workflow_id, run_id, task.task_token, events


# -- namespaces ---------------------------------------------------------------------------


async def test_start_in_unknown_namespace_is_not_found(stub, task_queue):
    missing = uid("no-such-ns")
    workflow_id = uid("wf")
    req = start_request(workflow_id, task_queue)
    req.namespace = missing
    err = await expect_error(stub.StartWorkflowExecution(req, timeout=10), grpc.StatusCode.NOT_FOUND, missing)
    details = status_details(err)
    if details:
        assert details[0].Is(NamespaceNotFoundFailure.DESCRIPTOR)
    # Nothing was created: not in the default namespace either, and no task is waiting.
    await assert_no_workflow(stub, workflow_id)
    await assert_queue_empty(stub, task_queue)


async def test_describe_unknown_namespace_is_not_found(stub):
    missing = uid("no-such-ns")
    err = await expect_error(
        stub.DescribeNamespace(DescribeNamespaceRequest(namespace=missing), timeout=10), grpc.StatusCode.NOT_FOUND, missing
    )
    details = status_details(err)
    if details:
        failure = NamespaceNotFoundFailure()
        assert details[0].Unpack(failure), f"first detail is {details[0].type_url}"
        assert failure.namespace == missing
    # Asking did not create it.
    listed = await stub.ListNamespaces(ListNamespacesRequest(page_size=1000), timeout=10)
    assert missing not in [n.namespace_info.name for n in listed.namespaces]


async def test_describe_namespace_without_a_name_is_invalid(stub):
    await expect_error(
        stub.DescribeNamespace(DescribeNamespaceRequest(), timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "namespace"
    )


async def test_poll_unknown_namespace_is_not_found_at_once(stub, task_queue):
    missing = uid("no-such-ns")
    began = time.monotonic()
    await expect_error(
        stub.PollWorkflowTaskQueue(
            PollWorkflowTaskQueueRequest(namespace=missing, task_queue=TaskQueue(name=task_queue), identity=IDENTITY),
            timeout=POLL_TIMEOUT,
        ),
        grpc.StatusCode.NOT_FOUND,
        missing,
    )
    await expect_error(
        stub.PollActivityTaskQueue(
            PollActivityTaskQueueRequest(namespace=missing, task_queue=TaskQueue(name=task_queue), identity=IDENTITY),
            timeout=POLL_TIMEOUT,
        ),
        grpc.StatusCode.NOT_FOUND,
        missing,
    )
    # Refused up front, not after waiting out the long poll.
    assert time.monotonic() - began < POLL_TIMEOUT - 1


async def test_register_namespace_then_describe_list_and_reject_duplicate(stub, task_queue):
    name = uid("ns")
    await expect_error(stub.DescribeNamespace(DescribeNamespaceRequest(namespace=name), timeout=10), grpc.StatusCode.NOT_FOUND)

    await stub.RegisterNamespace(
        RegisterNamespaceRequest(
            namespace=name,
            description="error tests",
            owner_email="owner@example.com",
            workflow_execution_retention_period=Duration(seconds=3 * 24 * 3600),
        ),
        timeout=10,
    )
    described = await stub.DescribeNamespace(DescribeNamespaceRequest(namespace=name), timeout=10)
    info = described.namespace_info
    assert info.name == name
    assert info.id
    assert info.state == NamespaceState.NAMESPACE_STATE_REGISTERED
    assert info.description == "error tests"
    assert info.owner_email == "owner@example.com"
    assert described.config.workflow_execution_retention_ttl.seconds == 3 * 24 * 3600

    by_id = await stub.DescribeNamespace(DescribeNamespaceRequest(id=info.id), timeout=10)
    assert by_id.namespace_info.name == name

    listed_names: list[str] = []
    token = b""
    while True:
        page = await stub.ListNamespaces(ListNamespacesRequest(page_size=1, next_page_token=token), timeout=10)
        listed_names += [n.namespace_info.name for n in page.namespaces]
        token = page.next_page_token
        if not token:
            break
    assert name in listed_names and NS in listed_names
    assert len(listed_names) == len(set(listed_names))

    # Registering it again is refused and changes nothing.
    await expect_error(
        stub.RegisterNamespace(RegisterNamespaceRequest(namespace=name, description="second"), timeout=10),
        grpc.StatusCode.ALREADY_EXISTS,
        name,
    )
    again = await stub.DescribeNamespace(DescribeNamespaceRequest(namespace=name), timeout=10)
    assert again.namespace_info.id == info.id
    assert again.namespace_info.description == "error tests"

    # The new namespace is usable and separate from the default one.
    workflow_id = uid("wf")
    req = start_request(workflow_id, task_queue)
    req.namespace = name
    await stub.StartWorkflowExecution(req, timeout=10)
    await assert_no_workflow(stub, workflow_id)


async def test_register_namespace_without_a_name_is_invalid(stub):
    before = await stub.ListNamespaces(ListNamespacesRequest(page_size=1000), timeout=10)
    await expect_error(
        stub.RegisterNamespace(RegisterNamespaceRequest(namespace=""), timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "namespace"
    )
    after = await stub.ListNamespaces(ListNamespacesRequest(page_size=1000), timeout=10)
    assert len(after.namespaces) == len(before.namespaces)


async def test_register_namespace_with_a_long_name_never_fails_internally(stub):
    # 1001 characters: over the id limit.
    await expect_error(
        stub.RegisterNamespace(RegisterNamespaceRequest(namespace="n" * 1001), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
        "namespace",
    )
    # 300 characters: within Temporal's 1000-character limit. Accepting it or refusing it with
    # INVALID_ARGUMENT are both fine; an INTERNAL error (retried by every SDK) is not.
    name = uid("n" * 280)
    try:
        await stub.RegisterNamespace(RegisterNamespaceRequest(namespace=name), timeout=10)
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{err.code().name}: {err.details()}"
        await expect_error(stub.DescribeNamespace(DescribeNamespaceRequest(namespace=name), timeout=10), grpc.StatusCode.NOT_FOUND)
    else:
        described = await stub.DescribeNamespace(DescribeNamespaceRequest(namespace=name), timeout=10)
        assert described.namespace_info.name == name


async def test_list_namespaces_with_a_garbage_page_token_is_invalid(stub):
    # A malformed token is the client's fault: INVALID_ARGUMENT, not a (retryable) INTERNAL.
    await expect_error(
        stub.ListNamespaces(ListNamespacesRequest(page_size=10, next_page_token=b"\xffnot-a-token"), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
        "token",
    )


# -- StartWorkflowExecution validation ----------------------------------------------------

LONG = "x" * 1001


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("workflow_id", "", "WorkflowId"),
        ("workflow_id", LONG, "WorkflowId"),
        ("workflow_id", "é" * 501, "WorkflowId"),  # 501 characters, 1002 bytes: Temporal counts bytes
        ("workflow_type", "", "WorkflowType"),
        ("workflow_type", LONG, "WorkflowType"),
        ("task_queue", "", "TaskQueue"),
        ("task_queue", LONG, "TaskQueue"),
        ("workflow_id", "nul\x00id", "NUL"),
        ("workflow_type", "Nul\x00Type", "NUL"),
        ("task_queue", "nul\x00queue", "NUL"),
        ("request_id", "nul\x00request", "NUL"),
    ],
    ids=["empty-workflow-id", "long-workflow-id", "long-in-bytes-workflow-id", "empty-type", "long-type", "empty-queue", "long-queue",
         "nul-workflow-id", "nul-type", "nul-queue", "nul-request-id"],
)
async def test_start_rejects_bad_ids(stub, task_queue, field, value, fragment):
    workflow_id = uid("wf")
    req = start_request(workflow_id, task_queue)
    if field == "workflow_id":
        req.workflow_id = value
    elif field == "workflow_type":
        req.workflow_type.name = value
    elif field == "request_id":
        req.request_id = value
    else:
        req.task_queue.name = value
    await expect_error(stub.StartWorkflowExecution(req, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, fragment)
    if field != "workflow_id":
        await assert_no_workflow(stub, workflow_id)
    if field != "task_queue":
        await assert_queue_empty(stub, task_queue)


async def test_start_accepts_a_workflow_id_of_exactly_the_limit(stub, task_queue):
    workflow_id = "w" * 1000
    run_id = await start(stub, workflow_id, task_queue)
    assert (await describe(stub, workflow_id)).workflow_execution_info.execution.run_id == run_id


async def test_start_accepts_a_request_id_of_exactly_the_limit(stub, task_queue):
    # The server itself allows request ids up to 1000 characters (like Temporal), so such a start
    # must work on every store, and retrying it with the same request id must be idempotent.
    workflow_id = uid("wf")
    req = start_request(workflow_id, task_queue, request_id="r" * 1000)
    first = await stub.StartWorkflowExecution(req, timeout=10)
    again = await stub.StartWorkflowExecution(req, timeout=10)
    assert again.run_id == first.run_id
    assert (await describe(stub, workflow_id)).workflow_execution_info.execution.run_id == first.run_id


async def test_start_rejects_too_long_request_id(stub, task_queue):
    workflow_id = uid("wf")
    await expect_error(
        stub.StartWorkflowExecution(start_request(workflow_id, task_queue, request_id="r" * 1001), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
        "RequestId",
    )
    await assert_no_workflow(stub, workflow_id)


@pytest.mark.parametrize(
    "field, fragment",
    [
        ("workflow_execution_timeout", "WorkflowExecutionTimeout"),
        ("workflow_run_timeout", "WorkflowRunTimeout"),
        ("workflow_task_timeout", "WorkflowTaskTimeout"),
        ("workflow_start_delay", "WorkflowStartDelay"),
    ],
)
async def test_start_rejects_negative_timeouts(stub, task_queue, field, fragment):
    workflow_id = uid("wf")
    req = start_request(workflow_id, task_queue, **{field: Duration(seconds=-5)})
    await expect_error(stub.StartWorkflowExecution(req, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, fragment, "negative")
    await assert_no_workflow(stub, workflow_id)
    await assert_queue_empty(stub, task_queue)


@pytest.mark.parametrize(
    "policy, fragment",
    [
        (RetryPolicy(backoff_coefficient=0.5), "BackoffCoefficient"),
        (RetryPolicy(maximum_attempts=-1), "MaximumAttempts"),
        (RetryPolicy(initial_interval=Duration(seconds=-1)), "InitialInterval"),
        (RetryPolicy(initial_interval=Duration(seconds=10), maximum_interval=Duration(seconds=5)), "MaximumInterval"),
    ],
    ids=["backoff-0.5", "negative-attempts", "negative-initial", "max-below-initial"],
)
async def test_start_rejects_invalid_retry_policy(stub, task_queue, policy, fragment):
    workflow_id = uid("wf")
    req = start_request(workflow_id, task_queue, retry_policy=policy)
    await expect_error(stub.StartWorkflowExecution(req, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, fragment)
    await assert_no_workflow(stub, workflow_id)
    await assert_queue_empty(stub, task_queue)


# -- duplicate starts ---------------------------------------------------------------------


async def test_duplicate_start_with_another_request_id_is_already_exists(stub, task_queue):
    workflow_id = uid("wf")
    first = start_request(workflow_id, task_queue)
    run_id = (await stub.StartWorkflowExecution(first, timeout=10)).run_id
    before = await history(stub, workflow_id)

    second = start_request(workflow_id, task_queue)
    assert second.request_id != first.request_id
    err = await expect_error(stub.StartWorkflowExecution(second, timeout=10), grpc.StatusCode.ALREADY_EXISTS, workflow_id)
    details = status_details(err)
    assert details, "ALREADY_EXISTS must carry WorkflowExecutionAlreadyStartedFailure"
    failure = WorkflowExecutionAlreadyStartedFailure()
    assert details[0].Unpack(failure), f"first detail is {details[0].type_url}"
    assert failure.run_id == run_id
    assert failure.start_request_id == first.request_id

    # Still the one run, untouched.
    info = (await describe(stub, workflow_id)).workflow_execution_info
    assert info.execution.run_id == run_id
    assert info.status == Status.WORKFLOW_EXECUTION_STATUS_RUNNING
    assert await history(stub, workflow_id) == before
    assert types(before) == ["WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED"]


async def test_duplicate_start_with_the_same_request_id_is_idempotent(stub, task_queue):
    workflow_id = uid("wf")
    req = start_request(workflow_id, task_queue)
    first = await stub.StartWorkflowExecution(req, timeout=10)
    again = await stub.StartWorkflowExecution(req, timeout=10)
    assert again.run_id == first.run_id
    assert again.started

    info = (await describe(stub, workflow_id)).workflow_execution_info
    assert info.execution.run_id == first.run_id
    assert info.first_run_id == first.run_id
    assert types(await history(stub, workflow_id)) == ["WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED"]
    # Exactly one workflow task was queued: the retried start did not create another run.
    task = await poll_wft(stub, task_queue)
    assert task.workflow_execution.run_id == first.run_id
    await assert_queue_empty(stub, task_queue)


# -- task tokens --------------------------------------------------------------------------

_rng = random.Random(1234)
MALFORMED_TOKENS = [
    pytest.param(b"", id="empty"),
    pytest.param(bytes([0x7F]) + _rng.randbytes(40), id="random"),
    pytest.param(b"\x01" + _rng.randbytes(40), id="random-after-version"),
    pytest.param(b"\x01not json", id="not-json"),
    pytest.param(b'\x01{"k":"zz"}', id="unknown-kind"),
    pytest.param(b'\x01{"k":"w"}', id="missing-fields"),
    pytest.param(b"\x01null", id="json-null"),
    pytest.param(b"\x01[1,2]", id="json-list"),
    pytest.param(b"\x0142", id="json-number"),
]


async def _send_with_token(stub: WorkflowServiceStub, rpc: str, token: bytes):
    if rpc == "RespondWorkflowTaskCompleted":
        return await stub.RespondWorkflowTaskCompleted(complete_request(token, complete_command()), timeout=10)
    if rpc == "RespondWorkflowTaskFailed":
        return await stub.RespondWorkflowTaskFailed(
            RespondWorkflowTaskFailedRequest(namespace=NS, task_token=token, identity=IDENTITY), timeout=10
        )
    if rpc == "RespondActivityTaskCompleted":
        return await stub.RespondActivityTaskCompleted(
            RespondActivityTaskCompletedRequest(namespace=NS, task_token=token, identity=IDENTITY), timeout=10
        )
    if rpc == "RecordActivityTaskHeartbeat":
        return await stub.RecordActivityTaskHeartbeat(
            RecordActivityTaskHeartbeatRequest(namespace=NS, task_token=token, identity=IDENTITY), timeout=10
        )
    raise AssertionError(rpc)


TOKEN_RPCS = ["RespondWorkflowTaskCompleted", "RespondActivityTaskCompleted", "RecordActivityTaskHeartbeat"]


@pytest.mark.parametrize("rpc", TOKEN_RPCS)
@pytest.mark.parametrize("token", MALFORMED_TOKENS)
async def test_malformed_task_token_is_invalid_argument(stub, task_queue, rpc, token):
    # A run with a started workflow task: a bad token must not touch it.
    workflow_id, run_id, task = await started_workflow_task(stub, task_queue)
    before = await history(stub, workflow_id, run_id)

    await expect_error(_send_with_token(stub, rpc, token), grpc.StatusCode.INVALID_ARGUMENT, "token")

    assert await history(stub, workflow_id, run_id) == before
    # The real token still completes the task.
    await stub.RespondWorkflowTaskCompleted(complete_request(task.task_token, complete_command()), timeout=10)
    assert types(await history(stub, workflow_id, run_id))[-1] == "WORKFLOW_EXECUTION_COMPLETED"


async def test_token_of_the_wrong_kind_is_invalid_argument(stub, task_queue):
    workflow_id, run_id, task = await started_workflow_task(stub, task_queue)
    before = await history(stub, workflow_id, run_id)
    activity_token = tokens.encode(
        tokens.ActivityTaskToken(
            namespace_id="ns", workflow_id=workflow_id, run_id=run_id, scheduled_event_id=2, activity_id="1", attempt=1
        )
    )
    # An activity token for a workflow task completion, and a workflow token for activity calls.
    await expect_error(_send_with_token(stub, "RespondWorkflowTaskCompleted", activity_token), grpc.StatusCode.INVALID_ARGUMENT, "token")
    await expect_error(_send_with_token(stub, "RespondWorkflowTaskFailed", activity_token), grpc.StatusCode.INVALID_ARGUMENT, "token")
    for rpc in ("RespondActivityTaskCompleted", "RecordActivityTaskHeartbeat"):
        await expect_error(_send_with_token(stub, rpc, task.task_token), grpc.StatusCode.INVALID_ARGUMENT, "token")
    assert await history(stub, workflow_id, run_id) == before


async def test_token_of_a_finished_workflow_task_is_not_found(stub, task_queue):
    workflow_id, run_id, token, before = await completed_workflow(stub, task_queue)

    await expect_error(
        stub.RespondWorkflowTaskCompleted(complete_request(token, complete_command("again")), timeout=10),
        grpc.StatusCode.NOT_FOUND,
    )
    timer = Command(
        command_type=CommandType.COMMAND_TYPE_START_TIMER,
        start_timer_command_attributes=StartTimerCommandAttributes(timer_id="t", start_to_fire_timeout=Duration(seconds=1)),
    )
    await expect_error(stub.RespondWorkflowTaskCompleted(complete_request(token, timer), timeout=10), grpc.StatusCode.NOT_FOUND)
    await expect_error(_send_with_token(stub, "RespondWorkflowTaskFailed", token), grpc.StatusCode.NOT_FOUND)

    assert await history(stub, workflow_id, run_id) == before
    info = (await describe(stub, workflow_id)).workflow_execution_info
    assert info.status == Status.WORKFLOW_EXECUTION_STATUS_COMPLETED
    assert info.history_length == len(before)


async def test_token_of_a_completed_task_of_a_running_workflow_is_not_found(stub, task_queue):
    workflow_id, run_id, task = await started_workflow_task(stub, task_queue)
    await stub.RespondWorkflowTaskCompleted(complete_request(task.task_token), timeout=10)  # no commands
    before = await history(stub, workflow_id, run_id)
    assert types(before)[-1] == "WORKFLOW_TASK_COMPLETED"

    await expect_error(
        stub.RespondWorkflowTaskCompleted(complete_request(task.task_token, complete_command()), timeout=10),
        grpc.StatusCode.NOT_FOUND,
    )
    assert await history(stub, workflow_id, run_id) == before
    assert (await describe(stub, workflow_id)).workflow_execution_info.status == Status.WORKFLOW_EXECUTION_STATUS_RUNNING


async def test_well_formed_token_for_an_unknown_run_is_not_found(stub, task_queue):
    workflow_id, run_id, _ = await started_workflow_task(stub, task_queue)
    before = await history(stub, workflow_id, run_id)
    ns_id = (await stub.DescribeNamespace(DescribeNamespaceRequest(namespace=NS), timeout=10)).namespace_info.id
    ghost = str(uuid.uuid4())
    wft = tokens.encode(tokens.WorkflowTaskToken(ns_id, workflow_id, ghost, 2, 3, 1))
    act = tokens.encode(tokens.ActivityTaskToken(ns_id, workflow_id, ghost, 5, "1", 1))
    await expect_error(_send_with_token(stub, "RespondWorkflowTaskCompleted", wft), grpc.StatusCode.NOT_FOUND)
    await expect_error(_send_with_token(stub, "RespondActivityTaskCompleted", act), grpc.StatusCode.NOT_FOUND)
    await expect_error(_send_with_token(stub, "RecordActivityTaskHeartbeat", act), grpc.StatusCode.NOT_FOUND)
    # A token for the real run but an activity that does not exist.
    real_act = tokens.encode(tokens.ActivityTaskToken(ns_id, workflow_id, run_id, 5, "1", 1))
    await expect_error(_send_with_token(stub, "RecordActivityTaskHeartbeat", real_act), grpc.StatusCode.NOT_FOUND)
    assert await history(stub, workflow_id, run_id) == before


# -- invalid commands ---------------------------------------------------------------------

BAD_ACTIVITY_COMMANDS = [
    pytest.param(
        Command(
            command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
            start_timer_command_attributes=StartTimerCommandAttributes(
                timer_id="t1", start_to_fire_timeout=Duration(seconds=1)
            ),
        ),
        id="timer-attributes",
    ),
    pytest.param(Command(command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK), id="no-attributes"),
]


@pytest.mark.parametrize("bad", BAD_ACTIVITY_COMMANDS)
@pytest.mark.parametrize("with_valid_timer_first", [False, True], ids=["alone", "after-valid-timer"])
async def test_command_with_mismatched_attributes_fails_the_workflow_task(stub, task_queue, bad, with_valid_timer_first):
    workflow_id, run_id, task = await started_workflow_task(stub, task_queue)
    commands = [bad]
    if with_valid_timer_first:
        # The valid command before the bad one must be rolled back with it.
        commands.insert(
            0,
            Command(
                command_type=CommandType.COMMAND_TYPE_START_TIMER,
                start_timer_command_attributes=StartTimerCommandAttributes(
                    timer_id="ok", start_to_fire_timeout=Duration(seconds=1)
                ),
            ),
        )

    await expect_error(
        stub.RespondWorkflowTaskCompleted(complete_request(task.task_token, *commands), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
        "SCHEDULE_ACTIVITY_TASK",
    )

    events = await history(stub, workflow_id, run_id)
    # The retry (attempt 2) is transient, as in Temporal: not stored until it completes.
    assert types(events) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_FAILED",
    ]
    assert [e.event_id for e in events] == [1, 2, 3, 4]
    failed = events[3].workflow_task_failed_event_attributes
    assert failed.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES
    assert failed.scheduled_event_id == 2 and failed.started_event_id == 3
    assert failed.failure.message

    # The failed completion's token is spent; the new task can be polled and carries attempt 2.
    await expect_error(
        stub.RespondWorkflowTaskCompleted(complete_request(task.task_token, complete_command()), timeout=10),
        grpc.StatusCode.NOT_FOUND,
    )
    retry = await poll_wft(stub, task_queue)
    assert retry.task_token and retry.workflow_execution.run_id == run_id
    assert retry.attempt == 2
    assert retry.started_event_id == 6
    # The poll shows the transient attempt's Scheduled/Started after the stored events.
    assert types(retry.history.events) == types(events) + ["WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED"]
    assert [e.event_id for e in retry.history.events] == [1, 2, 3, 4, 5, 6]
    assert retry.history.events[4].workflow_task_scheduled_event_attributes.attempt == 2
    # The rolled-back timer never fires (it would have after 1 s) and nothing else was queued.
    await assert_queue_empty(stub, task_queue)
    # A worker refetching history (GetWorkflowExecutionHistory) sees the transient events too.
    assert types(await history(stub, workflow_id, run_id)) == types(retry.history.events)
    assert not (await describe(stub, workflow_id)).pending_activities


async def test_valid_schedule_activity_is_accepted(stub, task_queue):
    """Control for the test above: the same command with its proper attributes works."""
    workflow_id, run_id, task = await started_workflow_task(stub, task_queue)
    command = Command(
        command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
        schedule_activity_task_command_attributes=ScheduleActivityTaskCommandAttributes(
            activity_id="1",
            activity_type=ActivityType(name="act"),
            task_queue=TaskQueue(name=task_queue),
            start_to_close_timeout=Duration(seconds=30),
        ),
    )
    await stub.RespondWorkflowTaskCompleted(complete_request(task.task_token, command), timeout=10)
    assert types(await history(stub, workflow_id, run_id))[-2:] == ["WORKFLOW_TASK_COMPLETED", "ACTIVITY_TASK_SCHEDULED"]


# -- signal / terminate -------------------------------------------------------------------


def signal_request(workflow_id: str, run_id: str = "", name: str = "sig") -> SignalWorkflowExecutionRequest:
    return SignalWorkflowExecutionRequest(
        namespace=NS,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        signal_name=name,
        identity=IDENTITY,
        request_id=str(uuid.uuid4()),
    )


def terminate_request(workflow_id: str, run_id: str = "") -> TerminateWorkflowExecutionRequest:
    return TerminateWorkflowExecutionRequest(
        namespace=NS,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        reason="test",
        identity=IDENTITY,
    )


async def test_signal_and_terminate_a_completed_workflow_is_not_found(stub, task_queue):
    workflow_id, run_id, _, before = await completed_workflow(stub, task_queue)
    for rid in ("", run_id):
        await expect_error(stub.SignalWorkflowExecution(signal_request(workflow_id, rid), timeout=10), grpc.StatusCode.NOT_FOUND)
        await expect_error(
            stub.TerminateWorkflowExecution(terminate_request(workflow_id, rid), timeout=10), grpc.StatusCode.NOT_FOUND
        )
    # Cancel of a closed run is a no-op success (§3.5).
    await stub.RequestCancelWorkflowExecution(
        RequestCancelWorkflowExecutionRequest(
            namespace=NS, workflow_execution=WorkflowExecution(workflow_id=workflow_id), identity=IDENTITY
        ),
        timeout=10,
    )
    assert await history(stub, workflow_id, run_id) == before
    assert (await describe(stub, workflow_id)).workflow_execution_info.status == Status.WORKFLOW_EXECUTION_STATUS_COMPLETED


async def test_signal_and_terminate_an_unknown_workflow_is_not_found(stub):
    workflow_id = uid("never-started")
    await expect_error(
        stub.SignalWorkflowExecution(signal_request(workflow_id), timeout=10), grpc.StatusCode.NOT_FOUND, workflow_id
    )
    await expect_error(
        stub.TerminateWorkflowExecution(terminate_request(workflow_id), timeout=10), grpc.StatusCode.NOT_FOUND, workflow_id
    )
    await assert_no_workflow(stub, workflow_id)


async def test_signal_an_unknown_run_of_a_known_workflow_is_not_found(stub, task_queue):
    workflow_id = uid("wf")
    run_id = await start(stub, workflow_id, task_queue)
    before = await history(stub, workflow_id, run_id)
    await expect_error(
        stub.SignalWorkflowExecution(signal_request(workflow_id, str(uuid.uuid4())), timeout=10), grpc.StatusCode.NOT_FOUND
    )
    assert await history(stub, workflow_id, run_id) == before


@pytest.mark.parametrize("bad_run_id", ["not-a-uuid", "1234", "x" * 36])
async def test_invalid_run_id_is_invalid_argument(stub, task_queue, bad_run_id):
    workflow_id = uid("wf")
    run_id = await start(stub, workflow_id, task_queue)
    before = await history(stub, workflow_id, run_id)

    await expect_error(
        stub.SignalWorkflowExecution(signal_request(workflow_id, bad_run_id), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
        "RunId",
    )
    await expect_error(
        stub.TerminateWorkflowExecution(terminate_request(workflow_id, bad_run_id), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
        "RunId",
    )
    await expect_error(describe(stub, workflow_id, bad_run_id), grpc.StatusCode.INVALID_ARGUMENT, "RunId")
    await expect_error(history(stub, workflow_id, bad_run_id), grpc.StatusCode.INVALID_ARGUMENT, "RunId")

    assert await history(stub, workflow_id, run_id) == before
    assert (await describe(stub, workflow_id)).workflow_execution_info.status == Status.WORKFLOW_EXECUTION_STATUS_RUNNING


async def test_signal_without_a_name_is_invalid(stub, task_queue):
    workflow_id = uid("wf")
    run_id = await start(stub, workflow_id, task_queue)
    before = await history(stub, workflow_id, run_id)
    await expect_error(
        stub.SignalWorkflowExecution(signal_request(workflow_id, run_id, name=""), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
        "SignalName",
    )
    assert await history(stub, workflow_id, run_id) == before


# -- unimplemented, system info, health ---------------------------------------------------


async def test_unimplemented_rpcs_answer_unimplemented(stub, caplog):
    with caplog.at_level(logging.WARNING):
        await expect_error(
            stub.PollNexusTaskQueue(PollNexusTaskQueueRequest(namespace=NS), timeout=10),
            grpc.StatusCode.UNIMPLEMENTED, "WorkflowService/PollNexusTaskQueue is not implemented",
        )
        await expect_error(
            stub.DeprecateNamespace(DeprecateNamespaceRequest(namespace=NS), timeout=10), grpc.StatusCode.UNIMPLEMENTED
        )
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "an unimplemented call is not a server error"
    # The server is still fine afterwards.
    await stub.DescribeNamespace(DescribeNamespaceRequest(namespace=NS), timeout=10)


async def test_get_system_info(stub):
    info = await stub.GetSystemInfo(GetSystemInfoRequest(), timeout=10)
    assert info.server_version
    assert info.capabilities.sdk_metadata is True
    assert info.capabilities.signal_and_query_header is True


async def test_health_check_reports_serving(health_stub):
    for service in (SERVICE, ""):
        response = await health_stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    # An unknown service is NOT_FOUND (grpcio's stock health servicer sends no message with it).
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await health_stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_lost_database_connection_is_unavailable_so_clients_retry(stub, odin_server, monkeypatch):
    # A connection dropped mid-call is simulated here by making the store raise the error SQLAlchemy
    # raises for it; real dropped connections are exercised in tests/distributed.
    import sqlalchemy.exc

    def lost(*args, **kwargs):
        raise sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))

    monkeypatch.setattr(odin_server.store, "get_current", lost)
    await expect_error(describe(stub, uid("wf")), grpc.StatusCode.UNAVAILABLE, "temporarily unavailable")


async def test_nul_characters_elsewhere_are_invalid_arguments_too(stub, task_queue):
    from temporalio.api.common.v1 import Payload, SearchAttributes
    from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest

    await expect_error(
        stub.DescribeNamespace(DescribeNamespaceRequest(namespace="de\x00fault"), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT, "NUL",
    )
    err = await expect_error(
        stub.ListWorkflowExecutions(ListWorkflowExecutionsRequest(namespace=NS, query="WorkflowId = 'a\x00b'"), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT, "NUL character (at position 15)",
    )
    assert err
    workflow_id = uid("wf")
    keyword = SearchAttributes(indexed_fields={"TemporalChangeVersion": Payload(
        metadata={"encoding": b"json/plain"}, data=b'["a\\u0000b"]'
    )})
    await expect_error(
        stub.StartWorkflowExecution(start_request(workflow_id, task_queue, search_attributes=keyword), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT, "TemporalChangeVersion",
    )
    await assert_no_workflow(stub, workflow_id)
