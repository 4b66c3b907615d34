"""The distributed shape end to end (docs/architecture.md#process-shapes-distributed): two stateless ``odin server`` processes over
one PostgreSQL database and one Redis, ``celery -A odin worker`` and ``celery -A odin beat`` running
the jobs of time, and the temporalio SDK with one worker through each server.

The chaos test flushes Redis, SIGKILLs a server, SIGKILLs and restarts the Celery worker and
terminates every PostgreSQL connection while workflows with activities, timers and signals run;
every workflow still completes once, with the right result.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
import uuid
from datetime import datetime, timedelta

import pytest
import redis
from cluster import Cluster, free_port
from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Interceptor, Worker, WorkflowInboundInterceptor, WorkflowOutboundInterceptor
from workflows import RUNS, STARTS, Counter, Durable, Limited, Nap, Prioritized, add_one, hold, record

from odin.beat.celery_app import JOBS
from tests.support.services import private_redis_server, throwaway_postgres_database

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def cluster(tmp_path, request):
    with throwaway_postgres_database() as database_url, private_redis_server(tmp_path) as redis_url:
        c = Cluster(database_url, redis_url, tmp_path)
        upgrade = c.odin("db", "upgrade")
        assert upgrade.returncode == 0, upgrade.stderr
        try:
            yield c
        finally:
            c.shutdown()
            report = getattr(request.node, "rep_call", None)
            if report is not None and report.failed:
                print(c.dump())  # the processes' output, shown with the failure


def test_celery_worker_registers_the_system_jobs_and_reports_its_shards(cluster):
    metrics_port = free_port()
    cluster.env["ODIN_METRICS_PORT"] = str(metrics_port)
    cluster.start_worker()
    inspected = cluster.celery("inspect", "registered", "--timeout", "10")
    assert inspected.returncode == 0, inspected.stdout + inspected.stderr
    for job in JOBS:
        assert job in inspected.stdout, inspected.stdout
    # The worker holds every shard lease (it is alone) and says so on its metrics port.
    deadline = time.monotonic() + 20
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            owned = [line for line in r.read().decode().splitlines() if line.startswith("history_shard_ownership{")]
        if len(owned) == 16 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(owned) == 16, owned


def test_server_refuses_an_unmigrated_database(tmp_path):
    with throwaway_postgres_database() as database_url:
        c = Cluster(database_url, "redis://127.0.0.1:1/0", tmp_path)
        result = c.odin("server", "--grpc-port", "0")
        assert result.returncode != 0
        assert "odin db upgrade" in result.stdout + result.stderr


async def test_timers_fire_through_celery(cluster):
    _, port = cluster.start_server()
    worker_metrics, beat_metrics = free_port(), free_port()
    cluster.env["ODIN_METRICS_PORT"] = str(worker_metrics)
    worker = cluster.start_worker()
    cluster.env["ODIN_METRICS_PORT"] = str(beat_metrics)
    cluster.start_beat()
    cluster.env.pop("ODIN_METRICS_PORT")
    client = await Client.connect(f"127.0.0.1:{port}")
    queue = f"nap-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[Nap]):
        results = await asyncio.wait_for(
            asyncio.gather(*(client.execute_workflow(Nap.run, 1.5, id=f"nap-{i}", task_queue=queue) for i in range(5))),
            60,
        )
    assert results == ["rested"] * 5
    assert "odin.fire_timer" in worker.output()
    # The worker's metrics port: its Celery jobs, the timers it fired and how late, its shard leases.
    with urllib.request.urlopen(f"http://127.0.0.1:{worker_metrics}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert _sample(text, 'celery_jobs_total{job="odin.fire_timer",outcome="succeeded"}') >= 5, text
    assert _sample(text, 'celery_job_latency_seconds_count{job="odin.sweep_timers"}') >= 1, text
    assert _sample(text, 'timer_lag_seconds_count{kind="user_timer"}') >= 5, text
    assert _sample(text, 'shard_lease_changes_total{change="acquired"}') == 16, text
    assert _sample(text, 'redis_requests_total{command="EVALSHA"}') >= 1, text
    # Beat serves its own (it runs no Odin work: the families are there, without samples).
    with urllib.request.urlopen(f"http://127.0.0.1:{beat_metrics}/metrics", timeout=5) as r:
        assert "# TYPE celery_jobs_total counter" in r.read().decode()


async def test_a_schedule_through_two_celery_workers_survives_a_redis_flush_and_a_killed_worker(cluster):
    """A one-second schedule (allow all) fired by two Celery workers and the sweep: after a Redis
    flush and a SIGKILLed worker, every second from the first action to the last started exactly
    one run (docs/architecture.md#schedules)."""
    from temporalio.client import (
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleIntervalSpec,
        ScheduleOverlapPolicy,
        SchedulePolicy,
        ScheduleSpec,
    )

    _, port = cluster.start_server()
    w1 = cluster.start_worker("w1")
    cluster.start_worker("w2")
    cluster.start_beat()
    client = await Client.connect(f"127.0.0.1:{port}")
    schedule_id = f"sched-{uuid.uuid4().hex[:8]}"
    handle = await client.create_schedule(
        schedule_id,
        Schedule(
            # Nobody polls this queue: the runs just stay open, which allow-all does not mind.
            action=ScheduleActionStartWorkflow("Unpolled", id="every-second", task_queue=f"none-{schedule_id}"),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=1))]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
        ),
    )
    await asyncio.sleep(4)
    redis.Redis.from_url(cluster.redis_url).flushall()
    await asyncio.sleep(2)
    w1.kill()
    await asyncio.sleep(8)  # past the killed worker's shard leases (3 s here)
    before = (await handle.describe()).info.num_actions
    await asyncio.sleep(3)
    await handle.pause()
    d = await handle.describe()
    assert d.info.num_actions > before >= 8
    runs = [w.id async for w in client.list_workflows(f"TemporalScheduledById = '{schedule_id}'")]
    assert len(runs) == len(set(runs)) == d.info.num_actions
    seconds = sorted(int(datetime.strptime(r.removeprefix("every-second-"), "%Y-%m-%dT%H:%M:%SZ").timestamp()) for r in runs)
    assert seconds == list(range(seconds[0], seconds[-1] + 1)), "a second was skipped"


