"""Fixtures of the REST tests.

- ``app``/``http``: the app with a runtime of its own on the bridge loop, as under gunicorn.
- ``served``: the app attached to an in-process ``OdinServer`` on the test's loop, as under
  ``odin dev``, so a temporalio worker (through the ``client`` fixture) can run its workflows.
  Its calls run on a thread, because the app calls back into the test's loop.
"""

from __future__ import annotations

import asyncio

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rest_support import CONFIG
from werkzeug.test import TestResponse

from odin.api.rest import RuntimeHandle, create_app
from odin.config import Settings
from odin.server import OdinServer
from tests.support.services import migrated_sqlite_url


@pytest.fixture
def migrated_url(tmp_path) -> str:
    return migrated_sqlite_url(tmp_path / "odin.db")


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
    server = OdinServer(Settings(database_url=migrated_sqlite_url(tmp_path / "odin.db"), grpc_port=0, num_shards=4))
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


