"""Size limits, as the real Temporal server enforces them (its messages and statuses were read off
`temporal server start-dev` 1.32 with the same requests): a payload blob over 2 MiB is refused
with INVALID_ARGUMENT "Blob data size exceeds limit.", a memo over 2 MiB with "Memo size exceeds
limit.", a request over 4 MiB with RESOURCE_EXHAUSTED; an activity result over the limit becomes a
non-retryable failure of the activity. DescribeNamespace publishes the limits (the SDKs read them).
Driven with raw gRPC: the temporalio SDK refuses oversized payloads itself before sending them."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.command.v1 import (
    Command,
    RequestCancelExternalWorkflowExecutionCommandAttributes,
    ScheduleActivityTaskCommandAttributes,
    SignalExternalWorkflowExecutionCommandAttributes,
    StartChildWorkflowExecutionCommandAttributes,
)
from temporalio.api.common.v1 import ActivityType, Memo, Payload, Payloads, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import CommandType, EventType, TaskQueueKind, WorkflowTaskFailedCause
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    GetWorkflowExecutionHistoryRequest,
    PollActivityTaskQueueRequest,
    PollWorkflowTaskQueueRequest,
    RecordActivityTaskHeartbeatRequest,
    RegisterNamespaceRequest,
    RespondActivityTaskCompletedRequest,
    RespondWorkflowTaskCompletedRequest,
    SignalWorkflowExecutionRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.api.workflowservice.v1.service_pb2_grpc import WorkflowServiceStub

NS = "default"
MIB = 1024 * 1024


@pytest.fixture
async def stub(odin_server):
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{odin_server.endpoints.grpc_port}", options=[("grpc.max_send_message_length", 16 * MIB)]
    )
    try:
        yield WorkflowServiceStub(channel)
    finally:
        await channel.close()


def payloads(size: int) -> Payloads:
    return Payloads(payloads=[Payload(metadata={"encoding": b"binary/plain"}, data=b"x" * size)])


def start_request(task_queue: str, namespace: str = NS, **fields) -> StartWorkflowExecutionRequest:
    return StartWorkflowExecutionRequest(
        namespace=namespace,
        workflow_id=f"limits-{uuid.uuid4().hex[:10]}",
        workflow_type=WorkflowType(name="Limits"),
        task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        request_id=str(uuid.uuid4()),
        **fields,
    )


async def refused(call, code: grpc.StatusCode, message: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value
    assert message in (info.value.details() or ""), info.value.details()


async def history(stub, workflow_id: str, namespace: str = NS) -> list:
    response = await stub.GetWorkflowExecutionHistory(
        GetWorkflowExecutionHistoryRequest(namespace=namespace, execution=WorkflowExecution(workflow_id=workflow_id)), timeout=10
    )
    return list(response.history.events)


async def test_oversized_inputs_and_memos_are_refused_and_start_nothing(stub, task_queue):
    big = start_request(task_queue, input=payloads(3 * MIB))
    await refused(stub.StartWorkflowExecution(big, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "Blob data size exceeds limit.")
    memo = start_request(task_queue, memo=Memo(fields={"m": Payload(data=b"x" * (3 * MIB))}))
    await refused(stub.StartWorkflowExecution(memo, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "Memo size exceeds limit.")
    whole = start_request(task_queue, input=payloads(5 * MIB))
    await refused(stub.StartWorkflowExecution(whole, timeout=10), grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max")
    for req in (big, memo, whole):
        await refused(history(stub, req.workflow_id), grpc.StatusCode.NOT_FOUND, req.workflow_id)

    # Between the warning and the error limit: accepted.
    fine = start_request(task_queue, input=payloads(600 * 1024))
    assert (await stub.StartWorkflowExecution(fine, timeout=10)).started

    # An oversized signal changes nothing.
    before = await history(stub, fine.workflow_id)
    signal = SignalWorkflowExecutionRequest(
        namespace=NS, workflow_execution=WorkflowExecution(workflow_id=fine.workflow_id), signal_name="s",
        input=payloads(3 * MIB), request_id=str(uuid.uuid4()),
    )
    await refused(stub.SignalWorkflowExecution(signal, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "Blob data size exceeds limit.")
    assert await history(stub, fine.workflow_id) == before


async def test_a_namespace_sets_its_own_limits_and_describe_publishes_them(stub, task_queue):
    default = await stub.DescribeNamespace(DescribeNamespaceRequest(namespace=NS), timeout=10)
    limits = default.namespace_info.limits
    assert (limits.blob_size_limit_error, limits.memo_size_limit_error) == (2 * MIB, 2 * MIB)
    if "workflow_task_completion_size_limit_error" in type(limits).DESCRIPTOR.fields_by_name:  # newer protos
        assert limits.workflow_task_completion_size_limit_error == 40 * MIB

    name = f"small-{uuid.uuid4().hex[:6]}"
    await stub.RegisterNamespace(
        RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=Duration(seconds=86400),
            data={"odin.blob_size_limit_error": "1000", "odin.memo_size_limit_error": "500"},
        ),
        timeout=10,
    )
    small = (await stub.DescribeNamespace(DescribeNamespaceRequest(namespace=name), timeout=10)).namespace_info.limits
    assert (small.blob_size_limit_error, small.memo_size_limit_error) == (1000, 500)
    await refused(
        stub.StartWorkflowExecution(start_request(task_queue, namespace=name, input=payloads(2000)), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT, "Blob data size exceeds limit.",
    )
    assert (await stub.StartWorkflowExecution(start_request(task_queue, namespace=name, input=payloads(500)), timeout=10)).started


async def started_activity(stub, task_queue: str):
    req = start_request(task_queue)
    await stub.StartWorkflowExecution(req, timeout=10)
    task = await stub.PollWorkflowTaskQueue(
        PollWorkflowTaskQueueRequest(namespace=NS, task_queue=TaskQueue(name=task_queue), identity="w"), timeout=10
    )
    await stub.RespondWorkflowTaskCompleted(
        RespondWorkflowTaskCompletedRequest(
            namespace=NS, task_token=task.task_token, identity="w",
            commands=[
                Command(
                    command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
                    schedule_activity_task_command_attributes=ScheduleActivityTaskCommandAttributes(
                        activity_id="a", activity_type=ActivityType(name="big"), task_queue=TaskQueue(name=task_queue),
                        start_to_close_timeout=Duration(seconds=30),
                    ),
                )
            ],
        ),
        timeout=10,
    )
    activity = await stub.PollActivityTaskQueue(
        PollActivityTaskQueueRequest(namespace=NS, task_queue=TaskQueue(name=task_queue), identity="w"), timeout=10
    )
    assert activity.activity_id == "a"
    return req.workflow_id, activity


def activity_outcome(events) -> tuple[str, object]:
    [outcome] = [e for e in events if e.event_type in (EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED)]
    return EventType.Name(outcome.event_type), outcome


async def test_an_oversized_activity_result_fails_the_activity_for_good(stub, task_queue):
    workflow_id, activity = await started_activity(stub, task_queue)
    await stub.RespondActivityTaskCompleted(
        RespondActivityTaskCompletedRequest(namespace=NS, task_token=activity.task_token, result=payloads(3 * MIB), identity="w"),
        timeout=10,
    )
    kind, event = activity_outcome(await history(stub, workflow_id))
    assert kind == "EVENT_TYPE_ACTIVITY_TASK_FAILED"
    failure = event.activity_task_failed_event_attributes.failure
    assert failure.message == "Complete result exceeds size limit."
    assert failure.server_failure_info.non_retryable


async def test_an_oversized_heartbeat_fails_the_activity_and_tells_the_worker_to_stop(stub, task_queue):
    workflow_id, activity = await started_activity(stub, task_queue)
    response = await stub.RecordActivityTaskHeartbeat(
        RecordActivityTaskHeartbeatRequest(namespace=NS, task_token=activity.task_token, details=payloads(3 * MIB), identity="w"),
        timeout=10,
    )
    assert response.cancel_requested
    kind, event = activity_outcome(await history(stub, workflow_id))
    assert kind == "EVENT_TYPE_ACTIVITY_TASK_FAILED"
    assert event.activity_task_failed_event_attributes.failure.message == "Heartbeat exceeds size limit."


# -- pending limits ------------------------------------------------------------------------

PENDING_COMMANDS = {
    "activities": lambda i, tq: Command(
        command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
        schedule_activity_task_command_attributes=ScheduleActivityTaskCommandAttributes(
            activity_id=str(i), activity_type=ActivityType(name="a"), task_queue=TaskQueue(name=tq),
            start_to_close_timeout=Duration(seconds=300),
        ),
    ),
    "children": lambda i, tq: Command(
        command_type=CommandType.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION,
        start_child_workflow_execution_command_attributes=StartChildWorkflowExecutionCommandAttributes(
            namespace="", workflow_id=f"child-{uuid.uuid4().hex[:8]}", workflow_type=WorkflowType(name="C"),
            task_queue=TaskQueue(name=tq),
        ),
    ),
    "signals": lambda i, tq: Command(
        command_type=CommandType.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION,
        signal_external_workflow_execution_command_attributes=SignalExternalWorkflowExecutionCommandAttributes(
            execution=WorkflowExecution(workflow_id="nobody"), signal_name="s",
        ),
    ),
    "cancels": lambda i, tq: Command(
        command_type=CommandType.COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION,
        request_cancel_external_workflow_execution_command_attributes=RequestCancelExternalWorkflowExecutionCommandAttributes(
            workflow_id="nobody",
        ),
    ),
}

# What Temporal answers at a limit of 3 (read off the real server with these commands).
PENDING_MESSAGES = {
    "activities": ("PENDING_ACTIVITIES_LIMIT_EXCEEDED", "PendingActivitiesLimitExceeded: the number of pending activities, 3, has reached the per-workflow limit of 3"),
    "children": ("PENDING_CHILD_WORKFLOWS_LIMIT_EXCEEDED", "PendingChildWorkflowsLimitExceeded: the number of pending child workflow executions, 3, has reached the per-workflow limit of 3"),
    "signals": ("PENDING_SIGNALS_LIMIT_EXCEEDED", "PendingSignalsLimitExceeded: the number of pending signals to external workflows, 3, has reached the per-workflow limit of 3"),
    "cancels": ("PENDING_REQUEST_CANCEL_LIMIT_EXCEEDED", "PendingRequestCancelLimitExceeded: the number of pending requests to cancel external workflows, 3, has reached the per-workflow limit of 3"),
}


async def first_task_in(stub, namespace: str, task_queue: str):
    req = start_request(task_queue, namespace=namespace)
    await stub.StartWorkflowExecution(req, timeout=10)
    task = await stub.PollWorkflowTaskQueue(
        PollWorkflowTaskQueueRequest(namespace=namespace, task_queue=TaskQueue(name=task_queue), identity="w"), timeout=10
    )
    return req.workflow_id, task


@pytest.mark.parametrize("kind", sorted(PENDING_COMMANDS))
async def test_a_workflow_task_past_a_pending_limit_fails_with_temporals_cause(stub, task_queue, kind):
    name = f"pending-{uuid.uuid4().hex[:6]}"
    await stub.RegisterNamespace(
        RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=Duration(seconds=86400),
            data={f"odin.pending_{kind}_limit": "3"},
        ),
        timeout=10,
    )
    workflow_id, task = await first_task_in(stub, name, task_queue)
    commands = [PENDING_COMMANDS[kind](i, task_queue) for i in range(4)]
    cause, message = PENDING_MESSAGES[kind]
    await refused(
        stub.RespondWorkflowTaskCompleted(
            RespondWorkflowTaskCompletedRequest(namespace=name, task_token=task.task_token, commands=commands, identity="w"),
            timeout=10,
        ),
        grpc.StatusCode.INVALID_ARGUMENT, message,
    )
    events = await history(stub, workflow_id, namespace=name)
    # None of the commands left an event: the task failed (its retry follows, as a transient task).
    assert [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events[:4]] == [
        "WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_FAILED",
    ]
    assert all(e.event_type in (EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED) for e in events[4:])
    failed = events[3].workflow_task_failed_event_attributes
    assert WorkflowTaskFailedCause.Name(failed.cause) == f"WORKFLOW_TASK_FAILED_CAUSE_{cause}"
    assert failed.failure.message == message

    # Within the limit the same commands are fine.
    task = await stub.PollWorkflowTaskQueue(
        PollWorkflowTaskQueueRequest(namespace=name, task_queue=TaskQueue(name=task_queue), identity="w"), timeout=10
    )
    await stub.RespondWorkflowTaskCompleted(
        RespondWorkflowTaskCompletedRequest(namespace=name, task_token=task.task_token, commands=commands[:3], identity="w"),
        timeout=10,
    )


async def test_the_default_pending_activity_limit_is_temporals(stub, task_queue):
    workflow_id, task = await first_task_in(stub, NS, task_queue)
    commands = [PENDING_COMMANDS["activities"](i, task_queue) for i in range(2001)]
    await refused(
        stub.RespondWorkflowTaskCompleted(
            RespondWorkflowTaskCompletedRequest(namespace=NS, task_token=task.task_token, commands=commands, identity="w"),
            timeout=30,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "PendingActivitiesLimitExceeded: the number of pending activities, 2000, has reached the per-workflow limit of 2000",
    )
