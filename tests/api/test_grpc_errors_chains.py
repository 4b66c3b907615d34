"""Bad input for SignalWithStartWorkflowExecution and cron starts over raw gRPC: a clear status
and nothing written."""

from __future__ import annotations

import uuid

import grpc
import pytest
from temporalio.api.common.v1 import WorkflowExecution, WorkflowType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws


def _sws(**overrides) -> ws.SignalWithStartWorkflowExecutionRequest:
    fields = dict(
        namespace="default",
        workflow_id=f"sws-{uuid.uuid4()}",
        workflow_type=WorkflowType(name="W"),
        task_queue=TaskQueue(name="tq"),
        signal_name="go",
        request_id=str(uuid.uuid4()),
    )
    fields.update(overrides)
    return ws.SignalWithStartWorkflowExecutionRequest(**fields)


async def _assert_not_started(stub, workflow_id: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DescribeWorkflowExecution(
            ws.DescribeWorkflowExecutionRequest(namespace="default", execution=WorkflowExecution(workflow_id=workflow_id))
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "overrides,code,fragment",
    [
        ({"signal_name": ""}, grpc.StatusCode.INVALID_ARGUMENT, "SignalName"),
        ({"workflow_id": ""}, grpc.StatusCode.INVALID_ARGUMENT, "WorkflowId"),
        ({"workflow_type": WorkflowType(name="")}, grpc.StatusCode.INVALID_ARGUMENT, "WorkflowType"),
        ({"task_queue": TaskQueue(name="")}, grpc.StatusCode.INVALID_ARGUMENT, "TaskQueue"),
        ({"namespace": "nope"}, grpc.StatusCode.NOT_FOUND, "nope"),
        ({"cron_schedule": "not a cron"}, grpc.StatusCode.INVALID_ARGUMENT, "CronSchedule"),
    ],
)
async def test_signal_with_start_bad_input(stub, overrides, code, fragment):
    req = _sws(**overrides)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SignalWithStartWorkflowExecution(req)
    assert err.value.code() == code
    assert fragment in err.value.details()
    if req.workflow_id and req.namespace == "default":
        await _assert_not_started(stub, req.workflow_id)


@pytest.mark.parametrize("schedule", ["@every 0s", "* * *", "99 * * * *", "@every soon"])
async def test_start_with_bad_cron_schedule(stub, schedule):
    wid = f"cron-{uuid.uuid4()}"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.StartWorkflowExecution(
            ws.StartWorkflowExecutionRequest(
                namespace="default",
                workflow_id=wid,
                workflow_type=WorkflowType(name="W"),
                task_queue=TaskQueue(name="tq"),
                cron_schedule=schedule,
                request_id=str(uuid.uuid4()),
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "CronSchedule" in err.value.details()
    await _assert_not_started(stub, wid)


async def test_signal_with_start_is_idempotent_per_request_id(stub):
    req = _sws()
    first = await stub.SignalWithStartWorkflowExecution(req)
    again = await stub.SignalWithStartWorkflowExecution(req)
    assert first.started and again.run_id == first.run_id
    history = await stub.GetWorkflowExecutionHistory(
        ws.GetWorkflowExecutionHistoryRequest(namespace="default", execution=WorkflowExecution(workflow_id=req.workflow_id))
    )
    signaled = [e for e in history.history.events if e.HasField("workflow_execution_signaled_event_attributes")]
    assert len(signaled) == 1
