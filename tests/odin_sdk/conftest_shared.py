"""Fixtures shared by the SDK tests: an in-process Odin server (SQLite) and apps pointed at it."""

from __future__ import annotations

import uuid

import pytest

from odin.config import Settings, sqlite_url_for_path
from odin.server import OdinServer


@pytest.fixture
async def odin(tmp_path):
    server = OdinServer(Settings(database_url=sqlite_url_for_path(str(tmp_path / "odin.db")), grpc_port=0))
    await server.start()
    yield server
    await server.stop(grace=0.5)


def point(app, server) -> str:
    """Aim ``app`` at ``server`` on a fresh task queue; returns the queue."""
    app.address = f"127.0.0.1:{server.endpoints.grpc_port}"
    app.task_queue = f"{app.name}-{uuid.uuid4().hex[:6]}"
    return app.task_queue
