"""``odin dev`` serves the REST API and web UI on ``--http-port`` from the runtime of its gRPC
door: a workflow started over HTTP reaches a worker polling over gRPC (the task queues are in
that one process's memory), and Ctrl-C still stops it cleanly."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

from rest_support import http_call as call
from rest_support import subprocess_env, wid
from rest_workflows import Greet, shout
from temporalio.client import Client
from temporalio.worker import Worker

from odin.config import Settings, sqlite_url_for_path
from odin.server import OdinServer
from tests.distributed.cluster import Process


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
    settings = Settings(database_url=sqlite_url_for_path(str(tmp_path / "odin.db")), grpc_port=0, http_port=0)
    server = OdinServer(settings, serve_http=True)
    await server.start()
    try:
        assert server.endpoints.http_port
        assert server._http.app.extensions["odin"].get() is server.runtime
    finally:
        await server.stop(grace=0.5)
    assert server._http is None
