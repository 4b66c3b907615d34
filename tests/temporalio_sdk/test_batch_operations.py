"""Batch operations end to end through the temporalio SDK's service stub (and the ``temporal`` CLI)
on SQLite and PostgreSQL: terminate, cancel, signal and delete by query and by list, counts, stop
mid-way, the rate limit, a duplicate job id, paging of the job list, and a job interrupted by its
process going away that another process finishes with every run acted on once.

The error texts and details are the ones Temporal 1.32's dev server gives for the same requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import workflow
from temporalio.api.batch.v1 import message_pb2 as b
from temporalio.api.common.v1 import Execution, Payloads, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import (
    BatchOperationState,
    BatchOperationType,
    EventType,
    ExecutionType,
    ResourceExhaustedCause,
    ResourceExhaustedScope,
    WorkflowExecutionStatus,
)
from temporalio.api.errordetails.v1 import (
    NamespaceNotFoundFailure,
    NotFoundFailure,
    ResourceExhaustedFailure,
    WorkflowExecutionAlreadyStartedFailure,
)
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client
from temporalio.converter import default as default_converter
from temporalio.service import RPCError, RPCStatusCode

from odin.config import Settings
from odin.server import OdinServer
from tests.support.services import migrated_sqlite_url, temporal_cli
from tests.temporalio_sdk.test_schedules import eventually

RUNNING = BatchOperationState.BATCH_OPERATION_STATE_RUNNING
COMPLETED = BatchOperationState.BATCH_OPERATION_STATE_COMPLETED
FAILED = BatchOperationState.BATCH_OPERATION_STATE_FAILED
REQUIRED = (
    "must provide required parameters: BatchType,Reason,Namespace, AND one of (Query OR Executions OR TargetExecutions)"
)


@contextlib.asynccontextmanager
async def odin(database_url: str) -> AsyncIterator[tuple[OdinServer, Client]]:
    """A server and a client on a namespace of the test's own (the PostgreSQL database is shared
    by the session's tests, and a namespace runs one batch at a time)."""
    server = OdinServer(Settings(database_url=database_url, grpc_port=0))
    await server.start()
    try:
        client = await connect(server)
        yield server, client
    finally:
        await server.stop(grace=0.5)


async def connect(server: OdinServer, namespace: str | None = None) -> Client:
    address = f"127.0.0.1:{server.endpoints.grpc_port}"
    if namespace is None:
        namespace = f"batch-{uuid.uuid4().hex[:10]}"
        admin = await Client.connect(address)
        await admin.workflow_service.register_namespace(
            ws.RegisterNamespaceRequest(namespace=namespace, workflow_execution_retention_period={"seconds": 86400})
        )
    return await Client.connect(address, namespace=namespace)


async def start_runs(client: Client, workflow_type: str, n: int) -> list[tuple[str, str]]:
    """``n`` runs of a type no worker polls for: they stay open until acted on."""
    runs = []
    for i in range(n):
        wid = f"{workflow_type}-{i}"
        r = await client.workflow_service.start_workflow_execution(
            ws.StartWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_id=wid,
                workflow_type=WorkflowType(name=workflow_type),
                task_queue=TaskQueue(name=f"q-{workflow_type}"),
                request_id=str(uuid.uuid4()),
            )
        )
        runs.append((wid, r.run_id))
    return runs


async def start_batch(client: Client, job_id: str, **fields) -> None:
    fields.setdefault("reason", "cleanup")
    await client.workflow_service.start_batch_operation(
        ws.StartBatchOperationRequest(namespace=client.namespace, job_id=job_id, **fields)
    )


async def describe(client: Client, job_id: str) -> ws.DescribeBatchOperationResponse:
    return await client.workflow_service.describe_batch_operation(
        ws.DescribeBatchOperationRequest(namespace=client.namespace, job_id=job_id)
    )


