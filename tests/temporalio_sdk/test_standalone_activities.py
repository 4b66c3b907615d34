"""Standalone activities (started and awaited by a client, no workflow) through the temporalio
SDK's ``start_activity`` / ``execute_activity`` / ``get_activity_handle`` / ``list_activities`` /
``count_activities`` and an ordinary worker, on SQLite and PostgreSQL.

The literals (statuses, messages, what the worker's activity sees) are what Temporal 1.32
(``temporal server start-dev --dynamic-config-value activity.enableStandalone=true``) answered."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from datetime import timedelta

import grpc
import pytest
from temporalio import activity
from temporalio.api.enums.v1 import ActivityExecutionStatus as Status
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from odin.config import Settings
from odin.server import OdinServer
from tests.support.services import temporal_cli

# key -> what the activity saw: (attempt, activity id, run id, workflow id)
_seen: dict[str, list[tuple]] = {}
_release: set[str] = set()
_cancelled: dict[str, int] = {}
FAST_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_interval=timedelta(milliseconds=100))


@activity.defn
async def greet(name: str) -> str:
    info = activity.info()
    _seen.setdefault(name, []).append((info.attempt, info.activity_id, info.activity_run_id, info.workflow_id))
    return f"Hello, {name}!"


@activity.defn
async def flaky(key: str) -> str:
    """Fails its first two attempts, hangs on attempt 3 of keys starting with "hang", else succeeds."""
    attempt = activity.info().attempt
    _seen.setdefault(key, []).append((attempt,))
    if attempt < 3:
        raise RuntimeError(f"attempt {attempt} fails")
    return f"{key} done at attempt {attempt}"


@activity.defn
async def slow_first(key: str) -> str:
    """Its first attempt outlives the start-to-close timeout; the second returns."""
    attempt = activity.info().attempt
    _seen.setdefault(key, []).append((attempt,))
    if attempt == 1:
        await asyncio.sleep(5)
    return f"attempt {attempt}"


@activity.defn
async def beating(key: str) -> str:
    """Heartbeats until released or cancelled."""
    info = activity.info()
    _seen.setdefault(key, []).append((info.attempt,))
    try:
        while key not in _release:
            activity.heartbeat("tick")
            await asyncio.sleep(0.1)
    except asyncio.CancelledError:
        _cancelled[key] = info.attempt
        raise
    return "released"


ACTIVITIES = [greet, flaky, slow_first, beating]


async def _info(client: Client, activity_id: str):
    """The activity's description with its last failure and heartbeat details (temporalio 1.31's
    ``describe()`` cannot ask for them, so the request is sent as such)."""
    response = await client.workflow_service.describe_activity_execution(
        ws.DescribeActivityExecutionRequest(
            namespace=client.namespace, activity_id=activity_id, include_last_failure=True, include_heartbeat_details=True
        )
    )
    return response.info


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_start_result_describe(client: Client, task_queue):
    name = _id("ann")
    async with Worker(client, task_queue=task_queue, activities=ACTIVITIES):
        handle = await client.start_activity(
            greet, name, id=_id("greet"), task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10)
        )
        assert handle.run_id
        assert await handle.result() == f"Hello, {name}!"
        # Executing with the same id again: allowed, the first run is closed (ALLOW_DUPLICATE).
        assert await client.execute_activity(
            greet, name, id=handle.id, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10)
        ) == f"Hello, {name}!"
    [first, _] = _seen[name]
    assert first == (1, handle.id, handle.run_id, None)  # the worker sees no workflow
    desc = await client.get_activity_handle(handle.id).describe()
    assert desc.status.name == "COMPLETED"
    assert desc.raw_info.attempt == 1
    assert desc.raw_info.activity_type.name == "greet"
    assert desc.raw_info.task_queue == task_queue
    assert desc.raw_info.run_id != handle.run_id  # the second run
    assert desc.raw_info.HasField("close_time") and desc.raw_info.HasField("execution_duration")


async def test_failures_are_retried_until_success(client: Client, task_queue):
    key = _id("flaky")
    async with Worker(client, task_queue=task_queue, activities=ACTIVITIES):
        result = await client.execute_activity(
            flaky, key, id=key, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10), retry_policy=FAST_RETRY
        )
    assert result == f"{key} done at attempt 3"
    assert [s[0] for s in _seen[key]] == [1, 2, 3]
    info = await _info(client, key)
    assert info.attempt == 3
    assert info.last_failure.message == "attempt 2 fails"


async def test_failure_after_the_last_attempt(client: Client, task_queue):
    from temporalio.client import ActivityFailureError

    key = _id("fails")
    async with Worker(client, task_queue=task_queue, activities=ACTIVITIES):
        handle = await client.start_activity(
            flaky,
            key,
            id=key,
            task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=2),
        )
        with pytest.raises(ActivityFailureError) as failed:
            await handle.result()
    assert "attempt 2 fails" in str(failed.value.cause)
    desc = await handle.describe()
    assert desc.status.name == "FAILED"


async def test_start_to_close_timeout_retries(client: Client, task_queue):
    key = _id("slow")
    async with Worker(client, task_queue=task_queue, activities=ACTIVITIES):
        result = await client.execute_activity(
            slow_first, key, id=key, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=1), retry_policy=FAST_RETRY
        )
    assert result == "attempt 2"
    info = await _info(client, key)
    assert info.last_failure.message == "activity StartToClose timeout"
    assert info.attempt == 2


async def test_schedule_timeouts_time_the_activity_out(client: Client, task_queue):
    """Nobody polls the queue: a schedule-to-close timeout (which also bounds schedule-to-start)
    times it out, as Temporal does, with a ScheduleToStart timeout failure."""
    from temporalio.client import ActivityFailureError
    from temporalio.exceptions import TimeoutError as ActivityTimeoutError

    key = _id("timeout")
    handle = await client.start_activity(
        greet, "x", id=key, task_queue=task_queue + "-nobody", schedule_to_close_timeout=timedelta(seconds=1)
    )
    with pytest.raises(ActivityFailureError) as failed:
        await handle.result()
    assert isinstance(failed.value.cause, ActivityTimeoutError)
    assert str(failed.value.cause) == "activity ScheduleToStart timeout"
    desc = await handle.describe()
    assert desc.status.name == "TIMED_OUT"
    assert desc.raw_info.schedule_to_start_timeout.seconds == 1


async def test_id_conflict_is_refused_and_use_existing_returns_the_run(client: Client, task_queue):
    from temporalio.common import ActivityIDConflictPolicy, ActivityIDReusePolicy

    key = _id("conflict")
    first = await client.start_activity(greet, "x", id=key, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10))
    with pytest.raises(ActivityAlreadyStartedError) as refused:
        await client.start_activity(greet, "x", id=key, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10))
    assert refused.value.run_id == first.run_id
    existing = await client.start_activity(
        greet, "x", id=key, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10),
        id_conflict_policy=ActivityIDConflictPolicy.USE_EXISTING,
    )
    assert existing.run_id == first.run_id
    await first.terminate(reason="done here")
    with pytest.raises(ActivityAlreadyStartedError):
        await client.start_activity(
            greet, "x", id=key, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10),
            id_reuse_policy=ActivityIDReusePolicy.REJECT_DUPLICATE,
        )


async def test_cancel_reaches_the_worker(client: Client, task_queue):
    from temporalio.client import ActivityFailureError

    key = _id("cancel")
    async with Worker(client, task_queue=task_queue, activities=ACTIVITIES):
        handle = await client.start_activity(
            beating, key, id=key, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=1),  # the worker sends heartbeats at most every 0.8 s
        )
        while key not in _seen:
            await asyncio.sleep(0.05)
        desc = await handle.describe()
        assert desc.raw_info.run_state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        for _ in range(100):  # the worker's first heartbeat is sent at once
            info = await _info(client, key)
            if info.heartbeat_details.payloads:
                break
            await asyncio.sleep(0.05)
        assert await client.data_converter.decode(info.heartbeat_details.payloads) == ["tick"]
        assert info.HasField("last_heartbeat_time") and info.total_heartbeat_count >= 1
        await handle.cancel(reason="no longer needed")
        with pytest.raises(ActivityFailureError):
            await handle.result()
    assert _cancelled[key] == 1
    desc = await handle.describe()
    assert desc.status.name == "CANCELED"
    assert desc.raw_info.canceled_reason == "no longer needed"


async def test_terminate_and_delete(client: Client, task_queue, stub):
    key = _id("term")
    handle = await client.start_activity(beating, key, id=key, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=30))
    await handle.terminate(reason="stop it")
    desc = await handle.describe()
    assert desc.status.name == "TERMINATED"
    with pytest.raises(RPCError) as closed:
        await handle.terminate(reason="again")
    assert closed.value.status == RPCStatusCode.FAILED_PRECONDITION
    await stub.DeleteActivityExecution(ws.DeleteActivityExecutionRequest(namespace="default", activity_id=key))
    with pytest.raises(RPCError) as gone:
        await handle.describe()
    assert gone.value.status == RPCStatusCode.NOT_FOUND


async def test_list_and_count_by_query(client: Client, task_queue):
    queue = task_queue
    keys = [_id("listed") for _ in range(3)]
    for key in keys:
        await client.start_activity(greet, "x", id=key, task_queue=queue, start_to_close_timeout=timedelta(seconds=10))
    await client.get_activity_handle(keys[0]).terminate(reason="one fewer")
    listed = [a async for a in client.list_activities(f"TaskQueue = '{queue}'")]
    assert sorted(a.activity_id for a in listed) == sorted(keys)
    running = [a async for a in client.list_activities(f"TaskQueue = '{queue}' AND ExecutionStatus = 'Running'")]
    assert sorted(a.activity_id for a in running) == sorted(keys[1:])
    count = await client.count_activities(f"TaskQueue = '{queue}'")
    assert count.count == 3
    grouped = await client.count_activities(f"TaskQueue = '{queue}' GROUP BY ExecutionStatus")
    assert {g.group_values[0]: g.count for g in grouped.groups} == {"Running": 2, "Terminated": 1}
    with pytest.raises(RPCError) as bad:
        await client.count_activities("NoSuchAttribute = 'x'")
    assert bad.value.status == RPCStatusCode.INVALID_ARGUMENT


async def test_bad_requests_change_nothing(stub, task_queue):
    base = dict(namespace="default", activity_type={"name": "greet"}, task_queue={"name": task_queue})
    key = _id("bad")
    cases = [
        (
            dict(activity_id=key),
            "a valid StartToCloseTimeout or ScheduleToCloseTimeout must be set on the activity. "
            f"ActivityId={key} ActivityType=greet",
        ),
        (dict(start_to_close_timeout={"seconds": 5}), "activityId is not set"),
        (dict(activity_id=key, start_to_close_timeout={"seconds": -5}), "invalid StartToCloseTimeout: negative duration"),
        (dict(activity_id=key, start_to_close_timeout={"seconds": 5}, activity_type={"name": ""}), "activityType is not set"),
        (dict(activity_id=key, start_to_close_timeout={"seconds": 5}, task_queue={"name": ""}), "missing task queue name"),
    ]
    for fields, message in cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.StartActivityExecution(ws.StartActivityExecutionRequest(**{**base, **fields}))
        assert (refused.value.code(), refused.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, message)
    for call in (
        stub.DescribeActivityExecution(ws.DescribeActivityExecutionRequest(namespace="default", activity_id=key)),
        stub.PollActivityExecution(ws.PollActivityExecutionRequest(namespace="default", activity_id=key)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await call
        assert (missing.value.code(), missing.value.details()) == (grpc.StatusCode.NOT_FOUND, f"activity not found for ID: {key}")
    with pytest.raises(grpc.aio.AioRpcError) as bad_run:
        await stub.DescribeActivityExecution(ws.DescribeActivityExecutionRequest(namespace="default", activity_id=key, run_id="x"))
    assert bad_run.value.details() == "invalid run id: must be a valid UUID"
    with pytest.raises(grpc.aio.AioRpcError) as bad_query:
        await stub.ListActivityExecutions(ws.ListActivityExecutionsRequest(namespace="default", query="Nope = 'x'"))
    assert bad_query.value.details() == "invalid query: invalid search attribute: Nope"
    with pytest.raises(grpc.aio.AioRpcError) as bad_group:
        await stub.CountActivityExecutions(ws.CountActivityExecutionsRequest(namespace="default", query="GROUP BY ActivityType"))
    assert bad_group.value.details() == (
        "invalid query: operation is not supported: 'GROUP BY' clause is not supported for search attribute ActivityType"
    )


async def test_closed_activities_refuse_cancel_and_terminate(stub, client: Client, task_queue):
    key = _id("closed")
    handle = await client.start_activity(greet, "x", id=key, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10))
    await stub.TerminateActivityExecution(
        ws.TerminateActivityExecutionRequest(namespace="default", activity_id=key, reason="stop", request_id="term-1")
    )
    # The same request again is answered as done; another one is refused.
    await stub.TerminateActivityExecution(
        ws.TerminateActivityExecutionRequest(namespace="default", activity_id=key, reason="stop", request_id="term-1")
    )
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await stub.TerminateActivityExecution(ws.TerminateActivityExecutionRequest(namespace="default", activity_id=key))
    assert (again.value.code(), again.value.details()) == (
        grpc.StatusCode.FAILED_PRECONDITION, "already terminated with request ID term-1"
    )
    with pytest.raises(grpc.aio.AioRpcError) as cancel:
        await stub.RequestCancelActivityExecution(ws.RequestCancelActivityExecutionRequest(namespace="default", activity_id=key))
    assert cancel.value.details() == "activity is in terminal state Terminated"
    polled = await stub.PollActivityExecution(ws.PollActivityExecutionRequest(namespace="default", activity_id=key))
    assert polled.run_id == handle.run_id
    assert polled.outcome.failure.message == "stop"
    assert polled.outcome.failure.HasField("terminated_failure_info")


async def test_activity_survives_a_server_restart(database_url, task_queue):
    """An attempt taken by a worker (by hand, with a raw poll) when the server stops: after the
    restart its start-to-close timeout still fires, the next attempt reaches a worker of the new
    server, and the old attempt's token is refused."""
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1.service_pb2_grpc import WorkflowServiceStub

    key = _id("restart")
    server = OdinServer(Settings(database_url=database_url, grpc_port=0))
    await server.start()
    try:
        client = await Client.connect(f"127.0.0.1:{server.endpoints.grpc_port}", namespace="default")
        handle = await client.start_activity(
            slow_first, key, id=key, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=1), retry_policy=FAST_RETRY
        )
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.endpoints.grpc_port}")
        taken = await WorkflowServiceStub(channel).PollActivityTaskQueue(
            ws.PollActivityTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=task_queue), identity="by-hand"),
            timeout=10,
        )
        await channel.close()
        assert (taken.activity_id, taken.activity_run_id, taken.attempt) == (key, handle.run_id, 1)
    finally:
        await server.stop(grace=0.5)
    server = OdinServer(Settings(database_url=database_url, grpc_port=0))
    await server.start()
    try:
        client = await Client.connect(f"127.0.0.1:{server.endpoints.grpc_port}", namespace="default")
        async with Worker(client, task_queue=task_queue, activities=ACTIVITIES):
            assert await client.get_activity_handle(key, run_id=handle.run_id).result() == "attempt 2"
        with pytest.raises(RPCError) as late:
            await client.workflow_service.respond_activity_task_completed(
                ws.RespondActivityTaskCompletedRequest(namespace="default", task_token=taken.task_token)
            )
        assert late.value.status == RPCStatusCode.NOT_FOUND
        info = await _info(client, key)
        assert (info.attempt, info.last_failure.message) == (2, "activity StartToClose timeout")
    finally:
        await server.stop(grace=0.5)


