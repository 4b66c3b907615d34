"""Timeouts and cancellation through the temporalio SDK (issue 3 items 4 and 6)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import grpc
import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.api.enums.v1 import TimeoutType as PbTimeoutType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.api.workflowservice.v1 import service_pb2_grpc
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, TimeoutError
from temporalio.worker import Worker

from tests.support.replay import assert_replays

_seen: dict[str, list] = {}


def _names(history) -> list[str]:
    return [EventType.Name(e.event_type)[len("EVENT_TYPE_") :] for e in history.events]


# -- activities ---------------------------------------------------------------------------------


@activity.defn
async def slow_with_progress(key: str) -> str:
    info = activity.info()
    _seen.setdefault(key, []).append(("attempt", info.attempt, tuple(info.heartbeat_details)))
    if info.attempt == 1:
        activity.heartbeat(f"progress-of-{key}")
        await asyncio.sleep(10)  # longer than start-to-close: this attempt times out
    return f"attempt {info.attempt} resumed from {info.heartbeat_details[0] if info.heartbeat_details else None}"


@activity.defn
async def beats_then_stops(key: str) -> str:
    activity.heartbeat("last-words")
    await asyncio.sleep(10)
    return "unreachable"


@activity.defn
async def sleeps(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


@activity.defn
async def heartbeat_until_cancelled(key: str) -> str:
    try:
        for _ in range(100):
            activity.heartbeat()
            await asyncio.sleep(0.1)
    except asyncio.CancelledError:
        _seen.setdefault(key, []).append("activity saw cancellation")
        raise
    return "not cancelled"


@activity.defn
async def cleanup(key: str) -> str:
    _seen.setdefault(key, []).append("cleanup ran")
    return "cleaned"


# -- workflows ----------------------------------------------------------------------------------


@workflow.defn
class Sleeper:
    @workflow.run
    async def run(self, seconds: float) -> str:
        await workflow.sleep(seconds)
        return "woke"


@workflow.defn
class ActivityTimeouts:
    @workflow.run
    async def run(self, kind: str, key: str) -> str:
        try:
            if kind == "schedule_to_start":
                return await workflow.execute_activity(
                    sleeps,
                    0.1,
                    task_queue=f"nobody-polls-{key}",
                    schedule_to_start_timeout=timedelta(seconds=1),
                    start_to_close_timeout=timedelta(seconds=5),
                )
            if kind == "start_to_close":
                return await workflow.execute_activity(
                    slow_with_progress,
                    key,
                    start_to_close_timeout=timedelta(seconds=1),
                    retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=2),
                )
            if kind == "schedule_to_close":
                return await workflow.execute_activity(
                    sleeps, 10.0, schedule_to_close_timeout=timedelta(seconds=1)
                )
            if kind == "heartbeat":
                return await workflow.execute_activity(
                    beats_then_stops,
                    key,
                    start_to_close_timeout=timedelta(seconds=30),
                    heartbeat_timeout=timedelta(seconds=1),
                    retry_policy=RetryPolicy(maximum_attempts=1),
                )
        except ActivityError as err:
            cause = err.cause
            assert isinstance(cause, TimeoutError)
            details = list(cause.last_heartbeat_details)
            return f"{cause.type.name} details={details}"
        raise RuntimeError(kind)


@workflow.defn
class CancelActivity:
    @workflow.run
    async def run(self, key: str, cancellation_type: int) -> str:
        handle = workflow.start_activity(
            heartbeat_until_cancelled,
            key,
            start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=2),
            cancellation_type=workflow.ActivityCancellationType(cancellation_type),
        )
        await workflow.sleep(0.5)
        handle.cancel()
        try:
            await handle
        except ActivityError as err:
            outcome = type(err.cause).__name__
        else:
            outcome = "completed"
        # Stay open long enough for the worker to see the cancellation where it is delivered.
        await workflow.sleep(1.5)
        return outcome


@workflow.defn
class CleansUp:
    @workflow.run
    async def run(self, key: str) -> str:
        try:
            await workflow.sleep(3600)
        except asyncio.CancelledError:
            return await workflow.execute_activity(cleanup, key, start_to_close_timeout=timedelta(seconds=10))
        return "not cancelled"


WORKFLOWS = [Sleeper, ActivityTimeouts, CancelActivity, CleansUp]
ACTIVITIES = [slow_with_progress, beats_then_stops, sleeps, heartbeat_until_cancelled, cleanup]


def _worker(client: Client, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=ACTIVITIES)


# -- workflow timeouts --------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["execution_timeout", "run_timeout"])
async def test_workflow_timeouts(client, task_queue, which):
    async with _worker(client, task_queue):
        handle = await client.start_workflow(
            Sleeper.run, 3600.0, id=f"wto-{uuid.uuid4().hex[:8]}", task_queue=task_queue, **{which: timedelta(seconds=1)}
        )
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        desc = await handle.describe()
        history = await handle.fetch_history()
    assert isinstance(err.value.cause, TimeoutError)
    assert desc.status == WorkflowExecutionStatus.TIMED_OUT
    assert _names(history)[-1] == "WORKFLOW_EXECUTION_TIMED_OUT"
    assert await assert_replays(handle, *WORKFLOWS) > 3


async def test_workflow_task_timeout_then_retry(client, odin_server, task_queue):
    """A worker that takes a task and never answers: the task times out and is retried."""
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{odin_server.endpoints.grpc_port}")
    stub = service_pb2_grpc.WorkflowServiceStub(channel)
    handle = await client.start_workflow(
        Sleeper.run, 0.1, id=f"wftto-{uuid.uuid4().hex[:8]}", task_queue=task_queue, task_timeout=timedelta(seconds=1)
    )
    taken = await stub.PollWorkflowTaskQueue(
        ws.PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=task_queue), identity="silent"),
        timeout=10,
    )
    assert taken.task_token
    await channel.close()
    async with _worker(client, task_queue):
        assert await asyncio.wait_for(handle.result(), 30) == "woke"
        history = await handle.fetch_history()
    names = _names(history)
    assert names[:4] == ["WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_TIMED_OUT"]
    timed_out = history.events[3].workflow_task_timed_out_event_attributes
    assert timed_out.timeout_type == PbTimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
    assert history.events[4].workflow_task_scheduled_event_attributes.attempt == 2
    assert await assert_replays(handle, *WORKFLOWS) > 5


# -- activity timeouts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind,expected",
    [
        ("schedule_to_start", "SCHEDULE_TO_START details=[]"),
        ("schedule_to_close", "SCHEDULE_TO_CLOSE details=[]"),
        ("heartbeat", "HEARTBEAT details=['last-words']"),
    ],
)
async def test_activity_timeouts(client, task_queue, kind, expected):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        handle = await client.start_workflow(ActivityTimeouts.run, args=[kind, key], id=f"ato-{key}", task_queue=task_queue)
        assert await handle.result() == expected
        history = await handle.fetch_history()
    timed_out = next(e for e in history.events if e.HasField("activity_task_timed_out_event_attributes"))
    assert timed_out.activity_task_timed_out_event_attributes.failure.timeout_failure_info.timeout_type == getattr(
        PbTimeoutType, f"TIMEOUT_TYPE_{kind.upper()}"
    )
    assert await assert_replays(handle, *WORKFLOWS) > 5


async def test_start_to_close_timeout_retries_with_heartbeat_details(client, task_queue):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        handle = await client.start_workflow(
            ActivityTimeouts.run, args=["start_to_close", key], id=f"stc-{key}", task_queue=task_queue
        )
        assert await handle.result() == f"attempt 2 resumed from progress-of-{key}"
        history = await handle.fetch_history()
    assert _seen[key][0] == ("attempt", 1, ())
    assert _seen[key][1] == ("attempt", 2, (f"progress-of-{key}",))
    started = next(e for e in history.events if e.HasField("activity_task_started_event_attributes"))
    last_failure = started.activity_task_started_event_attributes.last_failure
    assert last_failure.timeout_failure_info.timeout_type == PbTimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
    assert await assert_replays(handle, *WORKFLOWS) > 5


# -- cancellation -------------------------------------------------------------------------------


async def test_workflow_catches_cancellation_and_cleans_up(client, task_queue):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        handle = await client.start_workflow(CleansUp.run, key, id=f"cleanup-{key}", task_queue=task_queue)
        for _ in range(100):
            if "TIMER_STARTED" in _names(await handle.fetch_history()):
                break
            await asyncio.sleep(0.05)
        await handle.cancel()
        assert await handle.result() == "cleaned"
        desc = await handle.describe()
        history = await handle.fetch_history()
    assert desc.status == WorkflowExecutionStatus.COMPLETED
    assert _seen[key] == ["cleanup ran"]
    names = _names(history)
    assert names.index("WORKFLOW_EXECUTION_CANCEL_REQUESTED") < names.index("ACTIVITY_TASK_SCHEDULED")
    # Cancelling a closed run succeeds without effect (as in Temporal); history does not change.
    await handle.cancel()
    assert len((await handle.fetch_history()).events) == len(history.events)
    assert await assert_replays(handle, *WORKFLOWS) > 5


@pytest.mark.parametrize(
    "cancellation_type,outcome,requested,canceled_event,activity_saw",
    [
        (workflow.ActivityCancellationType.TRY_CANCEL, "CancelledError", True, None, True),
        (workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED, "CancelledError", True, True, True),
        # Abandoned: no request reaches the server (the worker cancels it locally once the run closes).
        (workflow.ActivityCancellationType.ABANDON, "CancelledError", False, False, None),
    ],
)
async def test_activity_cancellation_types(client, task_queue, cancellation_type, outcome, requested, canceled_event, activity_saw):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        handle = await client.start_workflow(
            CancelActivity.run, args=[key, int(cancellation_type)], id=f"actcancel-{key}", task_queue=task_queue
        )
        assert await handle.result() == outcome
        history = await handle.fetch_history()
    names = _names(history)
    assert ("ACTIVITY_TASK_CANCEL_REQUESTED" in names) == requested
    if canceled_event is not None:
        assert ("ACTIVITY_TASK_CANCELED" in names) == canceled_event
    if cancellation_type == workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED:
        # The workflow resumed only after the activity reported its cancellation.
        assert names.index("ACTIVITY_TASK_CANCELED") < names.index("TIMER_STARTED", names.index("ACTIVITY_TASK_CANCEL_REQUESTED"))
    if activity_saw is not None:
        assert ("activity saw cancellation" in _seen.get(key, [])) == activity_saw
    assert await assert_replays(handle, *WORKFLOWS) > 5


@workflow.defn
class ZeroSleep:
    @workflow.run
    async def run(self, micros: int) -> str:
        # workflow.sleep(0) sends a StartTimer command with a zero duration (asyncio.sleep(0) sends none).
        await workflow.sleep(timedelta(microseconds=micros))
        return "woke"


async def test_a_zero_length_timer_fires_at_once(client, task_queue):
    """Temporal 1.32 accepts a zero timer and writes exactly this history (observed with
    `temporal server start-dev`); so does a 1 µs one."""
    async with Worker(client, task_queue=task_queue, workflows=[ZeroSleep]):
        for micros in (0, 1):
            handle = await client.start_workflow(ZeroSleep.run, micros, id=f"zero-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
            assert await asyncio.wait_for(handle.result(), 10) == "woke"
            history = await handle.fetch_history()
            assert _names(history) == [
                "WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED",
                "TIMER_STARTED", "TIMER_FIRED",
                "WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED", "WORKFLOW_EXECUTION_COMPLETED",
            ]
            started = history.events[4].timer_started_event_attributes
            assert started.start_to_fire_timeout.ToNanoseconds() == micros * 1000
    assert await assert_replays(handle, ZeroSleep) > 5


@workflow.defn
class ReportsInfo:
    @workflow.run
    async def run(self, again: bool) -> list:
        if again:
            workflow.continue_as_new(False)
        info = workflow.info()
        return [repr(info.execution_timeout), repr(info.run_timeout), repr(info.task_timeout), info.run_id]


async def test_unset_timeouts_stay_unset_and_run_ids_are_version_7(client, task_queue):
    """As Temporal 1.32 answers (observed with `temporal server start-dev`): a timeout not given
    is absent from WorkflowExecutionStarted and DescribeWorkflowExecution, so workflow.info()
    shows None; run ids are version-7 UUIDs."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest

    async with Worker(client, task_queue=task_queue, workflows=[ReportsInfo]):
        cases = [({}, "None", "None"), ({"run_timeout": timedelta(minutes=5)}, "None", "datetime.timedelta(seconds=300)"),
                 ({"execution_timeout": timedelta(hours=1)}, "datetime.timedelta(seconds=3600)", "datetime.timedelta(seconds=3600)")]
        for options, execution, run in cases:
            handle = await client.start_workflow(ReportsInfo.run, True, id=f"info-{uuid.uuid4().hex[:8]}", task_queue=task_queue, **options)
            result = await handle.result()
            assert result[:3] == [execution, run, "datetime.timedelta(seconds=10)"]
            assert result[3] != handle.result_run_id  # the continued run
            for run_id in (handle.result_run_id, result[3]):
                assert uuid.UUID(run_id).version == 7
                started = (await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()).events[0]
                attrs = started.workflow_execution_started_event_attributes
                assert attrs.HasField("workflow_execution_timeout") == (execution != "None")
                assert attrs.HasField("workflow_run_timeout") == (run != "None")
            described = await client.workflow_service.describe_workflow_execution(
                DescribeWorkflowExecutionRequest(namespace="default", execution=WorkflowExecution(workflow_id=handle.id))
            )
            assert described.execution_config.HasField("workflow_execution_timeout") == (execution != "None")
            assert described.execution_config.HasField("workflow_run_timeout") == (run != "None")
