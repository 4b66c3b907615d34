"""Run chains through the real temporalio SDK: cron schedules and workflow retries (issue 3 item 3)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import ContinueAsNewInitiator, RetryState
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.support.replay import assert_chain_replays
from tests.support.services import ALL_DATABASES

# Also on MariaDB: retries, cron and continue-as-new chains on every database.
pytestmark = pytest.mark.parametrize("database_url", ALL_DATABASES, indirect=True)


@workflow.defn
class CronCounter:
    @workflow.run
    async def run(self) -> int:
        last = workflow.get_last_completion_result(int) if workflow.has_last_completion_result() else 0
        return last + 1


@workflow.defn
class FlakyWorkflow:
    @workflow.run
    async def run(self, succeed_on: int) -> str:
        attempt = workflow.info().attempt
        if succeed_on > 0 and attempt >= succeed_on:
            return f"ok on {attempt}"
        if succeed_on < 0:
            raise ApplicationError("hopeless", type="Fatal")
        raise ApplicationError(f"attempt {attempt} failed")


async def _chain(client: Client, workflow_id: str, first_run_id: str) -> list:
    """The histories of a chain's runs, first to current."""
    histories, run_id = [], first_run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.append(history)
        close = history.events[-1]
        which = close.WhichOneof("attributes")
        run_id = getattr(getattr(close, which), "new_execution_run_id", "") if which else ""
    return histories


async def test_cron_schedule_runs_again_with_the_last_result(client, task_queue):
    wid = f"cron-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=task_queue, workflows=[CronCounter]):
        handle = await client.start_workflow(CronCounter.run, id=wid, task_queue=task_queue, cron_schedule="@every 1s")
        first_run = handle.result_run_id
        for _ in range(200):
            histories = await _chain(client, wid, first_run)
            if len(histories) >= 3 and histories[2].events[-1].HasField("workflow_execution_completed_event_attributes"):
                break
            await asyncio.sleep(0.1)
        await client.get_workflow_handle(wid).terminate("enough")
        histories = await _chain(client, wid, first_run)
    assert len(histories) >= 3
    first_start = histories[0].events[0].workflow_execution_started_event_attributes
    assert first_start.cron_schedule == "@every 1s"
    assert first_start.first_workflow_task_backoff.ToTimedelta() > timedelta(0)
    for n, history in enumerate(histories[:3], start=1):
        completed = history.events[-1].workflow_execution_completed_event_attributes
        assert completed.new_execution_run_id  # the chain goes on
        started = history.events[0].workflow_execution_started_event_attributes
        if n > 1:
            assert started.initiator == ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE
            assert started.last_completion_result.payloads[0].data == str(n - 1).encode()
            assert started.continued_execution_run_id
        assert completed.result.payloads[0].data == str(n).encode()
    terminated = histories[-1].events[-1]
    assert terminated.HasField("workflow_execution_terminated_event_attributes")
    # Every completed cron run shows COMPLETED, not CONTINUED_AS_NEW.
    desc = await client.get_workflow_handle(wid, run_id=first_run).describe()
    assert desc.status == WorkflowExecutionStatus.COMPLETED
    runs = await assert_chain_replays(client, wid, first_run, CronCounter)
    assert runs == [first_run]  # a cron run closes "completed", not continued-as-new: replay each run
    for history in histories[1:3]:
        run_id = history.events[0].workflow_execution_started_event_attributes.original_execution_run_id
        await assert_chain_replays(client, wid, run_id, CronCounter)


async def test_invalid_cron_schedule_is_rejected(client, task_queue):
    with pytest.raises(RPCError) as err:
        await client.start_workflow(CronCounter.run, id=f"cron-{uuid.uuid4()}", task_queue=task_queue, cron_schedule="every day")
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert "CronSchedule" in err.value.message


async def test_workflow_retry_policy_retries_the_run(client, task_queue):
    wid = f"wfretry-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=task_queue, workflows=[FlakyWorkflow]):
        handle = await client.start_workflow(
            FlakyWorkflow.run,
            3,
            id=wid,
            task_queue=task_queue,
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=5),
        )
        assert await handle.result() == "ok on 3"
        histories = await _chain(client, wid, handle.result_run_id)
    assert len(histories) == 3
    for attempt, history in enumerate(histories, start=1):
        started = history.events[0].workflow_execution_started_event_attributes
        assert started.attempt == attempt
        if attempt > 1:
            assert started.initiator == ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_RETRY
            assert started.continued_failure.message == f"attempt {attempt - 1} failed"
            assert started.first_workflow_task_backoff.ToTimedelta() >= timedelta(milliseconds=100)
    failed = histories[0].events[-1].workflow_execution_failed_event_attributes
    assert failed.retry_state == RetryState.RETRY_STATE_IN_PROGRESS
    assert failed.new_execution_run_id == histories[1].events[0].workflow_execution_started_event_attributes.original_execution_run_id
    for history in histories:
        run_id = history.events[0].workflow_execution_started_event_attributes.original_execution_run_id
        await assert_chain_replays(client, wid, run_id, FlakyWorkflow)


@pytest.mark.parametrize(
    "succeed_on,runs,retry_state",
    [(0, 2, RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED), (-1, 1, RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE)],
)
async def test_workflow_retry_gives_up(client, task_queue, succeed_on, runs, retry_state):
    wid = f"wfretry-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=task_queue, workflows=[FlakyWorkflow]):
        handle = await client.start_workflow(
            FlakyWorkflow.run,
            succeed_on,
            id=wid,
            task_queue=task_queue,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100), maximum_attempts=2, non_retryable_error_types=["Fatal"]
            ),
        )
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        histories = await _chain(client, wid, handle.result_run_id)
    assert isinstance(err.value.cause, ApplicationError)
    assert len(histories) == runs
    failed = histories[-1].events[-1].workflow_execution_failed_event_attributes
    assert failed.retry_state == retry_state
    assert not failed.new_execution_run_id
    for history in histories:
        run_id = history.events[0].workflow_execution_started_event_attributes.original_execution_run_id
        await assert_chain_replays(client, wid, run_id, FlakyWorkflow)