async def test_pause_unpause_and_completion_by_id(stub, client: Client, task_queue):
    """The ``...ActivityExecution`` operator calls and the by-id completion calls without a
    workflow id address a standalone activity (``temporal activity pause --activity-id X``)."""
    from temporalio.api.common.v1 import Payloads

    key = _id("paused")
    handle = await client.start_activity(greet, key, id=key, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10))
    await stub.PauseActivityExecution(ws.PauseActivityExecutionRequest(namespace="default", activity_id=key, reason="wait"))
    info = await _info(client, key)
    assert (info.status, info.run_state) == (Status.ACTIVITY_EXECUTION_STATUS_PAUSED, PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED)
    # Listed as paused, as Temporal lists it (by request: temporalio 1.31's list iterator has no
    # PAUSED status and fails on one).
    listed = await client.workflow_service.list_activity_executions(
        ws.ListActivityExecutionsRequest(namespace="default", query=f"ActivityId = '{key}' AND ExecutionStatus = 'Paused'")
    )
    assert [(a.activity_id, a.status) for a in listed.executions] == [(key, Status.ACTIVITY_EXECUTION_STATUS_PAUSED)]
    # New options and a reset reach it too (as `temporal activity update-options / reset` send them).
    from google.protobuf.field_mask_pb2 import FieldMask
    from temporalio.api.activity.v1 import ActivityOptions

    updated = await stub.UpdateActivityExecutionOptions(
        ws.UpdateActivityExecutionOptionsRequest(
            namespace="default", activity_id=key, activity_options=ActivityOptions(start_to_close_timeout={"seconds": 7}),
            update_mask=FieldMask(paths=["start_to_close_timeout"]),
        )
    )
    assert updated.activity_options.start_to_close_timeout.seconds == 7
    await stub.ResetActivityExecution(ws.ResetActivityExecutionRequest(namespace="default", activity_id=key, keep_paused=True))
    info = await _info(client, key)
    assert (info.start_to_close_timeout.seconds, info.attempt, info.status) == (7, 1, Status.ACTIVITY_EXECUTION_STATUS_PAUSED)
    async with Worker(client, task_queue=task_queue, activities=ACTIVITIES):
        await asyncio.sleep(0.3)
        assert key not in _seen  # held back while paused
        await stub.UnpauseActivityExecution(ws.UnpauseActivityExecutionRequest(namespace="default", activity_id=key))
        assert await handle.result() == f"Hello, {key}!"
    # Completed by id, with no worker: what async completion (``temporal activity complete``) does.
    other = _id("by-id")
    by_id = await client.start_activity(greet, "x", id=other, task_queue=task_queue + "-none", start_to_close_timeout=timedelta(seconds=10))
    result = await client.data_converter.encode(["done by id"])
    await stub.RespondActivityTaskCompletedById(
        ws.RespondActivityTaskCompletedByIdRequest(namespace="default", activity_id=other, result=Payloads(payloads=result))
    )
    assert await by_id.result() == "done by id"
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await stub.PauseActivityExecution(ws.PauseActivityExecutionRequest(namespace="default", activity_id="nope"))
    assert (gone.value.code(), gone.value.details()) == (grpc.StatusCode.NOT_FOUND, "activity not found for ID: nope")


