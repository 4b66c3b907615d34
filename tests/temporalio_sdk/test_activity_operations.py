"""PauseActivity, UnpauseActivity, ResetActivity, UpdateActivityOptions (and their ...Execution
forms the temporal CLI sends) through the temporalio SDK, a raw stub and the CLI; what a
heartbeat answers after a server-side timeout.

The literals (states, messages, what the SDK's activity sees) are what Temporal 1.32
(``temporal server start-dev``) answered to the same requests."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from datetime import timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from temporalio import activity, workflow
from temporalio.api.activity.v1 import ActivityOptions
from temporalio.api.common.v1 import RetryPolicy as RetryPolicyProto
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.errordetails.v1 import NotFoundFailure
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from tests.support.services import temporal_cli

# key -> what the activity saw: ("start", attempt) and ("cancelled", attempt, details)
_seen: dict[str, list[tuple]] = {}
_finish: set[str] = set()


@activity.defn
async def heartbeating(key: str) -> str:
    info = activity.info()
    _seen.setdefault(key, []).append(("start", info.attempt))
    if info.attempt == 1 and key.startswith("fail-first"):
        raise RuntimeError("first attempt fails")
    try:
        while key not in _finish:
            activity.heartbeat(info.attempt)
            await asyncio.sleep(0.1)
    except asyncio.CancelledError:
        _seen[key].append(("cancelled", info.attempt, activity.cancellation_details()))
        raise
    return f"done at attempt {info.attempt}"


@workflow.defn
class RunsOneActivity:
    @workflow.run
    async def run(self, key: str) -> str:
        return await workflow.execute_activity(
            heartbeating,
            key,
            activity_id="a1",
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=timedelta(seconds=1),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(milliseconds=200)),
        )


@workflow.defn
class WaitsForAnActivityNobodyRuns:
    """Its activity goes to a queue no worker polls (the test takes it by hand, or never)."""

    @workflow.run
    async def run(self, queue: str, start_to_close: float) -> str:
        return await workflow.execute_activity(
            "by_hand",
            activity_id="a1",
            task_queue=queue,
            start_to_close_timeout=timedelta(seconds=start_to_close),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=20)),
        )


WORKFLOWS = [RunsOneActivity, WaitsForAnActivityNobodyRuns]


async def eventually(check, timeout: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def pending(client: Client, workflow_id: str):
    d = await client.workflow_service.describe_workflow_execution(
        ws.DescribeWorkflowExecutionRequest(namespace="default", execution=WorkflowExecution(workflow_id=workflow_id))
    )
    [p] = d.pending_activities
    return p


def started(key: str, attempt: int):
    async def check():
        return ("start", attempt) in _seen.get(key, [])

    return check


def key_of(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


async def test_pause_stops_a_heartbeating_activity_and_holds_its_retry(client, task_queue):
    key = key_of()
    service = client.workflow_service
    async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=[heartbeating]):
        handle = await client.start_workflow(RunsOneActivity.run, key, id=f"wf-{key}", task_queue=task_queue)
        await eventually(started(key, 1))
        execution = WorkflowExecution(workflow_id=handle.id)
        await service.pause_activity(
            ws.PauseActivityRequest(namespace="default", execution=execution, id="a1", identity="ops", reason="maintenance")
        )
        p = await pending(client, handle.id)
        # Running: the pause is requested, the attempt goes on until its next heartbeat.
        assert p.paused and p.pause_info.manual.identity == "ops" and p.pause_info.manual.reason == "maintenance"
        assert p.state in (
            PendingActivityState.PENDING_ACTIVITY_STATE_PAUSE_REQUESTED,
            PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED,
        )

        async def stopped():
            return [e for e in _seen[key] if e[0] == "cancelled"]

        [(_, attempt, details)] = await eventually(stopped)
        assert attempt == 1 and details.paused and not details.cancel_requested and not details.reset

        async def paused_with_its_failure():
            p = await pending(client, handle.id)
            return p if p.state == PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED and p.attempt == 2 else None

        p = await eventually(paused_with_its_failure)
        # The SDK reports the stopped attempt as this failure; its retry waits for the unpause.
        assert p.last_failure.message == "Unhandled activity cancel error produced by activity pause"
        assert p.last_failure.application_failure_info.type == "ActivityPause"
        assert not p.HasField("next_attempt_schedule_time")
        await asyncio.sleep(1.0)  # five retry intervals
        assert ("start", 2) not in _seen[key]

        await service.unpause_activity(ws.UnpauseActivityRequest(namespace="default", execution=execution, id="a1"))
        await eventually(started(key, 2))
        p = await pending(client, handle.id)
        assert not p.paused and not p.HasField("pause_info") and not p.HasField("last_failure")
        _finish.add(key)
        assert await handle.result() == "done at attempt 2"


async def test_reset_of_a_running_attempt(client, task_queue):
    key = key_of("fail-first-")
    service = client.workflow_service
    async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=[heartbeating]):
        handle = await client.start_workflow(RunsOneActivity.run, key, id=f"wf-{key}", task_queue=task_queue)
        await eventually(started(key, 2))
        execution = WorkflowExecution(workflow_id=handle.id)
        await service.reset_activity(ws.ResetActivityRequest(namespace="default", execution=execution, id="a1"))
        p = await pending(client, handle.id)
        assert (p.state, p.attempt) == (PendingActivityState.PENDING_ACTIVITY_STATE_STARTED, 1)
        assert p.last_failure.message == "first attempt fails"  # kept while the attempt runs

        # The running attempt's token (attempt 2) is stale: its next heartbeat is NOT_FOUND, so the
        # SDK stops it; the restarted heartbeat clock then times the attempt out and it runs again
        # as attempt 2 (Temporal 1.32 did the same, to the attempt).
        async def stopped():
            return [e for e in _seen[key] if e[0] == "cancelled"]

        [(_, attempt, details)] = await eventually(stopped)
        assert attempt == 2 and details.not_found and not details.reset

        async def ran_again():
            return _seen[key].count(("start", 2)) == 2

        await eventually(ran_again)
        _finish.add(key)
        assert await handle.result() == "done at attempt 2"


async def test_a_heartbeat_after_a_reset_in_place_answers_activity_reset(client, task_queue):
    key = key_of()
    service = client.workflow_service
    async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=[heartbeating]):
        handle = await client.start_workflow(RunsOneActivity.run, key, id=f"wf-{key}", task_queue=task_queue)
        await eventually(started(key, 1))
        await service.reset_activity(
            ws.ResetActivityRequest(namespace="default", execution=WorkflowExecution(workflow_id=handle.id), id="a1")
        )

        async def stopped():
            return [e for e in _seen[key] if e[0] == "cancelled"]

        [(_, attempt, details)] = await eventually(stopped)
        assert attempt == 1 and details.reset and not details.paused
        await eventually(started(key, 2))
        p = await pending(client, handle.id)
        assert p.last_failure.message == "Unhandled activity cancel error produced by activity reset"
        assert p.last_failure.application_failure_info.type == "ActivityReset"
        _finish.add(key)
        assert await handle.result() == "done at attempt 2"


async def _start_by_hand(client: Client, start_to_close: float = 30.0) -> tuple[str, str]:
    """A run whose activity waits on a queue nobody polls; returns its workflow id and the queue."""
    workflow_id, queue = f"wf-{key_of()}", f"by-hand-{key_of()}"
    await client.start_workflow(
        WaitsForAnActivityNobodyRuns.run, args=[queue, start_to_close], id=workflow_id, task_queue=_WORKFLOW_QUEUE
    )
    return workflow_id, queue


_WORKFLOW_QUEUE = f"wf-queue-{uuid.uuid4().hex[:6]}"


async def _poll(stub, queue: str, timeout: float = 5.0) -> ws.PollActivityTaskQueueResponse:
    return await stub.PollActivityTaskQueue(
        ws.PollActivityTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=queue), identity="by-hand"),
        timeout=timeout,
    )


async def _code_and_message(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), caught.value.details()


async def test_pause_unpause_reset_by_hand_and_their_errors(client, stub):
    async with Worker(client, task_queue=_WORKFLOW_QUEUE, workflows=WORKFLOWS):
        workflow_id, queue = await _start_by_hand(client)
        execution = WorkflowExecution(workflow_id=workflow_id)
        await eventually(lambda: _has_pending(client, workflow_id))

        # Paused while scheduled: no poll gets it.
        await stub.PauseActivity(ws.PauseActivityRequest(namespace="default", execution=execution, id="a1", identity="me"))
        p = await pending(client, workflow_id)
        assert p.state == PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED and p.pause_info.manual.identity == "me"
        assert not (await _poll(stub, queue, timeout=2.0)).task_token
        # Reset keeping the pause changes nothing visible; unpause lets a poll take attempt 1.
        await stub.ResetActivity(ws.ResetActivityRequest(namespace="default", execution=execution, id="a1", keep_paused=True))
        assert (await pending(client, workflow_id)).state == PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED
        await stub.UnpauseActivity(ws.UnpauseActivityRequest(namespace="default", execution=execution, id="a1"))
        task = await _poll(stub, queue)
        assert task.attempt == 1

        # A running attempt: a pause shows as requested and the heartbeat says so.
        await stub.PauseActivity(ws.PauseActivityRequest(namespace="default", execution=execution, id="a1", reason="because"))
        assert (await pending(client, workflow_id)).state == PendingActivityState.PENDING_ACTIVITY_STATE_PAUSE_REQUESTED
        beat = await stub.RecordActivityTaskHeartbeat(
            ws.RecordActivityTaskHeartbeatRequest(namespace="default", task_token=task.task_token)
        )
        assert (beat.cancel_requested, beat.activity_paused, beat.activity_reset) == (False, True, False)
        # It fails: the retry (attempt 2) waits, paused.
        await stub.RespondActivityTaskFailed(
            ws.RespondActivityTaskFailedRequest(
                namespace="default", task_token=task.task_token, failure=Failure(message="boom", application_failure_info=ApplicationFailureInfo())
            )
        )
        p = await pending(client, workflow_id)
        assert (p.state, p.attempt, p.last_failure.message) == (PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED, 2, "boom")
        # Unpausing with reset_attempts hands out attempt 1 again at once.
        await stub.UnpauseActivity(
            ws.UnpauseActivityRequest(namespace="default", execution=execution, id="a1", reset_attempts=True, reset_heartbeat=True)
        )
        p = await pending(client, workflow_id)
        assert (p.state, p.attempt, p.HasField("last_failure")) == (PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED, 1, False)
        task = await _poll(stub, queue)
        assert task.attempt == 1
        # Unpausing an activity that is not paused is fine and changes nothing.
        await stub.UnpauseActivity(ws.UnpauseActivityRequest(namespace="default", execution=execution, id="a1"))

        errors = [
            (stub.PauseActivity(ws.PauseActivityRequest(namespace="default", execution=execution, id="nope")),
             grpc.StatusCode.NOT_FOUND, "Can't find pending activity with such ID. Invalid activityID or activity already completed"),
            (stub.PauseActivity(ws.PauseActivityRequest(namespace="default", execution=execution, type="nope")),
             grpc.StatusCode.NOT_FOUND, "Can't find pending activity with such ID. Invalid activityID or activity already completed"),
            (stub.PauseActivity(ws.PauseActivityRequest(namespace="default", execution=execution)),
             grpc.StatusCode.INVALID_ARGUMENT, "Either Activity.Id or Activity.Type should be set on request."),
            (stub.PauseActivity(ws.PauseActivityRequest(namespace="default", id="a1")),
             grpc.StatusCode.INVALID_ARGUMENT, "WorkflowId is not set on request."),
            (stub.PauseActivity(ws.PauseActivityRequest(namespace="default", execution=WorkflowExecution(workflow_id="nope"), id="a1")),
             grpc.StatusCode.NOT_FOUND, "workflow not found for ID: nope"),
            (stub.PauseActivity(ws.PauseActivityRequest(namespace="default", execution=WorkflowExecution(workflow_id=workflow_id, run_id="xyz"), id="a1")),
             grpc.StatusCode.INVALID_ARGUMENT, "RunId is not valid UUID."),
            (stub.UnpauseActivity(ws.UnpauseActivityRequest(namespace="default", execution=execution, unpause_all=True)),
             grpc.StatusCode.NOT_FOUND, "Can't find pending activity with such ID. Invalid activityID or activity already completed"),
            (stub.PauseActivity(ws.PauseActivityRequest(namespace="default", execution=execution, id="a1", identity="i" * 1001)),
             grpc.StatusCode.INVALID_ARGUMENT, "Identity exceeds length limit of 1000."),
            (stub.ResetActivity(ws.ResetActivityRequest(namespace="default", execution=execution)),
             grpc.StatusCode.INVALID_ARGUMENT, "Either Activity.Id or Activity.Type should be set on request."),
            (stub.PauseActivityExecution(ws.PauseActivityExecutionRequest(namespace="default", workflow_id=workflow_id)),
             grpc.StatusCode.INVALID_ARGUMENT, "activity ID is required"),
            (stub.PauseActivityExecution(ws.PauseActivityExecutionRequest(namespace="default", activity_id="a1")),
             grpc.StatusCode.NOT_FOUND, "activity not found for ID: a1"),
        ]
        for call, code, message in errors:
            assert await _code_and_message(call) == (code, message)
        # The reset above left this attempt's token valid (it was attempt 1 already): it completes.
        await stub.RespondActivityTaskCompleted(
            ws.RespondActivityTaskCompletedRequest(namespace="default", task_token=task.task_token)
        )
        assert await client.get_workflow_handle(workflow_id).result() is None
        code, message = await _code_and_message(
            stub.PauseActivity(ws.PauseActivityRequest(namespace="default", execution=execution, id="a1"))
        )
        assert (code, message) == (grpc.StatusCode.NOT_FOUND, "workflow execution already completed")


async def _has_pending(client: Client, workflow_id: str) -> bool:
    try:
        await pending(client, workflow_id)
    except ValueError:
        return False
    return True


async def test_update_activity_options_by_id_and_type_then_restore(client, stub):
    async with Worker(client, task_queue=_WORKFLOW_QUEUE, workflows=WORKFLOWS):
        workflow_id, queue = await _start_by_hand(client)
        execution = WorkflowExecution(workflow_id=workflow_id)
        await eventually(lambda: _has_pending(client, workflow_id))
        updated = await stub.UpdateActivityOptions(
            ws.UpdateActivityOptionsRequest(
                namespace="default",
                execution=execution,
                id="a1",
                activity_options=ActivityOptions(
                    start_to_close_timeout=Duration(seconds=45), retry_policy=RetryPolicyProto(maximum_attempts=7)
                ),
                update_mask=FieldMask(paths=["start_to_close_timeout", "retry_policy.maximum_attempts"]),
            )
        )
        options = updated.activity_options
        assert (options.task_queue.name, options.start_to_close_timeout.seconds) == (queue, 45)
        assert (options.retry_policy.maximum_attempts, options.retry_policy.initial_interval.seconds) == (7, 20)
        by_type = await stub.UpdateActivityOptions(
            ws.UpdateActivityOptionsRequest(
                namespace="default",
                execution=execution,
                type="by_hand",
                activity_options=ActivityOptions(heartbeat_timeout=Duration(seconds=20)),
                update_mask=FieldMask(paths=["heartbeat_timeout"]),
            )
        )
        assert by_type.activity_options.heartbeat_timeout.seconds == 20
        p = await pending(client, workflow_id)
        assert (p.activity_options.start_to_close_timeout.seconds, p.activity_options.heartbeat_timeout.seconds) == (45, 20)
        assert p.activity_options.task_queue.normal_name == queue and p.maximum_attempts == 7
        # The attempt a worker takes runs with the new options.
        task = await _poll(stub, queue)
        assert (task.start_to_close_timeout.seconds, task.heartbeat_timeout.seconds, task.retry_policy.maximum_attempts) == (45, 20, 7)
        restored = await stub.UpdateActivityOptions(
            ws.UpdateActivityOptionsRequest(namespace="default", execution=execution, id="a1", restore_original=True)
        )
        assert (restored.activity_options.start_to_close_timeout.seconds, restored.activity_options.heartbeat_timeout.seconds) == (30, 0)
        errors = [
            (ws.UpdateActivityOptionsRequest(namespace="default", execution=execution, id="a1",
                                             activity_options=ActivityOptions(start_to_close_timeout=Duration(seconds=45))),
             "UpdateMask is not provided"),
            (ws.UpdateActivityOptionsRequest(namespace="default", execution=execution, id="a1",
                                             activity_options=ActivityOptions(start_to_close_timeout=Duration(seconds=-5)),
                                             update_mask=FieldMask(paths=["start_to_close_timeout"])),
             "invalid StartToCloseTimeout: negative duration"),
            (ws.UpdateActivityOptionsRequest(namespace="default", execution=execution, id="a1",
                                             activity_options=ActivityOptions(retry_policy=RetryPolicyProto(backoff_coefficient=0.5)),
                                             update_mask=FieldMask(paths=["retry_policy.backoff_coefficient"])),
             "BackoffCoefficient cannot be less than 1 on retry policy."),
        ]
        for request, message in errors:
            assert await _code_and_message(stub.UpdateActivityOptions(request)) == (grpc.StatusCode.INVALID_ARGUMENT, message)
        assert await _code_and_message(
            stub.UpdateActivityExecutionOptions(
                ws.UpdateActivityExecutionOptionsRequest(namespace="default", workflow_id=workflow_id, activity_id="a1")
            )
        ) == (grpc.StatusCode.INVALID_ARGUMENT, "ActivityOptions are not provided")
        await client.get_workflow_handle(workflow_id).terminate()


async def test_a_heartbeat_after_a_server_side_timeout_is_not_found(client, stub):
    async with Worker(client, task_queue=_WORKFLOW_QUEUE, workflows=WORKFLOWS):
        workflow_id, queue = await _start_by_hand(client, start_to_close=1.0)
        task = await _poll(stub, queue)
        await asyncio.sleep(1.8)
        message = "invalid activityID or activity already timed out or invoking workflow is completed"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RecordActivityTaskHeartbeat(
                ws.RecordActivityTaskHeartbeatRequest(namespace="default", task_token=task.task_token)
            )
        assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.NOT_FOUND, message)
        detail = _status_detail(caught.value)
        assert detail.Is(NotFoundFailure.DESCRIPTOR)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RespondActivityTaskCompleted(
                ws.RespondActivityTaskCompletedRequest(namespace="default", task_token=task.task_token)
            )
        assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.NOT_FOUND, message)
        await client.get_workflow_handle(workflow_id).terminate()


def _status_detail(err: grpc.aio.AioRpcError):
    from google.rpc import status_pb2

    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            [detail] = status_pb2.Status.FromString(value).details
            return detail
    raise AssertionError("no status details")


async def test_temporal_cli_activity_commands(client, odin_server):
    cli = temporal_cli()
    address = f"127.0.0.1:{odin_server.endpoints.grpc_port}"

    def run(*args: str) -> str:
        done = subprocess.run([cli, "--address", address, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    async def cli_run(*args: str) -> str:
        return await asyncio.to_thread(run, *args)

    async with Worker(client, task_queue=_WORKFLOW_QUEUE, workflows=WORKFLOWS):
        workflow_id, _ = await _start_by_hand(client)
        await eventually(lambda: _has_pending(client, workflow_id))
        await cli_run("activity", "pause", "-w", workflow_id, "-a", "a1", "--reason", "from the CLI")
        described = json.loads(await cli_run("workflow", "describe", "-w", workflow_id, "-o", "json"))
        [activity_json] = described["pendingActivities"]
        assert activity_json["state"] == "PENDING_ACTIVITY_STATE_PAUSED"
        assert activity_json["pauseInfo"]["manual"]["reason"] == "from the CLI"
        out = await cli_run("activity", "update-options", "-w", workflow_id, "-a", "a1", "--start-to-close-timeout", "45s")
        assert "StartToCloseTimeout     45s" in out
        await cli_run("activity", "unpause", "-w", workflow_id, "-a", "a1")
        out = await cli_run("activity", "reset", "-w", workflow_id, "-a", "a1", "--keep-paused")
        assert "KeepPaused      true" in out
        assert (await pending(client, workflow_id)).state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
        await client.get_workflow_handle(workflow_id).terminate()


async def test_heartbeats_of_a_not_started_activity_and_of_a_closed_run_are_not_found(client, stub):
    async with Worker(client, task_queue=_WORKFLOW_QUEUE, workflows=WORKFLOWS):
        workflow_id, queue = await _start_by_hand(client)
        await eventually(lambda: _has_pending(client, workflow_id))
        by_id = ws.RecordActivityTaskHeartbeatByIdRequest(namespace="default", workflow_id=workflow_id, activity_id="a1")
        assert await _code_and_message(stub.RecordActivityTaskHeartbeatById(by_id)) == (
            grpc.StatusCode.NOT_FOUND,
            "cannot find pending activity with ActivityID a1, check workflow execution history for more details",
        )
        task = await _poll(stub, queue)
        await stub.PauseActivity(ws.PauseActivityRequest(namespace="default", execution=WorkflowExecution(workflow_id=workflow_id), id="a1"))
        beat = await stub.RecordActivityTaskHeartbeatById(by_id)
        assert (beat.cancel_requested, beat.activity_paused, beat.activity_reset) == (False, True, False)
        await client.get_workflow_handle(workflow_id).terminate()
        closed = (grpc.StatusCode.NOT_FOUND, "workflow execution already completed")
        assert await _code_and_message(stub.RecordActivityTaskHeartbeatById(by_id)) == closed
        assert await _code_and_message(
            stub.RecordActivityTaskHeartbeat(ws.RecordActivityTaskHeartbeatRequest(namespace="default", task_token=task.task_token))
        ) == closed


async def test_runs_with_paused_activities_are_found_by_temporal_pause_info(client, stub):
    async with Worker(client, task_queue=_WORKFLOW_QUEUE, workflows=WORKFLOWS):
        workflow_id, _ = await _start_by_hand(client)
        await eventually(lambda: _has_pending(client, workflow_id))
        execution = WorkflowExecution(workflow_id=workflow_id)
        query = f"WorkflowId = '{workflow_id}' AND TemporalPauseInfo = 'property:activityType=by_hand'"

        async def found() -> list[str]:
            return [w.id async for w in client.list_workflows(query)]

        assert await found() == []
        await stub.PauseActivity(ws.PauseActivityRequest(namespace="default", execution=execution, id="a1"))
        assert await found() == [workflow_id]
        described = await client.get_workflow_handle(workflow_id).describe()
        assert described.search_attributes["TemporalPauseInfo"] == ["property:activityType=by_hand"]
        await stub.UnpauseActivity(ws.UnpauseActivityRequest(namespace="default", execution=execution, id="a1"))
        assert await found() == []
        await client.get_workflow_handle(workflow_id).terminate()
