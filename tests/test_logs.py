"""Log lines under ``ODIN_LOG_FORMAT=json`` (odin/logs.py): one JSON object per record with time,
level, logger and message, plus ``namespace``, ``workflow_id`` and ``run_id`` where the line was
written while a call or the engine worked on them; audit lines carry their fields in the same
object. (``trace_id`` needs tracing on: tests/distributed/test_tracing.py checks it on a real
server's lines.)"""

from __future__ import annotations

import io
import json
import logging
import uuid
from datetime import timedelta

from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.worker import Worker

from odin import logs, tracing
from odin.config import Settings, sqlite_url_for_path
from odin.server import OdinServer
from tests.support.workflows import OneActivity, echo


async def test_json_lines_carry_the_namespace_workflow_and_run_they_were_written_for(tmp_path):
    server = OdinServer(Settings(database_url=sqlite_url_for_path(str(tmp_path / "odin.db")), grpc_port=0))
    await server.start()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    odin_logger, audit = logging.getLogger("odin"), logging.getLogger("odin.audit")
    levels = odin_logger.level, audit.level
    odin_logger.addHandler(handler)
    odin_logger.setLevel(logging.WARNING)
    audit.setLevel(logging.INFO)
    try:
        client = await Client.connect(f"127.0.0.1:{server.endpoints.grpc_port}")
        namespace = f"logs-{uuid.uuid4().hex[:8]}"
        # Payloads over 100 bytes are logged in this namespace (a warning, not an error).
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(namespace=namespace, data={"odin.blob_size_limit_warn": "100"})
        )
        client = await Client.connect(f"127.0.0.1:{server.endpoints.grpc_port}", namespace=namespace)
        queue, workflow_id = f"tq-{uuid.uuid4().hex[:8]}", f"wf-{uuid.uuid4().hex[:8]}"
        async with Worker(client, task_queue=queue, workflows=[OneActivity], activities=[echo]):
            handle = await client.start_workflow(
                OneActivity.run, "x" * 500, id=workflow_id, task_queue=queue, execution_timeout=timedelta(seconds=30)
            )
            assert await handle.result() == "x" * 500
    finally:
        odin_logger.removeHandler(handler)
        odin_logger.setLevel(levels[0])
        audit.setLevel(levels[1])
        await server.stop(grace=0.5)

    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert records and all({"time", "level", "logger", "message"} <= r.keys() for r in records), records
    # The payloads over the namespace's warning limit: the workflow's commands, logged while the
    # engine applied the worker's completions to the run ...
    warnings = [r for r in records if r["logger"] == "odin.history.worker_tasks"]
    assert [r["message"].split(" of ")[0] for r in warnings] == ["ScheduleActivityTask input", "CompleteWorkflowExecution result"]
    for warning in warnings:
        assert warning["level"] == "WARNING"
        assert (warning["namespace"], warning["workflow_id"], warning["run_id"]) == (namespace, workflow_id, handle.result_run_id)
        assert "trace_id" not in warning  # tracing is off
    # ... and the start's input, checked before the run exists: the namespace only.
    [early] = [r for r in records if r["message"].startswith("StartWorkflowExecution input")]
    assert early["namespace"] == namespace and "run_id" not in early
    # The audit line of the start: its fields in the object, a short message.
    [start] = [r for r in records if r.get("operation") == "StartWorkflowExecution"]
    assert start["logger"] == "odin.audit" and start["level"] == "INFO" and start["audit"] is True
    assert start["message"] == "audit StartWorkflowExecution OK"
    assert (start["namespace"], start["target"], start["outcome"]) == (namespace, workflow_id, "OK")
    assert isinstance(start["ts"], float) and start["subject"]


def test_text_lines_stay_as_they_were():
    record = logging.LogRecord("odin.audit", logging.INFO, __file__, 1, '{"operation":"X"}', None, None)
    record.odin_fields, record.odin_summary = {"operation": "X"}, "audit X OK"
    json_lines = logs.JsonFormatter()  # from now on the context is kept (text lines never show it)
    token = logs.bind(namespace="ns", workflow_id="wf")
    try:
        line = logging.Formatter(logs.TEXT_FORMAT).format(record)
        document = json.loads(json_lines.format(record))
    finally:
        logs.unbind(token)
    assert line.endswith('INFO odin.audit: {"operation":"X"}')
    assert document["namespace"] == "ns" and document["workflow_id"] == "wf" and document["message"] == "audit X OK"
    assert "namespace" not in json.loads(json_lines.format(record))  # unbound again


def test_tracing_is_off_unless_the_environment_asks():
    assert not tracing.wanted({})
    assert not tracing.wanted({"OTEL_SERVICE_NAME": "odin"})
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "otlp"})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert not tracing.wanted({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert not tracing.wanted({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"})
    assert tracing.configure("server", environ={}) is False and not tracing.enabled