async def test_workflows_survive_redis_flush_server_kill_worker_kill_and_dropped_connections(cluster):
    s1, port1 = cluster.start_server()
    _, port2 = cluster.start_server()
    celery_worker = cluster.start_worker("w1")
    cluster.start_beat()
    c1 = await Client.connect(f"127.0.0.1:{port1}")
    c2 = await Client.connect(f"127.0.0.1:{port2}")
    queue = f"chaos-{uuid.uuid4().hex[:8]}"
    n = 12
    w1 = Worker(c1, task_queue=queue, workflows=[Durable], activities=[add_one])
    w2 = Worker(c2, task_queue=queue, workflows=[Durable], activities=[add_one])
    runs = [asyncio.create_task(w.run()) for w in (w1, w2)]
    try:
        handles = [
            await (c1 if i % 2 else c2).start_workflow(Durable.run, i * 10, id=f"chaos-{i}-{uuid.uuid4().hex[:6]}", task_queue=queue)
            for i in range(n)
        ]
        await asyncio.sleep(1.0)

        # (a) Redis loses everything: queues, leases, wake-ups, Celery's broker.
        redis.Redis.from_url(cluster.redis_url).flushall()
        await asyncio.sleep(1.0)
        for i, h in enumerate(handles):
            await (c1 if i % 2 else c2).get_workflow_handle(h.id).signal(Durable.proceed)

        # (b) one server dies; its worker's calls fail from now on.
        s1.kill()
        # (c) the Celery worker dies in the middle of its timers and comes back.
        await asyncio.sleep(1.0)
        celery_worker.kill()
        await asyncio.sleep(1.0)
        replacement = cluster.start_worker("w2")
        # (d) every database connection is cut.
        assert cluster.terminate_database_connections() > 0
        # All of this happened while the workflows were still under way.
        statuses = [(await c2.get_workflow_handle(h.id).describe()).status.name for h in handles]
        assert statuses.count("RUNNING") >= n // 2, statuses

        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(c2.get_workflow_handle(h.id).result() for h in handles)), 150
            )
        except TimeoutError:
            for h in handles:
                d = await c2.get_workflow_handle(h.id).describe()
                history = await c2.get_workflow_handle(h.id).fetch_history()
                raw = d.raw_description
                print(h.id, d.status, [EventType.Name(e.event_type)[11:] for e in history.events],
                      raw.pending_workflow_task, [(a.activity_id, a.state, a.attempt) for a in raw.pending_activities])
            raise
        assert results == [i * 10 + 2 for i in range(n)]
        for h in handles:
            history = await c2.get_workflow_handle(h.id).fetch_history()
            types = [e.event_type for e in history.events]
            assert types.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED) == 1
            assert types.count(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) == 2
            assert types.count(EventType.EVENT_TYPE_TIMER_FIRED) == 2
            assert types.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) == 1
        # The restarted Celery worker took over every shard lease of the killed one.
        owners = cluster.shard_owners()
        assert set(owners) == set(range(16))
        assert {o.split(":")[1] for o in owners.values()} == {str(replacement.proc.pid)}, owners
    finally:
        await w2.shutdown()
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)


