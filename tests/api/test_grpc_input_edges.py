"""Inputs at the edges of what the protocol allows: durations of millennia, page sizes and tokens
out of range, enum numbers no enum has, policy combinations Temporal refuses, schedules that never
fire, update-with-start whose update is invalid. Each is either honoured or refused with
INVALID_ARGUMENT, and a refused request changes nothing."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio import activity, workflow
from temporalio.api.common.v1 import Priority, WorkflowExecution
from temporalio.api.enums.v1 import (
    ArchivalState,
    EventType,
    WorkflowIdConflictPolicy,
    WorkflowIdReusePolicy,
    WorkflowTaskFailedCause,
)
from temporalio.api.namespace.v1 import NamespaceConfig, UpdateNamespaceInfo
from temporalio.api.update.v1 import Input as UpdateInput
from temporalio.api.update.v1 import Meta as UpdateMeta
from temporalio.api.update.v1 import Request as UpdateRequest
from temporalio.api.update.v1 import WaitPolicy
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.worker import Worker
from test_grpc_errors import (
    NS,
    assert_no_workflow,
    assert_queue_empty,
    describe,
    expect_error,
    history,
    start,
    start_request,
    types,
    uid,
)

MILLENNIA = timedelta(days=365 * 9000)  # within protobuf's range, far beyond datetime's from now


@activity.defn
async def double(n: int) -> int:
    return 2 * n


@workflow.defn
class Patient:
    def __init__(self) -> None:
        self.done = False

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.run
    async def run(self, n: int) -> int:
        doubled = await workflow.execute_activity(double, n, start_to_close_timeout=MILLENNIA, heartbeat_timeout=MILLENNIA)
        await workflow.wait_condition(lambda: self.done, timeout=MILLENNIA)
        return doubled


async def test_durations_of_millennia_are_honoured_as_temporals_longest(client, task_queue):
    handle = await client.start_workflow(
        Patient.run, 21, id=uid("patient"), task_queue=task_queue, execution_timeout=MILLENNIA, task_timeout=timedelta(seconds=10)
    )
    async with Worker(client, task_queue=task_queue, workflows=[Patient], activities=[double]):
        async for event in handle.fetch_history_events(wait_new_event=True):
            if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                break
        await handle.signal(Patient.finish)
        assert await handle.result() == 42
    events = [e async for e in handle.fetch_history_events()]
    fired = [e for e in events if e.event_type == EventType.EVENT_TYPE_TIMER_CANCELED]
    assert len(fired) == 1  # the millennia-long timer was cancelled by the condition, never fired


@pytest.mark.parametrize("field", ["workflow_execution_timeout", "workflow_run_timeout", "workflow_start_delay"])
async def test_start_accepts_the_longest_protobuf_duration(stub, task_queue, field):
    workflow_id = uid("long")
    run_id = await start(stub, workflow_id, task_queue, **{field: Duration(seconds=315_576_000_000)})
    described = await describe(stub, workflow_id, run_id)
    assert described.workflow_execution_info.status == 1  # running


async def test_absurd_page_tokens_are_invalid_and_non_positive_page_sizes_mean_the_default(stub, task_queue):
    workflow_id = uid("paged")
    run_id = await start(stub, workflow_id, task_queue)
    for token in (b"99999999999999999999999", b"-1", b"x"):
        await expect_error(
            stub.ListWorkflowExecutions(ws.ListWorkflowExecutionsRequest(namespace=NS, next_page_token=token), timeout=10),
            grpc.StatusCode.INVALID_ARGUMENT, "NextPageToken",
        )
        await expect_error(
            stub.ListNamespaces(ws.ListNamespacesRequest(next_page_token=token), timeout=10),
            grpc.StatusCode.INVALID_ARGUMENT, "NextPageToken",
        )
    execution = WorkflowExecution(workflow_id=workflow_id, run_id=run_id)
    for n in ("1e400", "-99999999999999999999999", "99999999999999999999999", "0"):
        token = json.dumps({"r": run_id, "n": 0}).replace("0}", n + "}").encode()
        await expect_error(
            stub.GetWorkflowExecutionHistory(
                ws.GetWorkflowExecutionHistoryRequest(namespace=NS, execution=execution, next_page_token=token), timeout=10
            ),
            grpc.StatusCode.INVALID_ARGUMENT, "NextPageToken",
        )
        await expect_error(
            stub.GetWorkflowExecutionHistoryReverse(
                ws.GetWorkflowExecutionHistoryReverseRequest(namespace=NS, execution=execution, next_page_token=token),
                timeout=10,
            ),
            grpc.StatusCode.INVALID_ARGUMENT, "NextPageToken",
        )

    everything = await stub.ListNamespaces(ws.ListNamespacesRequest(), timeout=10)
    negative = await stub.ListNamespaces(ws.ListNamespacesRequest(page_size=-3), timeout=10)
    assert [n.namespace_info.name for n in negative.namespaces] == [n.namespace_info.name for n in everything.namespaces]
    listed = await stub.ListWorkflowExecutions(
        ws.ListWorkflowExecutionsRequest(namespace=NS, page_size=-1, query=f"WorkflowId = '{workflow_id}'"), timeout=10
    )
    assert [e.execution.run_id for e in listed.executions] == [run_id] and not listed.next_page_token
    reverse = await stub.GetWorkflowExecutionHistoryReverse(
        ws.GetWorkflowExecutionHistoryReverseRequest(namespace=NS, execution=execution, maximum_page_size=-5), timeout=10
    )
    assert [e.event_id for e in reverse.history.events] == [2, 1] and not reverse.next_page_token


@pytest.mark.parametrize(
    "reuse, conflict, fragment",
    [
        (WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING, WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_FAIL, "TERMINATE_IF_RUNNING"),
        (WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING, WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING, "TERMINATE_IF_RUNNING"),
        (WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE, WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING, "REJECT_DUPLICATE"),
        (99, 0, "WorkflowIdReusePolicy: 99"),
        (0, 42, "WorkflowIdConflictPolicy: 42"),
    ],
    ids=["terminate-if-running+fail", "terminate-if-running+use-existing", "reject-duplicate+terminate-existing", "reuse-99", "conflict-42"],
)
async def test_start_refuses_policies_temporal_refuses(stub, task_queue, reuse, conflict, fragment):
    workflow_id = uid("policy")
    req = start_request(workflow_id, task_queue, workflow_id_reuse_policy=reuse, workflow_id_conflict_policy=conflict)
    await expect_error(stub.StartWorkflowExecution(req, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, fragment)
    await assert_no_workflow(stub, workflow_id)


async def test_signal_with_start_refuses_the_fail_conflict_policy_and_negative_priority_keys(stub, task_queue):
    workflow_id = uid("sws")
    req = ws.SignalWithStartWorkflowExecutionRequest(
        namespace=NS, workflow_id=workflow_id, workflow_type=start_request(workflow_id, task_queue).workflow_type,
        task_queue=start_request(workflow_id, task_queue).task_queue, signal_name="go",
        workflow_id_conflict_policy=WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
    )
    await expect_error(stub.SignalWithStartWorkflowExecution(req, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "FAIL")
    req = start_request(workflow_id, task_queue, priority=Priority(priority_key=-1))
    await expect_error(stub.StartWorkflowExecution(req, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "PriorityKey")
    await assert_no_workflow(stub, workflow_id)


@pytest.mark.parametrize("schedule", ["0 0 30 2 *", "0 0 31 4 *", "@every 99999999999h"])
async def test_cron_schedules_that_never_fire_are_refused(stub, task_queue, schedule):
    workflow_id = uid("cron")
    req = start_request(workflow_id, task_queue, cron_schedule=schedule)
    await expect_error(stub.StartWorkflowExecution(req, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "CronSchedule")
    await assert_no_workflow(stub, workflow_id)
    await assert_queue_empty(stub, task_queue)


def _update(workflow_id: str, name: str = "add", update_id: str = "", stage: int = 2) -> ws.UpdateWorkflowExecutionRequest:
    return ws.UpdateWorkflowExecutionRequest(
        namespace=NS,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id),
        request=UpdateRequest(meta=UpdateMeta(update_id=update_id), input=UpdateInput(name=name)),
        wait_policy=WaitPolicy(lifecycle_stage=stage),
    )


async def test_an_invalid_update_wait_stage_is_refused_before_anything_runs(stub, task_queue):
    workflow_id = uid("stage")
    run_id = await start(stub, workflow_id, task_queue)
    before = types(await history(stub, workflow_id, run_id))
    await expect_error(
        stub.UpdateWorkflowExecution(_update(workflow_id, stage=99), timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "LifecycleStage"
    )
    assert types(await history(stub, workflow_id, run_id)) == before
    poll = ws.PollWorkflowExecutionUpdateRequest(namespace=NS, wait_policy=WaitPolicy(lifecycle_stage=7))
    poll.update_ref.workflow_execution.CopyFrom(WorkflowExecution(workflow_id=workflow_id))
    poll.update_ref.update_id = "u-1"
    await expect_error(stub.PollWorkflowExecutionUpdate(poll, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "LifecycleStage")


@pytest.mark.parametrize(
    "update", [dict(name=""), dict(update_id="u" * 1001), dict(stage=99)], ids=["no-name", "long-id", "bad-stage"]
)
async def test_update_with_start_whose_update_is_invalid_starts_nothing(stub, task_queue, update):
    workflow_id = uid("uws")
    start_op = start_request(workflow_id, task_queue, workflow_id_conflict_policy=WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING)
    req = ws.ExecuteMultiOperationRequest(
        namespace=NS,
        operations=[
            ws.ExecuteMultiOperationRequest.Operation(start_workflow=start_op),
            ws.ExecuteMultiOperationRequest.Operation(update_workflow=_update(workflow_id, **update)),
        ],
    )
    await expect_error(stub.ExecuteMultiOperation(req, timeout=10), grpc.StatusCode.INVALID_ARGUMENT)
    await assert_no_workflow(stub, workflow_id)
    await assert_queue_empty(stub, task_queue)


async def test_namespace_archival_states_must_be_known(stub):
    name = f"arch-{uuid.uuid4().hex[:8]}"
    await expect_error(
        stub.RegisterNamespace(ws.RegisterNamespaceRequest(namespace=name, history_archival_state=99), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT, "ArchivalState",
    )
    await expect_error(stub.DescribeNamespace(ws.DescribeNamespaceRequest(namespace=name), timeout=10), grpc.StatusCode.NOT_FOUND)
    await stub.RegisterNamespace(ws.RegisterNamespaceRequest(namespace=name), timeout=10)
    await expect_error(
        stub.UpdateNamespace(
            ws.UpdateNamespaceRequest(
                namespace=name, update_info=UpdateNamespaceInfo(description="changed"), config=NamespaceConfig(visibility_archival_state=7)
            ),
            timeout=10,
        ),
        grpc.StatusCode.INVALID_ARGUMENT, "ArchivalState",
    )
    described = await stub.DescribeNamespace(ws.DescribeNamespaceRequest(namespace=name), timeout=10)
    assert described.namespace_info.description == ""
    assert described.config.visibility_archival_state in (0, ArchivalState.ARCHIVAL_STATE_DISABLED)


@workflow.defn
class NulChild:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_child_workflow("Anything", id="child\x00id", task_queue=workflow.info().task_queue)


async def test_a_child_id_with_a_nul_character_fails_the_workflow_task(client, task_queue):
    handle = await client.start_workflow(NulChild.run, id=uid("nul-parent"), task_queue=task_queue)
    async with Worker(client, task_queue=task_queue, workflows=[NulChild]):
        async for event in handle.fetch_history_events(wait_new_event=True):
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                attributes = event.workflow_task_failed_event_attributes
                assert attributes.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_CHILD_EXECUTION_ATTRIBUTES
                assert "NUL" in attributes.failure.message
                break
    events = [e async for e in handle.fetch_history_events()]
    assert EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED not in [e.event_type for e in events]
    await handle.terminate()

