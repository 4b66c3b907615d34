"""Fixtures of the Odin SDK tests: an in-process Odin server (SQLite) for the apps to point at."""

from __future__ import annotations

import pytest

from odin.config import Settings
from odin.server import OdinServer
from tests.support.services import migrated_sqlite_url


@pytest.fixture
async def odin(tmp_path):
    server = OdinServer(Settings(database_url=migrated_sqlite_url(tmp_path / "odin.db"), grpc_port=0))
    await server.start()
    yield server
    await server.stop(grace=0.5)
