"""``odin dev`` serves the REST API and web UI on ``--http-port`` from the runtime of its gRPC
door: a workflow started over HTTP reaches a worker polling over gRPC (the task queues are in
that one process's memory), and Ctrl-C still stops it cleanly."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import signal
import sys

from rest_support import http_call as call
from rest_support import subprocess_env, wid
from rest_workflows import Greet, shout
from temporalio.client import Client
from temporalio.worker import Worker

from odin.config import Settings
from odin.server import OdinServer
from tests.distributed.cluster import Process
from tests.support.services import migrated_sqlite_url


async def test_odin_dev_serves_http_from_the_runtime_of_its_grpc_door(tmp_path, task_queue):
    dev = Process(
        "odin dev",
        [sys.executable, "-m", "odin.cli", "dev", "--db", str(tmp_path / "dev.db"), "--grpc-port", "0", "--http-port", "0"],
        subprocess_env(), tmp_path, ready="Odin dev server:", timeout=30,
    )
    try:
        banner = next(line for line in dev.lines if line.startswith("Odin dev server:"))
        grpc, http = re.search(r"gRPC on (\S+), web UI and REST API on (http://\S+)/,", banner).groups()
        assert (await asyncio.to_thread(call, "GET", f"{http}/healthz")) == (200, {"status": "ok"})

        client = await Client.connect(grpc)
        workflow_id = wid("dev")
        url = f"{http}/api/v1/namespaces/default/workflows/{workflow_id}"
        async with Worker(client, task_queue=task_queue, workflows=[Greet], activities=[shout]):
            body = {"workflowType": {"name": "Greet"}, "taskQueue": {"name": task_queue}, "input": ["dev", {}]}
            assert (await asyncio.to_thread(call, "POST", url, body))[0] == 201
            status, result = await asyncio.to_thread(call, "GET", f"{url}/result?wait=10")
        assert (status, result["result"]) == (200, {"greeting": "HELLO, DEV", "extra": {}})
    finally:
        dev.proc.send_signal(signal.SIGINT)
        returncode = dev.proc.wait(15)
    assert returncode == 0, dev.output()
    assert "odin: shutting down" in dev.output()


async def test_the_http_door_shares_the_server_runtime(tmp_path):
    settings = Settings(database_url=migrated_sqlite_url(tmp_path / "odin.db"), grpc_port=0, http_port=0)
    server = OdinServer(settings, serve_http=True)
    await server.start()
    try:
        assert server.endpoints.http_port
        assert server._http.app.extensions["odin"].get() is server.runtime
    finally:
        await server.stop(grace=0.5)
    assert server._http is None


def _raw(port: int, method: str, path: str, body=None, headers: dict | None = None) -> tuple[int, dict]:
    """One request as a client writes it on the wire (the path sent exactly as given)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {}, encode_chunked=bool(headers and "Transfer-Encoding" in headers))
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


async def test_raw_paths_and_chunked_bodies_on_the_dev_http_server(tmp_path):
    settings = Settings(
        database_url=migrated_sqlite_url(tmp_path / "odin.db"), grpc_port=0, http_port=0, http_max_request_bytes=64 * 1024
    )
    server = OdinServer(settings, serve_http=True)
    await server.start()
    port = server.endpoints.http_port
    ns = "/api/v1/namespaces/default"
    try:
        def chunks():
            yield b'{"workflowType": {"name": "X"}, "taskQueue": {"name": "q"}, "input": ["'
            for _ in range(4):
                yield b"x" * 32 * 1024
            yield b'"]}'

        status, body = await asyncio.to_thread(_raw, port, "POST", f"{ns}/workflows/big", chunks(), {"Transfer-Encoding": "chunked"})
        assert (status, body["error"]["code"]) == (413, "RESOURCE_EXHAUSTED")
        status, body = await asyncio.to_thread(_raw, port, "GET", f"{ns}/workflows/big")
        assert status == 404  # nothing was started

        status, body = await asyncio.to_thread(_raw, port, "POST", f"{ns}/workflows/%ff%fe", b"{}")
        assert (status, body["error"]["code"]) == (400, "INVALID_ARGUMENT") and "UTF-8" in body["error"]["message"]

        start = json.dumps({"workflowType": {"name": "X"}, "taskQueue": {"name": "q"}}).encode()
        status, body = await asyncio.to_thread(_raw, port, "POST", f"{ns}/workflows/orders%2F42%20%C3%BC", start)
        assert status == 201, body
        status, body = await asyncio.to_thread(_raw, port, "GET", f"{ns}/workflows/orders%2F42%20%C3%BC")
        assert status == 200 and body["workflowExecutionInfo"]["execution"]["workflowId"] == "orders/42 ü"
    finally:
        await server.stop(grace=0.5)


async def test_odin_dev_reads_odin_settings_from_the_environment_but_stays_self_contained(tmp_path):
    env = subprocess_env(
        ODIN_HTTP_MAX_REQUEST_BYTES="1000",
        ODIN_NAMESPACE_RPS="1",
        # Ignored by dev: it runs on its own SQLite file and in-memory queues.
        ODIN_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
        ODIN_REDIS_URL="redis://127.0.0.1:1/0",
    )
    dev = Process(
        "odin dev",
        [sys.executable, "-m", "odin.cli", "dev", "--db", str(tmp_path / "dev.db"), "--grpc-port", "0", "--http-port", "0"],
        env, tmp_path, ready="Odin dev server:", timeout=30,
    )
    try:
        banner = next(line for line in dev.lines if line.startswith("Odin dev server:"))
        port = int(re.search(r"REST API on http://[^:]+:(\d+)/", banner).group(1))
        status, body = await asyncio.to_thread(
            _raw, port, "POST", "/api/v1/namespaces/default/workflows/big", json.dumps({"input": ["x" * 3000]}).encode()
        )
        assert (status, body["error"]["code"]) == (413, "RESOURCE_EXHAUSTED")
        statuses = [(await asyncio.to_thread(_raw, port, "GET", "/api/v1/namespaces/default"))[0] for _ in range(5)]
        assert statuses[0] == 200 and 429 in statuses
    finally:
        dev.proc.send_signal(signal.SIGINT)
        dev.proc.wait(15)