async def test_temporal_cli_standalone_activity_commands(odin_server, task_queue):
    """``temporal activity start / describe / list / count / cancel / result / terminate / delete``
    (the CLI's outputs are the ones it printed against Temporal 1.32)."""
    cli = temporal_cli()
    address = f"127.0.0.1:{odin_server.endpoints.grpc_port}"
    key = _id("cli")

    def run(*args: str, ok: bool = True) -> str:
        done = subprocess.run([cli, "--address", address, "activity", *args], capture_output=True, text=True, timeout=60)
        assert (done.returncode == 0) == ok, done.stdout + done.stderr
        return done.stdout + done.stderr

    def session() -> None:
        run("start", "--activity-id", key, "--type", "greet", "--task-queue", task_queue, "--start-to-close-timeout", "60s", "--input", '"x"')
        described = json.loads(run("describe", "--activity-id", key, "-o", "json"))
        assert (described["info"]["status"], described["info"]["runState"]) == (
            "ACTIVITY_EXECUTION_STATUS_RUNNING", "PENDING_ACTIVITY_STATE_SCHEDULED"
        )
        assert key in run("list", "--query", f"ActivityId = '{key}'")
        assert "Total: 1" in run("count", "--query", f"ActivityId = '{key}'")
        assert "Cancellation requested" in run("cancel", "--activity-id", key, "--reason", "from the CLI")
        assert "Message: Activity canceled" in run("result", "--activity-id", key, ok=False)
        assert "invalid transition from Canceled" in run("terminate", "--activity-id", key, "--reason", "r", ok=False)
        run("delete", "--activity-id", key, "--yes")
        assert f"activity not found for ID: {key}" in run("describe", "--activity-id", key, ok=False)

    await asyncio.to_thread(session)


