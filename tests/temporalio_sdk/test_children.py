"""Child workflows, parent close policies, external signals/cancels and signal-with-start,
through the real temporalio SDK (issue 3 items 1 and 2)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    TerminatedError,
    WorkflowAlreadyStartedError,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.support.replay import assert_chain_replays, assert_replays


def _names(history) -> list[str]:
    from temporalio.api.enums.v1 import EventType

    return [EventType.Name(e.event_type)[len("EVENT_TYPE_") :] for e in history.events]


@workflow.defn
class Child:
    @workflow.run
    async def run(self, mode: str) -> str:
        if mode == "fail":
            raise ApplicationError("child says no", type="ChildBusiness", non_retryable=True)
        if mode == "sleep":
            try:
                await workflow.sleep(3600)
            except asyncio.CancelledError:
                raise
        if mode == "continue":
            workflow.continue_as_new("done")
        return f"child:{mode}:{workflow.info().parent.workflow_id if workflow.info().parent else '-'}"


@workflow.defn
class Parent:
    @workflow.run
    async def run(self, mode: str, child_id: str) -> str:
        if mode in ("ok", "fail", "continue"):
            try:
                return await workflow.execute_child_workflow(Child.run, mode, id=child_id)
            except ChildWorkflowError as err:
                return f"{type(err.cause).__name__}:{err.cause}"
        if mode == "timeout":
            try:
                await workflow.execute_child_workflow(Child.run, "sleep", id=child_id, run_timeout=timedelta(seconds=1))
            except ChildWorkflowError as err:
                return type(err.cause).__name__
        if mode == "cancel":
            handle = await workflow.start_child_workflow(Child.run, "sleep", id=child_id)
            await workflow.sleep(0.2)
            handle.cancel()
            try:
                await handle
            except ChildWorkflowError as err:
                return type(err.cause).__name__
        if mode == "duplicate":
            try:
                await workflow.start_child_workflow(Child.run, "sleep", id=child_id)
            except WorkflowAlreadyStartedError:
                return "already started"
        if mode == "wait-terminated":
            try:
                await workflow.execute_child_workflow(Child.run, "sleep", id=child_id)
            except ChildWorkflowError as err:
                return type(err.cause).__name__
        if mode.startswith("leave-"):
            policy = {
                "leave-terminate": workflow.ParentClosePolicy.TERMINATE,
                "leave-cancel": workflow.ParentClosePolicy.REQUEST_CANCEL,
                "leave-abandon": workflow.ParentClosePolicy.ABANDON,
            }[mode]
            handle = await workflow.start_child_workflow(Child.run, "sleep", id=child_id, parent_close_policy=policy)
            return handle.first_execution_run_id or ""
        raise ApplicationError(f"unknown mode {mode}")


WORKFLOWS = [Parent, Child]


def _worker(client: Client, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=WORKFLOWS + [Signaller, Target, Canceller])


async def _wait_status(client: Client, workflow_id: str, status: WorkflowExecutionStatus, timeout: float = 20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            desc = await client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:  # the child may not exist yet
            if err.status != RPCStatusCode.NOT_FOUND or asyncio.get_running_loop().time() > deadline:
                raise
        else:
            if desc.status == status or asyncio.get_running_loop().time() > deadline:
                return desc
        await asyncio.sleep(0.1)


async def test_child_completes_and_parent_gets_its_result(client, task_queue):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        handle = await client.start_workflow(Parent.run, args=["ok", f"child-{key}"], id=f"parent-{key}", task_queue=task_queue)
        assert await handle.result() == f"child:ok:parent-{key}"
        history = await handle.fetch_history()
    names = _names(history)
    i = names.index("START_CHILD_WORKFLOW_EXECUTION_INITIATED")
    assert names.index("CHILD_WORKFLOW_EXECUTION_STARTED") > i
    assert names.index("CHILD_WORKFLOW_EXECUTION_COMPLETED") > names.index("CHILD_WORKFLOW_EXECUTION_STARTED")
    started = next(e for e in history.events if e.HasField("child_workflow_execution_started_event_attributes"))
    completed = next(e for e in history.events if e.HasField("child_workflow_execution_completed_event_attributes"))
    attrs = completed.child_workflow_execution_completed_event_attributes
    assert attrs.initiated_event_id == history.events[i].event_id
    assert attrs.started_event_id == started.event_id
    child = client.get_workflow_handle(f"child-{key}")
    desc = await child.describe()
    assert desc.parent_id == f"parent-{key}"
    assert desc.parent_run_id == handle.result_run_id
    child_history = await child.fetch_history()
    child_started = child_history.events[0].workflow_execution_started_event_attributes
    assert child_started.parent_initiated_event_id == history.events[i].event_id
    assert child_started.root_workflow_execution.workflow_id == f"parent-{key}"
    assert await assert_replays(handle, *WORKFLOWS) > 5
    assert await assert_replays(child, *WORKFLOWS) > 3


async def test_child_failure_reaches_parent(client, task_queue):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        handle = await client.start_workflow(Parent.run, args=["fail", f"child-{key}"], id=f"parent-{key}", task_queue=task_queue)
        assert await handle.result() == "ApplicationError:ChildBusiness: child says no"
        history = await handle.fetch_history()
    assert "CHILD_WORKFLOW_EXECUTION_FAILED" in _names(history)
    assert await assert_replays(handle, *WORKFLOWS) > 5


async def test_child_continuing_as_new_reports_the_final_result_once(client, task_queue):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        handle = await client.start_workflow(
            Parent.run, args=["continue", f"child-{key}"], id=f"parent-{key}", task_queue=task_queue
        )
        assert await handle.result() == f"child:done:parent-{key}"
        history = await handle.fetch_history()
    names = _names(history)
    assert names.count("CHILD_WORKFLOW_EXECUTION_STARTED") == 1
    assert names.count("CHILD_WORKFLOW_EXECUTION_COMPLETED") == 1
    child_first = history.events[names.index("CHILD_WORKFLOW_EXECUTION_STARTED")]
    first_run = child_first.child_workflow_execution_started_event_attributes.workflow_execution.run_id
    runs = await assert_chain_replays(client, f"child-{key}", first_run, *WORKFLOWS)
    assert len(runs) == 2
    assert await assert_replays(handle, *WORKFLOWS) > 5


async def test_child_run_timeout_reaches_parent(client, task_queue):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        handle = await client.start_workflow(
            Parent.run, args=["timeout", f"child-{key}"], id=f"parent-{key}", task_queue=task_queue
        )
        assert await handle.result() == "TimeoutError"
        history = await handle.fetch_history()
    assert "CHILD_WORKFLOW_EXECUTION_TIMED_OUT" in _names(history)
    assert (await client.get_workflow_handle(f"child-{key}").describe()).status == WorkflowExecutionStatus.TIMED_OUT
    assert await assert_replays(handle, *WORKFLOWS) > 5


async def test_cancelling_a_child_from_the_parent(client, task_queue):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        handle = await client.start_workflow(Parent.run, args=["cancel", f"child-{key}"], id=f"parent-{key}", task_queue=task_queue)
        assert await handle.result() == "CancelledError"
        history = await handle.fetch_history()
        child_history = await client.get_workflow_handle(f"child-{key}").fetch_history()
    names = _names(history)
    assert "REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED" in names
    assert "EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED" in names
    assert "CHILD_WORKFLOW_EXECUTION_CANCELED" in names
    child_names = _names(child_history)
    assert "WORKFLOW_EXECUTION_CANCEL_REQUESTED" in child_names
    assert child_names[-1] == "WORKFLOW_EXECUTION_CANCELED"
    requested = next(e for e in child_history.events if e.HasField("workflow_execution_cancel_requested_event_attributes"))
    assert requested.workflow_execution_cancel_requested_event_attributes.external_workflow_execution.workflow_id == f"parent-{key}"
    assert await assert_replays(handle, *WORKFLOWS) > 5


async def test_terminated_child_reported_to_parent(client, task_queue):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        handle = await client.start_workflow(
            Parent.run, args=["wait-terminated", f"child-{key}"], id=f"parent-{key}", task_queue=task_queue
        )
        await _wait_status(client, f"child-{key}", WorkflowExecutionStatus.RUNNING)
        await client.get_workflow_handle(f"child-{key}").terminate("stop")
        assert await handle.result() == "TerminatedError"
        history = await handle.fetch_history()
    assert "CHILD_WORKFLOW_EXECUTION_TERMINATED" in _names(history)
    assert await assert_replays(handle, *WORKFLOWS) > 5


async def test_child_id_already_running_fails_the_start(client, task_queue):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        blocker = await client.start_workflow(Child.run, "sleep", id=f"child-{key}", task_queue=task_queue)
        handle = await client.start_workflow(
            Parent.run, args=["duplicate", f"child-{key}"], id=f"parent-{key}", task_queue=task_queue
        )
        assert await handle.result() == "already started"
        history = await handle.fetch_history()
        await blocker.terminate("cleanup")
    failed = next(e for e in history.events if e.HasField("start_child_workflow_execution_failed_event_attributes"))
    assert failed.start_child_workflow_execution_failed_event_attributes.cause == 1  # WORKFLOW_ALREADY_EXISTS
    assert await assert_replays(handle, *WORKFLOWS) > 5


@pytest.mark.parametrize(
    "mode,child_status",
    [
        ("leave-terminate", WorkflowExecutionStatus.TERMINATED),
        ("leave-cancel", WorkflowExecutionStatus.CANCELED),
        ("leave-abandon", WorkflowExecutionStatus.RUNNING),
    ],
)
async def test_parent_close_policy(client, task_queue, mode, child_status):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        handle = await client.start_workflow(Parent.run, args=[mode, f"child-{key}"], id=f"parent-{key}", task_queue=task_queue)
        await handle.result()
        desc = await _wait_status(client, f"child-{key}", child_status)
        assert desc.status == child_status
        if child_status == WorkflowExecutionStatus.RUNNING:
            await asyncio.sleep(0.5)  # the parent's close has been processed; the child is still running
            assert (await client.get_workflow_handle(f"child-{key}").describe()).status == child_status
            await client.get_workflow_handle(f"child-{key}").terminate("cleanup")
        elif child_status == WorkflowExecutionStatus.TERMINATED:
            history = await client.get_workflow_handle(f"child-{key}").fetch_history()
            assert history.events[-1].workflow_execution_terminated_event_attributes.reason == "by parent close policy"
    assert await assert_replays(handle, *WORKFLOWS) > 4


# -- external signals and cancellations -----------------------------------------------------


@workflow.defn
class Target:
    def __init__(self) -> None:
        self.got: list[str] = []

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: len(self.got) >= 2)
        return self.got

    @workflow.signal
    def push(self, value: str) -> None:
        self.got.append(value)


@workflow.defn
class Signaller:
    @workflow.run
    async def run(self, target_id: str) -> str:
        target = workflow.get_external_workflow_handle_for(Target.run, target_id)
        await target.signal(Target.push, "from-signaller")
        try:
            await workflow.get_external_workflow_handle(target_id + "-missing").signal("push", "lost")
        except ApplicationError as err:
            return f"missing: {err}"
        return "missing target was signalled?"


@workflow.defn
class Canceller:
    @workflow.run
    async def run(self, target_id: str) -> str:
        await workflow.get_external_workflow_handle(target_id).cancel()
        try:
            await workflow.get_external_workflow_handle(target_id + "-missing").cancel()
        except ApplicationError as err:
            return f"missing: {err}"
        return "missing target was cancelled?"


async def test_signal_external_workflow(client, task_queue):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        target = await client.start_workflow(Target.run, id=f"target-{key}", task_queue=task_queue)
        await target.signal(Target.push, "from-client")
        sender = await client.start_workflow(Signaller.run, f"target-{key}", id=f"sender-{key}", task_queue=task_queue)
        outcome = await sender.result()
        assert outcome.startswith("missing: ")
        assert sorted(await target.result()) == ["from-client", "from-signaller"]
        history = await sender.fetch_history()
        target_history = await target.fetch_history()
    names = _names(history)
    assert "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED" in names
    assert "EXTERNAL_WORKFLOW_EXECUTION_SIGNALED" in names
    failed = next(e for e in history.events if e.HasField("signal_external_workflow_execution_failed_event_attributes"))
    assert failed.signal_external_workflow_execution_failed_event_attributes.cause == 1  # NOT_FOUND
    signaled = [e for e in target_history.events if e.HasField("workflow_execution_signaled_event_attributes")]
    assert [e.workflow_execution_signaled_event_attributes.external_workflow_execution.workflow_id for e in signaled] == [
        "",
        f"sender-{key}",
    ]
    assert await assert_replays(sender, Signaller) > 5
    assert await assert_replays(target, Target) > 5


async def test_cancel_external_workflow(client, task_queue):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        target = await client.start_workflow(Target.run, id=f"target-{key}", task_queue=task_queue)
        sender = await client.start_workflow(Canceller.run, f"target-{key}", id=f"sender-{key}", task_queue=task_queue)
        assert (await sender.result()).startswith("missing: ")
        with pytest.raises(WorkflowFailureError) as err:
            await target.result()
        history = await sender.fetch_history()
    assert isinstance(err.value.cause, CancelledError)
    names = _names(history)
    assert "EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED" in names
    assert "REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED" in names
    assert await assert_replays(sender, Canceller) > 5
    assert await assert_replays(target, Target) > 3


# -- signal-with-start and id policies -------------------------------------------------------


async def test_signal_with_start_starts_then_signals_the_running_run(client, task_queue):
    key = uuid.uuid4().hex[:8]
    async with _worker(client, task_queue):
        first = await client.start_workflow(
            Target.run, id=f"sws-{key}", task_queue=task_queue, start_signal="push", start_signal_args=["one"]
        )
        history = await first.fetch_history()
        assert _names(history)[:3] == ["WORKFLOW_EXECUTION_STARTED", "WORKFLOW_EXECUTION_SIGNALED", "WORKFLOW_TASK_SCHEDULED"]
        second = await client.start_workflow(
            Target.run, id=f"sws-{key}", task_queue=task_queue, start_signal="push", start_signal_args=["two"]
        )
        assert second.result_run_id == first.result_run_id
        assert await first.result() == ["one", "two"]
    assert await assert_replays(first, Target) > 5


async def test_signal_with_start_refuses_the_fail_policy(client, task_queue):
    # As Temporal: signal-with-start signals a running run, so FAIL makes no sense for it.
    key = uuid.uuid4().hex[:8]
    first = await client.start_workflow(Target.run, id=f"swsf-{key}", task_queue=task_queue)
    with pytest.raises(RPCError) as err:
        await client.start_workflow(
            Target.run,
            id=f"swsf-{key}",
            task_queue=task_queue,
            start_signal="push",
            start_signal_args=["x"],
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT and "FAIL is not supported" in err.value.message
    history = await first.fetch_history()
    assert "WORKFLOW_EXECUTION_SIGNALED" not in _names(history)
    await first.terminate("cleanup")


async def test_id_conflict_and_reuse_policies(client, task_queue):
    key = uuid.uuid4().hex[:8]
    wid = f"policy-{key}"
    async with _worker(client, task_queue):
        first = await client.start_workflow(Child.run, "sleep", id=wid, task_queue=task_queue)
        same = await client.start_workflow(
            Child.run, "sleep", id=wid, task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING
        )
        assert same.result_run_id == first.result_run_id
        replacing = await client.start_workflow(
            Child.run, "ok", id=wid, task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING
        )
        assert replacing.result_run_id != first.result_run_id
        with pytest.raises(WorkflowFailureError) as err:
            await client.get_workflow_handle(wid, run_id=first.result_run_id).result()
        assert isinstance(err.value.cause, TerminatedError)
        assert await replacing.result() == "child:ok:-"
        with pytest.raises(WorkflowAlreadyStartedError):
            await client.start_workflow(
                Child.run, "ok", id=wid, task_queue=task_queue, id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE
            )
        with pytest.raises(WorkflowAlreadyStartedError):
            await client.start_workflow(
                Child.run,
                "ok",
                id=wid,
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            )
        again = await client.start_workflow(Child.run, "ok", id=wid, task_queue=task_queue)
        assert await again.result() == "child:ok:-"
    assert await assert_replays(replacing, Child) > 3


# -- child cancellation types -----------------------------------------------------------------


@workflow.defn
class CancellingParent:
    @workflow.run
    async def run(self, child_id: str, cancellation_type: int) -> str:
        handle = await workflow.start_child_workflow(
            Child.run,
            "sleep",
            id=child_id,
            cancellation_type=workflow.ChildWorkflowCancellationType(cancellation_type),
            # Abandoned on close, so what happens to the child shows the cancellation type alone.
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
        )
        await workflow.sleep(0.2)
        handle.cancel()
        try:
            await handle
            outcome = "child completed"
        except ChildWorkflowError as err:
            outcome = type(err.cause).__name__
        except asyncio.CancelledError:
            outcome = "CancelledError"
        # Stay open a little: requests a closed run made to other runs are dropped (as in Temporal).
        await workflow.sleep(1)
        return outcome


@pytest.mark.parametrize(
    "cancellation_type,child_status,parent_sees",
    [
        (workflow.ChildWorkflowCancellationType.ABANDON, WorkflowExecutionStatus.RUNNING, None),
        (workflow.ChildWorkflowCancellationType.TRY_CANCEL, WorkflowExecutionStatus.CANCELED, "EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED"),
        (
            workflow.ChildWorkflowCancellationType.WAIT_CANCELLATION_REQUESTED,
            WorkflowExecutionStatus.CANCELED,
            "EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED",
        ),
        (
            workflow.ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
            WorkflowExecutionStatus.CANCELED,
            "CHILD_WORKFLOW_EXECUTION_CANCELED",
        ),
    ],
)
async def test_child_cancellation_types(client, task_queue, cancellation_type, child_status, parent_sees):
    key = uuid.uuid4().hex[:8]
    async with Worker(client, task_queue=task_queue, workflows=[CancellingParent, Child]):
        handle = await client.start_workflow(
            CancellingParent.run,
            args=[f"child-{key}", int(cancellation_type)],
            id=f"cparent-{key}",
            task_queue=task_queue,
        )
        assert await handle.result() in ("CancelledError", "child completed")
        history = await handle.fetch_history()
        names = _names(history)
        if parent_sees is None:
            assert "REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED" not in names
        else:
            assert "REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED" in names
            if cancellation_type != workflow.ChildWorkflowCancellationType.TRY_CANCEL:
                assert parent_sees in names
        # The parent completed; abandoned children keep running, cancelled ones end CANCELED.
        desc = await _wait_status(client, f"child-{key}", child_status)
        assert desc.status == child_status
        if child_status == WorkflowExecutionStatus.RUNNING:
            await client.get_workflow_handle(f"child-{key}").terminate("cleanup")
    assert await assert_replays(handle, CancellingParent, Child) > 5


# -- a child id already in use -----------------------------------------------------------------


@workflow.defn
class DuplicateChildParent:
    """Starts a child whose id is taken: by its own running child (in a later task or twice in one
    task) or by a workflow that is no child of it."""

    @workflow.run
    async def run(self, mode: str, child_id: str) -> list[str]:
        outcomes = []
        if mode == "later":
            await workflow.start_child_workflow(Child.run, "sleep", id=child_id)
            await workflow.sleep(0.1)
        starts = [workflow.start_child_workflow(Child.run, "sleep", id=child_id) for _ in range(2 if mode == "same" else 1)]
        for result in await asyncio.gather(*starts, return_exceptions=True):
            if isinstance(result, WorkflowAlreadyStartedError):
                outcomes.append(f"already started: {result.workflow_id} {result.workflow_type}")
            elif isinstance(result, BaseException):
                raise result
            else:
                outcomes.append("started")
        return sorted(outcomes)


async def test_a_child_whose_id_is_taken_fails_to_start_and_the_parent_goes_on(client, task_queue):
    """Temporal 1.32 records the start (initiated) and then its failure with cause
    WORKFLOW_ALREADY_EXISTS; the parent's code gets WorkflowAlreadyStartedError. The histories
    below are the ones Temporal wrote for the same workflows."""
    from temporalio.api.enums.v1 import StartChildWorkflowExecutionFailedCause

    task_flow = ["WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED"]
    expected = {
        "later": ["WORKFLOW_EXECUTION_STARTED", *task_flow, "START_CHILD_WORKFLOW_EXECUTION_INITIATED", "CHILD_WORKFLOW_EXECUTION_STARTED",
                  *task_flow, "TIMER_STARTED", "TIMER_FIRED", *task_flow, "START_CHILD_WORKFLOW_EXECUTION_INITIATED",
                  "START_CHILD_WORKFLOW_EXECUTION_FAILED", *task_flow, "WORKFLOW_EXECUTION_COMPLETED"],
        "foreign": ["WORKFLOW_EXECUTION_STARTED", *task_flow, "START_CHILD_WORKFLOW_EXECUTION_INITIATED",
                    "START_CHILD_WORKFLOW_EXECUTION_FAILED", *task_flow, "WORKFLOW_EXECUTION_COMPLETED"],
    }
    async with Worker(client, task_queue=task_queue, workflows=[DuplicateChildParent, Child]):
        for mode in ["later", "same", "foreign"]:
            child_id = f"taken-{mode}-{uuid.uuid4().hex[:6]}"
            if mode == "foreign":
                await client.start_workflow(Child.run, "sleep", id=child_id, task_queue=task_queue)
            parent = await client.start_workflow(
                DuplicateChildParent.run, args=[mode, child_id], id=f"dup-parent-{uuid.uuid4().hex[:6]}", task_queue=task_queue
            )
            outcomes = await asyncio.wait_for(parent.result(), 20)
            expected_outcomes = [f"already started: {child_id} Child"] + (["started"] if mode == "same" else [])
            assert outcomes == expected_outcomes, mode
            history = await parent.fetch_history()
            names = _names(history)
            if mode == "same":
                # Both starts are initiated in one task; which one wins is a race, in Temporal too.
                assert names[:6] == ["WORKFLOW_EXECUTION_STARTED", *task_flow, *["START_CHILD_WORKFLOW_EXECUTION_INITIATED"] * 2]
                assert names.count("CHILD_WORKFLOW_EXECUTION_STARTED") == names.count("START_CHILD_WORKFLOW_EXECUTION_FAILED") == 1
                assert names[-1] == "WORKFLOW_EXECUTION_COMPLETED"
            else:
                assert names == expected[mode], mode
            assert "WORKFLOW_TASK_FAILED" not in names
            [failed] = [e.start_child_workflow_execution_failed_event_attributes for e in history.events
                        if e.HasField("start_child_workflow_execution_failed_event_attributes")]
            assert failed.cause == StartChildWorkflowExecutionFailedCause.START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_WORKFLOW_ALREADY_EXISTS
            assert (failed.workflow_id, failed.workflow_type.name) == (child_id, "Child")
            assert failed.workflow_task_completed_event_id == 0  # unset, as Temporal writes it
            if mode == "foreign":  # the others were the parent's children, terminated with it
                await client.get_workflow_handle(child_id).terminate("done")
        await assert_replays(parent, DuplicateChildParent)
