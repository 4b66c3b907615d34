"""Workflow updates through the temporalio SDK: accept/complete, validators, failures, waiting
for the accepted stage, de-duplication, closed runs and update-with-start."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, UpdateWorkflowExecutionLifecycleStage
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.support.replay import assert_replays


@workflow.defn
class Counter:
    @workflow.init
    def __init__(self, start: int) -> None:
        # Set before any handler runs: with update-with-start the update may run before run().
        self.total = start
        self.done = False

    @workflow.run
    async def run(self, start: int) -> int:
        await workflow.wait_condition(lambda: self.done)
        return self.total

    @workflow.update
    async def add(self, n: int) -> int:
        self.total += n
        return self.total

    @add.validator
    def check_add(self, n: int) -> None:
        if n < 0:
            raise ValueError("negative amounts are refused")

    @workflow.update
    async def slow_add(self, n: int) -> int:
        await workflow.sleep(0.5)
        self.total += n
        return self.total

    @workflow.update
    async def explode(self) -> None:
        raise ApplicationError("update failed on purpose", type="Boom")

    @workflow.update
    def finish(self) -> int:
        self.done = True
        return self.total


def _names(history) -> list[str]:
    return [EventType.Name(e.event_type)[len("EVENT_TYPE_") :] for e in history.events]


async def _start(client: Client, task_queue: str, start: int = 0):
    return await client.start_workflow(Counter.run, start, id=f"upd-{uuid.uuid4().hex[:8]}", task_queue=task_queue)


async def test_update_accepted_and_completed(client, task_queue):
    async with Worker(client, task_queue=task_queue, workflows=[Counter]):
        handle = await _start(client, task_queue)
        assert await handle.execute_update(Counter.add, 5) == 5
        assert await handle.execute_update(Counter.add, 2) == 7
        assert await handle.execute_update(Counter.finish) == 7
        assert await handle.result() == 7
        history = await handle.fetch_history()
    names = _names(history)
    assert names.count("WORKFLOW_EXECUTION_UPDATE_ACCEPTED") == 3
    assert names.count("WORKFLOW_EXECUTION_UPDATE_COMPLETED") == 3
    accepted = next(e for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes"))
    completed = next(e for e in history.events if e.HasField("workflow_execution_update_completed_event_attributes"))
    assert completed.workflow_execution_update_completed_event_attributes.accepted_event_id == accepted.event_id
    assert accepted.workflow_execution_update_accepted_event_attributes.accepted_request.input.name == "add"
    assert await assert_replays(handle, Counter) > 5


async def test_validator_rejection_writes_no_events(client, task_queue):
    async with Worker(client, task_queue=task_queue, workflows=[Counter]):
        handle = await _start(client, task_queue)
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update(Counter.add, -1, id="refused")
        assert "negative amounts are refused" in str(err.value.cause)
        # A rejection leaves no trace, so its id may be used again: a new update (as in Temporal
        # 1.32, directly and through update-with-start).
        assert await handle.execute_update(Counter.add, 4, id="refused") == 4
        assert await handle.execute_update(Counter.finish) == 4
        await handle.result()
        history = await handle.fetch_history()
    names = _names(history)
    assert names.count("WORKFLOW_EXECUTION_UPDATE_ACCEPTED") == 2  # "refused" the second time, and "finish"
    assert await assert_replays(handle, Counter) > 5


async def test_failing_update_handler(client, task_queue):
    async with Worker(client, task_queue=task_queue, workflows=[Counter]):
        handle = await _start(client, task_queue)
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update(Counter.explode)
        assert isinstance(err.value.cause, ApplicationError) and err.value.cause.type == "Boom"
        await handle.execute_update(Counter.finish)
        await handle.result()
        history = await handle.fetch_history()
    failed = [
        e.workflow_execution_update_completed_event_attributes.outcome
        for e in history.events
        if e.HasField("workflow_execution_update_completed_event_attributes")
    ]
    assert failed[0].failure.message == "update failed on purpose"
    assert await assert_replays(handle, Counter) > 5


async def test_start_update_waits_for_acceptance_then_result(client, task_queue):
    async with Worker(client, task_queue=task_queue, workflows=[Counter]):
        handle = await _start(client, task_queue, 10)
        update = await handle.start_update(Counter.slow_add, 1, wait_for_stage=WorkflowUpdateStage.ACCEPTED)
        assert await update.result() == 11
        # Many updates at once: they reach the worker in one or more tasks, none is lost.
        results = await asyncio.gather(*(handle.execute_update(Counter.add, 1) for _ in range(8)))
        assert sorted(results) == list(range(12, 20))
        await handle.execute_update(Counter.finish)
        assert await handle.result() == 19
    assert await assert_replays(handle, Counter) > 5


async def test_same_update_id_is_one_update_even_after_close(client, task_queue):
    async with Worker(client, task_queue=task_queue, workflows=[Counter]):
        handle = await _start(client, task_queue)
        assert await handle.execute_update(Counter.add, 3, id="only-once") == 3
        assert await handle.execute_update(Counter.add, 3, id="only-once") == 3
        await handle.execute_update(Counter.finish)
        assert await handle.result() == 3
        # The run is closed: a known update id still returns its outcome, a new one is refused.
        assert await handle.execute_update(Counter.add, 3, id="only-once") == 3
        with pytest.raises(RPCError) as err:
            await handle.execute_update(Counter.add, 1, id="too-late")
        assert err.value.status == RPCStatusCode.NOT_FOUND
        with pytest.raises(RPCError) as err:
            await handle.get_update_handle("never-sent").result()
        assert err.value.status == RPCStatusCode.NOT_FOUND
        history = await handle.fetch_history()
    assert _names(history).count("WORKFLOW_EXECUTION_UPDATE_ACCEPTED") == 2
    assert await assert_replays(handle, Counter) > 5


async def test_update_with_start(client, task_queue):
    wid = f"uws-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=task_queue, workflows=[Counter]):
        start_op = WithStartWorkflowOperation(
            Counter.run, 100, id=wid, task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING
        )
        assert await client.execute_update_with_start_workflow(Counter.add, 1, start_workflow_operation=start_op) == 101
        first = await start_op.workflow_handle()
        again_op = WithStartWorkflowOperation(
            Counter.run, 100, id=wid, task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING
        )
        assert await client.execute_update_with_start_workflow(Counter.add, 1, start_workflow_operation=again_op) == 102
        assert (await again_op.workflow_handle()).result_run_id == first.result_run_id
        fail_op = WithStartWorkflowOperation(
            Counter.run, 0, id=wid, task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.FAIL
        )
        from temporalio.exceptions import WorkflowAlreadyStartedError

        with pytest.raises(WorkflowAlreadyStartedError):
            await client.execute_update_with_start_workflow(Counter.add, 1, start_workflow_operation=fail_op)
        handle = client.get_workflow_handle(wid)
        await handle.execute_update(Counter.finish)
        assert await handle.result() == 102
    assert await assert_replays(handle, Counter) > 5


async def test_accepted_update_completes_after_a_server_restart(database_url, task_queue):
    from temporalio.worker import UnsandboxedWorkflowRunner

    from odin.config import Settings
    from odin.server import OdinServer

    # Unsandboxed: this test builds workers while server threads are busy, and CPython 3.11.7's
    # compiler can trip over concurrent AST validation when the sandbox re-imports the module.
    runner = UnsandboxedWorkflowRunner()

    first = OdinServer(Settings(database_url=database_url, grpc_port=0))
    await first.start()
    try:
        client = await Client.connect(f"127.0.0.1:{first.endpoints.grpc_port}")
        async with Worker(client, task_queue=task_queue, workflows=[Counter], workflow_runner=runner):
            handle = await _start(client, task_queue, 1)
            update = await handle.start_update(Counter.slow_add, 2, wait_for_stage=WorkflowUpdateStage.ACCEPTED)
    finally:
        await first.stop(grace=0.2)
    second = OdinServer(Settings(database_url=database_url, grpc_port=0))
    await second.start()
    try:
        client = await Client.connect(f"127.0.0.1:{second.endpoints.grpc_port}")
        async with Worker(client, task_queue=task_queue, workflows=[Counter], workflow_runner=runner):
            handle = client.get_workflow_handle(handle.id)
            assert await asyncio.wait_for(handle.get_update_handle(update.id).result(), 30) == 3
            await handle.execute_update(Counter.finish)
            assert await handle.result() == 3
            assert await assert_replays(handle, Counter) > 5
    finally:
        await second.stop(grace=0.2)


@workflow.defn
class Closer:
    """Closes as a signal says while an update handler waits for ever."""

    def __init__(self) -> None:
        self.how = ""

    @workflow.run
    async def run(self, arg: str) -> str:
        await workflow.wait_condition(lambda: bool(self.how))
        if self.how == "fail":
            raise ApplicationError("failed on purpose")
        if self.how == "continue_as_new":
            workflow.continue_as_new("again")
        if self.how == "cancel":
            raise asyncio.CancelledError()
        return "done"

    @workflow.signal
    def close(self, how: str) -> None:
        self.how = how

    @workflow.update(unfinished_policy=workflow.HandlerUnfinishedPolicy.ABANDON)
    async def hang(self) -> str:
        await workflow.wait_condition(lambda: False)
        return "never"


# What Temporal 1.32 answers for an accepted update whose run closes first (observed with
# `temporal server start-dev`): the same for every way of closing, with no update event written.
COMPLETED_BEFORE = "Workflow Update failed because the Workflow completed before the Update completed."


async def test_accepted_updates_fail_when_the_run_closes_first(client, task_queue):
    from temporalio.api.update.v1 import UpdateRef, WaitPolicy
    from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest

    async with Worker(client, task_queue=task_queue, workflows=[Closer]):
        for how in ["complete", "fail", "continue_as_new", "terminate", "cancel"]:
            handle = await client.start_workflow(Closer.run, "x", id=f"closer-{how}-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
            update = await handle.start_update(Closer.hang, id="u1", wait_for_stage=WorkflowUpdateStage.ACCEPTED)
            waiter = asyncio.create_task(update.result())
            await asyncio.sleep(0.2)
            if how == "terminate":
                await handle.terminate("bye")
            elif how == "cancel":
                await handle.cancel()
            else:
                await handle.signal(Closer.close, how)
            closed_run = client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
            # The waiting caller, a later poll and a repeated request all get the failure.
            for call in (
                waiter,
                closed_run.get_update_handle("u1").result(),
                closed_run.execute_update(Closer.hang, id="u1"),
            ):
                with pytest.raises(WorkflowUpdateFailedError) as err:
                    await asyncio.wait_for(call, 10)
                cause = err.value.cause
                assert isinstance(cause, ApplicationError), how
                assert (cause.type, cause.message, cause.non_retryable) == ("AcceptedUpdateCompletedWorkflow", COMPLETED_BEFORE, True)
            polled = await client.workflow_service.poll_workflow_execution_update(
                PollWorkflowExecutionUpdateRequest(
                    namespace="default",
                    update_ref=UpdateRef(workflow_execution=WorkflowExecution(workflow_id=handle.id, run_id=handle.result_run_id), update_id="u1"),
                    wait_policy=WaitPolicy(lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED),
                )
            )
            assert polled.stage == UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED
            assert polled.outcome.failure.source == "Server"
            assert polled.outcome.failure.application_failure_info.type == "AcceptedUpdateCompletedWorkflow"
            names = _names(await closed_run.fetch_history())
            assert names.count("WORKFLOW_EXECUTION_UPDATE_ACCEPTED") == 1
            assert "WORKFLOW_EXECUTION_UPDATE_COMPLETED" not in names
            if how == "continue_as_new":
                await client.get_workflow_handle(handle.id).terminate("done")


async def test_an_update_not_yet_accepted_is_aborted_when_the_run_closes(client, task_queue):
    # No worker polls, so the update stays admitted until the run is terminated; Temporal answers
    # the waiting caller and a later poll NOT_FOUND with this message.
    handle = await client.start_workflow(Closer.run, "x", id=f"closer-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
    waiting = asyncio.create_task(handle.start_update(Closer.hang, id="u1", wait_for_stage=WorkflowUpdateStage.ACCEPTED))
    await asyncio.sleep(0.5)
    await handle.terminate("bye")
    for call in (waiting, handle.get_update_handle("u1").result()):
        with pytest.raises(RPCError) as err:
            await asyncio.wait_for(call, 10)
        assert (err.value.status, err.value.message) == (RPCStatusCode.NOT_FOUND, "workflow update was aborted by closing workflow")
    assert _names(await handle.fetch_history()) == ["WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED", "WORKFLOW_EXECUTION_TERMINATED"]
    # An id the run never saw, on a closed run (Temporal's wording).
    with pytest.raises(RPCError) as err:
        await asyncio.wait_for(handle.get_update_handle("never").result(), 10)
    assert (err.value.status, err.value.message) == (RPCStatusCode.NOT_FOUND, 'update "never" not found')


@workflow.defn
class Joinable:
    def __init__(self) -> None:
        self.total = 0
        self.released = False
        self.done = False

    @workflow.run
    async def run(self, start: int) -> int:
        await workflow.wait_condition(lambda: self.done)
        return self.total

    @workflow.update
    async def add(self, n: int) -> int:
        self.total += n
        return self.total

    @workflow.update(unfinished_policy=workflow.HandlerUnfinishedPolicy.ABANDON)
    async def add_later(self, n: int) -> int:
        await workflow.wait_condition(lambda: self.released)
        self.total += n
        return self.total

    @workflow.signal
    def release(self) -> None:
        self.released = True

    @workflow.signal
    def finish(self) -> None:
        self.done = True


async def _with_start(client, task_queue, wid, update, update_id, conflict=None, reuse=None):
    from temporalio.common import WorkflowIDReusePolicy

    op = WithStartWorkflowOperation(
        Joinable.run,
        0,
        id=wid,
        task_queue=task_queue,
        id_conflict_policy=conflict or WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=reuse or WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    result = await asyncio.wait_for(client.execute_update_with_start_workflow(update, 7, id=update_id, start_workflow_operation=op), 15)
    return result, (await op.workflow_handle()).result_run_id


async def test_update_with_start_joins_an_update_the_run_knows_whatever_the_policies(client, task_queue):
    """Observed with Temporal 1.32: an update id the current run knows is joined (its outcome, or
    its result once done) under every conflict and reuse policy, and nothing starts; a closed run
    whose update did not complete (accepted and cut short by the close, or never accepted) is not
    joined, and the start's policies decide."""
    from temporalio.common import WorkflowIDReusePolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    async def started(wid, update=None):
        handle = await client.start_workflow(Joinable.run, 0, id=wid, task_queue=task_queue)
        if update == "completed":
            assert await handle.execute_update(Joinable.add, 5, id="u1") == 5
        elif update == "accepted":
            await handle.start_update(Joinable.add_later, 5, id="u1", wait_for_stage=WorkflowUpdateStage.ACCEPTED)
        return handle

    async with Worker(client, task_queue=task_queue, workflows=[Joinable]):
        conflicts = [WorkflowIDConflictPolicy.USE_EXISTING, WorkflowIDConflictPolicy.FAIL, WorkflowIDConflictPolicy.TERMINATE_EXISTING]
        for conflict in conflicts:
            # A running run with the update completed: its outcome (5, not 7), the same run.
            wid = f"join-{uuid.uuid4().hex[:6]}"
            handle = await started(wid, "completed")
            assert await _with_start(client, task_queue, wid, Joinable.add, "u1", conflict) == (5, handle.result_run_id)
            # A running run with the update in flight: joined, and its result once it completes.
            wid = f"join-{uuid.uuid4().hex[:6]}"
            handle = await started(wid, "accepted")
            joined = asyncio.create_task(_with_start(client, task_queue, wid, Joinable.add_later, "u1", conflict))
            await asyncio.sleep(0.5)
            assert not joined.done()
            await handle.signal(Joinable.release)
            assert await joined == (5, handle.result_run_id)
            names = _names(await handle.fetch_history())
            assert names.count("WORKFLOW_EXECUTION_UPDATE_ACCEPTED") == 1 and "WORKFLOW_EXECUTION_TERMINATED" not in names
        reuses = [WorkflowIDReusePolicy.ALLOW_DUPLICATE, WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY, WorkflowIDReusePolicy.REJECT_DUPLICATE]
        for reuse in reuses:
            # A closed run whose update the worker completed: joined, nothing starts.
            wid = f"join-{uuid.uuid4().hex[:6]}"
            handle = await started(wid, "completed")
            await handle.signal(Joinable.finish)
            assert await handle.result() == 5
            assert await _with_start(client, task_queue, wid, Joinable.add, "u1", WorkflowIDConflictPolicy.FAIL, reuse) == (5, handle.result_run_id)
        # A closed run whose accepted update the close cut short: not joined.
        wid = f"join-{uuid.uuid4().hex[:6]}"
        handle = await started(wid, "accepted")
        await handle.signal(Joinable.finish)
        await handle.result()
        with pytest.raises(WorkflowAlreadyStartedError):
            await _with_start(client, task_queue, wid, Joinable.add, "u1", reuse=WorkflowIDReusePolicy.REJECT_DUPLICATE)
        result, run_id = await _with_start(client, task_queue, wid, Joinable.add, "u1")
        assert result == 7 and run_id != handle.result_run_id
        # A closed run whose update was never accepted (no worker on its queue): a new run.
        wid = f"join-{uuid.uuid4().hex[:6]}"
        idle = await client.start_workflow(Joinable.run, 0, id=wid, task_queue=f"{task_queue}-idle")
        waiting = asyncio.create_task(idle.start_update(Joinable.add, 5, id="u1", wait_for_stage=WorkflowUpdateStage.ACCEPTED))
        await asyncio.sleep(0.5)
        await idle.terminate("bye")
        with pytest.raises(RPCError):
            await waiting
        result, run_id = await _with_start(client, task_queue, wid, Joinable.add, "u1")
        assert result == 7 and run_id != idle.result_run_id


