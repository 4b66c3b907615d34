"""Traces across the distributed shape (docs/operations.md#tracing): the temporalio SDK with its
``TracingInterceptor`` (spans kept by the OpenTelemetry SDK's in-memory exporter), ``odin server``
and a Celery worker exporting OTLP to a receiver in the test, PostgreSQL and Redis. A workflow with
an activity and a timer is one trace: client start -> server call -> the run's changes (each
linked to the worker call or Celery job that made it) -> the worker's workflow and activity -> the
timer's Celery job -> the close."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from cluster import Cluster, Process, free_port
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import Worker
from workflows import GreetThenNap, greet

from tests.support.services import private_redis_server, throwaway_postgres_database
from tests.support.traces import OtlpReceiver, Span, from_sdk, tree

pytestmark = pytest.mark.timeout(180)


def _storage(s: Span) -> bool:
    return "db.system" in s.attributes or "db.system.name" in s.attributes


async def test_a_workflow_with_an_activity_and_a_timer_is_one_trace(tmp_path):
    receiver = OtlpReceiver()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with throwaway_postgres_database() as database_url, private_redis_server(tmp_path) as redis_url:
        cluster = Cluster(
            database_url,
            redis_url,
            tmp_path,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="100",
            OTEL_SERVICE_NAME="odin",
            ODIN_LOG_FORMAT="json",
        )
        assert cluster.odin("db", "upgrade").returncode == 0
        try:
            server, port = cluster.start_server()
            cluster.start_worker()
            cluster.start_beat()  # its sweeps (every second) leave no spans
            client = await Client.connect(
                f"127.0.0.1:{port}", interceptors=[TracingInterceptor(provider.get_tracer("test"))]
            )
            queue = f"traced-{uuid.uuid4().hex[:8]}"
            async with Worker(client, task_queue=queue, workflows=[GreetThenNap], activities=[greet]):
                result = await client.execute_workflow(GreetThenNap.run, "odin", id=f"traced-{queue}", task_queue=queue)
            assert result == "hello odin"

            client_spans = from_sdk(exporter.get_finished_spans(), "temporalio SDK (test process)")
            [start] = [s for s in client_spans if s.name == "StartWorkflow:GreetThenNap"]
            trace_id = start.trace_id
            deadline = time.monotonic() + 20
            while True:  # the processes export every 100 ms
                server_spans = [s for s in receiver.received() if s.trace_id == trace_id]
                names = [s.name for s in server_spans]
                if any("WORKFLOW_EXECUTION_COMPLETED" in n for n in names) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            # Idle (no workflow, beat sweeping every second, leases renewed): nothing is exported.
            await asyncio.sleep(1)
            before = len(receiver.received())
            await asyncio.sleep(3)
            idle = receiver.received()[before:]
            server_lines = [json.loads(line) for line in server.lines if line.startswith("{")]
        finally:
            cluster.shutdown()
            receiver.close()
    everything = {s.span_id: s for s in client_spans + receiver.received()}
    assert idle == [], [(s.name, s.service, s.attributes.get("db.statement"), everything.get(s.parent_id)) for s in idle]
    # The server's JSON log lines carry the trace of the call they were written in.
    [audit] = [r for r in server_lines if r.get("operation") == "StartWorkflowExecution"]
    assert audit["trace_id"] == trace_id and audit["namespace"] == "default" and audit["target"] == f"traced-{queue}"
    spans = client_spans + receiver.received()
    print("\n" + tree(spans, trace_id))
    print("\nwithout SQL statements and Redis commands:\n" + tree(spans, trace_id, skip=_storage))
    by_id = {s.span_id: s for s in spans}

    def parent(s: Span) -> Span:
        return by_id[s.parent_id]

    def one(name: str, where=lambda s: True) -> Span:
        found = [s for s in spans if s.trace_id == trace_id and s.name == name and where(s)]
        assert len(found) == 1, (name, [s.name for s in spans if s.trace_id == trace_id])
        return found[0]

    # The server's call continues the client's span (the Temporal header's context) ...
    rpc = one("StartWorkflowExecution")
    assert parent(rpc) is start and "/server" in rpc.service
    run_start = one("history start")
    assert parent(run_start) is rpc and run_start.attributes["odin.workflow_id"] == f"traced-{queue}"
    # ... and every later change of the run is a child of its start, linked to the call that made it.
    changes = [s for s in spans if s.trace_id == trace_id and s.name.startswith("history ") and s is not run_start]
    by_event = {event: s for s in changes for event in s.attributes["odin.events"]}
    for event in ("WORKFLOW_TASK_STARTED", "ACTIVITY_TASK_SCHEDULED", "ACTIVITY_TASK_COMPLETED", "TIMER_STARTED",
                  "TIMER_FIRED", "WORKFLOW_EXECUTION_COMPLETED"):
        assert event in by_event, (event, sorted(by_event))
    for event in ("WORKFLOW_TASK_STARTED", "ACTIVITY_TASK_COMPLETED", "WORKFLOW_EXECUTION_COMPLETED"):
        change = by_event[event]
        assert parent(change) is run_start, event
        [link] = change.links
        assert by_id[link].name in ("PollWorkflowTaskQueue", "RespondWorkflowTaskCompleted", "RespondActivityTaskCompleted"), event
    # The timer: the change that started it queued the Celery job, whose run in the worker
    # process fired it.
    fired = by_event["TIMER_FIRED"]
    job = parent(fired)
    assert job.name == "run/odin.fire_timer" and "/worker" in job.service
    sent = parent(job)
    assert sent.name == "apply_async/odin.fire_timer" and "/server" in sent.service
    assert parent(sent) is by_event["TIMER_STARTED"]
    # The worker's workflow and activity spans are in the same trace, under the client's start.
    run_workflow = one("RunWorkflow:GreetThenNap")
    assert parent(run_workflow) is start
    run_activity = one("RunActivity:greet")
    assert parent(run_activity).name == "StartActivity:greet" and parent(parent(run_activity)) is start
    # Store calls and their SQL statements, and Redis round trips, sit under the changes.
    sql_groups = [s for s in spans if s.trace_id == trace_id and s.name.startswith("sql ")]
    assert any(parent(g) is fired for g in sql_groups)
    assert any(s.parent_id in {g.span_id for g in sql_groups} for s in spans if "db.statement" in s.attributes or "db.query.text" in s.attributes)
    assert any(s.attributes.get("db.system") == "redis" or s.attributes.get("db.system.name") == "redis" for s in spans if s.trace_id == trace_id)


APP = '''
from odin.sdk import App

app = App("traced")  # ODIN_ADDRESS, ODIN_TASK_QUEUE; ODIN_TRACING=1 turns tracing on


@app.activity(start_to_close_timeout=10)
async def hello(name: str) -> str:
    return f"hello {name}"


@app.workflow
async def greet(name: str) -> str:
    return await hello(name)
'''

MAIN = '''
import asyncio
from opentelemetry import trace
from traced_app import app, greet


async def main() -> None:
    async with app.worker():
        handle = await greet.start_async("sdk", id="traced-sdk")
        print("result", await handle.result_async(30), flush=True)
    trace.get_tracer_provider().force_flush()


asyncio.run(main())
'''


def test_the_odin_sdk_and_the_rest_api_join_the_trace(tmp_path):
    """``odin dev`` and an Odin SDK app with ``ODIN_TRACING=1``, both exporting to the receiver:
    the app's start, the server's call and the worker's activity share one trace; a REST route
    has its span (Flask's instrumentation) continuing the caller's ``traceparent``."""
    receiver = OtlpReceiver()
    (tmp_path / "traced_app.py").write_text(APP)
    (tmp_path / "main.py").write_text(MAIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ODIN_", "OTEL_"))}
    env.update(
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="100", PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parents[2])]),
    )
    grpc_port, http_port = free_port(), free_port()
    server = Process(
        "odin dev",
        [sys.executable, "-m", "odin.cli", "dev", "--db", str(tmp_path / "odin.db"), "--grpc-port", str(grpc_port),
         "--http-port", str(http_port)],
        {**env, "OTEL_SERVICE_NAME": "odin"}, tmp_path, ready="Odin dev server",
    )
    try:
        app = subprocess.run(
            [sys.executable, "main.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
            env={**env, "OTEL_SERVICE_NAME": "shop", "ODIN_TRACING": "1", "ODIN_ADDRESS": f"127.0.0.1:{grpc_port}",
                 "ODIN_TASK_QUEUE": "traced"},
        )
        assert app.returncode == 0 and "result hello sdk" in app.stdout, app.stdout + app.stderr
        caller = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
        request = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/api/v1/namespaces/default/workflows/traced-sdk", headers={"traceparent": caller}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read())["workflowExecutionInfo"]["execution"]["workflowId"] == "traced-sdk"
        deadline = time.monotonic() + 20
        while not any(s.trace_id == "ab" * 16 for s in receiver.received()) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        server.stop()
        receiver.close()
    spans = receiver.received()
    [start] = [s for s in spans if s.name == "StartWorkflow:greet"]
    print("\n" + tree(spans, start.trace_id, skip=_storage))
    by_id = {s.span_id: s for s in spans}
    assert start.service.startswith("shop")
    [rpc] = [s for s in spans if s.name == "StartWorkflowExecution"]
    assert by_id[rpc.parent_id] is start and rpc.service.startswith("odin/server")
    [run_activity] = [s for s in spans if s.name == "RunActivity:hello"]
    assert run_activity.trace_id == start.trace_id and run_activity.service.startswith("shop")
    completed = [s for s in spans if "WORKFLOW_EXECUTION_COMPLETED" in s.name]
    assert [s.trace_id for s in completed] == [start.trace_id]
    [route] = [s for s in spans if s.trace_id == "ab" * 16 and s.parent_id == "cd" * 8]
    assert route.name.startswith("GET /api/v1/namespaces/") and route.service.startswith("odin/server")
    assert any(s.parent_id == route.span_id and s.name.startswith("sql ") for s in spans)


def test_an_exporter_odin_does_not_have_is_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ODIN_", "OTEL_"))}
    for variables, message in (
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER='zipkin': Odin exports to one of otlp, console"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
         "OTEL_EXPORTER_OTLP_PROTOCOL='grpc': Odin exports OTLP over http/protobuf"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "odin.cli", "dev", "--db", str(tmp_path / "odin.db"), "--grpc-port", "0", "--http-port", "0"],
            env={**env, **variables}, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 1 and done.stderr.strip() == f"Error: {message}", done.stderr
