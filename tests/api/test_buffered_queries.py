"""A query that arrives while the run has a workflow task scheduled or running rides on the run's
next workflow task (``queries`` in the poll response, answered in ``query_results``), as the
Temporal 1.32 dev server does; only a run with no task to come gets a query task of its own.

The expected shapes were read off ``temporal server start-dev`` with the same requests."""

from __future__ import annotations

import asyncio
import uuid

import grpc
from google.protobuf.duration_pb2 import Duration
from temporalio.api.common.v1 import Payload, Payloads, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import QueryResultType
from temporalio.api.query.v1 import WorkflowQuery, WorkflowQueryResult
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

NS = "default"


def _answer(text: str) -> WorkflowQueryResult:
    return WorkflowQueryResult(
        result_type=QueryResultType.QUERY_RESULT_TYPE_ANSWERED,
        answer=Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=text.encode())]),
    )


async def _poll(stub, tq: str) -> ws.PollWorkflowTaskQueueResponse:
    return await stub.PollWorkflowTaskQueue(
        ws.PollWorkflowTaskQueueRequest(namespace=NS, task_queue=TaskQueue(name=tq), identity="t"), timeout=30
    )


async def _signal(stub, wid: str, name: str) -> None:
    await stub.SignalWorkflowExecution(
        ws.SignalWorkflowExecutionRequest(
            namespace=NS, workflow_execution=WorkflowExecution(workflow_id=wid), signal_name=name, request_id=str(uuid.uuid4())
        )
    )


async def _complete(stub, task: ws.PollWorkflowTaskQueueResponse, **kw) -> None:
    await stub.RespondWorkflowTaskCompleted(
        ws.RespondWorkflowTaskCompletedRequest(namespace=NS, task_token=task.task_token, identity="t", **kw)
    )


async def _started(stub) -> tuple[str, str]:
    """A run whose first workflow task completed, and a second one polled and held in flight."""
    tq, wid = f"tq-{uuid.uuid4().hex[:8]}", f"wf-{uuid.uuid4().hex[:8]}"
    await stub.StartWorkflowExecution(
        ws.StartWorkflowExecutionRequest(
            namespace=NS, workflow_id=wid, workflow_type=WorkflowType(name="W"), task_queue=TaskQueue(name=tq),
            request_id=str(uuid.uuid4()), workflow_task_timeout=Duration(seconds=10),
        )
    )
    await _complete(stub, await _poll(stub, tq))
    return tq, wid


def _query(stub, wid: str, timeout: float = 20):
    return asyncio.ensure_future(
        stub.QueryWorkflow(
            ws.QueryWorkflowRequest(namespace=NS, execution=WorkflowExecution(workflow_id=wid), query=WorkflowQuery(query_type="state")),
            timeout=timeout,
        )
    )


async def test_a_query_during_a_running_task_rides_on_the_next_task(stub):
    tq, wid = await _started(stub)
    await _signal(stub, wid, "first")
    in_flight = await _poll(stub, tq)
    assert dict(in_flight.queries) == {}
    query = _query(stub, wid)
    await asyncio.sleep(0.5)
    await _signal(stub, wid, "second")  # the running task's completion schedules another
    await _complete(stub, in_flight)
    nxt = await _poll(stub, tq)
    assert [q.query_type for q in nxt.queries.values()] == ["state"] and not nxt.HasField("query")
    await _complete(stub, nxt, query_results={qid: _answer('"from the task"') for qid in nxt.queries})
    assert (await query).query_result.payloads[0].data == b'"from the task"'


async def test_a_query_survives_a_failed_task(stub):
    tq, wid = await _started(stub)
    await _signal(stub, wid, "first")
    in_flight = await _poll(stub, tq)
    query = _query(stub, wid)
    await asyncio.sleep(0.5)
    await stub.RespondWorkflowTaskFailed(ws.RespondWorkflowTaskFailedRequest(namespace=NS, task_token=in_flight.task_token, identity="t"))
    retry = await _poll(stub, tq)  # the failed task's retry carries it
    assert [q.query_type for q in retry.queries.values()] == ["state"]
    failed_again = retry
    await stub.RespondWorkflowTaskFailed(ws.RespondWorkflowTaskFailedRequest(namespace=NS, task_token=failed_again.task_token, identity="t"))
    retry = await _poll(stub, tq)  # still buffered: the next attempt carries it again
    assert [q.query_type for q in retry.queries.values()] == ["state"]
    await _complete(stub, retry, query_results={qid: _answer('"after a retry"') for qid in retry.queries})
    assert (await query).query_result.payloads[0].data == b'"after a retry"'


async def test_a_query_during_a_scheduled_task_goes_with_it(stub):
    tq, wid = await _started(stub)
    await _signal(stub, wid, "first")  # scheduled, nobody polls yet
    query = _query(stub, wid, timeout=5)
    await asyncio.sleep(0.5)
    task = await _poll(stub, tq)
    assert [q.query_type for q in task.queries.values()] == ["state"]
    await _complete(stub, task, query_results={qid: _answer("1") for qid in task.queries})
    assert (await query).query_result.payloads[0].data == b"1"


async def test_with_no_task_to_come_the_query_is_a_task_of_its_own(stub):
    tq, wid = await _started(stub)
    await _signal(stub, wid, "first")
    in_flight = await _poll(stub, tq)
    query = _query(stub, wid)
    await asyncio.sleep(0.5)
    await _complete(stub, in_flight)  # nothing new: the run is idle
    task = await _poll(stub, tq)
    assert task.HasField("query") and task.query.query_type == "state" and dict(task.queries) == {}
    await stub.RespondQueryTaskCompleted(
        ws.RespondQueryTaskCompletedRequest(
            namespace=NS, task_token=task.task_token, completed_type=QueryResultType.QUERY_RESULT_TYPE_ANSWERED,
            query_result=_answer("2").answer,
        )
    )
    assert (await query).query_result.payloads[0].data == b"2"


async def test_an_unanswered_buffered_query_times_out_and_leaves_nothing_behind(stub):
    tq, wid = await _started(stub)
    await _signal(stub, wid, "first")
    query = _query(stub, wid, timeout=2)
    try:
        await query
        raise AssertionError("answered without a worker")
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    task = await _poll(stub, tq)  # the caller gave up: the task carries no query
    assert dict(task.queries) == {}
