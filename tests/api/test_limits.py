"""Size limits, as the real Temporal server enforces them (its messages and statuses were read off
`temporal server start-dev` 1.32 with the same requests): a payload blob over 2 MiB is refused
with INVALID_ARGUMENT "Blob data size exceeds limit.", a memo over 2 MiB with "Memo size exceeds
limit.", a request over 4 MiB with RESOURCE_EXHAUSTED; an activity result over the limit becomes a
non-retryable failure of the activity. DescribeNamespace publishes the limits (the SDKs read them).
Driven with raw gRPC: the temporalio SDK refuses oversized payloads itself before sending them."""

from __future__ import annotations

import logging
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
    StartTimerCommandAttributes,
)
from temporalio.api.common.v1 import ActivityType, Memo, Payload, Payloads, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import CommandType, EventType, TaskQueueKind, WorkflowExecutionStatus, WorkflowTaskFailedCause
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


# -- payloads carried by a workflow task completion's commands ---------------------------------
#
# Every message below was read off Temporal Server 1.32 (`temporal server start-dev` with
# --dynamic-config-value limit.blobSize.error=2000, limit.blobSize.warn=1000, limit.memoSize.error=2000,
# limit.memoSize.warn=1000, the same raw completions): the call answers INVALID_ARGUMENT "<Cause>:
# <message>", the history gets WorkflowTaskFailed (that cause, a server failure with that message)
# and then WorkflowExecutionTerminated by "history-service" with the message as its reason; the
# commands before the oversized one leave nothing. Between the warning and the error limit the
# completion is accepted and the size is logged. The odd spaces and the activity cause on
# CompleteWorkflowExecution are Temporal's own.

SMALL_LIMITS = {
    "odin.blob_size_limit_error": "2000", "odin.blob_size_limit_warn": "1000",
    "odin.memo_size_limit_error": "2000", "odin.memo_size_limit_warn": "1000",
}


def _command(kind: str, tq: str, size: int, namespace: str) -> Command:
    from temporalio.api.command.v1 import (
        CompleteWorkflowExecutionCommandAttributes,
        ContinueAsNewWorkflowExecutionCommandAttributes,
        FailWorkflowExecutionCommandAttributes,
        ModifyWorkflowPropertiesCommandAttributes,
        RecordMarkerCommandAttributes,
        UpsertWorkflowSearchAttributesCommandAttributes,
    )
    from temporalio.api.common.v1 import SearchAttributes
    from temporalio.api.failure.v1 import Failure

    C = CommandType
    if kind == "schedule_activity":
        return Command(command_type=C.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK, schedule_activity_task_command_attributes=ScheduleActivityTaskCommandAttributes(
            activity_id="a", activity_type=ActivityType(name="A"), task_queue=TaskQueue(name=tq),
            start_to_close_timeout=Duration(seconds=30), input=payloads(size)))
    if kind == "complete":
        return Command(command_type=C.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION, complete_workflow_execution_command_attributes=CompleteWorkflowExecutionCommandAttributes(
            result=payloads(size)))
    if kind == "fail":
        return Command(command_type=C.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION, fail_workflow_execution_command_attributes=FailWorkflowExecutionCommandAttributes(
            failure=Failure(message="m" * size)))
    if kind in ("start_child", "start_child_memo"):
        extra = {"memo": Memo(fields={"m": Payload(data=b"x" * size)})} if kind == "start_child_memo" else {"input": payloads(size)}
        return Command(command_type=C.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION, start_child_workflow_execution_command_attributes=StartChildWorkflowExecutionCommandAttributes(
            namespace=namespace, workflow_id=f"child-{uuid.uuid4().hex[:8]}", workflow_type=WorkflowType(name="C"),
            task_queue=TaskQueue(name=tq), **extra))
    if kind == "signal_external":
        return Command(command_type=C.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION, signal_external_workflow_execution_command_attributes=SignalExternalWorkflowExecutionCommandAttributes(
            namespace=namespace, execution=WorkflowExecution(workflow_id="nobody"), signal_name="s", input=payloads(size)))
    if kind in ("continue_as_new", "continue_as_new_memo"):
        extra = {"memo": Memo(fields={"m": Payload(data=b"x" * size)})} if kind == "continue_as_new_memo" else {"input": payloads(size)}
        return Command(command_type=C.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION, continue_as_new_workflow_execution_command_attributes=ContinueAsNewWorkflowExecutionCommandAttributes(
            workflow_type=WorkflowType(name="W"), task_queue=TaskQueue(name=tq), workflow_run_timeout=Duration(seconds=60),
            workflow_task_timeout=Duration(seconds=10), **extra))
    if kind == "record_marker":
        return Command(command_type=C.COMMAND_TYPE_RECORD_MARKER, record_marker_command_attributes=RecordMarkerCommandAttributes(
            marker_name="mk", details={"d": payloads(size)}))
    if kind == "upsert_search_attributes":
        value = Payload(metadata={"encoding": b"json/plain", "type": b"Keyword"}, data=b'"' + b"x" * size + b'"')
        return Command(command_type=C.COMMAND_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES, upsert_workflow_search_attributes_command_attributes=UpsertWorkflowSearchAttributesCommandAttributes(
            search_attributes=SearchAttributes(indexed_fields={"CustomKeywordField": value})))
    if kind == "modify_properties":
        return Command(command_type=C.COMMAND_TYPE_MODIFY_WORKFLOW_PROPERTIES, modify_workflow_properties_command_attributes=ModifyWorkflowPropertiesCommandAttributes(
            upserted_memo=Memo(fields={"m": Payload(data=b"x" * size)})))
    raise ValueError(kind)