async def test_queries_updates_and_results_cross_servers(cluster):
    """The client talks to one server, the worker to another: query tasks, update outcomes and the
    result long poll all travel between the processes through Redis."""
    _, port_a = cluster.start_server()
    _, port_b = cluster.start_server()
    cluster.start_worker()
    client = await Client.connect(f"127.0.0.1:{port_a}")
    worker_client = await Client.connect(f"127.0.0.1:{port_b}")
    queue = f"cross-{uuid.uuid4().hex[:6]}"
    async with Worker(worker_client, task_queue=queue, workflows=[Counter]):
        handle = await client.start_workflow(Counter.run, id=f"cross-{uuid.uuid4().hex[:6]}", task_queue=queue)
        result = asyncio.create_task(handle.result())  # a history long poll on server A
        await handle.signal(Counter.bump)
        assert await handle.execute_update(Counter.add, 10) == 11
        assert await handle.query(Counter.value) == 11
        await handle.signal(Counter.finish)
        assert await asyncio.wait_for(result, 30) == 11


async def test_priority_and_rate_limit_hold_across_servers_on_redis(cluster):
    """Matching on Redis: a backlog goes out by priority key, and the rate limit the workers ask for
    holds for both of them together, though each polls through a server of its own."""
    _, port_a = cluster.start_server()
    _, port_b = cluster.start_server()
    client_a = await Client.connect(f"127.0.0.1:{port_a}")
    client_b = await Client.connect(f"127.0.0.1:{port_b}")
    queue = f"prio-{uuid.uuid4().hex[:6]}"
    activities = f"{queue}-act"
    items = [(f"k{key}-{n}", key) for n in range(2) for key in (5, 2, 4, 1, 3)]
    rate = 5.0
    STARTS.clear()
    async with Worker(client_a, task_queue=queue, workflows=[Prioritized]):
        handle = await client_a.start_workflow(Prioritized.run, args=[activities, items], id=queue, task_queue=queue)
        request = DescribeTaskQueueRequest(
            namespace="default", task_queue=TaskQueue(name=activities),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, include_task_queue_status=True,
        )
        deadline = time.monotonic() + 30
        while (await client_b.workflow_service.describe_task_queue(request)).task_queue_status.backlog_count_hint < len(items):
            assert time.monotonic() < deadline, "the activities never queued up"
            await asyncio.sleep(0.1)
        workers = [
            Worker(c, task_queue=activities, activities=[record], max_concurrent_activities=1,
                   max_task_queue_activities_per_second=rate)
            for c in (client_a, client_b)
        ]
        async with workers[0], workers[1]:
            await asyncio.wait_for(handle.result(), 60)
    names = [name for name, _ in sorted(STARTS, key=lambda s: s[1])]
    assert [name.split("-")[0] for name in names] == ["k1", "k1", "k2", "k2", "k3", "k3", "k4", "k4", "k5", "k5"]
    times = sorted(t for _, t in STARTS)
    observed = (len(times) - 1) / (times[-1] - times[0])
    assert rate * 0.3 <= observed <= rate * 1.1, observed


