"""Fixtures of the Odin SDK tests: an in-process Odin server (SQLite) for the apps to point at."""

from __future__ import annotations

import pytest

from odin.config import Settings, sqlite_url_for_path
from odin.server import OdinServer


@pytest.fixture
async def odin(tmp_path):
    server = OdinServer(Settings(database_url=sqlite_url_for_path(str(tmp_path / "odin.db")), grpc_port=0))
    await server.start()
    yield server
    await server.stop(grace=0.5)