# command -> (cause, message) for a 3000-byte payload, as Temporal Server 1.32 answered.
OVERSIZED_COMMANDS = {
    "schedule_activity": ("BAD_SCHEDULE_ACTIVITY_ATTRIBUTES", "BadScheduleActivityAttributes: ScheduleActivityTaskCommandAttributes.Input exceeds size limit."),
    "complete": ("BAD_SCHEDULE_ACTIVITY_ATTRIBUTES", "BadScheduleActivityAttributes: CompleteWorkflowExecutionCommandAttributes.Result exceeds size limit."),
    "fail": ("BAD_FAIL_WORKFLOW_EXECUTION_ATTRIBUTES", "BadFailWorkflowExecutionAttributes: FailWorkflowExecutionCommandAttributes.Failure exceeds size limit."),
    "start_child": ("BAD_START_CHILD_EXECUTION_ATTRIBUTES", "BadStartChildExecutionAttributes: StartChildWorkflowExecutionCommandAttributes. Input exceeds size limit."),
    "start_child_memo": ("BAD_START_CHILD_EXECUTION_ATTRIBUTES", "BadStartChildExecutionAttributes: StartChildWorkflowExecutionCommandAttributes.Memo exceeds size limit."),
    "signal_external": ("BAD_SIGNAL_WORKFLOW_EXECUTION_ATTRIBUTES", "BadSignalWorkflowExecutionAttributes: SignalExternalWorkflowExecutionCommandAttributes.Input exceeds size limit."),
    "continue_as_new": ("BAD_CONTINUE_AS_NEW_ATTRIBUTES", "BadContinueAsNewAttributes: ContinueAsNewWorkflowExecutionCommandAttributes. Input exceeds size limit."),
    "continue_as_new_memo": ("BAD_CONTINUE_AS_NEW_ATTRIBUTES", "BadContinueAsNewAttributes: ContinueAsNewWorkflowExecutionCommandAttributes. Memo exceeds size limit."),
    "record_marker": ("BAD_RECORD_MARKER_ATTRIBUTES", "BadRecordMarkerAttributes: RecordMarkerCommandAttributes.Details exceeds size limit."),
    "upsert_search_attributes": ("BAD_SEARCH_ATTRIBUTES", "BadSearchAttributes: UpsertWorkflowSearchAttributesCommandAttributes exceeds size limit."),
    "modify_properties": ("BAD_MODIFY_WORKFLOW_PROPERTIES_ATTRIBUTES", "BadModifyWorkflowPropertiesAttributes: ModifyWorkflowPropertiesCommandAttributes exceeds size limit."),
}
# What the same commands write when their payload is 1500 bytes (over the warning limit only).
ACCEPTED_EVENT = {
    "schedule_activity": "ACTIVITY_TASK_SCHEDULED", "complete": "WORKFLOW_EXECUTION_COMPLETED", "fail": "WORKFLOW_EXECUTION_FAILED",
    "start_child": "START_CHILD_WORKFLOW_EXECUTION_INITIATED", "start_child_memo": "START_CHILD_WORKFLOW_EXECUTION_INITIATED",
    "signal_external": "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED", "continue_as_new": "WORKFLOW_EXECUTION_CONTINUED_AS_NEW",
    "continue_as_new_memo": "WORKFLOW_EXECUTION_CONTINUED_AS_NEW", "record_marker": "MARKER_RECORDED",
    "upsert_search_attributes": "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES", "modify_properties": "WORKFLOW_PROPERTIES_MODIFIED",
}