class _ConcurrencyHeader(Interceptor):
    """Puts ``{"key": <the activity's first argument>, "max": 2}`` in each ScheduleActivityTask's
    ``odin-concurrency`` header (a workflow on any Temporal SDK can; Odin's SDK does it itself)."""

    def workflow_interceptor_class(self, input):
        class Outbound(WorkflowOutboundInterceptor):
            def start_activity(self, input):
                data = json.dumps({"key": input.args[0], "max": 2}).encode()
                input.headers = {**input.headers, "odin-concurrency": Payload(metadata={"encoding": b"json/plain"}, data=data)}
                return super().start_activity(input)

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound):
                super().init(Outbound(outbound))

        return Inbound


def _peak(runs: list[tuple[str, float, float]], key: str) -> int:
    """The most attempts with ``key`` running at the same time."""
    edges = sorted([(start, 1) for k, start, _ in runs if k == key] + [(end, -1) for k, _, end in runs if k == key],
                   key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


async def test_per_key_concurrency_holds_across_servers_on_redis(cluster):
    """Two workers, each through a server of its own and with slots for eight attempts: at most
    two attempts per key run at once, the slots being kept in Redis."""
    _, port_a = cluster.start_server()
    _, port_b = cluster.start_server()
    client_a = await Client.connect(f"127.0.0.1:{port_a}")
    client_b = await Client.connect(f"127.0.0.1:{port_b}")
    queue = f"conc-{uuid.uuid4().hex[:6]}"
    activities = f"{queue}-act"
    keys = ["customer-a"] * 6 + ["customer-b"] * 3
    RUNS.clear()
    async with Worker(client_a, task_queue=queue, workflows=[Limited], interceptors=[_ConcurrencyHeader()]):
        workers = [Worker(c, task_queue=activities, activities=[hold], max_concurrent_activities=8) for c in (client_a, client_b)]
        async with workers[0], workers[1]:
            handle = await client_a.start_workflow(Limited.run, args=[activities, keys, 0.5], id=queue, task_queue=queue)
            assert sorted(await asyncio.wait_for(handle.result(), 90)) == sorted(keys)
    assert len(RUNS) == len(keys)
    assert _peak(RUNS, "customer-a") == 2
    assert _peak(RUNS, "customer-b") == 2
    history = await handle.fetch_history()
    scheduled = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    assert all("odin-concurrency" in e.activity_task_scheduled_event_attributes.header.fields for e in scheduled)


async def test_retention_through_celery_archives_and_deletes(cluster):
    archive = cluster.workdir / "archive"
    cluster.env.update({"ODIN_RETENTION_SWEEP_SECONDS": "1", "ODIN_ARCHIVE_URI": f"file://{archive}"})
    _, port = cluster.start_server()
    cluster.start_worker()
    cluster.start_beat()
    namespace = f"short-{uuid.uuid4().hex[:6]}"
    client = await Client.connect(f"127.0.0.1:{port}", namespace=namespace)
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=namespace, workflow_execution_retention_period=timedelta(seconds=1))
    )
    queue = f"ret-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=queue, workflows=[Nap]):
        handle = await client.start_workflow(Nap.run, 0.1, id=f"ret-{uuid.uuid4().hex[:6]}", task_queue=queue)
        assert await handle.result() == "rested"
    run_id = handle.result_run_id
    events = (await handle.fetch_history()).events

    async def deleted() -> bool:
        try:
            await handle.describe()
            return False
        except RPCError as err:
            assert err.status == RPCStatusCode.NOT_FOUND
            return True

    deadline = asyncio.get_running_loop().time() + 30
    while not await deleted():
        assert asyncio.get_running_loop().time() < deadline, "retention did not delete the run"
        await asyncio.sleep(0.5)
    archived = (await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()).events
    assert [e.SerializeToString() for e in archived] == [e.SerializeToString() for e in events]
    assert any(archive.rglob("*.history"))


