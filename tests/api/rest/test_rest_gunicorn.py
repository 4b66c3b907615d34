"""The REST app as production runs it: gunicorn workers (``create_app()``, settings from the
environment) on a throw-away PostgreSQL database, beside a gRPC server on the same database and
Redis, where a temporalio worker runs the workflows the REST API starts."""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from rest_support import http_call as call
from rest_support import subprocess_env, wid
from rest_workflows import Greet, shout
from temporalio.client import Client
from temporalio.worker import Worker

from odin.config import Settings
from odin.server import OdinServer
from tests.distributed.cluster import Process, free_port
from tests.support.services import REDIS_URL, throwaway_postgres_database

pytestmark = pytest.mark.timeout(120)


def web_command() -> str:
    procfile = (Path(__file__).resolve().parents[3] / "Procfile").read_text()
    return next(line.split(":", 1)[1].strip() for line in procfile.splitlines() if line.startswith("web:"))


@pytest.fixture
def database_url():
    with throwaway_postgres_database() as url:
        yield url


@pytest.fixture
def web(database_url, redis_prefix, tmp_path):
    env = subprocess_env(
        ODIN_DATABASE_URL=database_url, ODIN_REDIS_URL=REDIS_URL, ODIN_REDIS_PREFIX=redis_prefix, ODIN_NUM_SHARDS="4"
    )
    Process("db upgrade", [sys.executable, "-m", "odin.cli", "db", "upgrade"], env, tmp_path, ready="newest schema")
    port = free_port()
    # The Procfile's own web command, as a deploy runs it (two workers, to share one Redis).
    command = shlex.split(web_command().replace("$PORT", str(port)).replace("0.0.0.0", "127.0.0.1"))
    assert command[0] == "gunicorn"
    gunicorn = Process("gunicorn", [sys.executable, "-m", *command, "--workers", "2"], env, tmp_path, ready="Booting worker")
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if call("GET", f"{base}/readyz")[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, gunicorn.output()
        time.sleep(0.2)
    try:
        yield base
    finally:
        gunicorn.stop()
        if any("Traceback" in line for line in gunicorn.lines):
            print(gunicorn.output())


async def test_a_workflow_started_through_gunicorn_completes_on_a_worker_of_a_grpc_server(web, database_url, redis_prefix, task_queue):
    settings = Settings(database_url=database_url, redis_url=REDIS_URL, redis_prefix=redis_prefix, num_shards=4, grpc_port=0)
    server = OdinServer(settings, auto_migrate=False)
    await server.start()
    try:
        client = await Client.connect(f"127.0.0.1:{server.endpoints.grpc_port}")
        workflow_id = wid("gunicorn/eu")  # a slash in the id: one path segment, sent as %2F
        url = f"{web}/api/v1/namespaces/default/workflows/{quote(workflow_id, safe='')}"
        body = {"workflowType": {"name": "Greet"}, "taskQueue": {"name": task_queue}, "input": ["web", {"via": "gunicorn"}]}
        async with Worker(client, task_queue=task_queue, workflows=[Greet], activities=[shout]):
            # Retries with one key, likely answered by both gunicorn workers, start one run.
            answers = [await asyncio.to_thread(call, "POST", url, body, {"Idempotency-Key": "k-1"}) for _ in range(4)]
            assert {status for status, _ in answers} == {201}
            assert len({answer["runId"] for _, answer in answers}) == 1
            status, result = await asyncio.to_thread(call, "GET", f"{url}/result?wait=15")
        assert status == 200, result
        assert result["result"] == {"greeting": "HELLO, WEB", "extra": {"via": "gunicorn"}}
        assert await client.get_workflow_handle(workflow_id).result() == result["result"]

        again = {**body, "workflowIdReusePolicy": "WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE"}
        status, error = await asyncio.to_thread(call, "POST", url, again)
        assert status == 409 and error["error"]["details"][0]["runId"] == answers[0][1]["runId"]
        status, error = await asyncio.to_thread(call, "GET", f"{web}/api/v1/namespaces/nowhere/workflows")
        assert status == 404 and error["error"]["code"] == "NOT_FOUND"

        # Long polls (one per worker process here) leave the probes answering at once.
        body = {"workflowType": {"name": "Greet"}, "taskQueue": {"name": f"{task_queue}-nobody"}, "input": ["x", {}]}
        waiting = [f"{web}/api/v1/namespaces/default/workflows/{wid('wait')}" for _ in range(4)]
        for url in waiting:
            assert (await asyncio.to_thread(call, "POST", url, body))[0] == 201
        polls = [asyncio.create_task(asyncio.to_thread(call, "GET", f"{url}/result?wait=6")) for url in waiting]
        await asyncio.sleep(0.5)
        began = time.monotonic()
        assert (await asyncio.to_thread(call, "GET", f"{web}/healthz"))[0] == 200
        assert time.monotonic() - began < 3, "the probe waited behind the long polls"
        assert [(await poll)[0] for poll in polls] == [202] * 4

        # /metrics on any worker adds up both (PROMETHEUS_MULTIPROC_DIR, from the Procfile's gunicorn
        # settings): all 9 REST starts are there, whichever process answered each.
        for _ in range(4):
            text = await asyncio.to_thread(_text, f"{web}/metrics")
            starts = _samples(text, "service_requests_total", door="rest", operation="StartWorkflowExecution")
            assert starts == 9, text
        assert _samples(text, "service_errors_total", door="rest", operation="ListWorkflowExecutions", status="NOT_FOUND") == 1
    finally:
        await server.stop(grace=0.5)


def _text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def _samples(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples that carry these labels."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{"):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total
