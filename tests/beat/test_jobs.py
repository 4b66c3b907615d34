"""The jobs of time run in-process (``odin dev`` shape): transfer sweeps rebuild lost queue entries,
retention archives closed runs to a file:// archive and deletes them, and the archive is read back."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.api.enums.v1 import ArchivalState
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from odin.clock import ManualClock
from odin.config import Settings
from odin.history.tasks import TimerKind
from odin.matching import WORKFLOW
from odin.persistence.archive import FileArchiver
from odin.server import OdinServer
from tests.support.workflows import Nap, OneActivity, echo


async def test_transfer_sweep_rebuilds_lost_queue_entries(odin_server, client, task_queue):
    runtime = odin_server.runtime
    runtime.jobs.transfer_min_age = timedelta(0)
    handle = await client.start_workflow(OneActivity.run, "hi", id=f"sweep-{uuid.uuid4()}", task_queue=task_queue)
    ns = await runtime.frontend.namespace("default")
    # The queue store loses the workflow task (as after a Redis flush); SQL still has it.
    lost = await runtime.engine.queues.drain(ns.id, task_queue, WORKFLOW)
    assert [e.workflow_id for e in lost] == [handle.id]
    assert await runtime.engine.queues.backlog(ns.id, task_queue, WORKFLOW) == 0
    assert await runtime.jobs.sweep_transfers() >= 1
    assert await runtime.engine.queues.backlog(ns.id, task_queue, WORKFLOW) == 1
    assert await runtime.jobs.sweep_transfers() >= 1  # sweeping again queues nothing twice
    assert await runtime.engine.queues.backlog(ns.id, task_queue, WORKFLOW) == 1
    async with Worker(client, task_queue=task_queue, workflows=[OneActivity], activities=[echo]):
        assert await handle.result() == "hi"


async def test_retention_archives_then_deletes_and_history_is_read_back(odin_server, task_queue, tmp_path):
    runtime = odin_server.runtime
    archive_dir = tmp_path / "archive"
    namespace = f"ret-{uuid.uuid4().hex[:8]}"
    client = await Client.connect(f"127.0.0.1:{odin_server.endpoints.grpc_port}", namespace=namespace)
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace,
            workflow_execution_retention_period=timedelta(seconds=1),
            history_archival_state=ArchivalState.ARCHIVAL_STATE_ENABLED,
            history_archival_uri=f"file://{archive_dir}",
        )
    )
    described = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
    assert described.config.history_archival_uri == f"file://{archive_dir}"
    async with Worker(client, task_queue=task_queue, workflows=[OneActivity], activities=[echo]):
        handle = await client.start_workflow(OneActivity.run, "bye", id=f"ret-{uuid.uuid4()}", task_queue=task_queue)
        assert await handle.result() == "bye"
        running = await client.start_workflow(OneActivity.run, "x", id=f"open-{uuid.uuid4()}", task_queue=f"{task_queue}-idle")
    before = [e async for e in client.get_workflow_handle(handle.id, run_id=handle.result_run_id).fetch_history_events()]

    # Not yet past retention: nothing happens.
    assert await runtime.jobs.retention_sweep() == 0
    await asyncio.sleep(1.2)
    assert await runtime.jobs.retention_sweep() == 1  # the running workflow is kept

    with pytest.raises(RPCError) as err:
        await handle.describe()
    assert err.value.status == RPCStatusCode.NOT_FOUND
    assert (await running.describe()).status.name == "RUNNING"
    assert [w.id async for w in client.list_workflows()] == [running.id]

    ns = await runtime.frontend.namespace(namespace)
    archived = FileArchiver(str(archive_dir))
    assert archived.read_visibility(ns.id, handle.id, handle.result_run_id)["workflow_type"] == "OneActivity"
    # The history is served from the archive, event for event.
    after = [e async for e in client.get_workflow_handle(handle.id, run_id=handle.result_run_id).fetch_history_events()]
    assert [e.SerializeToString() for e in after] == [e.SerializeToString() for e in before]
    assert after[-1].HasField("workflow_execution_completed_event_attributes")
    # Without a run id there is no current run to read.
    with pytest.raises(RPCError) as err:
        await client.get_workflow_handle(handle.id).fetch_history()
    assert err.value.status == RPCStatusCode.NOT_FOUND


async def test_bad_archival_uri_is_refused(odin_server):
    client = await Client.connect(f"127.0.0.1:{odin_server.endpoints.grpc_port}")
    for uri in ("s3://bucket/x", "file://some-host/path"):
        with pytest.raises(RPCError) as err:
            await client.workflow_service.register_namespace(
                RegisterNamespaceRequest(namespace=f"bad-{uuid.uuid4().hex[:6]}", history_archival_uri=uri)
            )
        assert err.value.status == RPCStatusCode.INVALID_ARGUMENT


async def test_a_namespace_with_a_retention_of_millennia_does_not_stop_the_sweep(odin_server, task_queue):
    runtime = odin_server.runtime
    suffix = uuid.uuid4().hex[:8]
    admin = await Client.connect(f"127.0.0.1:{odin_server.endpoints.grpc_port}")
    # Protobuf's longest duration (10,000 years): read as Temporal's longest, ~292 years.
    await admin.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=f"forever-{suffix}", workflow_execution_retention_period=timedelta(days=3_652_425))
    )
    namespace = f"brief-{suffix}"
    await admin.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=namespace, workflow_execution_retention_period=timedelta(seconds=1))
    )
    client = await Client.connect(f"127.0.0.1:{odin_server.endpoints.grpc_port}", namespace=namespace)
    async with Worker(client, task_queue=task_queue, workflows=[OneActivity], activities=[echo]):
        handle = await client.start_workflow(OneActivity.run, "bye", id=f"ret-{uuid.uuid4()}", task_queue=task_queue)
        assert await handle.result() == "bye"
    await asyncio.sleep(1.2)
    assert await runtime.jobs.retention_sweep() == 1
    with pytest.raises(RPCError) as err:
        await handle.describe()
    assert err.value.status == RPCStatusCode.NOT_FOUND


async def test_a_timer_sweep_asked_for_while_one_runs_leaves_the_work_to_it(database_url, task_queue):
    """Beat asks for a timer sweep every second; after an outage a sweep can take longer than
    that. A second sweep beside a running one used to fire the same due timers again (each a
    transaction on the shard, each but the first wasted); now it returns at once."""
    clock = ManualClock(datetime.now(UTC))
    server = OdinServer(Settings(database_url=database_url, grpc_port=0), clock=clock)
    await server.start()
    runtime = server.runtime
    try:
        client = await Client.connect(f"127.0.0.1:{server.endpoints.grpc_port}")
        async with Worker(client, task_queue=task_queue, workflows=[Nap]):
            handles = [
                await client.start_workflow(Nap.run, 5.0, id=f"nap-{uuid.uuid4()}", task_queue=task_queue) for _ in range(3)
            ]
            ids = {h.id for h in handles}
            for _ in range(200):
                timers = [t for t in await runtime.store.due_timer_tasks(clock.now() + timedelta(seconds=10), 1000)
                          if t.workflow_id in ids and t.kind == TimerKind.USER_TIMER]
                if len(timers) == 3:
                    break
                await asyncio.sleep(0.05)
            assert len(timers) == 3
            await runtime._local.stop()  # the sweeps below are the only ones
            fired: list[str] = []
            fire = runtime.engine.fire_timer

            async def counting(task, fence=None):
                fired.append(task.task_id)
                await asyncio.sleep(0.05)  # a busy database: the sweep is still running when the next comes
                await fire(task, fence)

            runtime.engine.fire_timer = counting
            clock.advance(5.0)
            swept = sorted(await asyncio.gather(runtime.jobs.sweep_timers(), runtime.jobs.sweep_timers()))
            # The PostgreSQL database is shared by the session's tests: their due timers are swept too.
            assert swept[0] == 0 and swept[1] >= 3 and len(fired) == swept[1]
            ours = {t.task_id for t in timers}
            assert sorted(f for f in fired if f in ours) == sorted(ours)  # each of ours fired once
            for h in handles:
                assert await asyncio.wait_for(h.result(), 10) == "woke"
    finally:
        await server.stop(grace=0.5)