async def test_update_with_start_refused_by_the_reuse_policy_says_why(stub, task_queue):
    """Temporal's wording for a start refused by the reuse policy, alone and in update-with-start."""
    import grpc
    from google.rpc import status_pb2
    from temporalio.api.common.v1 import WorkflowType
    from temporalio.api.enums.v1 import WorkflowIdConflictPolicy, WorkflowIdReusePolicy
    from temporalio.api.errordetails.v1 import MultiOperationExecutionFailure
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.update.v1 import Input, Meta, Request, WaitPolicy
    from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

    wid = f"reuse-{uuid.uuid4().hex[:6]}"

    def start(reuse=0):
        return ws.StartWorkflowExecutionRequest(
            namespace="default", workflow_id=wid, workflow_type=WorkflowType(name="X"), task_queue=TaskQueue(name=task_queue),
            request_id=str(uuid.uuid4()), workflow_id_reuse_policy=reuse,
            workflow_id_conflict_policy=WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING if reuse else 0,
        )

    run_id = (await stub.StartWorkflowExecution(start(), timeout=10)).run_id
    await stub.TerminateWorkflowExecution(
        ws.TerminateWorkflowExecutionRequest(namespace="default", workflow_execution=WorkflowExecution(workflow_id=wid)), timeout=10
    )
    refused = f"Workflow execution already finished. WorkflowId: {wid}, RunId: {run_id}. Workflow Id reuse policy: reject duplicate workflow Id."
    reject = WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.StartWorkflowExecution(start(reject), timeout=10)
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.ALREADY_EXISTS, refused)
    update = ws.UpdateWorkflowExecutionRequest(
        namespace="default", workflow_execution=WorkflowExecution(workflow_id=wid),
        request=Request(meta=Meta(update_id="u1"), input=Input(name="add")), wait_policy=WaitPolicy(lifecycle_stage=2),
    )
    multi = ws.ExecuteMultiOperationRequest(
        namespace="default",
        operations=[
            ws.ExecuteMultiOperationRequest.Operation(start_workflow=start(reject)),
            ws.ExecuteMultiOperationRequest.Operation(update_workflow=update),
        ],
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ExecuteMultiOperation(multi, timeout=10)
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.ALREADY_EXISTS, "Update-with-Start could not be executed.")
    status = status_pb2.Status.FromString(dict(err.value.trailing_metadata())["grpc-status-details-bin"])
    failure = MultiOperationExecutionFailure()
    status.details[0].Unpack(failure)
    assert [(s.code, s.message) for s in failure.statuses] == [
        (grpc.StatusCode.ALREADY_EXISTS.value[0], refused),
        (grpc.StatusCode.ABORTED.value[0], "Operation was aborted."),
    ]