def test_the_web_process_starts_under_gunicorn_and_is_ready(cluster):
    port = free_port()
    cluster._spawn(
        "gunicorn",
        [sys.executable, "-m", "gunicorn", "odin.api.rest:create_app()", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        ready="Booting worker",
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                assert json.load(r) == {"status": "ok"}
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as r:
        body = json.load(r)
    assert body == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


def test_a_celery_worker_whose_clock_is_ahead_still_runs_the_sweeps_beat_sends(cluster, tmp_path):
    """Celery checks a job's expiry against its worker's wall clock. Sweeps used to expire 5 s
    after beat sent them, so a worker whose clock ran more than 5 s ahead of beat's discarded
    every one: the timeouts of its shards, and timers whose ETA job was lost, never fired. The
    worker runs under libfaketime, 30 s ahead."""
    from tests.soak.test_soak import load_soak
    from tests.support.services import skip_or_fail

    soak = load_soak()
    library = soak.faketime_library()
    if library is None:
        skip_or_fail(soak.CLOCK_JUMPS_MISSING)
    clocks = soak.FakeClocks(tmp_path, library)
    clocks.set("a", 30)
    plain = cluster.env
    cluster.env = {**plain, **clocks.env("a", "worker")}
    worker = cluster.start_worker(loglevel="DEBUG")  # the sweeps it runs are DEBUG lines
    cluster.env = plain
    cluster.start_beat()
    deadline = time.monotonic() + 30
    ran = []
    while time.monotonic() < deadline and len(ran) < 3:
        ran = [line for line in list(worker.lines) if "odin.sweep_timers[" in line and "succeeded" in line]
        time.sleep(0.2)
    discarded = [line for line in list(worker.lines) if "Discarding revoked task: odin.sweep_timers" in line]
    assert len(ran) >= 3 and not discarded, worker.output()


async def test_worker_heartbeats_are_listed_by_every_server(cluster):
    """A worker reports to one server; another lists and describes it (the registry is in Redis)."""
    from temporalio.api.worker.v1 import WorkerHeartbeat
    from temporalio.api.workflowservice.v1 import DescribeWorkerRequest, ListWorkersRequest, RecordWorkerHeartbeatRequest

    _, port_a = cluster.start_server()
    _, port_b = cluster.start_server()
    client_a = await Client.connect(f"127.0.0.1:{port_a}")
    client_b = await Client.connect(f"127.0.0.1:{port_b}")
    key, queue = str(uuid.uuid4()), f"hb-{uuid.uuid4().hex[:6]}"
    heartbeat = WorkerHeartbeat(worker_instance_key=key, worker_identity="w@host", task_queue=queue, status=1)
    await client_b.workflow_service.record_worker_heartbeat(
        RecordWorkerHeartbeatRequest(namespace="default", worker_heartbeat=[heartbeat])
    )
    listed = await client_a.workflow_service.list_workers(ListWorkersRequest(namespace="default", query=f"TaskQueue = '{queue}'"))
    assert [w.worker_instance_key for w in listed.workers] == [key]
    described = await client_a.workflow_service.describe_worker(DescribeWorkerRequest(namespace="default", worker_instance_key=key))
    assert described.worker_info.worker_heartbeat == heartbeat


async def test_a_batch_run_by_celery_workers_survives_a_killed_worker(cluster):
    """A batch signal run by the Celery workers' ``odin.run_batches``: the worker running it is
    SIGKILLed mid-way, the other takes the job over once its lease lapses, and every run is
    signalled exactly once with the counts right (docs/architecture.md#batch-operations)."""
    from temporalio.api.batch.v1 import message_pb2 as batch
    from temporalio.api.common.v1 import WorkflowExecution, WorkflowType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

    _, port = cluster.start_server()
    w1 = cluster.start_worker("w1")
    cluster.start_beat()
    client = await Client.connect(f"127.0.0.1:{port}")
    s = client.workflow_service
    n, kind = 40, f"Batched{uuid.uuid4().hex[:6]}"
    for i in range(n):
        await s.start_workflow_execution(ws.StartWorkflowExecutionRequest(
            namespace="default", workflow_id=f"{kind}-{i}", workflow_type=WorkflowType(name=kind),
            task_queue=TaskQueue(name=f"none-{kind}"), request_id=str(uuid.uuid4()),
        ))
    await s.start_batch_operation(ws.StartBatchOperationRequest(
        namespace="default", job_id=kind, visibility_query=f"WorkflowType = '{kind}'", reason="chaos",
        max_operations_per_second=5, signal_operation=batch.BatchOperationSignal(signal="once", identity="ops"),
    ))

    async def describe() -> ws.DescribeBatchOperationResponse:
        return await s.describe_batch_operation(ws.DescribeBatchOperationRequest(namespace="default", job_id=kind))

    deadline = time.monotonic() + 60
    while (await describe()).complete_operation_count < 10:
        assert time.monotonic() < deadline, "the batch did not start"
        await asyncio.sleep(0.2)
    cluster.start_worker("w2")
    w1.kill()
    assert "odin.run_batches" in w1.output()
    deadline = time.monotonic() + 120
    while (d := await describe()).state == 1:
        assert time.monotonic() < deadline, f"the batch did not finish: {d}"
        await asyncio.sleep(0.5)
    assert (d.state, d.total_operation_count, d.complete_operation_count, d.failure_operation_count) == (2, n, n, 0)
    for i in range(n):
        history = await s.get_workflow_execution_history(ws.GetWorkflowExecutionHistoryRequest(
            namespace="default", execution=WorkflowExecution(workflow_id=f"{kind}-{i}"),
        ))
        signaled = [e for e in history.history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED]
        assert len(signaled) == 1, (i, len(signaled))


_standalone_attempts: dict[str, int] = {}


@activity.defn
async def fails_twice(key: str) -> str:
    attempt = activity.info().attempt
    _standalone_attempts[key] = attempt
    if attempt < 3:
        raise RuntimeError(f"attempt {attempt} fails")
    return f"done at attempt {attempt}"


async def test_standalone_activity_retries_and_timeouts_through_celery(cluster):
    """A standalone activity's retry timers (Celery ETA jobs) and timeouts (the timer sweep) fire
    in the distributed shape; its attempts reach a worker through Redis."""
    from temporalio.client import ActivityFailureError
    from temporalio.common import RetryPolicy

    _, port = cluster.start_server()
    worker = cluster.start_worker()
    cluster.start_beat()
    client = await Client.connect(f"127.0.0.1:{port}")
    queue = f"standalone-{uuid.uuid4().hex[:8]}"
    key = f"retried-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, activities=[fails_twice]):
        result = await asyncio.wait_for(
            client.execute_activity(
                fails_twice, key, id=key, task_queue=queue, start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(milliseconds=500)),
            ),
            60,
        )
    assert result == "done at attempt 3"
    nobody = await client.start_activity(
        "fails_twice", "x", id=f"timeout-{uuid.uuid4().hex[:8]}", task_queue=queue + "-nobody",
        schedule_to_close_timeout=timedelta(seconds=1),
    )
    with pytest.raises(ActivityFailureError) as timed_out:
        await asyncio.wait_for(nobody.result(), 60)
    assert str(timed_out.value.cause) == "activity ScheduleToStart timeout"
    assert "odin.fire_timer" in worker.output()


def _sample(text: str, series: str) -> float:
    """The value of one series of the exposition text (0 if absent)."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
