"""Async activity completion (by task token and by id), DescribeTaskQueue, ResetStickyTaskQueue,
DeleteWorkflowExecution and GetWorkflowExecutionHistoryReverse through the temporalio SDK."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import BuildIdTaskReachability, DescribeTaskQueueMode, EventType, TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.support.replay import assert_replays

_tokens: dict[str, bytes] = {}


@activity.defn
async def finish_later(key: str) -> str:
    _tokens[key] = activity.info().task_token
    activity.raise_complete_async()


@workflow.defn
class AsyncActivityWorkflow:
    @workflow.run
    async def run(self, key: str) -> str:
        try:
            return await workflow.execute_activity(
                finish_later,
                key,
                activity_id=f"act-{key}",
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError as err:
            return f"{type(err.cause).__name__}: {err.cause}"


@workflow.defn
class Waiter:
    def __init__(self) -> None:
        self.n = 0

    @workflow.run
    async def run(self, until: int) -> int:
        await workflow.wait_condition(lambda: self.n >= until)
        return self.n

    @workflow.signal
    def bump(self) -> None:
        self.n += 1


WORKFLOWS = [AsyncActivityWorkflow, Waiter]


def _worker(client: Client, task_queue: str, **kwargs) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=[finish_later], **kwargs)


async def _token(key: str) -> bytes:
    for _ in range(200):
        if key in _tokens:
            return _tokens[key]
        await asyncio.sleep(0.05)
    raise AssertionError("activity never ran")


@pytest.mark.parametrize("how", ["complete", "fail", "cancel"])
@pytest.mark.parametrize("address", ["token", "id"])
async def test_async_activity_completion(client, task_queue, how, address):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        handle = await client.start_workflow(AsyncActivityWorkflow.run, key, id=f"async-{key}", task_queue=task_queue)
        token = await _token(key)
        if address == "token":
            act = client.get_async_activity_handle(task_token=token)
        else:
            act = client.get_async_activity_handle(workflow_id=f"async-{key}", run_id=None, activity_id=f"act-{key}")
        await act.heartbeat("progress")
        desc = await handle.describe()
        assert desc.raw_description.pending_activities[0].heartbeat_details.payloads[0].data == b'"progress"'
        if how == "complete":
            await act.complete("done elsewhere")
            expected = "done elsewhere"
        elif how == "fail":
            await act.fail(ApplicationError("failed elsewhere", non_retryable=True))
            expected = "ApplicationError: failed elsewhere"
        else:
            # Cancellation may only be reported once it was requested: refused, nothing changes.
            with pytest.raises(RPCError) as err:
                await act.report_cancellation("gave up")
            assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
            await act.complete("completed after a refused cancel report")
            expected = "completed after a refused cancel report"
        assert await handle.result() == expected
        # The activity is closed now: further reports are NOT_FOUND.
        with pytest.raises(RPCError) as err:
            await act.complete("twice")
        assert err.value.status == RPCStatusCode.NOT_FOUND
    assert await assert_replays(handle, *WORKFLOWS) > 5


async def test_activity_by_id_bad_input(client, task_queue):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        handle = await client.start_workflow(AsyncActivityWorkflow.run, key, id=f"async-{key}", task_queue=task_queue)
        await _token(key)
        for kwargs, code in [
            (dict(workflow_id=f"async-{key}", run_id=None, activity_id="nope"), RPCStatusCode.NOT_FOUND),
            (dict(workflow_id=f"missing-{key}", run_id=None, activity_id=f"act-{key}"), RPCStatusCode.NOT_FOUND),
            (dict(workflow_id=f"async-{key}", run_id="not-a-uuid", activity_id=f"act-{key}"), RPCStatusCode.INVALID_ARGUMENT),
        ]:
            with pytest.raises(RPCError) as err:
                await client.get_async_activity_handle(**kwargs).complete("x")
            assert err.value.status == code
        # Nothing above touched the activity: it still completes normally.
        await client.get_async_activity_handle(task_token=_tokens[key]).complete("ok")
        assert await handle.result() == "ok"


async def test_describe_task_queue_lists_pollers(client, task_queue):
    async with _worker(client, task_queue, identity="worker-under-test"):
        await asyncio.sleep(0.5)  # let the worker's pollers arrive
        for queue_type in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
            resp = await client.workflow_service.describe_task_queue(
                ws.DescribeTaskQueueRequest(
                    namespace="default",
                    task_queue=TaskQueue(name=task_queue),
                    task_queue_type=queue_type,
                    include_task_queue_status=True,
                )
            )
            assert "worker-under-test" in [p.identity for p in resp.pollers]
            assert all(p.last_access_time.seconds > 0 for p in resp.pollers)
            assert resp.task_queue_status.backlog_count_hint == 0
    with pytest.raises(RPCError) as err:
        await client.workflow_service.describe_task_queue(ws.DescribeTaskQueueRequest(namespace="default"))
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT


async def test_temporal_cli_describes_a_task_queue_in_the_enhanced_form(client, odin_server, task_queue):
    """`temporal task-queue describe` (DescribeTaskQueue in its enhanced mode): per type, the
    pollers and stats; the shape and values follow what Temporal 1.32 answered for the same
    scenario (a worker that ran one workflow; a queue nobody polls, holding one task)."""
    import json
    import subprocess

    from tests.support.services import temporal_cli

    cli = temporal_cli()

    def describe(queue: str, *flags: str) -> dict:
        args = [cli, "--address", f"127.0.0.1:{odin_server.endpoints.grpc_port}", "task-queue", "describe", "--task-queue", queue, "-o", "json", *flags]
        done = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    idle = f"{task_queue}-idle"
    async with _worker(client, task_queue, identity="worker-under-test"):
        handle = await client.start_workflow(Waiter.run, 0, id=f"tq-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
        assert await handle.result() == 0
        await client.start_workflow(Waiter.run, 1, id=f"tq-{uuid.uuid4().hex[:8]}", task_queue=idle)
        await asyncio.sleep(1.0)
        polled = await asyncio.to_thread(describe, task_queue)
        backlog = await asyncio.to_thread(describe, idle, "--report-reachability")
        versions = await asyncio.to_thread(describe, idle, "--select-build-id", "b1", "--select-unversioned", "--report-reachability")
    pollers = sorted((p["buildId"], p["taskQueueType"], p["identity"], p["ratePerSecond"]) for p in polled["pollers"])
    assert pollers == [("UNVERSIONED", kind, "worker-under-test", 100000) for kind in ("activity", "workflow")]
    stats = {s["taskQueueType"]: s for s in polled["stats"]}
    assert set(stats) == {"workflow", "activity"}
    assert stats["workflow"]["approximateBacklogCount"] == 0 and stats["workflow"]["approximateBacklogAge"] == "0s"
    assert stats["workflow"]["tasksAddRate"] > 0 and stats["workflow"]["tasksDispatchRate"] > 0
    assert stats["activity"] == {
        "buildId": "UNVERSIONED", "taskQueueType": "activity", "approximateBacklogCount": 0, "approximateBacklogAge": "0s",
        "backlogIncreaseRate": 0, "tasksAddRate": 0, "tasksDispatchRate": 0,
    }
    assert polled["reachability"] is None
    assert backlog["pollers"] is None
    waiting = {s["taskQueueType"]: s for s in backlog["stats"]}["workflow"]
    assert waiting["approximateBacklogCount"] == 1 and waiting["tasksDispatchRate"] == 0
    assert 0.5 <= float(waiting["approximateBacklogAge"].rstrip("s")) < 30
    assert backlog["reachability"] == [{"buildId": "UNVERSIONED", "reachability": "reachable"}]
    assert {s["buildId"] for s in versions["stats"]} == {"UNVERSIONED", "b1"}
    assert sorted(versions["reachability"], key=lambda r: r["buildId"]) == [
        {"buildId": "UNVERSIONED", "reachability": "reachable"}, {"buildId": "b1", "reachability": "unreachable"},
    ]
    # The same in the API's own terms.
    resp = await client.workflow_service.describe_task_queue(
        ws.DescribeTaskQueueRequest(
            namespace="default", task_queue=TaskQueue(name=idle), api_mode=DescribeTaskQueueMode.DESCRIBE_TASK_QUEUE_MODE_ENHANCED,
            task_queue_types=[TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW], report_stats=True, report_task_reachability=True,
        )
    )
    [(build_id, version)] = resp.versions_info.items()
    assert build_id == "" and version.task_reachability == BuildIdTaskReachability.BUILD_ID_TASK_REACHABILITY_REACHABLE
    assert list(version.types_info) == [TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW]
    assert version.types_info[TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW].stats.approximate_backlog_count == 1
    assert not resp.pollers and not resp.HasField("task_queue_status")  # the legacy fields stay empty
    with pytest.raises(RPCError) as err:
        await client.workflow_service.describe_task_queue(
            ws.DescribeTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=idle), api_mode=1, task_queue_types=[9])
        )
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT


async def test_reset_sticky_task_queue_sends_the_next_task_to_the_normal_queue(client, task_queue):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        handle = await client.start_workflow(Waiter.run, 2, id=f"sticky-{key}", task_queue=task_queue)

        async def completed_tasks(at_least: int):
            for _ in range(600):
                history = await handle.fetch_history()
                if sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in history.events) >= at_least:
                    return history
                await asyncio.sleep(0.05)
            raise AssertionError(f"fewer than {at_least} workflow tasks completed")

        # The first task done (the worker has the run cached), the signal's task goes to its sticky queue.
        await completed_tasks(1)
        await handle.signal(Waiter.bump)
        history = await completed_tasks(2)
        scheduled = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED]
        assert scheduled[-1].workflow_task_scheduled_event_attributes.task_queue.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY
        await client.workflow_service.reset_sticky_task_queue(
            ws.ResetStickyTaskQueueRequest(namespace="default", execution=WorkflowExecution(workflow_id=f"sticky-{key}"))
        )
        await handle.signal(Waiter.bump)
        assert await handle.result() == 2
        history = await handle.fetch_history()
    scheduled = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED]
    last = scheduled[-1].workflow_task_scheduled_event_attributes.task_queue
    assert last.kind == TaskQueueKind.TASK_QUEUE_KIND_NORMAL and last.name == task_queue
    assert await assert_replays(handle, *WORKFLOWS) > 5


async def test_delete_workflow_execution(client, task_queue):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        done = await client.start_workflow(Waiter.run, 0, id=f"del-done-{key}", task_queue=task_queue)
        assert await done.result() == 0
        running = await client.start_workflow(Waiter.run, 5, id=f"del-run-{key}", task_queue=task_queue)
        await running.describe()
        for handle in (done, running):
            await client.workflow_service.delete_workflow_execution(
                ws.DeleteWorkflowExecutionRequest(
                    namespace="default", workflow_execution=WorkflowExecution(workflow_id=handle.id)
                )
            )
            for call in (handle.describe, handle.fetch_history):
                with pytest.raises(RPCError) as err:
                    await call()
                assert err.value.status == RPCStatusCode.NOT_FOUND
        with pytest.raises(RPCError) as err:
            await client.workflow_service.delete_workflow_execution(
                ws.DeleteWorkflowExecutionRequest(namespace="default", workflow_execution=WorkflowExecution(workflow_id=done.id))
            )
        assert err.value.status == RPCStatusCode.NOT_FOUND
        # The id is free again.
        again = await client.start_workflow(Waiter.run, 0, id=f"del-done-{key}", task_queue=task_queue)
        assert await again.result() == 0
    with pytest.raises(RPCError) as err:
        await running.result()
    assert err.value.status == RPCStatusCode.NOT_FOUND
    assert await assert_replays(again, *WORKFLOWS) > 3


async def test_history_reverse_pages_from_the_end(client, task_queue):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        handle = await client.start_workflow(Waiter.run, 3, id=f"rev-{key}", task_queue=task_queue)
        for _ in range(3):
            await handle.signal(Waiter.bump)
        await handle.result()
        forward = await handle.fetch_history()
    collected, token = [], b""
    while True:
        page = await client.workflow_service.get_workflow_execution_history_reverse(
            ws.GetWorkflowExecutionHistoryReverseRequest(
                namespace="default",
                execution=WorkflowExecution(workflow_id=handle.id),
                maximum_page_size=4,
                next_page_token=token,
            )
        )
        assert 0 < len(page.history.events) <= 4
        collected.extend(page.history.events)
        token = page.next_page_token
        if not token:
            break
    assert [e.event_id for e in collected] == [e.event_id for e in reversed(forward.events)]
    assert collected[0].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    with pytest.raises(RPCError) as err:
        await client.workflow_service.get_workflow_execution_history_reverse(
            ws.GetWorkflowExecutionHistoryReverseRequest(
                namespace="default", execution=WorkflowExecution(workflow_id=handle.id), next_page_token=b"garbage"
            )
        )
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