async def test_an_update_admitted_when_the_run_continues_as_new_is_to_be_sent_again(client, task_queue):
    """Raw worker calls, so the update arrives while the task that continues the run as new is in
    flight. Temporal 1.32 answers the waiting caller RESOURCE_EXHAUSTED with exactly this message
    and detail (SDK clients retry it); sent again, the update goes to the new run."""
    from datetime import timedelta

    from google.protobuf.any_pb2 import Any as AnyProto
    from temporalio.api.command.v1 import (
        Command,
        ContinueAsNewWorkflowExecutionCommandAttributes,
        ProtocolMessageCommandAttributes,
    )
    from temporalio.api.common.v1 import Payload, Payloads, WorkflowType
    from temporalio.api.enums.v1 import CommandType, ResourceExhaustedCause, ResourceExhaustedScope
    from temporalio.api.errordetails.v1 import ResourceExhaustedFailure
    from temporalio.api.protocol.v1 import Message
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.update.v1 import Acceptance, Input, Meta, Outcome, Request, Response, WaitPolicy
    from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

    svc, wid = client.workflow_service, f"can-{uuid.uuid4().hex[:8]}"
    first = await svc.start_workflow_execution(
        ws.StartWorkflowExecutionRequest(
            namespace="default", workflow_id=wid, workflow_type=WorkflowType(name="X"), task_queue=TaskQueue(name=task_queue),
            request_id=str(uuid.uuid4()),
        )
    )

    async def poll():
        return await svc.poll_workflow_task_queue(
            ws.PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=task_queue), identity="w"),
            timeout=timedelta(seconds=10),
        )

    def update_call():
        return svc.update_workflow_execution(
            ws.UpdateWorkflowExecutionRequest(
                namespace="default", workflow_execution=WorkflowExecution(workflow_id=wid),
                request=Request(meta=Meta(update_id="u1"), input=Input(name="u")),
                wait_policy=WaitPolicy(lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED),
            ),
            timeout=timedelta(seconds=20),
        )

    task = await poll()
    waiting = asyncio.create_task(update_call())
    await asyncio.sleep(0.5)
    assert not waiting.done()
    continue_as_new = ContinueAsNewWorkflowExecutionCommandAttributes(workflow_type=WorkflowType(name="X"), task_queue=TaskQueue(name=task_queue))
    await svc.respond_workflow_task_completed(
        ws.RespondWorkflowTaskCompletedRequest(
            namespace="default", task_token=task.task_token, identity="w",
            commands=[Command(command_type=CommandType.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION,
                              continue_as_new_workflow_execution_command_attributes=continue_as_new)],
        )
    )
    with pytest.raises(RPCError) as err:
        await waiting
    assert (err.value.status, err.value.message) == (
        RPCStatusCode.RESOURCE_EXHAUSTED, "workflow operation can not be applied because workflow is closing"
    )
    [detail] = err.value.grpc_status.details
    failure = ResourceExhaustedFailure()
    detail.Unpack(failure)
    assert (failure.cause, failure.scope) == (
        ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_BUSY_WORKFLOW, ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_NAMESPACE
    )
    # Sent again (as SDK clients do), the update reaches the new run's worker.
    again = asyncio.create_task(update_call())
    task = await poll()
    assert task.workflow_execution.run_id != first.run_id
    if not task.messages:  # the new run's first task may have started before the update came
        await svc.respond_workflow_task_completed(
            ws.RespondWorkflowTaskCompletedRequest(namespace="default", task_token=task.task_token, identity="w")
        )
        task = await poll()
    [message] = task.messages
    request = Request()
    message.body.Unpack(request)
    accept, respond = AnyProto(), AnyProto()
    accept.Pack(Acceptance(accepted_request_message_id=message.id, accepted_request_sequencing_event_id=message.event_id, accepted_request=request))
    respond.Pack(Response(meta=request.meta, outcome=Outcome(success=Payloads(payloads=[Payload(data=b'"ok"', metadata={"encoding": b"json/plain"})]))))
    messages = [Message(id="u1/accept", protocol_instance_id="u1", body=accept), Message(id="u1/complete", protocol_instance_id="u1", body=respond)]
    await svc.respond_workflow_task_completed(
        ws.RespondWorkflowTaskCompletedRequest(
            namespace="default", task_token=task.task_token, identity="w", messages=messages,
            commands=[Command(command_type=CommandType.COMMAND_TYPE_PROTOCOL_MESSAGE,
                              protocol_message_command_attributes=ProtocolMessageCommandAttributes(message_id=m.id)) for m in messages],
        )
    )
    response = await again
    assert response.update_ref.workflow_execution.run_id == task.workflow_execution.run_id
    assert response.outcome.success.payloads[0].data == b'"ok"'
    await client.get_workflow_handle(wid).terminate("done")
