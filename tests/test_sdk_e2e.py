"""End-to-end behaviour through the real temporalio SDK (client + worker) against Odin."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TerminatedError,
)
from temporalio.worker import Worker

from odin.history.events import attributes_of
from tests.support.replay import assert_chain_replays, assert_replays

_attempts: dict[str, list[int]] = {}


@activity.defn
async def flaky(key: str) -> str:
    info = activity.info()
    _attempts.setdefault(key, []).append(info.attempt)
    if info.attempt < 3:
        raise ApplicationError(f"attempt {info.attempt} failed")
    return f"ok after {info.attempt}"


@activity.defn
async def always_fails(key: str) -> str:
    raise ApplicationError("boom", type="PaymentDeclined")


@activity.defn
async def wait_for_cancel() -> str:
    while True:
        activity.heartbeat()
        await asyncio.sleep(0.2)


@workflow.defn
class RetryWorkflow:
    @workflow.run
    async def run(self, key: str) -> str:
        return await workflow.execute_activity(
            flaky,
            key,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=5),
        )


@workflow.defn
class NonRetryableWorkflow:
    @workflow.run
    async def run(self, key: str) -> str:
        return await workflow.execute_activity(
            always_fails,
            key,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(non_retryable_error_types=["PaymentDeclined"]),
        )


@workflow.defn
class TimerWorkflow:
    @workflow.run
    async def run(self, seconds: float) -> float:
        start = workflow.now()
        await workflow.sleep(seconds)
        return (workflow.now() - start).total_seconds()


@workflow.defn
class FailingWorkflow:
    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("workflow gave up", "detail", type="Business", non_retryable=True)


@workflow.defn
class WaitForeverWorkflow:
    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.execute_activity(
                wait_for_cancel,
                start_to_close_timeout=timedelta(seconds=60),
                heartbeat_timeout=timedelta(seconds=5),
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except ActivityError:
            # Cancellation of the workflow cancels the activity; report that the cleanup ran.
            raise
        return "unreachable"


_task_failures: dict[str, int] = {}


@workflow.defn
class FailsFirstTaskWorkflow:
    @workflow.run
    async def run(self, key: str) -> str:
        if _task_failures.get(key, 0) < 2:
            _task_failures[key] = _task_failures.get(key, 0) + 1
            raise RuntimeError("a bug in the workflow code")  # fails the workflow task, not the workflow
        return "recovered"


@activity.defn
async def silent() -> None:
    await asyncio.sleep(5)


@workflow.defn
class HeartbeatTimeoutWorkflow:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            silent,
            start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=1),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


@workflow.defn
class CancelUnstartedActivityWorkflow:
    @workflow.run
    async def run(self) -> str:
        handle = workflow.start_activity(
            "nobody_runs_this",
            task_queue="no-workers-here",
            start_to_close_timeout=timedelta(seconds=5),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        await workflow.sleep(0.2)
        handle.cancel()
        try:
            await handle
        except ActivityError as err:
            return type(err.cause).__name__
        return "completed?"


def _names(history) -> list[str]:
    return [EventType.Name(e.event_type)[len("EVENT_TYPE_") :] for e in history.events]


def _worker(client, task_queue, **kwargs) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[
            RetryWorkflow,
            NonRetryableWorkflow,
            TimerWorkflow,
            FailingWorkflow,
            WaitForeverWorkflow,
            FailsFirstTaskWorkflow,
            HeartbeatTimeoutWorkflow,
            CancelUnstartedActivityWorkflow,
        ],
        activities=[flaky, always_fails, wait_for_cancel, silent],
        **kwargs,
    )


async def test_activity_fails_twice_then_succeeds_with_server_side_retries(client, task_queue):
    key = uuid.uuid4().hex
    async with _worker(client, task_queue):
        handle = await client.start_workflow(RetryWorkflow.run, key, id=f"retry-{key}", task_queue=task_queue)
        assert await handle.result() == "ok after 3"
        history = await handle.fetch_history()
    assert _attempts[key] == [1, 2, 3]
    names = _names(history)
    # Retries write no events: one scheduled, one started (attempt 3), one completed.
    assert names.count("ACTIVITY_TASK_SCHEDULED") == 1
    assert names.count("ACTIVITY_TASK_STARTED") == 1
    started = next(e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    attrs = started.activity_task_started_event_attributes
    assert attrs.attempt == 3
    assert attrs.last_failure.message == "attempt 2 failed"
    completed = next(e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    assert completed.activity_task_completed_event_attributes.started_event_id == started.event_id
    assert await assert_replays(handle, *WORKFLOWS) > 3


async def test_non_retryable_activity_failure_fails_workflow(client, task_queue):
    key = uuid.uuid4().hex
    async with _worker(client, task_queue):
        handle = await client.start_workflow(NonRetryableWorkflow.run, key, id=f"nr-{key}", task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        history = await handle.fetch_history()
    assert isinstance(err.value.cause, ActivityError)
    assert isinstance(err.value.cause.cause, ApplicationError)
    assert err.value.cause.cause.type == "PaymentDeclined"
    failed = next(e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED)
    assert attributes_of(failed).retry_state == 2  # RETRY_STATE_NON_RETRYABLE_FAILURE
    assert await assert_replays(handle, *WORKFLOWS) > 3


async def test_durable_timer(client, task_queue):
    async with _worker(client, task_queue):
        handle = await client.start_workflow(TimerWorkflow.run, 1.5, id=f"timer-{uuid.uuid4()}", task_queue=task_queue)
        elapsed = await handle.result()
    assert elapsed >= 1.5
    assert await assert_replays(handle, *WORKFLOWS) > 3


async def test_duplicate_start_rejected(client, task_queue):
    from temporalio.exceptions import WorkflowAlreadyStartedError

    wid = f"dup-{uuid.uuid4()}"
    first = await client.start_workflow(TimerWorkflow.run, 30.0, id=wid, task_queue=task_queue)
    with pytest.raises(WorkflowAlreadyStartedError) as err:
        await client.start_workflow(TimerWorkflow.run, 30.0, id=wid, task_queue=task_queue)
    assert err.value.run_id == first.result_run_id
    await first.terminate("cleanup")


async def test_workflow_failure_surfaces_to_client(client, task_queue):
    async with _worker(client, task_queue):
        handle = await client.start_workflow(FailingWorkflow.run, id=f"fail-{uuid.uuid4()}", task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        desc = await handle.describe()
    assert isinstance(err.value.cause, ApplicationError)
    assert err.value.cause.message == "workflow gave up"
    assert err.value.cause.type == "Business"
    assert err.value.cause.details == ("detail",)
    assert desc.status == WorkflowExecutionStatus.FAILED
    assert await assert_replays(handle, *WORKFLOWS) > 3


async def test_cancellation_reaches_activity_and_client(client, task_queue):
    async with _worker(client, task_queue):
        handle = await client.start_workflow(WaitForeverWorkflow.run, id=f"cancel-{uuid.uuid4()}", task_queue=task_queue)
        for _ in range(100):
            desc = await handle.describe()
            if desc.raw_description.pending_activities and desc.raw_description.pending_activities[0].state == 2:
                break
            await asyncio.sleep(0.1)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        history = await handle.fetch_history()
    assert isinstance(err.value.cause, CancelledError)
    names = _names(history)
    assert "WORKFLOW_EXECUTION_CANCEL_REQUESTED" in names
    assert "ACTIVITY_TASK_CANCEL_REQUESTED" in names
    assert "ACTIVITY_TASK_CANCELED" in names
    assert names[-1] == "WORKFLOW_EXECUTION_CANCELED"
    assert await assert_replays(handle, *WORKFLOWS) > 3


async def test_terminate_and_describe(client, task_queue):
    async with _worker(client, task_queue):
        handle = await client.start_workflow(TimerWorkflow.run, 300.0, id=f"term-{uuid.uuid4()}", task_queue=task_queue)
        for _ in range(100):
            desc = await handle.describe()
            if desc.history_length >= 5:  # timer started
                break
            await asyncio.sleep(0.1)
        assert desc.status == WorkflowExecutionStatus.RUNNING
        assert desc.workflow_type == "TimerWorkflow"
        assert desc.task_queue == task_queue
        await handle.terminate("why", reason="enough")
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        desc = await handle.describe()
    assert isinstance(err.value.cause, TerminatedError)
    assert desc.status == WorkflowExecutionStatus.TERMINATED
    assert desc.close_time is not None
    history = await handle.fetch_history()
    assert _names(history)[-1] == "WORKFLOW_EXECUTION_TERMINATED"
    assert history.events[-1].workflow_execution_terminated_event_attributes.reason == "enough"
    assert await assert_replays(handle, *WORKFLOWS) > 3


async def test_failed_workflow_task_is_retried(client, task_queue):
    from temporalio.worker import UnsandboxedWorkflowRunner

    key = uuid.uuid4().hex
    # Unsandboxed, so the module-level counter survives between task attempts.
    async with _worker(client, task_queue, workflow_runner=UnsandboxedWorkflowRunner()):
        handle = await client.start_workflow(
            FailsFirstTaskWorkflow.run, key, id=f"wft-{key}", task_queue=task_queue, task_timeout=timedelta(seconds=1)
        )
        assert await handle.result() == "recovered"
        history = await handle.fetch_history()
    names = _names(history)
    # Attempt 1 is reported failed; attempt 2 fails silently (the SDK lets it time out) and, being a
    # transient retry, leaves no events; attempt 3 completes and its events are stored.
    assert names[:7] == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_FAILED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
    ]
    failed = history.events[3].workflow_task_failed_event_attributes
    assert "a bug in the workflow code" in failed.failure.message
    assert history.events[4].workflow_task_scheduled_event_attributes.attempt == 3
    assert names[-1] == "WORKFLOW_EXECUTION_COMPLETED"
    assert _task_failures[key] == 2
    assert await assert_replays(handle, *WORKFLOWS, workflow_runner=UnsandboxedWorkflowRunner()) > 3


async def test_activity_heartbeat_timeout(client, task_queue):
    from temporalio.exceptions import TimeoutError as TemporalTimeoutError
    from temporalio.exceptions import TimeoutType

    async with _worker(client, task_queue):
        handle = await client.start_workflow(HeartbeatTimeoutWorkflow.run, id=f"hb-{uuid.uuid4()}", task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        history = await handle.fetch_history()
    timeout = err.value.cause.cause
    assert isinstance(timeout, TemporalTimeoutError)
    assert timeout.type == TimeoutType.HEARTBEAT
    assert "ACTIVITY_TASK_TIMED_OUT" in _names(history)
    assert await assert_replays(handle, *WORKFLOWS) > 3


async def test_cancel_activity_that_never_started(client, task_queue):
    async with _worker(client, task_queue):
        handle = await client.start_workflow(
            CancelUnstartedActivityWorkflow.run, id=f"cu-{uuid.uuid4()}", task_queue=task_queue
        )
        assert await handle.result() == "CancelledError"
        history = await handle.fetch_history()
    names = _names(history)
    i = names.index("ACTIVITY_TASK_CANCEL_REQUESTED")
    assert names[i + 1] == "ACTIVITY_TASK_CANCELED"
    assert names[i + 2] == "WORKFLOW_TASK_SCHEDULED"
    assert "ACTIVITY_TASK_STARTED" not in names
    assert await assert_replays(handle, *WORKFLOWS) > 3


@workflow.defn
class WaitForSignalWorkflow:
    def __init__(self) -> None:
        self._value: str | None = None

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self._value is not None)
        return self._value

    @workflow.signal
    def deliver(self, value: str) -> None:
        self._value = value


async def test_workflow_moves_to_another_worker_after_shutdown(client, task_queue):
    """The first worker caches the run on its sticky queue; after it shuts down, the signal's task
    must reach a new worker through the normal queue."""
    handle = None
    async with Worker(client, task_queue=task_queue, workflows=[WaitForSignalWorkflow]):
        handle = await client.start_workflow(WaitForSignalWorkflow.run, id=f"move-{uuid.uuid4()}", task_queue=task_queue)
        for _ in range(100):
            if (await handle.describe()).history_length >= 4:  # first task completed
                break
            await asyncio.sleep(0.1)
    await handle.signal(WaitForSignalWorkflow.deliver, "hello")
    async with Worker(client, task_queue=task_queue, workflows=[WaitForSignalWorkflow]):
        assert await asyncio.wait_for(handle.result(), timeout=30) == "hello"
    assert await assert_replays(handle, *WORKFLOWS) > 3


@workflow.defn
class CountdownWorkflow:
    @workflow.run
    async def run(self, n: int, total: int) -> str:
        await workflow.sleep(0.05)
        if n > 0:
            workflow.continue_as_new(args=[n - 1, total + n])
        return f"total={total} run={workflow.info().run_id} first={workflow.info().first_execution_run_id}"


async def test_continue_as_new_chain_reaches_the_final_result(client, task_queue):
    async with Worker(client, task_queue=task_queue, workflows=[CountdownWorkflow]):
        handle = await client.start_workflow(
            CountdownWorkflow.run, args=[3, 0], id=f"can-{uuid.uuid4()}", task_queue=task_queue
        )
        result = await handle.result()
        first_history = await client.get_workflow_handle(handle.id, run_id=handle.result_run_id).fetch_history()
        latest = client.get_workflow_handle(handle.id)
        desc = await latest.describe()
        last_history = await latest.fetch_history()
    total, run, first = (part.split("=")[1] for part in result.split())
    assert total == "6"  # 3 + 2 + 1
    assert first == handle.first_execution_run_id == handle.result_run_id
    assert run == desc.run_id != handle.result_run_id
    assert desc.status == WorkflowExecutionStatus.COMPLETED
    close = first_history.events[-1]
    assert close.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    started = last_history.events[0].workflow_execution_started_event_attributes
    assert started.first_execution_run_id == handle.first_execution_run_id
    assert started.continued_execution_run_id and started.continued_execution_run_id != run
    assert started.original_execution_run_id == run
    runs = await assert_chain_replays(client, handle.id, handle.result_run_id, CountdownWorkflow)
    assert runs[-1] == run and len(runs) == 4


WORKFLOWS = [
    RetryWorkflow,
    NonRetryableWorkflow,
    TimerWorkflow,
    FailingWorkflow,
    WaitForeverWorkflow,
    FailsFirstTaskWorkflow,
    HeartbeatTimeoutWorkflow,
    CancelUnstartedActivityWorkflow,
    WaitForSignalWorkflow,
    CountdownWorkflow,
]