async def finished(client: Client, job_id: str, timeout: float = 30.0) -> ws.DescribeBatchOperationResponse:
    async def done():
        d = await describe(client, job_id)
        return d if d.state != RUNNING else None

    return await eventually(done, timeout)


async def history(client: Client, workflow_id: str, run_id: str = "") -> list[HistoryEvent]:
    r = await client.workflow_service.get_workflow_execution_history(
        ws.GetWorkflowExecutionHistoryRequest(
            namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id)
        )
    )
    return list(r.history.events)


async def status(client: Client, workflow_id: str) -> int:
    r = await client.workflow_service.describe_workflow_execution(
        ws.DescribeWorkflowExecutionRequest(namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id))
    )
    return r.workflow_execution_info.status


def events_of(events: list[HistoryEvent], event_type: int) -> list[HistoryEvent]:
    return [e for e in events if e.event_type == event_type]


async def test_terminate_cancel_signal_delete_by_query_and_by_list(database_url):
    async with odin(database_url) as (_, client):
        # Terminate by query, with details and the caller's identity.
        runs = await start_runs(client, "Term", 5)
        other = await start_runs(client, "Other", 1)
        details = Payloads(payloads=[default_converter().payload_converter.to_payload("why")])
        await start_batch(
            client, "term", visibility_query="WorkflowType = 'Term'", reason="cleanup",
            termination_operation=b.BatchOperationTermination(identity="ops-bot", details=details),
        )
        d = await finished(client, "term")
        assert (d.state, d.operation_type) == (COMPLETED, BatchOperationType.BATCH_OPERATION_TYPE_TERMINATE_WORKFLOW)
        assert (d.total_operation_count, d.complete_operation_count, d.failure_operation_count) == (5, 5, 0)
        assert (d.identity, d.reason, d.query, d.job_id) == ("ops-bot", "cleanup", "WorkflowType = 'Term'", "term")
        assert d.HasField("start_time") and d.close_time.ToDatetime() >= d.start_time.ToDatetime()
        for wid, run_id in runs:
            terminated = events_of(await history(client, wid, run_id), EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED)
            attrs = terminated[0].workflow_execution_terminated_event_attributes
            assert len(terminated) == 1 and (attrs.reason, attrs.identity) == ("cleanup", "ops-bot")
            assert attrs.details == details
        assert await status(client, other[0][0]) == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING

        # Cancel by list: a closed run and a missing one count as done, as in Temporal.
        runs = await start_runs(client, "Canc", 3)
        targets = [WorkflowExecution(workflow_id=wid) for wid, _ in runs]
        targets += [WorkflowExecution(workflow_id="Term-0"), WorkflowExecution(workflow_id="never-started")]
        await start_batch(
            client, "canc", executions=targets, reason="stop them", cancellation_operation=b.BatchOperationCancellation(identity="me")
        )
        d = await finished(client, "canc")
        assert (d.total_operation_count, d.complete_operation_count, d.failure_operation_count) == (5, 5, 0)
        assert d.query == "" and list(d.executions) == [
            Execution(type=ExecutionType.EXECUTION_TYPE_WORKFLOW, business_id=t.workflow_id) for t in targets
        ]
        for wid, _ in runs:
            requested = events_of(await history(client, wid), EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
            assert [(e.workflow_execution_cancel_requested_event_attributes.cause) for e in requested] == ["stop them"]

        # Signal by query (the cancel-requested runs are still open), with input.
        payload = Payloads(payloads=[default_converter().payload_converter.to_payload({"n": 1})])
        await start_batch(
            client, "sig", visibility_query="WorkflowType = 'Canc' AND ExecutionStatus = 'Running'",
            signal_operation=b.BatchOperationSignal(signal="poke", input=payload, identity="signaller"),
        )
        d = await finished(client, "sig")
        assert (d.operation_type, d.total_operation_count, d.complete_operation_count) == (
            BatchOperationType.BATCH_OPERATION_TYPE_SIGNAL_WORKFLOW, 3, 3,
        )
        for wid, _ in runs:
            signaled = events_of(await history(client, wid), EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
            assert len(signaled) == 1
            attrs = signaled[0].workflow_execution_signaled_event_attributes
            assert (attrs.signal_name, attrs.input, attrs.identity) == ("poke", payload, "signaller")

        # Delete by target_executions (the newer form of the list), open and closed runs alike.
        await start_batch(
            client, "del",
            target_executions=[Execution(business_id="Canc-0"), Execution(business_id="Term-1")],
            deletion_operation=b.BatchOperationDeletion(identity="me"),
        )
        d = await finished(client, "del")
        assert (d.operation_type, d.complete_operation_count) == (BatchOperationType.BATCH_OPERATION_TYPE_DELETE_WORKFLOW, 2)
        for wid in ("Canc-0", "Term-1"):
            with pytest.raises(RPCError) as err:
                await status(client, wid)
            assert err.value.status == RPCStatusCode.NOT_FOUND
        assert await status(client, "Canc-1") == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING

        # The list, newest first, in pages.
        listed, token = [], b""
        while True:
            page = await client.workflow_service.list_batch_operations(
                ws.ListBatchOperationsRequest(namespace=client.namespace, page_size=3, next_page_token=token)
            )
            listed += list(page.operation_info)
            token = page.next_page_token
            if not token:
                break
        assert [i.job_id for i in listed] == ["del", "sig", "canc", "term"]
        assert {i.state for i in listed} == {COMPLETED} and all(i.HasField("close_time") for i in listed)
        assert listed[-1].operation_type == BatchOperationType.BATCH_OPERATION_TYPE_TERMINATE_WORKFLOW


async def test_errors_match_temporal(database_url):
    async with odin(database_url) as (_, client):
        s, ns = client.workflow_service, client.namespace
        term = b.BatchOperationTermination()

        async def error(call, req) -> RPCError:
            with pytest.raises(RPCError) as err:
                await call(req)
            return err.value

        async def invalid(message: str, **fields) -> None:
            e = await error(s.start_batch_operation, ws.StartBatchOperationRequest(**{"namespace": ns, **fields}))
            assert (e.status, e.message) == (RPCStatusCode.INVALID_ARGUMENT, message)

        q = "WorkflowType = 'x'"
        await invalid("JobId is not set on request.", visibility_query=q, reason="r", termination_operation=term)
        await invalid(REQUIRED, job_id="j", visibility_query=q, termination_operation=term)
        await invalid(REQUIRED, job_id="j", reason="r", termination_operation=term)
        await invalid(REQUIRED, job_id="j", visibility_query=q, reason="r")
        await invalid(
            "visibility query, executions, and target executions are mutually exclusive",
            job_id="j", visibility_query=q, executions=[WorkflowExecution(workflow_id="a")], reason="r", termination_operation=term,
        )
        await invalid("must provide signal name", job_id="j", visibility_query=q, reason="r", signal_operation=b.BatchOperationSignal())
        # Odin checks the query when the job starts (Temporal's message names its own parser's position).
        await invalid(
            "invalid visibility query: expected a value (at position 13)",
            job_id="j", visibility_query="WorkflowType=", reason="r", termination_operation=term,
        )
        await invalid(
            "invalid visibility query: unknown search attribute 'Foo' (at position 0)",
            job_id="j", visibility_query="Foo='x'", reason="r", termination_operation=term,
        )
        e = await error(
            s.start_batch_operation,
            ws.StartBatchOperationRequest(namespace="no-such-ns", job_id="j", visibility_query=q, reason="r", termination_operation=term),
        )
        assert (e.status, e.message) == (RPCStatusCode.NOT_FOUND, "Namespace no-such-ns is not found.")
        assert isinstance(e.grpc_status.details[0], object)
        detail = NamespaceNotFoundFailure()
        e.grpc_status.details[0].Unpack(detail)
        assert detail.namespace == "no-such-ns"
        e = await error(
            s.start_batch_operation,
            ws.StartBatchOperationRequest(
                namespace=ns, job_id="j", visibility_query=q, reason="r", delete_activities_operation=b.BatchOperationDeleteActivities()
            ),
        )
        assert (e.status, e.message) == (
            RPCStatusCode.UNIMPLEMENTED, "Batch deletion of activities is not supported by this server."
        )

        e = await error(s.describe_batch_operation, ws.DescribeBatchOperationRequest(namespace=ns))
        assert (e.status, e.message) == (RPCStatusCode.INVALID_ARGUMENT, "JobId is not set on request.")
        e = await error(s.describe_batch_operation, ws.DescribeBatchOperationRequest(namespace=ns, job_id="missing"))
        assert (e.status, e.message) == (RPCStatusCode.NOT_FOUND, "workflow not found for ID: missing")
        assert e.grpc_status.details[0].Is(NotFoundFailure.DESCRIPTOR)
        stop = ws.StopBatchOperationRequest(namespace=ns, job_id="missing", reason="x", identity="me")
        e = await error(s.stop_batch_operation, stop)
        assert (e.status, e.message) == (RPCStatusCode.NOT_FOUND, "workflow not found for ID: missing")
        e = await error(s.stop_batch_operation, ws.StopBatchOperationRequest(namespace=ns, job_id="missing", identity="me"))
        assert (e.status, e.message) == (RPCStatusCode.INVALID_ARGUMENT, "Reason is not set on request.")
        e = await error(s.list_batch_operations, ws.ListBatchOperationsRequest(namespace=ns, next_page_token=b"junk"))
        assert (e.status, e.message) == (RPCStatusCode.INVALID_ARGUMENT, "Invalid NextPageToken.")

        # A job id in use: Temporal's batch jobs are workflows, so its answer is a start's.
        await start_batch(client, "dup", visibility_query=q, termination_operation=term)
        await finished(client, "dup")
        e = await error(
            s.start_batch_operation,
            ws.StartBatchOperationRequest(namespace=ns, job_id="dup", visibility_query=q, reason="r", termination_operation=term),
        )
        assert e.status == RPCStatusCode.ALREADY_EXISTS
        started = WorkflowExecutionAlreadyStartedFailure()
        assert e.grpc_status.details[0].Unpack(started)
        assert e.message == (
            f"Workflow execution already finished. WorkflowId: dup, RunId: {started.run_id}. "
            "Workflow Id reuse policy: reject duplicate workflow Id."
        )
        # Stopping a finished job.
        e = await error(s.stop_batch_operation, ws.StopBatchOperationRequest(namespace=ns, job_id="dup", reason="x"))
        assert (e.status, e.message) == (RPCStatusCode.NOT_FOUND, "workflow execution already completed")
        # Nothing was written by the refused requests.
        listed = await s.list_batch_operations(ws.ListBatchOperationsRequest(namespace=ns))
        assert [i.job_id for i in listed.operation_info] == ["dup"]


async def test_rate_limit_stop_midway_and_one_job_at_a_time(database_url):
    async with odin(database_url) as (_, client):
        s, ns = client.workflow_service, client.namespace
        runs = await start_runs(client, "Paced", 12)
        await start_batch(
            client, "paced", visibility_query="WorkflowType = 'Paced'", max_operations_per_second=5,
            termination_operation=b.BatchOperationTermination(identity="me"),
        )
        # A second job in the namespace waits for the first (Temporal's default: one at a time).
        with pytest.raises(RPCError) as err:
            await start_batch(client, "other", visibility_query="WorkflowType = 'Paced'", cancellation_operation=b.BatchOperationCancellation())
        assert (err.value.status, err.value.message) == (RPCStatusCode.RESOURCE_EXHAUSTED, "Max concurrent batch operations is reached")
        exhausted = ResourceExhaustedFailure()
        assert err.value.grpc_status.details[0].Unpack(exhausted)
        assert (exhausted.cause, exhausted.scope) == (
            ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_CONCURRENT_LIMIT,
            ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_NAMESPACE,
        )
        d = await finished(client, "paced")
        assert (d.state, d.complete_operation_count) == (COMPLETED, 12)
        times = []
        for wid, rid in runs:
            terminated = events_of(await history(client, wid, rid), EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED)
            times.append(terminated[0].event_time.ToDatetime())
        times.sort()
        # 12 actions at 5 a second: the first and the last are at least 11 intervals (2.2 s) apart.
        assert (times[-1] - times[0]).total_seconds() >= 11 / 5 * 0.95

        # Stop mid-way: what was done stays done, nothing more happens afterwards.
        runs = await start_runs(client, "Slow", 30)
        await start_batch(
            client, "slow", visibility_query="WorkflowType = 'Slow'", max_operations_per_second=4,
            termination_operation=b.BatchOperationTermination(identity="me"),
        )
        await eventually(lambda: _done_at_least(client, "slow", 4))
        await s.stop_batch_operation(ws.StopBatchOperationRequest(namespace=ns, job_id="slow", reason="enough", identity="stopper"))
        d = await describe(client, "slow")
        assert d.state == FAILED and d.HasField("close_time") and d.total_operation_count == 30
        await asyncio.sleep(2.0)
        open_now = await _open(client, runs)
        await asyncio.sleep(1.0)
        assert open_now == await _open(client, runs)
        assert 0 < len(open_now) <= 30 - d.complete_operation_count
        assert (await describe(client, "slow")).complete_operation_count == d.complete_operation_count
        # The namespace is free for the next job once the stopped one has ended.
        await start_batch(
            client, "after", visibility_query="WorkflowType = 'Slow' AND ExecutionStatus = 'Running'",
            termination_operation=b.BatchOperationTermination(),
        )
        d = await finished(client, "after")
        assert (d.state, d.total_operation_count, d.complete_operation_count) == (COMPLETED, len(open_now), len(open_now))
        assert await _open(client, runs) == []


async def _open(client: Client, runs) -> list[str]:
    running = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
    return [wid for wid, _ in runs if await status(client, wid) == running]


async def _done_at_least(client: Client, job_id: str, n: int) -> bool:
    return (await describe(client, job_id)).complete_operation_count >= n


async def test_a_job_interrupted_mid_way_is_finished_by_the_next_process(database_url, monkeypatch):
    """The process running a job goes away between two pages; a new one takes over once the lease
    lapses, redoes only the unfinished page, and each run is signalled exactly once."""
    from odin.history import batches

    monkeypatch.setattr(batches, "LEASE", timedelta(seconds=4))  # 10 s in production: a shorter wait here
    server = OdinServer(Settings(database_url=database_url, grpc_port=0))
    await server.start()
    client = await connect(server)
    namespace = client.namespace
    runs = await start_runs(client, "Resume", 40)
    await start_batch(
        client, "resume", visibility_query="WorkflowType = 'Resume'", max_operations_per_second=8,
        signal_operation=b.BatchOperationSignal(signal="once", identity="me"),
    )
    await eventually(lambda: _done_at_least(client, "resume", 8))
    await server.stop(grace=0)  # the runner is cancelled wherever it is, its lease left held

    server = OdinServer(Settings(database_url=database_url, grpc_port=0))
    await server.start()
    try:
        client = await connect(server, namespace)
        # Read at once: the new process leaves the job alone until the old lease lapses.
        before = {wid: len(events_of(await history(client, wid), SIGNALED)) for wid, _ in runs}
        assert 8 <= sum(before.values()) < 40 and set(before.values()) <= {0, 1}
        assert (await describe(client, "resume")).state == RUNNING
        d = await finished(client, "resume", timeout=60)
        assert (d.state, d.total_operation_count, d.complete_operation_count, d.failure_operation_count) == (COMPLETED, 40, 40, 0)
        after = {wid: len(events_of(await history(client, wid), SIGNALED)) for wid, _ in runs}
        assert set(after.values()) == {1}
    finally:
        await server.stop(grace=0.5)


SIGNALED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED


async def test_temporal_cli_batch_commands(database_url):
    cli = temporal_cli()
    async with odin(database_url) as (server, client):
        address = f"127.0.0.1:{server.endpoints.grpc_port}"
        await start_runs(client, "Cli", 3)

        def run(*args: str, ok: bool = True) -> str:
            done = subprocess.run(
                [cli, "--address", address, "--namespace", client.namespace, *args], capture_output=True, text=True, timeout=60
            )
            assert (done.returncode == 0) == ok, done.stdout + done.stderr
            return done.stdout + done.stderr

        out = await asyncio.to_thread(run, "workflow", "terminate", "--query", "WorkflowType='Cli'", "--reason", "cli reason", "--yes")
        assert "Started batch for job ID: " in out
        job_id = out.split("Started batch for job ID: ")[1].split()[0]
        d = await finished(client, job_id)
        assert (d.state, d.complete_operation_count, d.reason) == (COMPLETED, 3, "cli reason")
        assert d.identity.startswith("temporal-cli:")
        described = json.loads(await asyncio.to_thread(run, "batch", "describe", "--job-id", job_id, "-o", "json"))
        assert described["state"] == "BATCH_OPERATION_STATE_COMPLETED"
        assert (described["totalOperationCount"], described["completeOperationCount"]) == ("3", "3")
        assert described["query"] == "WorkflowType='Cli'" and described["reason"] == "cli reason"
        listed = json.loads(await asyncio.to_thread(run, "batch", "list", "-o", "json"))
        assert [j["jobId"] for j in listed] == [job_id]
        # Terminating a job that has ended: the CLI reports it as not found, as against Temporal.
        out = await asyncio.to_thread(run, "batch", "terminate", "--job-id", job_id, "--reason", "x", ok=False)
        assert f"could not find Batch Job '{job_id}'" in out
        out = await asyncio.to_thread(run, "batch", "describe", "--job-id", "nope", ok=False)
        assert "could not find Batch Job 'nope'" in out
        for wid in ("Cli-0", "Cli-1", "Cli-2"):
            assert await status(client, wid) == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED

        # Signal, cancel and delete by query, one job after the other.
        await start_runs(client, "CliB", 2)
        query = "WorkflowType='CliB'"
        for command, extra, operation_type in (
            ("signal", ("--name", "ping", "--input", '{"x": 1}'), BatchOperationType.BATCH_OPERATION_TYPE_SIGNAL_WORKFLOW),
            ("cancel", (), BatchOperationType.BATCH_OPERATION_TYPE_CANCEL_WORKFLOW),
            ("delete", (), BatchOperationType.BATCH_OPERATION_TYPE_DELETE_WORKFLOW),
        ):
            out = await asyncio.to_thread(run, "workflow", command, "--query", query, "--reason", f"cli {command}", "--yes", *extra)
            job_id = out.split("Started batch for job ID: ")[1].split()[0]
            d = await finished(client, job_id)
            assert (d.state, d.operation_type, d.complete_operation_count) == (COMPLETED, operation_type, 2), command
            if command == "signal":
                signaled = events_of(await history(client, "CliB-0"), EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
                assert [e.workflow_execution_signaled_event_attributes.signal_name for e in signaled] == ["ping"]
            if command == "cancel":
                requested = events_of(await history(client, "CliB-1"), EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
                assert len(requested) == 1
        for wid in ("CliB-0", "CliB-1"):
            with pytest.raises(RPCError) as err:
                await status(client, wid)
            assert err.value.status == RPCStatusCode.NOT_FOUND
        listed = json.loads(await asyncio.to_thread(run, "batch", "list", "-o", "json"))
        assert len(listed) == 4 and {j["state"] for j in listed} == {"BATCH_OPERATION_STATE_COMPLETED"}

        # `temporal batch terminate` stops a running job.
        await start_runs(client, "CliSlow", 20)
        await asyncio.to_thread(
            run, "workflow", "terminate", "--query", "WorkflowType='CliSlow'", "--reason", "slow", "--rps", "2", "--yes"
        )
        slow = [j for j in json.loads(await asyncio.to_thread(run, "batch", "list", "-o", "json")) if j["state"] == "BATCH_OPERATION_STATE_RUNNING"]
        assert len(slow) == 1
        await asyncio.to_thread(run, "batch", "terminate", "--job-id", slow[0]["jobId"], "--reason", "enough")
        d = await describe(client, slow[0]["jobId"])
        assert d.state == FAILED and d.complete_operation_count < 20


async def test_a_job_whose_query_stops_compiling_fails_and_jobs_of_two_namespaces_run_side_by_side(database_url):
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import request_response_pb2 as ops
    from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

    async with odin(database_url) as (server, client):
        other = await connect(server)
        await client.operator_service.add_search_attributes(
            ops.AddSearchAttributesRequest(
                namespace=client.namespace, search_attributes={"Team": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}
            )
        )
        team = TypedSearchAttributes([SearchAttributePair(SearchAttributeKey.for_keyword("Team"), "red")])
        for i in range(6):
            await client.start_workflow("Teamed", id=f"teamed-{i}", task_queue="nobody", search_attributes=team)
        await start_runs(other, "Elsewhere", 6)
        await start_batch(
            client, "by-team", visibility_query="Team = 'red'", max_operations_per_second=2,
            cancellation_operation=b.BatchOperationCancellation(),
        )
        await start_batch(
            other, "elsewhere", visibility_query="WorkflowType = 'Elsewhere'", max_operations_per_second=2,
            termination_operation=b.BatchOperationTermination(),
        )
        await eventually(lambda: _done_at_least(client, "by-team", 1))
        # The other namespace's job gets under way too, not waiting for the first one to end.
        await eventually(lambda: _done_at_least(other, "elsewhere", 1))
        assert (await describe(client, "by-team")).state == RUNNING
        await client.operator_service.remove_search_attributes(
            ops.RemoveSearchAttributesRequest(namespace=client.namespace, search_attributes=["Team"])
        )
        d = await finished(client, "by-team")
        assert d.state == FAILED and d.HasField("close_time") and 1 <= d.complete_operation_count < 6
        d = await finished(other, "elsewhere")
        assert (d.state, d.complete_operation_count) == (COMPLETED, 6)


async def test_jobs_past_the_namespace_retention_are_forgotten(tmp_path):
    from odin.clock import ManualClock

    clock = ManualClock(datetime.now(UTC))
    server = OdinServer(Settings(database_url=migrated_sqlite_url(tmp_path / "odin.db"), grpc_port=0), clock=clock)
    await server.start()
    try:
        client = await connect(server)  # retention: one day
        await start_runs(client, "Old", 2)
        await start_batch(client, "old", visibility_query="WorkflowType = 'Old'", termination_operation=b.BatchOperationTermination())
        await finished(client, "old")
        clock.advance(3600)
        await server.runtime.jobs.retention_sweep()
        assert (await describe(client, "old")).state == COMPLETED
        clock.advance(86400)
        await server.runtime.jobs.retention_sweep()
        with pytest.raises(RPCError) as err:
            await describe(client, "old")
        assert err.value.status == RPCStatusCode.NOT_FOUND
    finally:
        await server.stop(grace=0.5)


@workflow.defn
class Waiting:
    def __init__(self) -> None:
        self.go = False

    @workflow.signal
    def proceed(self) -> None:
        self.go = True

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.go)
        return "done"


async def test_batch_reset_to_the_first_and_last_workflow_task(database_url):
    from google.protobuf.empty_pb2 import Empty
    from temporalio.api.common.v1 import ResetOptions
    from temporalio.api.enums.v1 import ResetType
    from temporalio.worker import Worker

    async with odin(database_url) as (server, client):
        queue = f"reset-{uuid.uuid4().hex[:6]}"
        # As Temporal: a reset names where to go.
        with pytest.raises(RPCError) as err:
            await start_batch(client, "no-target", visibility_query="WorkflowType = 'Waiting'", reset_operation=b.BatchOperationReset())
        assert (err.value.status, err.value.message) == (RPCStatusCode.INVALID_ARGUMENT, "unknown batch reset type Unspecified")

        async with Worker(client, task_queue=queue, workflows=[Waiting]):
            handles = [await client.start_workflow(Waiting.run, id=f"waiting-{i}", task_queue=queue) for i in range(3)]
            for h in handles:
                await eventually(lambda h=h: _completed_tasks(client, h.id, h.result_run_id))
            await start_batch(
                client, "reset-first", visibility_query="WorkflowType = 'Waiting' AND ExecutionStatus = 'Running'",
                reason="start over", reset_operation=b.BatchOperationReset(identity="me", options=ResetOptions(first_workflow_task=Empty())),
            )
            d = await finished(client, "reset-first")
            assert (d.state, d.operation_type) == (COMPLETED, BatchOperationType.BATCH_OPERATION_TYPE_RESET_WORKFLOW)
            assert (d.total_operation_count, d.complete_operation_count, d.failure_operation_count) == (3, 3, 0)
            for h in handles:
                old = await history(client, h.id, h.result_run_id)
                terminated = old[-1].workflow_execution_terminated_event_attributes
                assert (old[-1].event_type, terminated.reason, terminated.identity) == (
                    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, "start over", "history-resetter",
                )
                new = await history(client, h.id)
                assert new[3].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED  # the reset point, as in Temporal
                assert new[0].workflow_execution_started_event_attributes == old[0].workflow_execution_started_event_attributes
            # The legacy field, to the last workflow task; the new runs still finish normally.
            await start_batch(
                client, "reset-last", executions=[WorkflowExecution(workflow_id=h.id) for h in handles], reason="again",
                reset_operation=b.BatchOperationReset(reset_type=ResetType.RESET_TYPE_LAST_WORKFLOW_TASK),
            )
            d = await finished(client, "reset-last")
            assert (d.complete_operation_count, d.failure_operation_count) == (3, 0)
            # And through the CLI.
            done = await asyncio.to_thread(
                subprocess.run,
                [
                    temporal_cli(), "--address", f"127.0.0.1:{server.endpoints.grpc_port}", "--namespace", client.namespace,
                    "workflow", "reset", "--query", "WorkflowType='Waiting' AND ExecutionStatus='Running'",
                    "--type", "FirstWorkflowTask", "--reason", "from the cli", "--yes",
                ],
                capture_output=True, text=True, timeout=60,
            )
            assert done.returncode == 0 and "Started batch for job ID: " in done.stdout, done.stdout + done.stderr
            d = await finished(client, done.stdout.split("Started batch for job ID: ")[1].split()[0])
            assert (d.operation_type, d.reason, d.complete_operation_count) == (
                BatchOperationType.BATCH_OPERATION_TYPE_RESET_WORKFLOW, "from the cli", 3,
            )
            for h in handles:
                await client.get_workflow_handle(h.id).signal(Waiting.proceed)
                assert await client.get_workflow_handle(h.id).result() == "done"

        # Runs no worker ever ran have nothing to reset to: failures, as in Temporal.
        await start_runs(client, "Idle", 2)
        await start_batch(
            client, "reset-idle", visibility_query="WorkflowType = 'Idle'",
            reset_operation=b.BatchOperationReset(options=ResetOptions(first_workflow_task=Empty())),
        )
        d = await finished(client, "reset-idle")
        assert (d.state, d.total_operation_count, d.complete_operation_count, d.failure_operation_count) == (COMPLETED, 2, 0, 2)


async def _completed_tasks(client: Client, workflow_id: str, run_id: str) -> bool:
    events = await history(client, workflow_id, run_id)
    return bool(events_of(events, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED))
