"""Fixtures and helpers of the REST tests.

- ``app``/``http``: the app with a runtime of its own on the bridge loop, as under gunicorn.
- ``served``: the app attached to an in-process ``OdinServer`` on the test's loop, as under
  ``odin dev``, so a temporalio worker (through the ``client`` fixture) can run its workflows.
  Its calls run on a thread, because the app calls back into the test's loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from odin.api.rest import RuntimeHandle, create_app
from odin.config import Settings, sqlite_url_for_path
from odin.persistence import migrate
from odin.persistence.store import open_database
from odin.server import OdinServer

REPO = Path(__file__).resolve().parents[3]
# Long polls in the tests wait at most this long (the app's default is 20 s).
LONG_POLL = 2.0
CONFIG = {"ODIN_LONG_POLL_SECONDS": LONG_POLL, "TESTING": True}


async def upgrade(url: str) -> None:
    db = open_database(url)
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()


@pytest.fixture
def migrated_url(tmp_path) -> str:
    url = sqlite_url_for_path(str(tmp_path / "odin.db"))
    asyncio.run(upgrade(url))
    return url


@pytest.fixture
def app(migrated_url) -> Flask:
    app = create_app(Settings(database_url=migrated_url, num_shards=4), config=CONFIG)
    yield app
    app.extensions["odin"].close()


@pytest.fixture
def http(app) -> FlaskClient:
    return app.test_client()


class Api:
    """A Flask test client whose calls run off the event loop the app calls into."""

    def __init__(self, app: Flask):
        self.app = app
        self.client = app.test_client()

    async def get(self, path: str, **kwargs) -> TestResponse:
        return await asyncio.to_thread(self.client.get, path, **kwargs)

    async def post(self, path: str, **kwargs) -> TestResponse:
        return await asyncio.to_thread(self.client.post, path, **kwargs)

    async def delete(self, path: str, **kwargs) -> TestResponse:
        return await asyncio.to_thread(self.client.delete, path, **kwargs)


def attach(server: OdinServer) -> Api:
    return Api(create_app(runtime=RuntimeHandle.attached(server.runtime, asyncio.get_running_loop()), config=CONFIG))


@pytest.fixture
async def served(odin_server) -> Api:
    """On the ``odin_server`` of conftest (SQLite and PostgreSQL)."""
    return attach(odin_server)


@pytest.fixture
async def sqlite_server(tmp_path):
    server = OdinServer(Settings(database_url=sqlite_url_for_path(str(tmp_path / "odin.db")), grpc_port=0, num_shards=4))
    await server.start()
    yield server
    await server.stop(grace=0.5)


@pytest.fixture
async def served_sqlite(sqlite_server) -> Api:
    return attach(sqlite_server)


@pytest.fixture
async def sdk(sqlite_server):
    from temporalio.client import Client

    return await Client.connect(f"127.0.0.1:{sqlite_server.endpoints.grpc_port}", namespace="default")


def wid(prefix: str = "wf") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def start_body(workflow_type: str, task_queue: str, *args, **fields) -> dict:
    return {"workflowType": {"name": workflow_type}, "taskQueue": {"name": task_queue}, "input": list(args), **fields}


def assert_error(response: TestResponse, status: int, code: str) -> dict:
    """The response is the JSON error body with this status and code; returns its ``error``."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    assert "Traceback" not in response.get_data(as_text=True)
    return body["error"]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for an ``odin``/``gunicorn`` child running this checkout's code."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    for key in ("DATABASE_URL", "REDIS_URL"):
        env.pop(key, None)
    return env


def http_call(method: str, url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
    """A JSON call to a real HTTP server: (status, body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)
