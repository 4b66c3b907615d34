"""Per-namespace rate budgets: a burst beyond the budget gets RESOURCE_EXHAUSTED with a retry hint
and creates nothing; worker polls have a budget of their own; Redis buckets are shared."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
import redis.asyncio as aioredis
from google.rpc import status_pb2
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.enums.v1 import ResourceExhaustedCause, ResourceExhaustedScope
from temporalio.api.errordetails.v1 import ResourceExhaustedFailure
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    CountWorkflowExecutionsRequest,
    PollWorkflowTaskQueueRequest,
    RegisterNamespaceRequest,
    StartWorkflowExecutionRequest,
)

from odin.security.ratelimit import InMemoryRateLimiter, RedisRateLimiter
from tests.support.services import REDIS_URL


def _start(namespace: str, i: int) -> StartWorkflowExecutionRequest:
    return StartWorkflowExecutionRequest(
        namespace=namespace,
        workflow_id=f"burst-{i}",
        workflow_type=WorkflowType(name="Anything"),
        task_queue=TaskQueue(name="nobody"),
        request_id=str(uuid.uuid4()),
    )


async def test_a_burst_beyond_the_namespace_budget_is_refused_and_creates_nothing(stub):
    namespace = f"limited-{uuid.uuid4().hex[:6]}"
    # The namespace's own budget: 3 client calls per second; worker polls unlimited.
    await stub.RegisterNamespace(RegisterNamespaceRequest(namespace=namespace, data={"odin.rps": "3"}), timeout=5)
    outcomes = await asyncio.gather(*(stub.StartWorkflowExecution(_start(namespace, i), timeout=5) for i in range(12)),
                                    return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    admitted = [o for o in outcomes if not isinstance(o, Exception)]
    assert 1 <= len(admitted) <= 4 and len(admitted) + len(refused) == 12
    for err in refused:
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "rate limit" in err.details()
        trailers = dict(err.trailing_metadata())
        assert 0 < float(trailers["retry-after"]) <= 1.0
        status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
        detail = ResourceExhaustedFailure()
        assert status.details[0].Unpack(detail)
        assert detail.cause == ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_RPS_LIMIT
        assert detail.scope == ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_NAMESPACE

    await asyncio.sleep(1.2)  # the bucket refills
    count = await stub.CountWorkflowExecutions(CountWorkflowExecutionsRequest(namespace=namespace), timeout=5)
    assert count.count == len(admitted)  # a refused start left nothing behind
    # Worker polls draw on their own budget, so workers keep working while clients are refused.
    with pytest.raises(grpc.aio.AioRpcError) as exhausted:
        for i in range(10):
            await stub.StartWorkflowExecution(_start(namespace, 100 + i), timeout=5)
    assert exhausted.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    polls = await asyncio.gather(*(
        stub.PollWorkflowTaskQueue(PollWorkflowTaskQueueRequest(namespace=namespace, task_queue=TaskQueue(name="idle"),
                                                                identity="w"), timeout=2)
        for _ in range(8)
    ))
    assert all(p.task_token == b"" for p in polls)


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_token_bucket(backend, request):
    if backend == "memory":
        now = [100.0]
        limiter = InMemoryRateLimiter(clock=lambda: now[0])
        advance = lambda s: now.__setitem__(0, now[0] + s)  # noqa: E731
        a = b = limiter
        client = None
    else:
        prefix = request.getfixturevalue("redis_prefix")
        client = aioredis.from_url(REDIS_URL)
        a, b = RedisRateLimiter(client, prefix), RedisRateLimiter(client, prefix)  # two processes' views
        advance = None
    try:
        assert [await a.take("k", 2.0, 2.0), await b.take("k", 2.0, 2.0)] == [0.0, 0.0]
        wait = await a.take("k", 2.0, 2.0)
        assert 0.0 < wait <= 0.5
        assert await b.take("other", 2.0, 2.0) == 0.0  # buckets are per key
        if advance:
            advance(0.5)
        else:
            await asyncio.sleep(0.55)
        assert await b.take("k", 2.0, 2.0) == 0.0
    finally:
        if client is not None:
            await client.aclose()