async def test_search_attributes_and_start_delay(client: Client, task_queue):
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
    from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

    name = f"Tier{uuid.uuid4().hex[:6]}"
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace="default", search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD})
    )
    key = _id("tiered")
    await client.start_activity(
        greet, "x", id=key, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10),
        search_attributes=TypedSearchAttributes([SearchAttributePair(SearchAttributeKey.for_keyword(name), "gold")]),
        start_delay=timedelta(seconds=30),
    )
    listed = await client.workflow_service.list_activity_executions(
        ws.ListActivityExecutionsRequest(namespace="default", query=f"{name} = 'gold'")
    )
    assert [(e.activity_id, list(e.search_attributes.indexed_fields)) for e in listed.executions] == [(key, [name])]
    info = await _info(client, key)
    assert (info.run_state, info.start_delay.seconds) == (PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED, 30)
    assert info.execution_time.seconds - info.schedule_time.seconds in (29, 30)
    assert info.HasField("next_attempt_schedule_time")
    async with Worker(client, task_queue=task_queue, activities=ACTIVITIES):
        await asyncio.sleep(0.3)
    assert "x" not in _seen or all(s[1] != key for s in _seen["x"])  # held back by the start delay
    with pytest.raises(RPCError) as unknown:
        await client.start_activity(
            greet, "x", id=_id("untyped"), task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10),
            search_attributes=TypedSearchAttributes([SearchAttributePair(SearchAttributeKey.for_keyword("NoSuchAttr"), "x")]),
        )
    assert unknown.value.status == RPCStatusCode.INVALID_ARGUMENT
