"""The Odin SDK and the temporalio SDK on one server: an Odin workflow calls an activity a
temporalio worker runs, and a temporalio workflow starts an Odin child workflow."""

from __future__ import annotations

import uuid

import interop_odin
import interop_temporal
from temporalio.client import Client
from temporalio.worker import Worker

from tests.support.odin_apps import point


async def test_odin_workflow_calls_an_activity_of_a_temporalio_worker(odin):
    point(interop_odin.app, odin)
    client = await Client.connect(interop_odin.app.address)
    temporal_queue = f"temporal-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=temporal_queue, activities=[interop_temporal.temporal_greet]):
        async with interop_odin.app.worker():
            handle = await interop_odin.calls_temporal_activity.start_async(temporal_queue, "odin")
            assert await handle.result_async(timeout=30) == "hello odin from a temporalio worker"


async def test_temporalio_workflow_starts_an_odin_child(odin):
    odin_queue = point(interop_odin.app, odin)
    client = await Client.connect(interop_odin.app.address)
    temporal_queue = f"temporal-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=temporal_queue, workflows=[interop_temporal.TemporalParent]):
        async with interop_odin.app.worker():
            result = await client.execute_workflow(
                "TemporalParent", args=[odin_queue, "o-7"], id=f"tp-{uuid.uuid4().hex[:6]}", task_queue=temporal_queue
            )
    assert result == "parent got odin child handled o-7"