async def small_namespace(stub, odin_server, limits: dict[str, str] = SMALL_LIMITS) -> str:
    """A namespace with the limits of the Temporal run above and CustomKeywordField registered."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
    from temporalio.api.operatorservice.v1.service_pb2_grpc import OperatorServiceStub

    name = f"small-{uuid.uuid4().hex[:6]}"
    await stub.RegisterNamespace(
        RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=Duration(seconds=86400), data=limits), timeout=10
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{odin_server.endpoints.grpc_port}") as channel:
        await OperatorServiceStub(channel).AddSearchAttributes(
            AddSearchAttributesRequest(namespace=name, search_attributes={"CustomKeywordField": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}),
            timeout=10,
        )
    return name


def event_names(events) -> list[str]:
    return [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events]


def assert_failed_and_terminated(events, cause: str, message: str, first_task: int = 3) -> None:
    """WorkflowTaskFailed with ``cause`` and ``message`` right after the task's start, then the
    run terminated by the server with the message as its reason (Temporal 1.32's history)."""
    failed, terminated = events[first_task], events[first_task + 1]
    assert event_names(events[first_task:]) == ["WORKFLOW_TASK_FAILED", "WORKFLOW_EXECUTION_TERMINATED"], event_names(events)
    a = failed.workflow_task_failed_event_attributes
    assert (WorkflowTaskFailedCause.Name(a.cause), a.failure.message, a.identity) == (f"WORKFLOW_TASK_FAILED_CAUSE_{cause}", message, "w")
    assert a.failure.HasField("server_failure_info") and not a.failure.server_failure_info.non_retryable
    t = terminated.workflow_execution_terminated_event_attributes
    assert (t.reason, t.identity, t.HasField("details")) == (message, "history-service", False)


async def test_an_oversized_payload_in_a_command_fails_the_task_and_terminates_the_run(stub, odin_server, task_queue, caplog):
    name = await small_namespace(stub, odin_server)
    for kind, (cause, message) in OVERSIZED_COMMANDS.items():
        tq = f"{task_queue}-{kind}"  # children and new runs must not land on the next case's queue
        workflow_id, task = await first_task_in(stub, name, tq)
        # A valid command first: the whole completion is dropped, not just the oversized command.
        commands = [Command(command_type=CommandType.COMMAND_TYPE_START_TIMER, start_timer_command_attributes=StartTimerCommandAttributes(
            timer_id="t", start_to_fire_timeout=Duration(seconds=60)))]
        commands.append(_command(kind, tq, 3000, name))
        with caplog.at_level(logging.WARNING, logger="odin.history.worker_tasks"):
            await refused(
                stub.RespondWorkflowTaskCompleted(
                    RespondWorkflowTaskCompletedRequest(namespace=name, task_token=task.task_token, commands=commands, identity="w"), timeout=10
                ),
                grpc.StatusCode.INVALID_ARGUMENT, message,
            )
        events = await history(stub, workflow_id, namespace=name)
        assert event_names(events[:3]) == ["WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED"], kind
        assert_failed_and_terminated(events, cause, message)
        assert " of 30" in caplog.text and "is over the 2000-byte limit" in caplog.text, kind
        caplog.clear()


async def test_a_payload_between_the_warning_and_the_error_limit_is_accepted_and_logged(stub, odin_server, task_queue, caplog):
    name = await small_namespace(stub, odin_server)
    for kind, event in ACCEPTED_EVENT.items():
        tq = f"{task_queue}-{kind}"
        workflow_id, task = await first_task_in(stub, name, tq)
        with caplog.at_level(logging.WARNING, logger="odin.history.worker_tasks"):
            await stub.RespondWorkflowTaskCompleted(
                RespondWorkflowTaskCompletedRequest(
                    namespace=name, task_token=task.task_token, commands=[_command(kind, tq, 1500, name)], identity="w"
                ),
                timeout=10,
            )
        response = await stub.GetWorkflowExecutionHistory(
            GetWorkflowExecutionHistoryRequest(namespace=name, execution=WorkflowExecution(workflow_id=workflow_id, run_id=task.workflow_execution.run_id)),
            timeout=10,
        )
        names = event_names(response.history.events)
        assert names[3:5] == ["WORKFLOW_TASK_COMPLETED", event], kind
        assert "is over the 1000-byte warning limit" in caplog.text, kind
        caplog.clear()


async def test_an_oversized_merged_memo_and_oversized_search_attribute_values_terminate_the_run(stub, odin_server, task_queue):
    from temporalio.api.command.v1 import ModifyWorkflowPropertiesCommandAttributes

    name = await small_namespace(stub, odin_server)
    # Each ModifyWorkflowProperties is under the limits; the memo they add up to is not.
    workflow_id, task = await first_task_in(stub, name, task_queue)
    for key in ("a", "b"):
        command = Command(
            command_type=CommandType.COMMAND_TYPE_MODIFY_WORKFLOW_PROPERTIES,
            modify_workflow_properties_command_attributes=ModifyWorkflowPropertiesCommandAttributes(
                upserted_memo=Memo(fields={key: Payload(data=b"x" * 1500)})
            ),
        )
        call = stub.RespondWorkflowTaskCompleted(
            RespondWorkflowTaskCompletedRequest(
                namespace=name, task_token=task.task_token, commands=[command], identity="w", force_create_new_workflow_task=True
            ),
            timeout=10,
        )
        if key == "a":
            await call
            task = await stub.PollWorkflowTaskQueue(
                PollWorkflowTaskQueueRequest(namespace=name, task_queue=TaskQueue(name=task_queue), identity="w"), timeout=10
            )
    message = "BadModifyWorkflowPropertiesAttributes: ModifyWorkflowPropertiesCommandAttributes. Memo exceeds size limit."
    await refused(call, grpc.StatusCode.INVALID_ARGUMENT, message)
    events = await history(stub, workflow_id, namespace=name)
    assert event_names(events[:7]) == [
        "WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_PROPERTIES_MODIFIED", "WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED",
    ]
    assert_failed_and_terminated(events, "BAD_MODIFY_WORKFLOW_PROPERTIES_ATTRIBUTES", message, first_task=7)

    # A search attribute value over 2 KiB (blob limits high enough not to decide): Temporal 1.32,
    # started with limit.blobSize.error=100000, terminated the run with these messages.
    big = await small_namespace(stub, odin_server, {"odin.blob_size_limit_error": "100000", "odin.blob_size_limit_warn": "50000"})
    value = Payload(metadata={"encoding": b"json/plain", "type": b"Keyword"}, data=b'"' + b"x" * 3000 + b'"')
    from temporalio.api.command.v1 import (
        ContinueAsNewWorkflowExecutionCommandAttributes,
        UpsertWorkflowSearchAttributesCommandAttributes,
    )
    from temporalio.api.common.v1 import SearchAttributes

    search = SearchAttributes(indexed_fields={"CustomKeywordField": value})
    cases = {
        "BAD_SEARCH_ATTRIBUTES": Command(
            command_type=CommandType.COMMAND_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
            upsert_workflow_search_attributes_command_attributes=UpsertWorkflowSearchAttributesCommandAttributes(search_attributes=search),
        ),
        "BAD_START_CHILD_EXECUTION_ATTRIBUTES": Command(
            command_type=CommandType.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION,
            start_child_workflow_execution_command_attributes=StartChildWorkflowExecutionCommandAttributes(
                namespace=big, workflow_id="child", workflow_type=WorkflowType(name="C"), task_queue=TaskQueue(name=task_queue),
                search_attributes=search,
            ),
        ),
        "BAD_CONTINUE_AS_NEW_ATTRIBUTES": Command(
            command_type=CommandType.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION,
            continue_as_new_workflow_execution_command_attributes=ContinueAsNewWorkflowExecutionCommandAttributes(
                workflow_type=WorkflowType(name="W"), task_queue=TaskQueue(name=task_queue), search_attributes=search,
            ),
        ),
    }
    prefixes = {
        "BAD_SEARCH_ATTRIBUTES": "BadSearchAttributes", "BAD_START_CHILD_EXECUTION_ATTRIBUTES": "BadStartChildExecutionAttributes",
        "BAD_CONTINUE_AS_NEW_ATTRIBUTES": "BadContinueAsNewAttributes",
    }
    for cause, command in cases.items():
        message = f"{prefixes[cause]}: search attribute CustomKeywordField value size 3002 exceeds size limit 2048"
        workflow_id, task = await first_task_in(stub, big, f"{task_queue}-{cause}")
        await refused(
            stub.RespondWorkflowTaskCompleted(
                RespondWorkflowTaskCompletedRequest(namespace=big, task_token=task.task_token, commands=[command], identity="w"), timeout=10
            ),
            grpc.StatusCode.INVALID_ARGUMENT, message,
        )
        assert_failed_and_terminated(await history(stub, workflow_id, namespace=big), cause, message)


async def test_an_oversized_update_response_terminates_the_run(stub, odin_server, task_queue):
    import asyncio

    from google.protobuf.any_pb2 import Any as AnyProto
    from temporalio.api.command.v1 import ProtocolMessageCommandAttributes
    from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage
    from temporalio.api.protocol.v1 import Message
    from temporalio.api.update.v1 import Acceptance, Input, Meta, Outcome, Request, Response, WaitPolicy
    from temporalio.api.workflowservice.v1 import UpdateWorkflowExecutionRequest

    name = await small_namespace(stub, odin_server)
    workflow_id, task = await first_task_in(stub, name, task_queue)
    await stub.RespondWorkflowTaskCompleted(
        RespondWorkflowTaskCompletedRequest(namespace=name, task_token=task.task_token, identity="w"), timeout=10
    )
    update = asyncio.ensure_future(
        stub.UpdateWorkflowExecution(
            UpdateWorkflowExecutionRequest(
                namespace=name, workflow_execution=WorkflowExecution(workflow_id=workflow_id),
                wait_policy=WaitPolicy(lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED),
                request=Request(meta=Meta(update_id="u1", identity="c"), input=Input(name="u")),
            ),
            timeout=20,
        )
    )
    task = await stub.PollWorkflowTaskQueue(
        PollWorkflowTaskQueueRequest(namespace=name, task_queue=TaskQueue(name=task_queue), identity="w"), timeout=10
    )
    [request_message] = task.messages
    request = Request()
    request_message.body.Unpack(request)
    accepted, response = AnyProto(), AnyProto()
    accepted.Pack(Acceptance(accepted_request_message_id=request_message.id,
                             accepted_request_sequencing_event_id=request_message.event_id, accepted_request=request))
    response.Pack(Response(meta=request.meta, outcome=Outcome(success=payloads(3000))))
    messages = [Message(id="u1/accept", protocol_instance_id="u1", body=accepted), Message(id="u1/complete", protocol_instance_id="u1", body=response)]
    commands = [
        Command(command_type=CommandType.COMMAND_TYPE_PROTOCOL_MESSAGE,
                protocol_message_command_attributes=ProtocolMessageCommandAttributes(message_id=m.id))
        for m in messages
    ]
    message = "BadUpdateWorkflowExecutionMessage: Message type temporal.api.update.v1.Response exceeds size limit."
    await refused(
        stub.RespondWorkflowTaskCompleted(
            RespondWorkflowTaskCompletedRequest(namespace=name, task_token=task.task_token, commands=commands, messages=messages, identity="w"),
            timeout=10,
        ),
        grpc.StatusCode.INVALID_ARGUMENT, message,
    )
    events = await history(stub, workflow_id, namespace=name)
    assert event_names(events[:6]) == [
        "WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED",
    ]
    assert_failed_and_terminated(events, "BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE", message, first_task=6)
    # The update's caller hears that it will not complete, as from Temporal.
    await refused(update, grpc.StatusCode.FAILED_PRECONDITION, "Unable to perform workflow execution update due to unexpected workflow task failure.")


async def test_an_oversized_payload_on_a_retried_task_fails_it_without_terminating(stub, odin_server, task_queue):
    from temporalio.api.failure.v1 import Failure
    from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest, RespondWorkflowTaskFailedRequest

    name = await small_namespace(stub, odin_server)
    workflow_id, task = await first_task_in(stub, name, task_queue)
    await stub.RespondWorkflowTaskFailed(
        RespondWorkflowTaskFailedRequest(
            namespace=name, task_token=task.task_token, identity="w", failure=Failure(message="boom"),
            cause=WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE,
        ),
        timeout=10,
    )
    task = await stub.PollWorkflowTaskQueue(
        PollWorkflowTaskQueueRequest(namespace=name, task_queue=TaskQueue(name=task_queue), identity="w"), timeout=10
    )
    assert task.attempt == 2
    # Temporal 1.32 answers attempt 2 the same but records nothing and leaves the run running.
    message = "BadScheduleActivityAttributes: CompleteWorkflowExecutionCommandAttributes.Result exceeds size limit."
    await refused(
        stub.RespondWorkflowTaskCompleted(
            RespondWorkflowTaskCompletedRequest(
                namespace=name, task_token=task.task_token, commands=[_command("complete", task_queue, 3000, name)], identity="w"
            ),
            timeout=10,
        ),
        grpc.StatusCode.INVALID_ARGUMENT, message,
    )
    events = await history(stub, workflow_id, namespace=name)
    assert "WORKFLOW_EXECUTION_TERMINATED" not in event_names(events)
    described = await stub.DescribeWorkflowExecution(
        DescribeWorkflowExecutionRequest(namespace=name, execution=WorkflowExecution(workflow_id=workflow_id)), timeout=10
    )
    assert described.workflow_execution_info.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
