"""Eager dispatch over raw gRPC: an activity that asks for eager execution on the workflow's own
task queue comes back started in the RespondWorkflowTaskCompleted response (no queue round trip),
and the history it leaves has the same shape as one dispatched through the queue."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.command.v1 import (
    Command,
    CompleteWorkflowExecutionCommandAttributes,
    ScheduleActivityTaskCommandAttributes,
)
from temporalio.api.common.v1 import ActivityType, Payload, Payloads, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import CommandType, EventType, TaskQueueKind
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    GetWorkflowExecutionHistoryRequest,
    PollActivityTaskQueueRequest,
    PollWorkflowTaskQueueRequest,
    RespondActivityTaskCompletedRequest,
    RespondWorkflowTaskCompletedRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.worker import Worker

from tests.support.workflows import OneActivity, echo

NS = "default"
IDENTITY = "eager-test@host"


def payloads(text: str) -> Payloads:
    return Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())])


async def first_workflow_task(stub, task_queue: str):
    workflow_id = f"eager-{uuid.uuid4().hex[:10]}"
    await stub.StartWorkflowExecution(
        StartWorkflowExecutionRequest(
            namespace=NS,
            workflow_id=workflow_id,
            workflow_type=WorkflowType(name="Eager"),
            task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            identity=IDENTITY,
            request_id=str(uuid.uuid4()),
        ),
        timeout=10,
    )
    task = await poll_workflow_task(stub, task_queue)
    assert task.workflow_execution.workflow_id == workflow_id
    return workflow_id, task


async def poll_workflow_task(stub, task_queue: str):
    return await stub.PollWorkflowTaskQueue(
        PollWorkflowTaskQueueRequest(
            namespace=NS, task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL), identity=IDENTITY
        ),
        timeout=10,
    )


def schedule(activity_id: str, queue: str, eager: bool) -> Command:
    return Command(
        command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
        schedule_activity_task_command_attributes=ScheduleActivityTaskCommandAttributes(
            activity_id=activity_id,
            activity_type=ActivityType(name="echo"),
            task_queue=TaskQueue(name=queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            input=payloads(activity_id),
            start_to_close_timeout=Duration(seconds=30),
            request_eager_execution=eager,
        ),
    )


def complete_workflow(result: str) -> Command:
    return Command(
        command_type=CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
        complete_workflow_execution_command_attributes=CompleteWorkflowExecutionCommandAttributes(result=payloads(result)),
    )


async def complete_task(stub, task_token: bytes, commands: list[Command]):
    return await stub.RespondWorkflowTaskCompleted(
        RespondWorkflowTaskCompletedRequest(namespace=NS, task_token=task_token, commands=commands, identity=IDENTITY),
        timeout=10,
    )


async def event_types(stub, workflow_id: str) -> list[str]:
    response = await stub.GetWorkflowExecutionHistory(
        GetWorkflowExecutionHistoryRequest(namespace=NS, execution=WorkflowExecution(workflow_id=workflow_id)), timeout=10
    )
    return [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in response.history.events]


async def test_an_eager_activity_comes_back_started_with_the_completion(stub, task_queue):
    workflow_id, task = await first_workflow_task(stub, task_queue)
    response = await complete_task(stub, task.task_token, [schedule("a1", task_queue, eager=True)])

    [activity] = response.activity_tasks
    assert activity.activity_id == "a1"
    assert activity.activity_type.name == "echo"
    assert activity.attempt == 1
    assert activity.workflow_namespace == NS
    assert activity.workflow_execution.workflow_id == workflow_id
    assert activity.input == payloads("a1")
    assert activity.start_to_close_timeout.seconds == 30
    assert activity.started_time.seconds > 0

    # It was not queued as well: no poller gets it.
    empty = await stub.PollActivityTaskQueue(
        PollActivityTaskQueueRequest(namespace=NS, task_queue=TaskQueue(name=task_queue), identity="other"), timeout=2
    )
    assert not empty.task_token

    await stub.RespondActivityTaskCompleted(
        RespondActivityTaskCompletedRequest(namespace=NS, task_token=activity.task_token, result=payloads("done"), identity=IDENTITY),
        timeout=10,
    )
    task = await poll_workflow_task(stub, task_queue)
    await complete_task(
        stub,
        task.task_token,
        [complete_workflow("ok")],
    )
    assert await event_types(stub, workflow_id) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "ACTIVITY_TASK_SCHEDULED",
        "ACTIVITY_TASK_STARTED",
        "ACTIVITY_TASK_COMPLETED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_COMPLETED",
    ]


async def test_only_activities_on_the_workflows_queue_that_ask_start_eagerly(stub, task_queue):
    other_queue = f"{task_queue}-other"
    _, task = await first_workflow_task(stub, task_queue)
    commands = [
        schedule("not-asked", task_queue, eager=False),
        schedule("other-queue", other_queue, eager=True),
        *(schedule(f"eager-{i}", task_queue, eager=True) for i in range(4)),
    ]
    response = await complete_task(stub, task.task_token, commands)
    # At most three per completion; the rest go through their queues.
    assert [a.activity_id for a in response.activity_tasks] == ["eager-0", "eager-1", "eager-2"]

    async def poll(queue: str) -> str:
        got = await stub.PollActivityTaskQueue(
            PollActivityTaskQueueRequest(namespace=NS, task_queue=TaskQueue(name=queue), identity="poller"), timeout=5
        )
        return got.activity_id

    assert sorted([await poll(task_queue), await poll(task_queue)]) == ["eager-3", "not-asked"]
    assert await poll(other_queue) == "other-queue"


async def test_a_rejected_completion_starts_no_eager_activity(stub, task_queue):
    _, task = await first_workflow_task(stub, task_queue)
    bad = schedule("", task_queue, eager=True)  # an activity id is required
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await complete_task(stub, task.task_token, [schedule("fine", task_queue, eager=True), bad])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    empty = await stub.PollActivityTaskQueue(
        PollActivityTaskQueueRequest(namespace=NS, task_queue=TaskQueue(name=task_queue), identity="poller"), timeout=2
    )
    assert not empty.task_token


# -- eager workflow start -------------------------------------------------------------------


def start_request(task_queue: str, **fields) -> StartWorkflowExecutionRequest:
    return StartWorkflowExecutionRequest(
        namespace=NS,
        workflow_id=f"eager-start-{uuid.uuid4().hex[:10]}",
        workflow_type=WorkflowType(name="Eager"),
        task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        identity=IDENTITY,
        request_id=str(uuid.uuid4()),
        **fields,
    )


async def test_an_eager_start_returns_the_first_workflow_task_started(stub, task_queue):
    req = start_request(task_queue, request_eager_execution=True, input=payloads("in"))
    response = await stub.StartWorkflowExecution(req, timeout=10)
    task = response.eager_workflow_task
    assert response.started and task.task_token
    assert task.workflow_execution.workflow_id == req.workflow_id
    assert task.workflow_execution.run_id == response.run_id
    assert task.started_event_id == 3 and task.attempt == 1
    events = task.history.events
    assert [e.event_id for e in events] == [1, 2, 3]
    assert events[0].workflow_execution_started_event_attributes.input == payloads("in")
    assert events[2].workflow_task_started_event_attributes.identity == IDENTITY

    # Nothing was queued for it, and its token completes the run.
    empty = await stub.PollWorkflowTaskQueue(
        PollWorkflowTaskQueueRequest(namespace=NS, task_queue=TaskQueue(name=task_queue), identity="other"), timeout=2
    )
    assert not empty.task_token
    await complete_task(
        stub,
        task.task_token,
        [complete_workflow("ok")],
    )
    assert await event_types(stub, req.workflow_id) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_COMPLETED",
    ]


async def test_a_delayed_or_repeated_start_is_not_eager(stub, task_queue):
    delayed = start_request(task_queue, request_eager_execution=True, workflow_start_delay=Duration(seconds=1))
    response = await stub.StartWorkflowExecution(delayed, timeout=10)
    assert response.started and not response.HasField("eager_workflow_task")
    task = await poll_workflow_task(stub, task_queue)  # it comes through the queue once due
    assert task.workflow_execution.workflow_id == delayed.workflow_id

    # The same request again (a client's retry) answers with the run, without a second task.
    plain = start_request(task_queue, request_eager_execution=True)
    first = await stub.StartWorkflowExecution(plain, timeout=10)
    again = await stub.StartWorkflowExecution(plain, timeout=10)
    assert again.run_id == first.run_id and not again.HasField("eager_workflow_task")


async def test_the_temporalio_sdk_runs_an_eagerly_started_workflow(client, task_queue):
    async with Worker(client, task_queue=task_queue, workflows=[OneActivity], activities=[echo]):
        handle = await client.start_workflow(
            OneActivity.run, "hi", id=f"eager-sdk-{uuid.uuid4().hex[:8]}", task_queue=task_queue, request_eager_start=True
        )
        assert await handle.result() == "hi"
        history = await handle.fetch_history()
    names = [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events]
    assert names[:3] == ["WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED"]
    assert names[-1] == "WORKFLOW_EXECUTION_COMPLETED"
